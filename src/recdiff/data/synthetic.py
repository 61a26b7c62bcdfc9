"""A built-in synthetic dataset with planted structure, for demos, tests and smoke benchmarks.

Users belong to ``n_groups`` taste groups and items to the same number of genres. Each
interaction comes, with probability ``taste_strength``, from the user's genre and otherwise from
the whole catalogue; within either pool items are drawn by a Zipf popularity. A popularity
baseline therefore does poorly, while any model that learns the co-occurrence of items (kNN,
EASE, DiffRec) recovers the genres and wins by a wide margin. Deterministic by ``seed``.

:func:`make_large_synthetic` is the other end: a bare users x items CSR of any size (a million
users by 200k items in seconds), for memory and speed benchmarks of large catalogues.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recdiff.data.interactions import Interactions
from recdiff.data.splits import DatasetSplits, split_user_temporal
from recdiff.data.vocab import Vocabulary

_DAY = 86_400.0
_START = 1_600_000_000.0  # 2020-09-13, so the timestamps look like Unix seconds


def _draw(cdf_rows: np.ndarray, which: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per element of ``which`` from the distribution ``cdf_rows[which]``.

    Row ``r`` of the stacked CDFs is shifted by ``r`` so all rows form one increasing array,
    and a single ``searchsorted`` draws from each row at once.
    """
    n_rows, n_cols = cdf_rows.shape
    stacked = (cdf_rows + np.arange(n_rows)[:, None]).ravel()
    hit = np.searchsorted(stacked, which + rng.random(which.size), side="right")
    return np.minimum(hit - which * n_cols, n_cols - 1)


def make_synthetic(
    n_users: int = 2000,
    n_items: int = 1000,
    n_groups: int = 8,
    mean_interactions: float = 30.0,
    taste_strength: float = 0.8,
    popularity_exponent: float = 0.8,
    seed: int = 0,
) -> Interactions:
    """Implicit interactions with ratings (1..5) and timestamps (Unix seconds).

    Args:
        n_users, n_items: sizes; the vocabularies are ``0..n-1`` (every user interacts).
        n_groups: taste groups of users = genres of items.
        mean_interactions: mean number of distinct items per user (at least 5 each).
        taste_strength: probability that an interaction comes from the user's genre.
        popularity_exponent: Zipf exponent of item popularity (0 = uniform).
        seed: the only source of randomness.

    Ratings are higher for in-genre items, so ``filter_ratings(data, 4)`` keeps mostly taste.
    """
    if n_users < 1 or n_items < n_groups or n_groups < 1:
        raise ValueError("need n_users >= 1 and n_items >= n_groups >= 1")
    if not 0.0 <= taste_strength <= 1.0:
        raise ValueError(f"taste_strength must be in [0, 1], got {taste_strength}")
    rng = np.random.default_rng(seed)
    user_group = rng.integers(n_groups, size=n_users)
    item_group = rng.permutation(n_items) % n_groups
    popularity = 1.0 / (1.0 + rng.permutation(n_items)) ** popularity_exponent
    # Row g: popularity restricted to genre g; last row: the whole catalogue.
    weights = np.vstack([popularity * (item_group == g) for g in range(n_groups)] + [popularity])
    cdf = np.cumsum(weights, axis=1)
    cdf /= cdf[:, -1:]

    wanted = 5 + rng.poisson(max(mean_interactions - 5.0, 0.0), size=n_users)
    n_draws = np.ceil(wanted * 1.3).astype(np.int64)  # extra draws absorb repeated items
    user = np.repeat(np.arange(n_users), n_draws)
    from_taste = rng.random(user.size) < taste_strength
    item = _draw(cdf, np.where(from_taste, user_group[user], n_groups), rng)

    # Draw order is time order: gaps of about a day, from a per-user start date.
    gaps = rng.exponential(_DAY, size=user.size)
    first = np.cumsum(n_draws) - n_draws
    elapsed = np.cumsum(gaps)
    within = elapsed - np.repeat(elapsed[first] - gaps[first], n_draws)
    times = np.floor(_START + rng.uniform(0, 365 * _DAY, n_users)[user] + within)

    # Keep each (user, item) once, at its first draw, and at most `wanted` items per user.
    _, first_draw = np.unique(user * n_items + item, return_index=True)
    keep = np.zeros(user.size, dtype=bool)
    keep[first_draw] = True
    kept_before = np.cumsum(keep) - keep  # kept draws before each draw, over all users
    rank = kept_before - np.repeat(kept_before[first], n_draws)  # ... within the draw's user
    keep &= rank < wanted[user]

    in_taste = item_group[item] == user_group[user]
    ratings = np.clip(np.rint(rng.normal(np.where(in_taste, 4.3, 2.7), 0.8)), 1, 5)
    return Interactions.from_indices(
        Vocabulary.range(n_users),
        Vocabulary.range(n_items),
        user[keep],
        item[keep],
        values=np.ones(int(keep.sum())),
        ratings=ratings[keep],
        timestamps=times[keep],
    )


