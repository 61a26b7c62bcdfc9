"""The large synthetic CSR: shape, canonical binary rows, activity, power-law popularity, seeding."""

from __future__ import annotations

import numpy as np
import pytest

from recdiff.data.synthetic import make_large_synthetic


def test_canonical_binary_rows_and_at_least_one_item_per_user():
    matrix = make_large_synthetic(n_users=3000, n_items=500, mean_items_per_user=12, seed=1)
    assert matrix.shape == (3000, 500) and matrix.dtype == np.float32
    assert matrix.has_canonical_format  # sorted, no duplicates
    assert np.all(matrix.data == 1.0)
    assert np.diff(matrix.indptr).min() >= 1


def test_mean_activity_and_power_law_popularity():
    uniform = make_large_synthetic(20_000, 100_000, 10, popularity_exponent=0.0, seed=0)
    # Without popularity, repeats are rare: the mean is the requested one.
    assert uniform.nnz / uniform.shape[0] == pytest.approx(10, rel=0.03)
    skewed = make_large_synthetic(20_000, 2_000, 10, popularity_exponent=1.0, seed=0)
    degree = np.sort(np.bincount(skewed.indices, minlength=2_000))[::-1]
    # Zipf(1): the 10th most popular item is drawn ~10x as often as the 100th, and that ~10x as
    # often as the 1000th (the head saturates: the top item's repeats within a user collapse).
    assert 7 < degree[9] / degree[99] < 13 and 7 < degree[99] / degree[999] < 13
    assert skewed.nnz < 10 * skewed.shape[0]


def test_deterministic_by_seed():
    a = make_large_synthetic(500, 300, 8, seed=3)
    b = make_large_synthetic(500, 300, 8, seed=3)
    c = make_large_synthetic(500, 300, 8, seed=4)
    assert (a != b).nnz == 0 and (a != c).nnz > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_users": 0}, "n_users"),
        ({"mean_items_per_user": 0.5}, "mean_items_per_user"),
        ({"popularity_exponent": -1.0}, "popularity_exponent"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_large_synthetic(**{"n_users": 10, "n_items": 10, **kwargs})
