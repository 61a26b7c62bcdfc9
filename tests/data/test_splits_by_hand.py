"""Known-answer tests of the train/valid/test splits.

Each expectation is worked out by hand in a comment: leave-one-out (last item test, the one
before valid, the rest train), per-user temporal ratios cut at floor(n * cumulative ratio),
the global temporal cut, the seeded random split, drop_unseen, and the leave-one-out next-item
examples (whose test history holds the validation item).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from recdiff.data.interactions import Interactions
from recdiff.data.sequences import UserSequences
from recdiff.data.splits import (
    UsersWithoutTrainWarning,
    split_global_temporal,
    split_leave_one_out,
    split_random,
    split_user_temporal,
)
from recdiff.data.vocab import Vocabulary
from recdiff.eval import EvalTask


def pairs(part: Interactions) -> set[tuple[str, str]]:
    """The (user id, item id) pairs of one split."""
    frame = part.to_frame()
    return set(zip(frame["user"].tolist(), frame["item"].tolist(), strict=True))


def frame_data() -> Interactions:
    """Four users, rows deliberately not in time order:

    a: i1..i5 at times 1..5 (listed newest first)
    b: i1 at 10, i2 at 20
    c: i3 at 7 (one interaction)
    d: i5, i2, i4 all at time 3, in that row order (a tie: row order decides)
    """
    frame = pd.DataFrame(
        {
            "user": ["a", "a", "a", "a", "a", "b", "b", "c", "d", "d", "d"],
            "item": ["i5", "i4", "i3", "i2", "i1", "i2", "i1", "i3", "i5", "i2", "i4"],
            "t": [5, 4, 3, 2, 1, 20, 10, 7, 3, 3, 3],
        }
    )
    return Interactions.from_frame(frame, time_col="t")


def test_leave_one_out_last_is_test_second_to_last_is_valid():
    # a: test i5 (t5), valid i4 (t4), train i1 i2 i3.
    # b (2 items): test i2 (t20), no valid, train i1.
    # c (1 item): train only.
    # d (tied at t3, rows i5, i2, i4): the last row i4 is test, i2 valid, i5 train.
    s = split_leave_one_out(frame_data())
    assert pairs(s.test) == {("a", "i5"), ("b", "i2"), ("d", "i4")}
    assert pairs(s.valid) == {("a", "i4"), ("d", "i2")}
    assert pairs(s.train) == {
        ("a", "i1"),
        ("a", "i2"),
        ("a", "i3"),
        ("b", "i1"),
        ("c", "i3"),
        ("d", "i5"),
    }


def test_leave_one_out_ties_without_row_order_go_by_item_index():
    # The same user d without a known row order: items i2 < i4 < i5 by index, all at time 3,
    # so the index order is the time order: i5 test, i4 valid, i2 train.
    users, items = Vocabulary.from_ids(["d"]), Vocabulary.from_ids(["i2", "i4", "i5"])
    data = Interactions.from_indices(
        users, items, np.zeros(3, dtype=np.int64), np.arange(3), timestamps=np.full(3, 3.0)
    )
    s = split_leave_one_out(data)
    assert pairs(s.test) == {("d", "i5")}
    assert pairs(s.valid) == {("d", "i4")}
    assert pairs(s.train) == {("d", "i2")}


def test_leave_one_out_drop_unseen_moves_items_absent_from_train():
    # Train items (from the test above): i1 i2 i3 i5. i4 is only held out (a's valid and d's
    # test), so drop_unseen moves both to `dropped`; the rest stays.
    s = split_leave_one_out(frame_data(), drop_unseen=True)
    assert pairs(s.dropped) == {("a", "i4"), ("d", "i4")}
    assert pairs(s.valid) == {("d", "i2")}
    assert pairs(s.test) == {("a", "i5"), ("b", "i2")}


def _user_with(n: int, user: str = "u") -> pd.DataFrame:
    """One user with items x0..x{n-1} at times 0..n-1 (rows reversed, to need the sort)."""
    return pd.DataFrame(
        {"user": [user] * n, "item": [f"x{j}" for j in range(n)], "t": list(range(n))}
    ).iloc[::-1]


def test_user_temporal_cuts_at_floor_of_cumulative_ratios():
    # u (10 items), ratios 0.7/0.1/0.2: train floor(7.0) = 7 oldest (x0..x6); train + valid
    # floor(10 * (0.7 + 0.1)) = 8 (0.7 + 0.1 is 0.7999999999999999 in floating point; the cut
    # must still be 8, as the module promises): valid x7, test x8 x9.
    # v (3 items): train floor(2.1) = 2 (y0 y1), floor(2.4) = 2 -> no valid, test y2.
    frame = pd.concat([_user_with(10, "u"), _user_with(3, "v").replace({"x": "y"}, regex=True)])
    s = split_user_temporal(Interactions.from_frame(frame, time_col="t"), (0.7, 0.1, 0.2))
    assert pairs(s.train) == {("u", f"x{j}") for j in range(7)} | {("v", "y0"), ("v", "y1")}
    assert pairs(s.valid) == {("u", "x7")}
    assert pairs(s.test) == {("u", "x8"), ("u", "x9"), ("v", "y2")}


def test_user_temporal_user_too_short_for_train_is_warned_and_kept_or_dropped():
    # w (1 item), ratios 0.8/0.1/0.1: train floor(0.8) = 0, floor(0.9) = 0 -> its one item is
    # test and w has no train row: a UsersWithoutTrainWarning, or `dropped` with drop_unseen.
    frame = pd.concat(
        [_user_with(10, "u"), pd.DataFrame({"user": ["w"], "item": ["x0"], "t": [0]})]
    )
    data = Interactions.from_frame(frame, time_col="t")
    with pytest.warns(UsersWithoutTrainWarning, match="1 of 2 user") as caught:
        s = split_user_temporal(data, (0.8, 0.1, 0.1))
    assert caught[0].filename == __file__  # the caller's line, not the splitter's insides
    assert ("w", "x0") in pairs(s.test)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s2 = split_user_temporal(data, (0.8, 0.1, 0.1), drop_unseen=True)
    # u: floor(8) = 8 train (x0..x7), valid x8, test x9. But x8 and x9 have no train row
    # (only u had them), so drop_unseen moves them to `dropped` as well: nothing is left.
    assert pairs(s2.dropped) == {("w", "x0"), ("u", "x8"), ("u", "x9")}
    assert s2.valid.nnz == s2.test.nnz == 0
    assert pairs(s2.train) == {("u", f"x{j}") for j in range(8)}


def test_global_temporal_cuts_one_timeline():
    # 10 interactions of 3 users at distinct times 1..10 (user p at 1, 4, 7, 10; q at 2, 5, 8;
    # r at 3, 6, 9), ratios 0.7/0.1/0.2: times 1..7 train, 8 valid, 9 and 10 test.
    times = np.arange(1, 11)
    users = np.array(["p", "q", "r"])[(times - 1) % 3]
    frame = pd.DataFrame({"user": users, "item": [f"m{t}" for t in times], "t": times})
    data = Interactions.from_frame(frame.iloc[::-1], time_col="t")
    s = split_global_temporal(data, (0.7, 0.1, 0.2))  # every user has a train row: no warning
    assert s.train.nnz == 7
    assert pairs(s.valid) == {("q", "m8")}
    assert pairs(s.test) == {("r", "m9"), ("p", "m10")}
    assert s.train.timestamps.data.max() < s.valid.timestamps.data.min()
    assert s.valid.timestamps.data.max() < s.test.timestamps.data.min()


@pytest.mark.parametrize("per_user", [False, True])
def test_random_split_is_a_seeded_partition(per_user):
    # 4 users x 10 items each = 40 interactions, ratios 0.8/0.1/0.1.
    # Global: floor(32) = 32 train, floor(36) - 32 = 4 valid, 4 test.
    # Per user: 8 / 1 / 1 for each of the 4 users, so again 32 / 4 / 4.
    frame = pd.DataFrame(
        {"user": np.repeat(["a", "b", "c", "d"], 10), "item": np.tile(np.arange(10), 4)}
    )
    data = Interactions.from_frame(frame)
    s = split_random(data, (0.8, 0.1, 0.1), seed=7, per_user=per_user)
    assert (s.train.nnz, s.valid.nnz, s.test.nnz) == (32, 4, 4)
    assert pairs(s.train) | pairs(s.valid) | pairs(s.test) == pairs(data)
    if per_user:
        for part, n in ((s.train, 8), (s.valid, 1), (s.test, 1)):
            np.testing.assert_array_equal(part.user_counts(), [n] * 4)
    again = split_random(data, (0.8, 0.1, 0.1), seed=7, per_user=per_user)
    other = split_random(data, (0.8, 0.1, 0.1), seed=8, per_user=per_user)
    assert pairs(again.test) == pairs(s.test)
    assert pairs(other.test) != pairs(s.test)  # 4 of 40 (or 1 of 10 per user) by chance


@pytest.mark.parametrize(
    "split",
    [
        lambda d: split_leave_one_out(d),
        lambda d: split_user_temporal(d, (0.6, 0.2, 0.2)),
        lambda d: split_global_temporal(d, (0.6, 0.2, 0.2)),
        lambda d: split_random(d, (0.6, 0.2, 0.2), seed=3),
    ],
)
def test_every_split_is_disjoint_and_covers_the_data(split):
    # Without drop_unseen nothing is lost: train, valid and test are pairwise disjoint and
    # together hold exactly the 11 interactions of frame_data().
    data = frame_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UsersWithoutTrainWarning)
        s = split(data)
    tr, va, te = pairs(s.train), pairs(s.valid), pairs(s.test)
    assert not (tr & va) and not (tr & te) and not (va & te)
    assert tr | va | te == pairs(data)
    assert s.train.nnz + s.valid.nnz + s.test.nnz == data.nnz == 11


def test_test_task_inputs_are_train_and_mask_train_plus_valid():
    # From the leave-one-out split of frame_data(): the test task's input is the train matrix
    # only (a's valid i4 is not an input), its mask is train + valid, its truth the test rows.
    s = split_leave_one_out(frame_data())
    task = EvalTask.test(s.train.matrix, s.valid.matrix, s.test.matrix)
    a, i4 = s.users.index(["a"])[0], s.items.index(["i4"])[0]
    assert task.inputs[a, i4] == 0
    assert task.exclude[a, i4] == 1
    expected_mask = (s.train.matrix + s.valid.matrix).toarray() > 0
    np.testing.assert_array_equal(task.exclude.toarray() > 0, expected_mask)
    np.testing.assert_array_equal(task.truth.toarray() > 0, s.test.matrix.toarray() > 0)
    val = EvalTask.validation(s.train.matrix, s.valid.matrix)
    np.testing.assert_array_equal(val.exclude.toarray() > 0, s.train.matrix.toarray() > 0)


def test_sequence_leave_one_out_histories_and_targets():
    # One user with items 10, 20, 30, 40, 50 in time order (indices 0..4), max_len 3, pad 5:
    # test:  target 50 (index 4), history = the 3 items before it: 20, 30, 40 -> [1, 2, 3]
    #        (the validation item 40 IS in the test history, as in SASRec's protocol);
    # valid: target 40 (3), history [0, 1, 2];
    # train: targets 20 (1) and 30 (2) with histories [pad, pad, 0] and [pad, 0, 1]; neither
    #        the valid nor the test item is ever a train target or in a train history.
    seqs = UserSequences.from_lists({"u": [10, 20, 30, 40, 50]})
    data = seqs.leave_one_out(max_len=3)
    test, valid, train = (x.materialize() for x in (data.test, data.valid, data.train))
    assert data.pad_id == 5
    np.testing.assert_array_equal(test.history, [[1, 2, 3]])
    np.testing.assert_array_equal(test.targets, [4])
    np.testing.assert_array_equal(valid.history, [[0, 1, 2]])
    np.testing.assert_array_equal(valid.targets, [3])
    np.testing.assert_array_equal(train.targets, [1, 2])
    np.testing.assert_array_equal(train.history, [[5, 5, 0], [5, 0, 1]])


def test_sequence_leave_one_out_short_users():
    # 1 item: no example. 2 items (min_history 1): a test example only. 3 items: valid + test,
    # no train target (the first item only ever appears as history).
    seqs = UserSequences.from_lists({"one": [1], "two": [1, 2], "three": [1, 2, 3]})
    data = seqs.leave_one_out(max_len=4)
    assert (len(data.train), len(data.valid), len(data.test)) == (0, 1, 2)


def test_row_and_sequence_leave_one_out_hold_out_the_same_items():
    # Built from the same interactions (with the tie of user d), the rows' test/valid items
    # and the sequences' test/valid targets agree user by user: a: i5 / i4, b: i2 / -,
    # d: i4 / i2 (the row order decides the tie in both).
    data = frame_data()
    rows = split_leave_one_out(data)
    seqs = UserSequences.from_interactions(data).leave_one_out(max_len=5)
    item_ids = data.items.ids
    user_ids = data.users.ids
    for part, examples in ((rows.test, seqs.test), (rows.valid, seqs.valid)):
        from_seq = set(
            zip(
                user_ids[examples.users].tolist(),
                item_ids[examples.targets].tolist(),
                strict=True,
            )
        )
        assert from_seq == pairs(part)
