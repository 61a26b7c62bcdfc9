"""Full-ranking evaluation over all items, batched over users so memory stays bounded.

For each batch of users the evaluator asks for a ``[batch, n_items]`` block of scores, masks the
items to exclude (``-inf``), keeps the top ``max(ks)`` items (ties: lower item index first), turns
them into a hit matrix against the held-out items, and computes every metric from
:mod:`recdiff.eval.metrics`. Peak memory is about ``batch_size x n_items`` scores.

Which users are evaluated: those with at least one held-out item (a ranking for the others can
not score anything). Their per-user values are NaN; ``averaging`` decides whether the means skip
them (``"test_users"``) or count them as 0 (``"all_users"``, the DiffRec paper's convention).
Coverage is computed over the lists of the evaluated users.

Large catalogues: only ``batch_size`` users are scored at a time (the score function gets a CSR
slice of the inputs, never the whole matrix), and ``item_chunk`` (8,192 unless given) also splits
the ranking over items, so memory stays about ``batch_size x n_items`` scores plus
``batch_size x item_chunk`` of ranking temporaries. (EASE's item x item weight matrix is its
model, not evaluation memory.)

Held-out items that are also excluded can never be hit, yet they still count as relevant (in
recall's denominator and NDCG's ideal list), as DiffRec's code counts every test item; the usual
protocols keep the splits disjoint (see :mod:`recdiff.eval.protocol` for train/valid/test
masking). A user whose every item is excluded gets an empty (all-padding) list and 0 for every
metric, under both averagings. In ``truth`` and ``exclude`` every stored entry counts, whatever
its value (a stored 0 too), and a repeated entry counts once.

Scores: ``-inf`` means "never recommend", exactly like a masked item. ``NaN`` is refused with a
ValueError in every row that is ranked, even at an excluded item; rows that are not ranked (users
without held-out items, or outside ``users``) are never looked at. Ties go to the lower item
index, so the lists, and every metric, do not depend on ``batch_size``, on ``item_chunk`` or on
the path (user rows here, next-item examples in :mod:`recdiff.eval.next_item`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from recdiff._warnings import warn
from recdiff.data.vocab import integer_indices, is_integer
from recdiff.eval.metrics import (
    AVERAGING_MODES,
    PER_USER_METRICS,
    Averaging,
    average,
    metric_list,
    metric_names,
    per_user_metrics,
)
from recdiff.eval.ranking import ITEM_CHUNK, ScoreBlock, as_score_tensor, topk_items

DEFAULT_METRICS: tuple[str, ...] = ("recall", "ndcg")


@dataclass(frozen=True)
class EvalResult:
    """Outcome of one evaluation.

    Attributes:
        means: metric name (``"recall@20"``) -> mean over users under ``averaging``; list-level
            metrics (``"coverage@20"``) appear here only.
        per_user: metric name -> float64 ``[n_users]`` (every row of ``truth``), NaN for users
            without held-out items and for users outside ``users``; aligned by user index for
            paired significance tests. ``means`` is their NaN-skipping mean over ``in_scope``
            (``"test_users"``) or their mean over ``in_scope`` with NaN read as 0
            (``"all_users"``).
        n_relevant: int64 ``[n_users]`` held-out items per user.
        averaging: the averaging mode used for ``means``.
        ks: the cut-offs evaluated.
        in_scope: bool ``[n_users]``, the users the means are over (all, or a ``users`` subset).
    """

    means: dict[str, float]
    per_user: dict[str, np.ndarray] = field(repr=False)
    n_relevant: np.ndarray = field(repr=False)
    averaging: str
    ks: tuple[int, ...]
    in_scope: np.ndarray = field(repr=False)

    @property
    def n_users_evaluated(self) -> int:
        """Users in scope with at least one held-out item (the ones that were ranked)."""
        return int(((self.n_relevant > 0) & self.in_scope).sum())

    def __getitem__(self, name: str) -> float:
        """Shortcut: ``result["recall@20"]`` is ``result.means["recall@20"]``."""
        if name not in self.means:
            raise KeyError(
                f"{name!r} was not computed; this result has {list(self.means)} (ask for others "
                "with evaluate's metrics= and ks=)"
            )
        return self.means[name]

    def with_averaging(self, averaging: Averaging) -> EvalResult:
        """The same evaluation averaged the other way (no re-ranking needed)."""
        means = {
            name: average(values[self.in_scope], averaging)
            for name, values in self.per_user.items()
        }
        for name, value in self.means.items():
            if name not in self.per_user:  # list-level metrics do not depend on averaging
                means[name] = value
        ordered = {name: means[name] for name in self.means}
        return EvalResult(
            ordered, self.per_user, self.n_relevant, averaging, self.ks, self.in_scope
        )

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary (means only, no per-user arrays)."""
        return {
            "averaging": self.averaging,
            "ks": list(self.ks),
            "n_users_evaluated": self.n_users_evaluated,
            "n_users_in_scope": int(self.in_scope.sum()),
            "means": dict(self.means),
        }


