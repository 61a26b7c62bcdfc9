"""T-DiffRec time weights: w_m = w_min + (m-1)/(M-1) (w_max - w_min), oldest to newest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recdiff.data import (
    Interactions,
    read_diffrec_splits,
    time_weights,
    time_weights_from_order,
)
from recdiff.data._ragged import dense_rank_within_rows


def data() -> Interactions:
    frame = pd.DataFrame(
        {
            "user": [0, 0, 0, 1, 2, 2],
            "item": [0, 1, 2, 0, 1, 3],
            "t": [30, 10, 20, 5, 7, 7],  # user 2: a tie
        }
    )
    return Interactions.from_frame(frame, time_col="t")


def test_known_weights() -> None:
    weights = time_weights(data(), w_min=0.1, w_max=1.0)
    expected = np.array(
        [
            [1.0, 0.1, 0.55, 0.0],  # newest (t=30) 1.0, oldest (t=10) 0.1, middle halfway
            [1.0, 0.0, 0.0, 0.0],  # a single interaction gets w_max
            [0.0, 1.0, 0.0, 1.0],  # equal times are equally recent: one moment, w_max
        ]
    )
    np.testing.assert_allclose(weights.toarray(), expected, rtol=1e-6)
    assert weights.dtype == np.float32
    np.testing.assert_array_equal(weights.indices, data().matrix.indices)


def test_ties_share_a_weight_and_the_ends_stay_w_min_and_w_max() -> None:
    frame = pd.DataFrame({"user": [0] * 5, "item": [4, 3, 2, 1, 0], "t": [1, 2, 2, 2, 3]})
    weights = time_weights(Interactions.from_frame(frame, time_col="t"), w_min=0.2, w_max=1.0)
    # three distinct times: 0.2 (t=1), 0.6 for the three at t=2, 1.0 (t=3), whatever the ids
    np.testing.assert_allclose(weights.toarray()[0], [1.0, 0.6, 0.6, 0.6, 0.2], rtol=1e-6)


def test_dense_ranks_match_pandas_on_random_ties() -> None:
    rng = np.random.default_rng(0)
    rows, keys = rng.integers(0, 30, 2000), rng.integers(0, 12, 2000).astype(float)
    ranks, distinct = dense_rank_within_rows(rows, keys, 40)
    frame = pd.DataFrame({"row": rows, "key": keys})
    expected = frame.groupby("row")["key"].rank(method="dense").to_numpy() - 1
    np.testing.assert_array_equal(ranks, expected.astype(np.int64))
    np.testing.assert_array_equal(distinct, frame.groupby("row")["key"].transform("nunique"))


def test_single_min_reproduces_linspace() -> None:
    weights = time_weights(data(), w_min=0.2, w_max=0.8, single="min")
    assert weights.toarray()[1, 0] == pytest.approx(0.2)


@pytest.mark.parametrize(("w_min", "w_max"), [(0.0, 1.0), (-0.1, 1.0), (0.9, 0.5)])
def test_bounds_are_validated(w_min: float, w_max: float) -> None:
    with pytest.raises(ValueError, match="0 < w_min <= w_max"):
        time_weights(data(), w_min=w_min, w_max=w_max)


def test_equal_bounds_give_constant_weights() -> None:
    assert set(time_weights(data(), 0.5, 0.5).data.tolist()) == {0.5}


def test_needs_timestamps() -> None:
    no_time = Interactions(data().matrix, data().users, data().items)
    with pytest.raises(ValueError, match=r"timestamps.*data\.time_col.*time_col="):
        time_weights(no_time)


def test_from_order_pairs() -> None:
    users = np.array([0, 0, 0, 1])
    items = np.array([2, 0, 1, 1])  # user 0's order: item 2, then 0, then 1
    weights = time_weights_from_order(users, items, (2, 3), w_min=0.5, w_max=1.0)
    np.testing.assert_allclose(weights.toarray(), [[0.75, 1.0, 0.5], [0.0, 1.0, 0.0]])
    with pytest.raises(ValueError, match="duplicate"):
        time_weights_from_order([0, 0], [1, 1], (1, 2))


@pytest.mark.data
def test_diffrec_row_order_matches_released_linspace(datasets_root: Path) -> None:
    folder = datasets_root / "diffrec" / "ml-1m_clean"
    weights = time_weights(read_diffrec_splits(folder).train, w_min=0.1, w_max=1.0)
    pairs = np.load(folder / "train_list.npy")
    # The released code: np.linspace(w_min, w_max, M) over each user's rows in file order.
    counts = np.bincount(pairs[:, 0])
    reference = np.concatenate([np.linspace(0.1, 1.0, c) for c in counts])
    np.testing.assert_allclose(
        np.asarray(weights[pairs[:, 0], pairs[:, 1]]).ravel(), reference, rtol=1e-6
    )
    from_pairs = time_weights_from_order(pairs[:, 0], pairs[:, 1], weights.shape)
    assert abs(from_pairs - weights).max() < 1e-6
