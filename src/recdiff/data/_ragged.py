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


def dense_rank_within_rows(
    rows: np.ndarray, keys: np.ndarray, n_rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """0-based rank of every entry among the *distinct* ``keys`` of its row (equal keys share
    a rank), and the number of distinct keys in the entry's row; both aligned with the input."""
    rows = np.asarray(rows, dtype=np.int64)
    keys = np.asarray(keys)
    order = np.lexsort((keys, rows))
    sorted_rows, sorted_keys = rows[order], keys[order]
    new_row = np.ones(rows.size, dtype=bool)
    new_row[1:] = sorted_rows[1:] != sorted_rows[:-1]
    new_key = new_row.copy()
    new_key[1:] |= sorted_keys[1:] != sorted_keys[:-1]
    level = np.cumsum(new_key) - 1  # global index of each (row, key) group
    first_level = level[new_row]  # the first group of each row that has entries
    row_start = np.repeat(first_level, np.diff(np.append(np.flatnonzero(new_row), rows.size)))
    ranks_sorted = level - row_start
    distinct = np.zeros(n_rows, dtype=np.int64)
    np.maximum.at(distinct, sorted_rows, ranks_sorted + 1)
    ranks = np.empty_like(ranks_sorted)
    ranks[order] = ranks_sorted
    return ranks, distinct[rows]


def check_integer_arrays(owner: object, *names: str) -> None:
    """Refuse attributes ``names`` of ``owner`` that are not integer numpy arrays (a float
    array of item indices would be read by truncation: 0.7 as item 0)."""
    for name in names:
        values = getattr(owner, name)
        if not isinstance(values, np.ndarray) or values.dtype.kind not in "iu":
            raise TypeError(
                f"{name} must be an integer numpy array, got "
                f"{getattr(values, 'dtype', type(values).__name__)}; convert whole numbers with "
                ".astype(np.int64) (a fraction names no item)"
            )
