"""EASE: embarrassingly shallow autoencoder (Steck, WWW 2019).

A closed-form item-item linear model: scores = X B, with the diagonal of B forced to zero so
that an item cannot recommend itself.

=================  ===========================  =========================================
paper              code                         meaning
=================  ===========================  =========================================
X                  ``train`` (binary CSR)       users x items interactions
G = X^T X          ``gram``                     item co-occurrence counts
lambda             ``l2_lambda``                L2 penalty on B
P = (G + λI)^-1    ``precision``                solved in float64 (Cholesky)
B = I - P / diag   ``weights``                  B_ij = -P_ij / P_jj (i != j), B_jj = 0
=================  ===========================  =========================================

``select_ease_lambda`` picks lambda on validation (valid Recall@20, train masked), computing the
Gram matrix once for the whole grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import torch

from recdiff._warnings import warn
from recdiff.eval.evaluator import as_binary_csr
from recdiff.eval.metrics import Averaging
from recdiff.eval.protocol import EvalTask
from recdiff.memory import require_memory
from recdiff.models.base import Recommender, WeightsMismatch, check_train

DEFAULT_LAMBDA_GRID: tuple[float, ...] = (50.0, 100.0, 200.0, 300.0, 500.0, 1000.0, 2000.0, 5000.0)


@dataclass(frozen=True)
class EASEConfig:
    """Hyper-parameters of EASE."""

    #: L2 penalty lambda on the item-item weights; larger = smoother. Choose on validation.
    l2_lambda: float = 500.0

    def __post_init__(self) -> None:
        if not self.l2_lambda > 0:
            raise ValueError(
                f"l2_lambda must be positive (it keeps G + λI invertible), got {self.l2_lambda}"
            )


#: Bytes per pair of items at the peak of a fit: the float64 Gram matrix, its float64 working
#: copy and the float32 weights (see :func:`ease_weights`); choosing lambda on validation also
#: keeps the best weights so far (float32).
FIT_BYTES_PER_PAIR = 20
SELECT_BYTES_PER_PAIR = 24


def check_ease_memory(n_items: int, bytes_per_pair: int = FIT_BYTES_PER_PAIR) -> None:
    """Refuse, before the Gram matrix is built, a catalogue whose dense items x items matrices
    do not fit in the memory available (300,000 items need 1.8 TB): the allocation would fail
    after minutes of work, or the OOM killer end the process without a word."""
    require_memory(
        bytes_per_pair * n_items**2,
        f"EASE on {n_items:,} items (dense items x items matrices, {bytes_per_pair} bytes per "
        "pair of items)",
        "keep fewer items (data.k_core=K drops users and items with fewer than K interactions; "
        "or filter rare items out of the data) or choose a model without an items x items "
        "matrix (multvae, ldiffrec, popularity)",
    )


def gram_matrix(train: sp.csr_matrix) -> np.ndarray:
    """Dense float64 item co-occurrence matrix ``X^T X`` of a binary CSR."""
    train = as_binary_csr(train, "train")
    return np.asarray((train.T @ train).toarray(), dtype=np.float64)


def ease_weights(gram: np.ndarray, l2_lambda: float) -> np.ndarray:
    """Closed-form ``B`` (float32) from a Gram matrix; the Gram matrix is not modified.

    Memory: one float64 copy of the Gram matrix, worked on in place, and the float32 result:
    with the Gram matrix, 2.5 n^2 doubles at the peak (8 GB at 20,000 items; 5.5, 18 GB, when
    an identity, G + λI, LAPACK's Fortran copy and two triangles were separate arrays)."""
    n_items = gram.shape[0]
    # G + λI is symmetric positive definite: invert it from its Cholesky factor (LAPACK potrf,
    # then potri, ~n^3 flops against ~2.3 n^3 for solving against the identity: 3.5-4.4 s
    # against 5.4-7.6 s at 4,000 items on 1 thread here). LAPACK overwrites a Fortran-ordered
    # array in place; the transpose of the C-ordered copy is one, and the same matrix.
    regularised = gram.copy()
    regularised.flat[:: n_items + 1] += l2_lambda
    factor, info = scipy.linalg.lapack.dpotrf(regularised.T, lower=1, clean=0, overwrite_a=1)
    if info == 0:
        precision, info = scipy.linalg.lapack.dpotri(factor, lower=1, overwrite_c=1)
    if info != 0:
        raise ValueError(
            f"EASE: the Gram matrix plus l2_lambda={l2_lambda} is not positive definite (LAPACK "
            f"info {info}); raise l2_lambda"
        )
    _mirror_lower(precision)
    precision /= -np.diag(precision)[None, :]  # B_ij = -P_ij / P_jj
    np.fill_diagonal(precision, 0.0)
    return np.ascontiguousarray(precision, dtype=np.float32)


def _mirror_lower(matrix: np.ndarray, block: int = 512) -> None:
    """Copy the lower triangle of a square matrix onto its upper one, in place (potri fills one
    triangle), a block of rows at a time so that the temporaries stay ``block x n``."""
    n = matrix.shape[0]
    for start in range(0, n, block):
        stop = min(start + block, n)
        corner = matrix[start:stop, start:stop]
        corner[np.triu_indices(stop - start, 1)] = corner.T[np.triu_indices(stop - start, 1)]
        matrix[start:stop, stop:] = matrix[stop:, start:stop].T


class EASE(Recommender):
    """EASE item-item model; ``score(history) = binary(history) @ B``."""

    seed_independent = True  # closed form; lambda is chosen on validation, without draws

    def __init__(self, config: EASEConfig | None = None, **overrides: Any) -> None:
        base = asdict(config) if config is not None else {}
        self.config = EASEConfig(**{**base, **overrides})
        self.weights: np.ndarray | None = None

    def fit(self, train: sp.csr_matrix, valid: sp.csr_matrix | None = None) -> EASE:
        """Solve for B on ``train``; ``valid`` is unused (see :func:`select_ease_lambda`)."""
        train = check_train(train, valid)
        check_ease_memory(train.shape[1])
        self.weights = ease_weights(gram_matrix(train), self.config.l2_lambda)
        return self

    @property
    def n_items(self) -> int:
        return self._fitted_weights().shape[0]

    def score(self, history: sp.csr_matrix) -> np.ndarray:
        """``[batch, n_items]`` float32 scores of a CSR batch of histories."""
        history = as_binary_csr(self._check_history(history), "history")
        return np.asarray(history @ self._fitted_weights(), dtype=np.float32)

    def _fitted_weights(self) -> np.ndarray:
        if self.weights is None:
            raise RuntimeError("EASE is not fitted: call fit(train) first")
        return self.weights

    def _config(self) -> dict[str, Any]:
        return {**asdict(self.config), "n_items": self.n_items}

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {"weights": torch.from_numpy(self._fitted_weights())}

    @classmethod
    def _from_saved(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> EASE:
        config = dict(config)
        n_items = config.pop("n_items")
        model = cls(EASEConfig(**config))
        model.weights = tensors["weights"].numpy()
        if model.weights.shape != (n_items, n_items):
            raise WeightsMismatch(
                f"'weights' has shape {model.weights.shape}, but config.json's n_items "
                f"{n_items} needs ({n_items}, {n_items})"
            )
        return model


@dataclass(frozen=True)
class EASESelection:
    """Outcome of :func:`select_ease_lambda`."""

    best_lambda: float
    #: lambda -> validation metric value, in grid order.
    valid_scores: dict[float, float]
    metric: str
    #: EASE fitted on train with ``best_lambda``.
    model: EASE


def select_ease_lambda(
    train: sp.csr_matrix,
    valid: sp.csr_matrix,
    grid: Sequence[float] = DEFAULT_LAMBDA_GRID,
    metric: str = "recall@20",
    batch_size: int = 1024,
    averaging: Averaging = "test_users",
) -> EASESelection:
    """Fit EASE for every lambda in ``grid`` and keep the best by a validation metric.

    Validation protocol: input = train rows, train items masked, truth = valid. Ties in the
    metric go to the earlier grid value. ``averaging``: over the users with valid items, or over
    all users (a run passes its ``eval.averaging``, so the scores it logs are the ones it
    reports; the choice is the same, the two differing by one factor).
    """
    if not grid:
        raise ValueError("grid must hold at least one lambda")
    train = check_train(train, valid)
    name, _, k = metric.partition("@")
    if not k.isdigit():
        raise ValueError(f"metric must look like 'recall@20', got {metric!r}")
    check_ease_memory(train.shape[1], SELECT_BYTES_PER_PAIR)
    task = EvalTask.validation(train, valid)
    gram = gram_matrix(train)
    scores: dict[float, float] = {}
    best: EASE | None = None
    for l2_lambda in grid:
        model = EASE(l2_lambda=float(l2_lambda))
        model.weights = ease_weights(gram, model.config.l2_lambda)
        result = task.evaluate(
            model.score, ks=(int(k),), metrics=(name,), batch_size=batch_size, averaging=averaging
        )
        value = result[metric]
        scores[float(l2_lambda)] = value
        if best is None or value > scores[best.config.l2_lambda]:
            best = model
    assert best is not None
    note = grid_edge_note(best.config.l2_lambda, list(scores))
    if note:
        warn(note)
    return EASESelection(best.config.l2_lambda, scores, metric, best)


def grid_edge_note(best: float, grid: Sequence[float]) -> str | None:
    """A warning when the lambda chosen is the grid's smallest or largest (of two or more): the
    validation optimum may lie beyond it."""
    if len(set(grid)) < 2 or min(grid) < best < max(grid):
        return None
    side, beyond = ("smallest", "smaller") if best == min(grid) else ("largest", "larger")
    return (
        f"EASE's lambda chosen on validation, {best:g}, is the {side} of the grid "
        f"{sorted(set(grid))}; a {beyond} one may do better: extend model.l2_lambda_grid"
    )
