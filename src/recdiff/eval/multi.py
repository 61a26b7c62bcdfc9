"""Several evaluations from one scoring pass.

Validation and test of DiffRec-style protocols share their inputs (the train rows) and differ
only in truth and masks, so a model whose scoring is expensive (a reverse diffusion) scores each
user once and every task ranks from the same block. Memory stays ``batch_size x n_items``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from recdiff.eval.evaluator import DEFAULT_METRICS, EvalResult, _check_options, _hits, as_binary_csr
from recdiff.eval.metrics import (
    PER_USER_METRICS,
    Averaging,
    average,
    metric_names,
    per_user_metrics,
)
from recdiff.eval.protocol import EvalTask
from recdiff.eval.ranking import ScoreBlock, as_score_tensor, topk_items

__all__ = ["RankingAccumulator", "evaluate_many"]


class RankingAccumulator:
    """Collects per-user metrics of one task from score blocks given in any order of users."""

    def __init__(
        self,
        truth: sp.csr_matrix,
        exclude: sp.csr_matrix | None,
        ks: Sequence[int],
        metrics: Iterable[str],
    ) -> None:
        self.truth = as_binary_csr(truth, "truth")
        self.exclude = None if exclude is None else sp.csr_matrix(exclude)
        if self.exclude is not None and self.exclude.shape != self.truth.shape:
            raise ValueError(
                f"exclude has shape {self.exclude.shape} but truth has {self.truth.shape}"
            )
        self.ks = tuple(ks)
        self.metrics = tuple(metrics)
        self.names = metric_names(self.metrics, self.ks)
        n_users, n_items = self.truth.shape
        self.n_relevant = np.diff(self.truth.indptr).astype(np.int64)
        self.per_user = {
            n: np.full(n_users, np.nan) for n in self.names if n.split("@")[0] in PER_USER_METRICS
        }
        self.shown = {k: np.zeros(n_items, dtype=bool) for k in self.ks}

    def add(self, rows: np.ndarray, block: ScoreBlock) -> None:
        """Rank ``block`` (scores of users ``rows``); users without held-out items are skipped."""
        keep = self.n_relevant[rows] > 0
        if not keep.any():
            return
        rows = rows[keep]
        if not keep.all():
            block = as_score_tensor(block)[torch.from_numpy(np.flatnonzero(keep))]
        exclude = self.exclude[rows] if self.exclude is not None else None
        items, _ = topk_items(block, max(self.ks), exclude)
        hits = _hits(items, self.truth[rows])
        for name, values in per_user_metrics(
            hits, self.n_relevant[rows], self.ks, self.metrics
        ).items():
            self.per_user[name][rows] = values
        for k in self.ks:
            top = items[:, :k].ravel()
            self.shown[k][top[top >= 0]] = True

    def result(self, averaging: Averaging) -> EvalResult:
        in_scope = np.ones(self.truth.shape[0], dtype=bool)
        means = {name: average(values, averaging) for name, values in self.per_user.items()}
        if "coverage" in self.metrics:
            for k in self.ks:
                means[f"coverage@{k}"] = float(self.shown[k].mean())
        ordered = {name: means[name] for name in self.names}
        return EvalResult(ordered, self.per_user, self.n_relevant, averaging, self.ks, in_scope)


def evaluate_many(
    score_fn: Callable[[sp.csr_matrix], ScoreBlock],
    inputs: sp.csr_matrix,
    tasks: Mapping[str, EvalTask],
    ks: Sequence[int] = (10, 20),
    metrics: Iterable[str] = DEFAULT_METRICS,
    batch_size: int = 1024,
    averaging: Averaging = "test_users",
    progress: bool = False,
) -> dict[str, EvalResult]:
    """Evaluate every task from one scoring of ``inputs``; all tasks must use these inputs.

    Each user with held-out items in any task is scored once, in batches of ``batch_size``
    (with a progress bar over the batches if ``progress``).
    """
    ks = _check_options(ks, averaging, batch_size)
    metrics = tuple(metrics)
    inputs = sp.csr_matrix(inputs)
    for name, task in tasks.items():
        if task.inputs.shape != inputs.shape or (task.inputs != inputs).nnz:
            raise ValueError(f"task {name!r} has other inputs: evaluate it separately")
    accumulators = {
        name: RankingAccumulator(task.truth, task.exclude, ks, metrics)
        for name, task in tasks.items()
    }
    wanted = np.zeros(inputs.shape[0], dtype=bool)
    for acc in accumulators.values():
        wanted |= acc.n_relevant > 0
    candidates = np.flatnonzero(wanted)
    starts = range(0, len(candidates), batch_size)
    for start in tqdm(starts, desc="evaluating", unit="batch", disable=not progress, leave=False):
        rows = candidates[start : start + batch_size]
        block = score_fn(inputs[rows])
        if tuple(block.shape) != (len(rows), inputs.shape[1]):
            raise ValueError(
                f"scores for {len(rows)} users have shape {tuple(block.shape)}, "
                f"expected ({len(rows)}, {inputs.shape[1]})"
            )
        for acc in accumulators.values():
            acc.add(rows, block)
    return {name: acc.result(averaging) for name, acc in accumulators.items()}
