"""Splits: exact hand-computed cuts, no leakage, temporal order, seeded reproducibility."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recdiff.data import (
    DatasetSplits,
    Interactions,
    Vocabulary,
    make_synthetic,
    split_global_temporal,
    split_leave_one_out,
    split_random,
    split_user_temporal,
)
from recdiff.data.splits import UsersWithoutTrainWarning


def frame_of(part: Interactions) -> set[tuple[object, object]]:
    return set(map(tuple, part.to_frame()[["user", "item"]].values.tolist()))


def build(rows: list[tuple[str, int, float]]) -> Interactions:
    frame = pd.DataFrame(rows, columns=["user", "item", "t"])
    return Interactions.from_frame(frame, time_col="t")


def assert_partition(data: Interactions, splits: DatasetSplits) -> None:
    parts = [frame_of(p) for _, p in splits]
    assert sum(len(p) for p in parts) == data.nnz
    assert set().union(*parts) == frame_of(data)
    for a in range(3):
        for b in range(a + 1, 3):
            assert not parts[a] & parts[b]
    for _, part in splits:
        assert part.shape == data.shape and part.users is data.users


def test_global_temporal_cuts_timeline_7_1_2() -> None:
    # 10 interactions at times 1..10, spread over users and items
    rows = [(f"u{k % 3}", k, float(t)) for k, t in enumerate([5, 1, 9, 3, 7, 10, 2, 8, 4, 6])]
    data = build(rows)
    splits = split_global_temporal(data)
    times = {name: sorted(part.timestamps.data.tolist()) for name, part in splits}
    assert times == {"train": [1, 2, 3, 4, 5, 6, 7], "valid": [8], "test": [9, 10]}
    assert_partition(data, splits)


def test_global_temporal_drop_unseen() -> None:
    data = build([("a", 1, 1.0), ("a", 2, 2.0), ("b", 1, 3.0), ("a", 3, 4.0)])
    splits = split_global_temporal(data, (0.5, 0.0, 0.5), drop_unseen=True)
    # test would hold (b, 1) and (a, 3); user b and item 3 never occur in train
    assert splits.test.nnz == 0
    with pytest.warns(UsersWithoutTrainWarning, match="1 of 2 user"):  # b, from an empty history
        kept = split_global_temporal(data, (0.5, 0.0, 0.5))
    assert frame_of(kept.test) == {("b", 1), ("a", 3)}


def test_user_temporal_floor_cuts() -> None:
    rows = [("long", i, float(10 - i)) for i in range(10)]  # newest = item 0
    rows += [("short", i, float(i)) for i in range(5)]  # newest = item 4
    splits = split_user_temporal(build(rows), (0.8, 0.1, 0.1))
    assert frame_of(splits.test) == {("long", 0), ("short", 4)}
    assert frame_of(splits.valid) == {("long", 1)}  # short: floor(4.5) = 4 = no valid item
    assert len(frame_of(splits.train)) == 8 + 4


def test_leave_one_out_last_is_test() -> None:
    rows = [
        ("a", 10, 3.0),
        ("a", 20, 1.0),
        ("a", 30, 2.0),
        ("b", 10, 5.0),
        ("b", 40, 6.0),
        ("c", 30, 1.0),
    ]
    splits = split_leave_one_out(build(rows))
    assert frame_of(splits.test) == {("a", 10), ("b", 40)}
    assert frame_of(splits.valid) == {("a", 30)}
    assert frame_of(splits.train) == {("a", 20), ("b", 10), ("c", 30)}


def test_leave_one_out_ties_are_deterministic() -> None:
    data = build([("a", 2, 1.0), ("a", 1, 1.0), ("a", 3, 1.0)])
    first = split_leave_one_out(data)
    assert frame_of(first.test) == {("a", 3)}  # equal times: the item index breaks the tie
    assert frame_of(split_leave_one_out(data).test) == frame_of(first.test)


def test_random_split_seeded() -> None:
    data = make_synthetic(n_users=100, n_items=60, seed=1)
    a, b = split_random(data, seed=3), split_random(data, seed=3)
    c = split_random(data, seed=4)
    assert frame_of(a.test) == frame_of(b.test)
    assert frame_of(a.test) != frame_of(c.test)
    assert a.train.nnz == int(0.8 * data.nnz) and a.valid.nnz == int(0.9 * data.nnz) - a.train.nnz
    assert_partition(data, a)
    per_user = split_random(data, (0.6, 0.2, 0.2), seed=0, per_user=True)
    assert_partition(data, per_user)
    assert np.all(per_user.test.user_counts() > 0)  # every synthetic user has >= 5 items


@pytest.mark.filterwarnings("ignore::recdiff.data.splits.UsersWithoutTrainWarning")
def test_temporal_splits_never_look_ahead() -> None:
    data = make_synthetic(n_users=200, n_items=100, seed=2)
    glob = split_global_temporal(data)
    assert glob.train.timestamps.data.max() <= glob.valid.timestamps.data.min()
    assert glob.valid.timestamps.data.max() <= glob.test.timestamps.data.min()
    for splitter in (split_user_temporal, split_leave_one_out):
        splits = splitter(data)
        assert_partition(data, splits)
        frames = {name: part.to_frame() for name, part in splits}
        last_train = frames["train"].groupby("user")["timestamp"].max()
        first_test = frames["test"].groupby("user")["timestamp"].min()
        common = last_train.index.intersection(first_test.index)
        assert (last_train[common] <= first_test[common]).all()


def test_temporal_split_needs_timestamps() -> None:
    data = Interactions.from_frame(pd.DataFrame({"user": [1], "item": [1]}))
    with pytest.raises(ValueError, match=r"data\.time_col.*time_col="):
        split_leave_one_out(data)
    with pytest.raises(ValueError, match="ratios"):
        split_random(data, (0.5, 0.5, 0.5))


def test_splits_must_share_vocabularies() -> None:
    a = build([("a", 1, 1.0)])
    b = Interactions.from_frame(
        pd.DataFrame({"user": ["a"], "item": [1]}), items=Vocabulary.from_ids([1, 2])
    )
    with pytest.raises(ValueError, match="same users/items"):
        DatasetSplits(a, b, a)


@pytest.mark.filterwarnings("ignore::recdiff.data.splits.UsersWithoutTrainWarning")
@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 8), st.integers(0, 20)),
        min_size=1,
        max_size=40,
        unique_by=lambda r: (r[0], r[1]),
    ),
    st.integers(0, 3),
)
def test_every_splitter_partitions_property(rows: list[tuple[int, int, int]], seed: int) -> None:
    data = Interactions.from_frame(pd.DataFrame(rows, columns=["user", "item", "t"]), time_col="t")
    for splits in (
        split_global_temporal(data),
        split_user_temporal(data),
        split_leave_one_out(data),
        split_random(data, seed=seed),
    ):
        assert_partition(data, splits)


def test_interactions_at_the_same_time_split_in_the_order_they_were_read():
    """Times that are dates tie within a day. Ties were ordered by item index, so each user's
    alphabetically last items of their last day went to test, for every user (and items late in
    the alphabet never trained). Now the table's row order decides, as in the log."""
    from recdiff.data import split_leave_one_out, split_user_temporal

    # user u's 10 rows, written in the order they happened, all on the same day
    rows = [(u, f"i{(7 * t + u) % 10}", "2024-05-01") for u in range(3) for t in range(10)]
    frame = pd.DataFrame(rows, columns=["user", "item", "day"])
    frame["day"] = pd.to_datetime(frame["day"]).astype("int64") // 10**9
    data = Interactions.from_frame(frame, time_col="day")
    splits = split_user_temporal(data, (0.7, 0.1, 0.2))
    for u in range(3):
        logged = [f"i{(7 * t + u) % 10}" for t in range(10)]
        row = splits.users.index([u])[0]
        for part, expected in ((splits.train, logged[:7]), (splits.test, logged[8:])):
            got = part.items.external(part.matrix[row].indices).tolist()
            assert sorted(got) == sorted(expected)
    loo = split_leave_one_out(data)
    assert loo.items.external(loo.test.matrix[0].indices).tolist() == ["i3"]  # the last row
    # interactions built without a row order (from indices) keep the item-index order
    plain = Interactions.from_indices(
        data.users,
        data.items,
        data.user_indices(),
        data.matrix.indices,
        timestamps=data.timestamps.data,
    )
    assert plain.order is None
    assert plain.items.external(split_leave_one_out(plain).test.matrix[0].indices).tolist() == [
        "i9"
    ]


def test_a_global_cut_through_tied_times_follows_the_row_order():
    from recdiff.data import split_global_temporal

    # 10 rows at one time: the cut at 7 / 8 takes the first 7 rows read, whatever their items
    frame = pd.DataFrame({"user": [0, 1] * 5, "item": [9, 8, 7, 6, 5, 4, 3, 2, 1, 0], "t": 5})
    splits = split_global_temporal(Interactions.from_frame(frame, time_col="t"), (0.7, 0.1, 0.2))
    test = splits.test.to_frame()
    assert sorted(zip(test["user"], test["item"], strict=True)) == [(0, 1), (1, 0)]


def test_the_row_order_follows_the_kept_row_of_a_repeated_pair():
    frame = pd.DataFrame({"user": [0, 0, 0], "item": [1, 2, 1], "t": [1.0, 1.0, 1.0]})
    last = Interactions.from_frame(frame, time_col="t", duplicates="last")
    first = Interactions.from_frame(frame, time_col="t", duplicates="first")
    assert last.order.data.tolist() == [2.0, 1.0]  # item 1 from row 2, item 2 from row 1
    assert first.order.data.tolist() == [0.0, 1.0]
    assert last.time_order().tolist() == [1, 0] and first.time_order().tolist() == [0, 1]
