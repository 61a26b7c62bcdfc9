"""Preparation of raw interactions: rating thresholds and k-core filtering.

DiffRec's "clean" datasets keep ratings >= 4 as positive feedback and then split by time; many
benchmarks also keep only the k-core (every user and item with at least k interactions).
"""

from __future__ import annotations

import numpy as np

from recdiff._warnings import warn
from recdiff.data.errors import describe_source
from recdiff.data.frames import Source
from recdiff.data.interactions import Interactions


def filter_ratings(
    data: Interactions, min_rating: float = 4.0, binarize: bool = True
) -> Interactions:
    """Keep interactions with ``rating >= min_rating`` (DiffRec: 4 on ML-1M).

    With ``binarize`` (default) the matrix values become 1.0 (implicit feedback); ratings stay
    available in ``ratings``. Vocabularies are unchanged; call :meth:`Interactions.compact` or
    :func:`k_core` to drop users and items left without interactions.
    """
    keep = ratings_at_least(None if data.ratings is None else data.ratings.data, min_rating)
    kept = data.select_entries(keep)
    return kept.binarize() if binarize else kept


def ratings_at_least(
    ratings: np.ndarray | None,
    min_rating: float,
    rating_col: str | None = None,
    source: Source = None,
) -> np.ndarray:
    """Boolean mask of ``ratings >= min_rating``: the one check behind every rating threshold
    (the interaction matrix's and the per-user sequences'). No ratings, or ratings of which none
    passes, is an error that says which setting to change."""
    if ratings is None:
        raise ValueError(
            "a rating threshold needs ratings, but the data was read without a rating column: "
            "set data.rating_col in the run config (rating_col=... when reading from Python; "
            "RecBole .inter files need a 'rating:float' field), or drop data.min_rating"
        )
    keep = ratings >= min_rating
    if ratings.size and not keep.any():
        name = f"{rating_col!r} " if rating_col else ""
        raise ValueError(
            f"no {name}rating{describe_source(source)} is >= {min_rating} (they range from "
            f"{ratings.min():g} to {ratings.max():g}): lower data.min_rating (min_rating=... "
            "from Python)"
        )
    return keep


class NegativeRatingsWarning(UserWarning):
    """Interactions with a negative rating (a "dislike" row) are kept as interactions: without
    a rating threshold every row is one, whatever its rating."""


def warn_negative_ratings(ratings: np.ndarray | None, source: Source = None) -> None:
    """Warn, saying how many and which setting drops them, when ``ratings`` (of data no rating
    threshold filtered) holds negative values: a -1 "dislike" row would silently become an
    interaction, that is, a positive. Kept rather than dropped: ratings matter only through
    ``data.min_rating``, and a rating of 0 is an interaction too."""
    if ratings is None or not ratings.size:
        return
    negative = ratings < 0
    if not negative.any():
        return
    warn(
        f"{int(negative.sum())} of {ratings.size} rating(s){describe_source(source)} are "
        f"negative (as low as {ratings.min():g}) and are kept as interactions, like any rated "
        "row: to drop them, set data.min_rating (e.g. --set data.min_rating=0, or 1; "
        "min_rating=... or filter_ratings from Python)",
        NegativeRatingsWarning,
    )


def k_core(
    data: Interactions, user_k: int = 5, item_k: int | None = None, max_iter: int = 1000
) -> Interactions:
    """The k-core: repeatedly drop users with < ``user_k`` and items with < ``item_k``
    interactions until none is left, then drop emptied users/items from the vocabularies.

    ``item_k`` defaults to ``user_k``. Removing a user can push an item under the threshold and
    vice versa, hence the iteration; it converges because each pass only removes entries.
    A core that removes every user and item is an error (nothing could be trained on it).
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
    if not keep.any():
        raise ValueError(
            f"the k-core filter (user_k={user_k}, item_k={item_k}) removed every user and item "
            f"of {data.nnz} interactions: its busiest user has {_most(rows, data.n_users)} and "
            f"its most popular item has {_most(cols, data.n_items)} interactions, and removing "
            "one user or item lowers the others' counts. Lower data.k_core in the run config "
            "(user_k / item_k when calling k_core from Python)"
        )
    return data.select_entries(keep).compact()


def _most(indices: np.ndarray, n: int) -> int:
    """The largest number of entries of one row (or column); 0 when there are none."""
    return int(np.bincount(indices, minlength=n).max(initial=0))