def as_binary_csr(matrix: sp.spmatrix | sp.sparray, name: str) -> sp.csr_matrix:
    """Canonical 0/1 CSR copy: duplicates merged, indices sorted, every stored entry a 1.

    A stored entry is an interaction whatever its value: a rating of 0 (a stored explicit zero)
    is still one, as :meth:`~recdiff.data.interactions.Interactions.binarize` has it.
    """
    if not sp.issparse(matrix):
        raise TypeError(f"{name} must be a scipy sparse matrix (users x items), got {type(matrix)}")
    out = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    out.data[:] = 1.0  # before merging: duplicates of rating 2 and -2 would sum to nothing
    out.sum_duplicates()
    out.sort_indices()
    out.data[:] = 1.0
    return out


def _hits(items: np.ndarray, truth_rows: sp.csr_matrix) -> np.ndarray:
    """``hits[u, r]`` = ``items[u, r]`` is a stored entry of ``truth_rows[u]`` (vectorised)."""
    n_items = truth_rows.shape[1]
    row_of_entry = np.repeat(np.arange(truth_rows.shape[0]), np.diff(truth_rows.indptr))
    # Sorted CSR => keys (row * n_items + item) are sorted, so one searchsorted tests membership.
    truth_keys = row_of_entry.astype(np.int64) * n_items + truth_rows.indices
    query = np.arange(items.shape[0], dtype=np.int64)[:, None] * n_items + items
    pos = np.searchsorted(truth_keys, query).clip(max=max(len(truth_keys) - 1, 0))
    found = truth_keys[pos] == query if len(truth_keys) else np.zeros(items.shape, dtype=bool)
    return found & (items >= 0)


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    """``ks`` as a tuple of ints, refusing what ``int(k)`` would misread: ``2.5`` (recall@2) or
    ``True`` (recall@1); and a single number, which is not a sequence of cut-offs."""
    given = None if isinstance(ks, (str, bytes)) else ks
    try:
        values = tuple(given)  # type: ignore[arg-type]
    except TypeError:
        one = int(ks) if is_integer(ks) else "k"
        raise TypeError(
            f"ks must be a sequence of cut-offs such as (10, 20), got {ks!r}: for one cut-off "
            f"pass ks=[{one}]"
        ) from None
    if not all(is_integer(k) for k in values):
        raise TypeError(
            f"ks must be whole-number cut-offs such as (10, 20), got {list(values)}: pass "
            "integers (a float would be truncated, a boolean read as 1 or 0)"
        )
    return tuple(int(k) for k in values)


