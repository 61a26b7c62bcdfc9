"""Preparation: rating threshold and iterative k-core, on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recdiff.data import Interactions, filter_ratings, k_core, make_synthetic


def test_filter_ratings_keeps_at_least_threshold() -> None:
    frame = pd.DataFrame({"user": [1, 1, 2, 2], "item": [1, 2, 1, 3], "r": [4, 3.5, 5, 1]})
    data = Interactions.from_frame(frame, rating_col="r")
    kept = filter_ratings(data, 4)
    assert kept.to_frame()[["user", "item", "rating"]].values.tolist() == [[1, 1, 4], [2, 1, 5]]
    assert kept.matrix.data.tolist() == [1.0, 1.0]  # binarized: implicit feedback
    assert kept.shape == data.shape  # vocabularies kept until compact / k_core
    assert filter_ratings(data, 4, binarize=False).matrix.data.tolist() == [4.0, 5.0]
    # no ratings: name what a run config sets (data.rating_col) and the Python argument
    with pytest.raises(ValueError, match=r"set data\.rating_col .*rating_col=") as info:
        filter_ratings(Interactions(data.matrix, data.users, data.items))
    assert "data.min_rating" in str(info.value)  # ... or drop the threshold
    # a threshold no rating reaches leaves nothing to train on: say so, with the range
    with pytest.raises(ValueError, match=r"no rating is >= 6 \(they range from 1 to 5\): lower"):
        filter_ratings(data, 6)


def test_k_core_iterates_until_stable() -> None:
    # 2-core: dropping d empties item 3 below 2, which drops c's item 3, which leaves c with 1
    rows = [("a", 1), ("a", 2), ("b", 1), ("b", 2), ("c", 1), ("c", 3), ("d", 3)]
    data = Interactions.from_frame(pd.DataFrame(rows, columns=["user", "item"]))
    core = k_core(data, 2)
    assert core.users.ids.tolist() == ["a", "b"] and core.items.ids.tolist() == [1, 2]
    np.testing.assert_array_equal(core.matrix.toarray(), np.ones((2, 2)))
    # separate thresholds: users need 2, items need 1 -> only d goes
    assert k_core(data, user_k=2, item_k=1).users.ids.tolist() == ["a", "b", "c"]


def test_k_core_that_removes_everything_says_so() -> None:
    # nobody has 3 interactions: an empty result would fail later as a shapeless matrix
    data = Interactions.from_frame(pd.DataFrame({"user": [1, 1, 2], "item": [1, 2, 1]}))
    with pytest.raises(ValueError, match=r"k-core .*removed every user and item") as info:
        k_core(data, 3)
    message = str(info.value)
    assert "busiest user has 2" in message and "most popular item has 2" in message
    assert "Lower data.k_core" in message and "user_k" in message


def test_k_core_property_on_synthetic() -> None:
    data = make_synthetic(n_users=300, n_items=200, seed=0)
    core = k_core(data, user_k=10, item_k=15)
    assert core.user_counts().min() >= 10 and core.item_counts().min() >= 15
    assert k_core(core, user_k=10, item_k=15).nnz == core.nnz  # already a core: unchanged