def make_large_synthetic(
    n_users: int = 1_000_000,
    n_items: int = 200_000,
    mean_items_per_user: float = 20.0,
    popularity_exponent: float = 1.0,
    activity_sigma: float = 1.0,
    seed: int = 0,
) -> sp.csr_matrix:
    """A binary float32 users x items CSR with power-law item popularity, built without any Python
    loop over users or items (one draw array, one sort).

    Args:
        n_users, n_items: sizes.
        mean_items_per_user: mean number of draws per user (log-normal activity, at least one);
            repeated draws of an item collapse, so users keep slightly fewer distinct items.
        popularity_exponent: item of popularity rank r (1-based, ranks shuffled over item ids) is
            drawn with probability proportional to r^-exponent (Zipf; 0 = uniform).
        activity_sigma: spread of the log-normal number of draws per user (0 = all equal).
        seed: the only source of randomness.
    """
    if n_users < 1 or n_items < 1:
        raise ValueError(f"need n_users >= 1 and n_items >= 1, got {n_users} and {n_items}")
    if mean_items_per_user < 1:
        raise ValueError(f"mean_items_per_user must be >= 1, got {mean_items_per_user}")
    if popularity_exponent < 0 or activity_sigma < 0:
        raise ValueError("popularity_exponent and activity_sigma must be >= 0")
    rng = np.random.default_rng(seed)
    # Log-normal with the requested mean: mu = log(mean) - sigma^2 / 2.
    mu = np.log(mean_items_per_user) - activity_sigma**2 / 2
    draws = np.rint(rng.lognormal(mu, activity_sigma, n_users)).astype(np.int64)
    draws = np.clip(draws, 1, n_items)
    rank = rng.permutation(n_items).astype(np.float64) + 1.0
    cdf = np.cumsum(rank**-popularity_exponent)
    item = np.searchsorted(cdf, rng.random(int(draws.sum())) * cdf[-1], side="right")
    item = np.minimum(item, n_items - 1)
    # One sort of (user, item) keys yields CSR order; repeats are then neighbours. (A plain sort
    # and mask: np.unique is two orders of magnitude slower here on numpy 2.4.)
    keys = np.sort(np.repeat(np.arange(n_users, dtype=np.int64), draws) * n_items + item)
    first = np.ones(keys.size, dtype=bool)
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    keys = keys[first]
    user, item = np.divmod(keys, n_items)
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(user, minlength=n_users), out=indptr[1:])
    index_type = np.int32 if n_items < 2**31 and keys.size < 2**31 else np.int64
    return sp.csr_matrix(
        (np.ones(keys.size, dtype=np.float32), item.astype(index_type), indptr.astype(index_type)),
        shape=(n_users, n_items),
    )


def demo_splits(
    seed: int = 0, n_users: int = 1000, n_items: int = 500, n_groups: int = 8
) -> DatasetSplits:
    """Small synthetic splits for the CLI demo and tests: per-user temporal 70/10/20."""
    data = make_synthetic(n_users=n_users, n_items=n_items, n_groups=n_groups, seed=seed)
    return split_user_temporal(data, (0.7, 0.1, 0.2))
