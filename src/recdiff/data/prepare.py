"""Preparation of raw interactions: rating thresholds and k-core filtering.

DiffRec's "clean" datasets keep ratings >= 4 as positive feedback and then split by time; many
benchmarks also keep only the k-core (every user and item with at least k interactions).
"""

from __future__ import annotations

import numpy as np

from recdiff.data.interactions import Interactions


def filter_ratings(
    data: Interactions, min_rating: float = 4.0, binarize: bool = True
) -> Interactions:
    """Keep interactions with ``rating >= min_rating`` (DiffRec: 4 on ML-1M).

    With ``binarize`` (default) the matrix values become 1.0 (implicit feedback); ratings stay
    available in ``ratings``. Vocabularies are unchanged; call :meth:`Interactions.compact` or
    :func:`k_core` to drop users and items left without interactions.
    """
    if data.ratings is None:
        raise ValueError("filter_ratings needs ratings; read the data with rating_col=...")
    kept = data.select_entries(data.ratings.data >= min_rating)
    return kept.binarize() if binarize else kept


def k_core(
    data: Interactions, user_k: int = 5, item_k: int | None = None, max_iter: int = 1000
) -> Interactions:
    """The k-core: repeatedly drop users with < ``user_k`` and items with < ``item_k``
    interactions until none is left, then drop emptied users/items from the vocabularies.

    ``item_k`` defaults to ``user_k``. Removing a user can push an item under the threshold and
    vice versa, hence the iteration; it converges because each pass only removes entries.
    """
    item_k = user_k if item_k is None else item_k
    if user_k < 0 or item_k < 0:
        raise ValueError("user_k and item_k must be >= 0")
    rows, cols = data.user_indices(), data.item_indices()
    keep = np.ones(data.nnz, dtype=bool)
    for _ in range(max_iter):  # iterations of the whole-array filter, not a loop over users
        user_counts = np.bincount(rows[keep], minlength=data.n_users)
        item_counts = np.bincount(cols[keep], minlength=data.n_items)
        new_keep = keep & (user_counts[rows] >= user_k) & (item_counts[cols] >= item_k)
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    else:
        raise RuntimeError(f"k-core did not converge in {max_iter} passes; raise max_iter")
    return data.select_entries(keep).compact()
