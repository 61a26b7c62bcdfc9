"""Vectorised helpers for ragged (CSR-style) arrays: rows described by an ``indptr``.

These replace per-user Python loops: every helper works on all rows at once with numpy.
"""

from __future__ import annotations

import numpy as np


def row_of_entries(indptr: np.ndarray) -> np.ndarray:
    """Row index of every entry: ``[0, 0, 1, 2, 2, 2]`` for ``indptr = [0, 2, 3, 6]``."""
    counts = np.diff(indptr)
    return np.repeat(np.arange(counts.size, dtype=np.int64), counts)


def position_in_row(indptr: np.ndarray) -> np.ndarray:
    """Position of every entry inside its row: ``[0, 1, 0, 0, 1, 2]`` for the example above."""
    counts = np.diff(indptr)
    starts = np.repeat(np.asarray(indptr[:-1], dtype=np.int64), counts)
    return np.arange(int(indptr[-1]), dtype=np.int64) - starts


def concat_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + n)`` for every ``(s, n)`` pair, without a Python loop."""
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    # Each output element is its range's start plus its offset inside the range.
    offsets = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + offsets


def indptr_from_counts(counts: np.ndarray) -> np.ndarray:
    """``[0, c0, c0 + c1, ...]`` as int64."""
    indptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr


def rank_within_rows(rows: np.ndarray, keys: np.ndarray, n_rows: int) -> np.ndarray:
    """0-based rank of every entry by ``keys`` inside its row (ties keep the input order).

    ``rows`` need not be sorted. Returns an array aligned with the input entries.
    """
    order = np.lexsort((keys, rows))  # primary: row, secondary: key; lexsort is stable
    counts = np.bincount(rows, minlength=n_rows)
    ranks_sorted = position_in_row(indptr_from_counts(counts))
    ranks = np.empty_like(ranks_sorted)
    ranks[order] = ranks_sorted
    return ranks
