"""Several evaluations from one scoring pass.

Validation and test of DiffRec-style protocols share their inputs (the train rows) and differ
only in truth and masks, so a model whose scoring is expensive (a reverse diffusion) scores each
user once and every task ranks from the same block. Memory stays ``batch_size x n_items``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from recdiff.eval.evaluator import (
    DEFAULT_METRICS,
    EvalResult,
    RankingAccumulator,
    check_options,
)
from recdiff.eval.metrics import Averaging
from recdiff.eval.protocol import EvalTask
from recdiff.eval.ranking import ITEM_CHUNK, ScoreBlock
from recdiff.progress import progress_bar

__all__ = ["evaluate_many"]


def evaluate_many(
    score_fn: Callable[[sp.csr_matrix], ScoreBlock],
    inputs: sp.csr_matrix,
    tasks: Mapping[str, EvalTask],
    ks: Sequence[int] = (10, 20),
    metrics: Iterable[str] = DEFAULT_METRICS,
    batch_size: int = 1024,
    averaging: Averaging = "test_users",
    progress: bool = False,
    item_chunk: int | None = ITEM_CHUNK,
) -> dict[str, EvalResult]:
    """Evaluate every task from one scoring of ``inputs``; all tasks must use these inputs.

    Each user with held-out items in any task is scored once, in batches of ``batch_size``
    (with a progress bar over the batches if ``progress``); ``item_chunk`` splits the ranking
    of each block over items (see :func:`recdiff.eval.ranking.topk_items`).
    """
    ks = check_options(ks, averaging, batch_size)
    metrics = tuple(metrics)
    inputs = sp.csr_matrix(inputs)
    for name, task in tasks.items():
        if task.inputs.shape != inputs.shape or (task.inputs != inputs).nnz:
            raise ValueError(f"task {name!r} has other inputs: evaluate it separately")
    accumulators = {
        name: RankingAccumulator(task.truth, task.exclude, ks, metrics, item_chunk)
        for name, task in tasks.items()
    }
    wanted = np.zeros(inputs.shape[0], dtype=bool)
    for acc in accumulators.values():
        wanted |= acc.n_relevant > 0
    candidates = np.flatnonzero(wanted)
    starts = range(0, len(candidates), batch_size)
    for start in progress_bar(starts, show=progress, desc="evaluating", unit="batch", leave=False):
        rows = candidates[start : start + batch_size]
        block = score_fn(inputs[rows])
        for acc in accumulators.values():
            acc.add(rows, block)
    return {name: acc.result(averaging) for name, acc in accumulators.items()}
