"""Time-aware interaction weights for T-DiffRec (Wang et al., SIGIR 2023, Sec. 3.4.2).

T-DiffRec feeds the diffusion model a user's row with older interactions down-weighted:

| paper                                  | code             |
|----------------------------------------|------------------|
| M, the user's number of interactions   | ``counts[user]`` |
| m = 1..M, oldest to newest             | ``rank + 1``     |
| w_m = w_min + (m-1)/(M-1) (w_max-w_min) | the CSR values   |

Interactions logged at the same moment are equally recent, so they share a weight: m and M
count a user's distinct times (the paper's data, ordered by row, has no ties).

One deliberate difference from the released code, which used ``np.linspace(w_min, w_max, M)``:
a user with a single interaction gets ``w_max`` here (linspace gives ``w_min``); the newest
interaction is always the most trusted. Pass ``single="min"`` to reproduce the release exactly.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp

from recdiff.data._ragged import dense_rank_within_rows, rank_within_rows
from recdiff.data.interactions import Interactions
from recdiff.data.vocab import integer_indices


def _check_bounds(w_min: float, w_max: float) -> None:
    if not (0.0 < w_min <= w_max):
        raise ValueError(
            f"time weights need 0 < w_min <= w_max, got w_min={w_min}, w_max={w_max}; "
            "T-DiffRec used w_min in [0.1, 0.5] and w_max = 1.0"
        )


def linear_time_weights(
    rank: np.ndarray,
    counts: np.ndarray,
    w_min: float,
    w_max: float,
    single: Literal["max", "min"] = "max",
) -> np.ndarray:
    """``w_min + rank / (count - 1) * (w_max - w_min)`` elementwise (rank 0 = oldest).

    ``count == 1`` gives ``w_max`` (or ``w_min`` with ``single="min"``).
    """
    _check_bounds(w_min, w_max)
    if single not in ("max", "min"):  # else anything but "max" read as "min"
        raise ValueError(f"single must be 'max' or 'min', got {single!r}")
    rank = np.asarray(rank, dtype=np.float64)
    denom = np.asarray(counts, dtype=np.float64) - 1.0
    frac = np.divide(
        rank, denom, out=np.full_like(rank, 1.0 if single == "max" else 0.0), where=denom > 0
    )
    return w_min + frac * (w_max - w_min)


def time_weights(
    data: Interactions,
    w_min: float = 0.1,
    w_max: float = 1.0,
    single: Literal["max", "min"] = "max",
) -> sp.csr_matrix:
    """T-DiffRec's weighted user-item matrix (float32 CSR with the pattern of ``data.matrix``).

    Each user's interactions are ordered by ``data.timestamps`` and weighted linearly from
    ``w_min`` (oldest) to ``w_max`` (newest); interactions at the same time share a weight
    (dense rank over the user's distinct times). For DiffRec's npy splits
    :func:`~recdiff.data.readers.read_diffrec_splits` stores the file row order as timestamps,
    which is the time order the paper used.
    """
    _check_bounds(w_min, w_max)
    if data.timestamps is None:
        raise ValueError(
            "time weights need timestamps (or an order key) on the interactions: set "
            "data.time_col in the run config (time_col=... when reading from Python; DiffRec "
            "splits carry their row order, unless read with row_order_as_time=False), or drop "
            "data.time_weights"
        )
    rows = data.user_indices()
    rank, distinct_times = dense_rank_within_rows(rows, data.timestamps.data, data.n_users)
    weights = linear_time_weights(rank, distinct_times, w_min, w_max, single)
    m = data.matrix
    return sp.csr_matrix(
        (weights.astype(np.float32), m.indices.copy(), m.indptr.copy()), shape=m.shape
    )


def time_weights_from_order(
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    shape: tuple[int, int],
    w_min: float = 0.1,
    w_max: float = 1.0,
    single: Literal["max", "min"] = "max",
) -> sp.csr_matrix:
    """Weights for raw ``(user, item)`` pairs whose order within each user is the time order.

    For data such as DiffRec's ``train_list.npy`` read without :class:`Interactions`.
    Duplicate pairs are an error.
    """
    user_idx = integer_indices(user_idx, "user_idx")
    item_idx = integer_indices(item_idx, "item_idx")
    for name, idx, size in (("user_idx", user_idx, shape[0]), ("item_idx", item_idx, shape[1])):
        if idx.size and (idx.min() < 0 or idx.max() >= size):
            raise ValueError(f"{name} must lie in 0..{size - 1} (shape {shape})")
    rank = rank_within_rows(user_idx, np.arange(user_idx.size), shape[0])
    counts = np.bincount(user_idx, minlength=shape[0])
    weights = linear_time_weights(rank, counts[user_idx], w_min, w_max, single)
    out = sp.csr_matrix((weights.astype(np.float32), (user_idx, item_idx)), shape=shape)
    if out.nnz != user_idx.size:
        raise ValueError("duplicate (user, item) pairs; deduplicate them before weighting")
    return out