def check_options(ks: Sequence[int], averaging: str, batch_size: int) -> tuple[int, ...]:
    """The cut-offs as positive integers, once an averaging and batch size that every evaluator
    accepts are confirmed; a ValueError names what to fix otherwise."""
    ks = _check_ks(ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be a non-empty sequence of positive cut-offs, got {ks}")
    if averaging not in AVERAGING_MODES:
        raise ValueError(f"averaging must be one of {AVERAGING_MODES}, got {averaging!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return ks


class RankingAccumulator:
    """Per-user metrics of one task, collected from score blocks of users given in any order.

    Shared by :func:`evaluate` and :func:`recdiff.eval.multi.evaluate_many`.
    """

    def __init__(
        self,
        truth: sp.csr_matrix,
        exclude: sp.csr_matrix | None,
        ks: Sequence[int],
        metrics: Iterable[str],
        item_chunk: int | None = ITEM_CHUNK,
    ) -> None:
        self.item_chunk = item_chunk
        self.truth = as_binary_csr(truth, "truth")
        if exclude is not None and exclude.shape != self.truth.shape:
            raise ValueError(
                f"exclude has shape {exclude.shape} but truth has {self.truth.shape}: "
                "both must be users x items over the same catalogue"
            )
        self.exclude = None if exclude is None else sp.csr_matrix(exclude)
        self.ks, self.metrics = tuple(ks), tuple(metric_list(metrics))
        self.names = metric_names(self.metrics, self.ks)
        n_users, n_items = self.truth.shape
        self.n_relevant = np.diff(self.truth.indptr).astype(np.int64)
        self.per_user = {
            n: np.full(n_users, np.nan) for n in self.names if n.split("@")[0] in PER_USER_METRICS
        }
        self.shown = {k: np.zeros(n_items, dtype=bool) for k in self.ks}

    def add(self, rows: np.ndarray, block: ScoreBlock) -> None:
        """Rank ``block`` (the scores of users ``rows``); users without held-out items are
        skipped."""
        n_items = self.truth.shape[1]
        if tuple(block.shape) != (len(rows), n_items):
            raise ValueError(
                f"scores for a batch of {len(rows)} users have shape {tuple(block.shape)}, "
                f"expected ({len(rows)}, {n_items})"
            )
        keep = self.n_relevant[rows] > 0
        if not keep.any():
            return
        if not keep.all():
            block = as_score_tensor(block)[torch.from_numpy(np.flatnonzero(keep))]
            rows = rows[keep]
        exclude = self.exclude[rows] if self.exclude is not None else None
        items, _ = topk_items(block, max(self.ks), exclude, item_chunk=self.item_chunk)
        hits = _hits(items, self.truth[rows])
        per_user = per_user_metrics(hits, self.n_relevant[rows], self.ks, self.metrics)
        for name, values in per_user.items():
            self.per_user[name][rows] = values
        for k in self.ks:
            top = items[:, :k].ravel()
            self.shown[k][top[top >= 0]] = True

    def result(self, averaging: Averaging, in_scope: np.ndarray | None = None) -> EvalResult:
        """Means over the users ``in_scope`` (default: all) under ``averaging``."""
        if in_scope is None:
            in_scope = np.ones(self.truth.shape[0], dtype=bool)
        means = {n: average(v[in_scope], averaging) for n, v in self.per_user.items()}
        if "coverage" in self.metrics:
            for k in self.ks:
                means[f"coverage@{k}"] = float(self.shown[k].mean())
        ordered = {name: means[name] for name in self.names}
        return EvalResult(ordered, self.per_user, self.n_relevant, averaging, self.ks, in_scope)


def _run(
    scores_for: Callable[[np.ndarray], ScoreBlock],
    truth: sp.csr_matrix,
    exclude: sp.csr_matrix | None,
    ks: Sequence[int],
    metrics: Iterable[str],
    batch_size: int,
    averaging: Averaging,
    users: np.ndarray | None,
    item_chunk: int | None = ITEM_CHUNK,
) -> EvalResult:
    """Shared loop: ``scores_for(user_indices) -> [len(users), n_items]`` scores."""
    ks = check_options(ks, averaging, batch_size)
    accumulator = RankingAccumulator(truth, exclude, ks, metrics, item_chunk)
    n_users = accumulator.truth.shape[0]
    in_scope = np.ones(n_users, dtype=bool)
    if users is not None:
        users = integer_indices(users, "users")
        if users.size and (users.min() < 0 or users.max() >= n_users):
            raise ValueError(f"users must be row indices in [0, {n_users})")
        in_scope[:] = False
        in_scope[users] = True
    candidates = np.flatnonzero((accumulator.n_relevant > 0) & in_scope)
    if candidates.size == 0:
        scope = "the users given" if users is not None else "any user"
        warn(
            f"truth holds no held-out item for {scope}: there is nothing to rank against, so "
            "every metric is NaN (0 under all_users averaging); check that truth is the "
            "valid or test matrix of these users"
        )
    for start in range(0, len(candidates), batch_size):
        rows = candidates[start : start + batch_size]
        accumulator.add(rows, scores_for(rows))
    return accumulator.result(averaging, in_scope)


def evaluate(
    score_fn: Callable[[sp.csr_matrix], ScoreBlock],
    inputs: sp.csr_matrix,
    truth: sp.csr_matrix,
    exclude: sp.csr_matrix | None = None,
    ks: Sequence[int] = (10, 20),
    metrics: Iterable[str] = DEFAULT_METRICS,
    batch_size: int = 1024,
    averaging: Averaging = "test_users",
    users: np.ndarray | None = None,
    item_chunk: int | None = ITEM_CHUNK,
) -> EvalResult:
    """Evaluate a recommender by full ranking over all items.

    Args:
        score_fn: maps a CSR batch of input rows (user histories) to ``[batch, n_items]``
            scores, numpy or torch; e.g. ``model.score``.
        inputs: users x items CSR of model inputs (for test: the train matrix).
        truth: users x items CSR of held-out items (every stored entry counts as relevant,
            even a stored 0; a repeated entry counts once).
        exclude: users x items CSR of items never to rank (for test: train + valid), or None.
        ks: cut-offs; every metric is computed at each.
        metrics: names from :data:`recdiff.eval.metrics.ALL_METRICS`.
        batch_size: users per score block; memory is about ``batch_size x n_items`` floats.
        averaging: ``"test_users"`` (skip users without held-out items) or ``"all_users"``
            (count them as 0, for parity with published numbers).
        users: optional subset of user rows to evaluate (e.g. a sample for quick validation).
        item_chunk: rank at most this many items at a time (see :func:`topk_items`), so the
            ranking's temporaries stay ``batch_size x item_chunk``. None ranks each block whole.
    """
    if not sp.issparse(inputs):
        raise TypeError(f"inputs must be a scipy sparse matrix, got {type(inputs).__name__}")
    if inputs.shape[0] != truth.shape[0]:
        raise ValueError(
            f"inputs has {inputs.shape[0]} users but truth has {truth.shape[0]}: "
            "rows must be the same users in the same order"
        )
    if inputs.shape[1] != truth.shape[1]:  # else the scores' width is blamed
        raise ValueError(
            f"inputs has {inputs.shape[1]} items but truth has {truth.shape[1]}: both must be "
            "users x items over the same catalogue"
        )
    inputs = sp.csr_matrix(inputs)
    return _run(
        lambda rows: score_fn(inputs[rows]),
        truth,
        exclude,
        ks,
        metrics,
        batch_size,
        averaging,
        users,
        item_chunk,
    )


def evaluate_scores(
    scores: ScoreBlock | Callable[[np.ndarray], ScoreBlock],
    truth: sp.csr_matrix,
    exclude: sp.csr_matrix | None = None,
    ks: Sequence[int] = (10, 20),
    metrics: Iterable[str] = DEFAULT_METRICS,
    batch_size: int = 2048,
    averaging: Averaging = "test_users",
    users: np.ndarray | None = None,
    item_chunk: int | None = ITEM_CHUNK,
) -> EvalResult:
    """Evaluate precomputed scores: a dense ``[n_users, n_items]`` array/tensor, or a callable
    mapping an int64 array of user rows to their ``[len(rows), n_items]`` scores.

    Same semantics and arguments as :func:`evaluate`, minus the input histories.
    """
    if callable(scores):
        scores_for = scores
    else:
        if tuple(scores.shape) != tuple(truth.shape):
            raise ValueError(f"scores have shape {tuple(scores.shape)} but truth has {truth.shape}")
        if isinstance(scores, torch.Tensor):

            def scores_for(rows: np.ndarray) -> ScoreBlock:
                return scores[torch.from_numpy(rows).to(scores.device)]
        else:

            def scores_for(rows: np.ndarray) -> ScoreBlock:
                return scores[rows]

    return _run(scores_for, truth, exclude, ks, metrics, batch_size, averaging, users, item_chunk)
