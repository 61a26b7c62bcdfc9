"""A built-in synthetic dataset with planted structure, for demos, tests and smoke benchmarks.

Users belong to ``n_groups`` taste groups and items to the same number of genres. Each
interaction comes, with probability ``taste_strength``, from the user's genre and otherwise from
the whole catalogue; within either pool items are drawn by a Zipf popularity. A popularity
baseline therefore does poorly, while any model that learns the co-occurrence of items (kNN,
EASE, DiffRec) recovers the genres and wins by a wide margin. Deterministic by ``seed``.
"""

from __future__ import annotations

import numpy as np

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


def demo_splits(
    seed: int = 0, n_users: int = 1000, n_items: int = 500, n_groups: int = 8
) -> DatasetSplits:
    """Small synthetic splits for the CLI demo and tests: per-user temporal 70/10/20."""
    data = make_synthetic(n_users=n_users, n_items=n_items, n_groups=n_groups, seed=seed)
    return split_user_temporal(data, (0.7, 0.1, 0.2))
