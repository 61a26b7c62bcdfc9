"""Full-ranking evaluation of next-item examples (SASRec, DreamRec).

Each example is a history and the one item that came next. An example is ranked like a user with
a single held-out item, through the same :class:`~recdiff.eval.evaluator.RankingAccumulator` as
the user-row models, so metric definitions and tie-breaking (lower item index first) are shared:
with one relevant item ``hit_rate@k == recall@k`` and ``ndcg@k = 1 / log2(rank + 2)`` inside the
top k. Per-example values come back in :attr:`EvalResult.per_user`, aligned with the examples,
for paired significance tests.

By default nothing is masked: DreamRec's protocol ranks all items, and a user may consume an item
again. ``exclude_history=True`` masks every item the user had before the target (the target too,
if it repeats): all of their past for examples cut from whole sequences, the history window for
examples that hold only windows (DreamRec's files).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from recdiff.data._ragged import concat_ranges
from recdiff.data.batches import WindowedExamples
from recdiff.data.vocab import integer_indices
from recdiff.eval.evaluator import EvalResult, RankingAccumulator, check_options
from recdiff.eval.metrics import Averaging
from recdiff.eval.ranking import ITEM_CHUNK, ScoreBlock
from recdiff.progress import progress_bar

__all__ = [
    "NextItemScorer",
    "evaluate_next_item",
    "history_matrix",
    "past_items_matrix",
    "target_matrix",
]

#: ``score(history [b, L] int64, lengths [b] int64) -> [b, n_items]`` scores.
NextItemScorer = Callable[[torch.Tensor, torch.Tensor], ScoreBlock]


def target_matrix(targets: np.ndarray, n_items: int) -> sp.csr_matrix:
    """One row per example with a single 1 at its target."""
    targets = integer_indices(targets, "targets")
    if targets.ndim != 1:
        raise ValueError(f"targets must be [n] item indices, got shape {targets.shape}")
    outside = (targets < 0) | (targets >= n_items)
    if outside.any():
        raise ValueError(
            f"targets must be item indices in [0, {n_items}), got {targets[outside][:5].tolist()}: "
            "pass n_items of the catalogue the examples index"
        )
    n = len(targets)
    return sp.csr_matrix(
        (np.ones(n, dtype=np.float32), targets, np.arange(n + 1)), shape=(n, n_items)
    )


def _binary_rows(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """0/1 CSR with a 1 at every ``(row, col)`` pair, repeats counted once."""
    data = np.ones(len(rows), dtype=np.float32)
    matrix = sp.csr_matrix((data, (rows, cols)), shape=shape)
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def history_matrix(history: np.ndarray, n_items: int) -> sp.csr_matrix:
    """Rows of the items in each history (pads, i.e. ids outside ``0..n_items-1``, dropped)."""
    rows, cols = np.nonzero((history >= 0) & (history < n_items))
    return _binary_rows(rows, history[rows, cols], (len(history), n_items))


def past_items_matrix(examples, n_items: int) -> sp.csr_matrix:
    """One row per example of the items its user had before the target: the user's whole past
    for :class:`~recdiff.data.batches.WindowedExamples` (which keep the sequences), however
    much longer than the window; the history window for examples that hold only windows."""
    if not isinstance(examples, WindowedExamples):
        return history_matrix(examples.history, n_items)
    starts = examples.indptr[examples.users]
    counts = examples.target_positions - starts
    rows = np.repeat(np.arange(len(examples)), counts)
    cols = examples.items[concat_ranges(starts, counts)]
    return _binary_rows(rows, cols, (len(examples), n_items))


def evaluate_next_item(
    score: NextItemScorer,
    examples,
    n_items: int,
    ks: Sequence[int] = (10, 20),
    metrics: Iterable[str] = ("hit_rate", "ndcg"),
    batch_size: int = 1024,
    exclude_history: bool = False,
    averaging: Averaging = "test_users",
    progress: bool = False,
    device: str = "cpu",
    item_chunk: int | None = ITEM_CHUNK,
) -> EvalResult:
    """Rank every item for each example and score the rank of its target.

    Args:
        score: maps a batch of histories (in the examples' layout) and lengths to scores.
        examples: :class:`~recdiff.data.batches.SequenceExamples` or ``WindowedExamples``.
        n_items: catalogue size (score columns).
        exclude_history: mask the items each example's user had before its target (see
            :func:`past_items_matrix`).
        averaging: every example has a target, so both modes agree; kept for the shared result.
        item_chunk: rank at most this many items at a time (None: all at once); same result.
    """
    ks = check_options(ks, averaging, batch_size)
    truth = target_matrix(examples.targets, n_items)
    exclude = past_items_matrix(examples, n_items) if exclude_history else None
    accumulator = RankingAccumulator(truth, exclude, ks, metrics, item_chunk)
    starts = range(0, len(examples), batch_size)
    for start in progress_bar(starts, show=progress, desc="ranking", leave=False):
        rows = np.arange(start, min(start + batch_size, len(examples)))
        tensors = examples.take(rows).to_torch(device)
        accumulator.add(rows, score(tensors["history"], tensors["lengths"]))
    return accumulator.result(averaging)
