"""History windows: padding side, truncation to the last N, lengths, targets, tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recdiff.data import (
    SequenceExamples,
    examples_from_sequences,
    history_windows,
    prefix_target_positions,
)

P = 99  # pad id
ITEMS = np.array([10, 11, 12, 13, 20, 21])  # user 0: 10..13, user 1: 20, 21
INDPTR = np.array([0, 4, 6])


def test_left_padding_keeps_newest_last() -> None:
    history, lengths = history_windows(ITEMS, [0, 4, 4], [3, 5, 4], max_len=2, pad_id=P)
    np.testing.assert_array_equal(history, [[11, 12], [P, 20], [P, P]])
    np.testing.assert_array_equal(lengths, [2, 1, 0])


def test_right_padding_keeps_oldest_first() -> None:
    history, lengths = history_windows(
        ITEMS, [0, 4, 4], [3, 5, 4], max_len=4, pad_id=P, padding="right"
    )
    np.testing.assert_array_equal(history, [[10, 11, 12, P], [20, P, P, P], [P, P, P, P]])
    np.testing.assert_array_equal(lengths, [3, 1, 0])
    truncated, _ = history_windows(ITEMS, [0], [4], max_len=2, pad_id=P, padding="right")
    np.testing.assert_array_equal(truncated, [[12, 13]])  # still the most recent two


def test_window_arguments_are_validated() -> None:
    with pytest.raises(ValueError, match="max_len"):
        history_windows(ITEMS, [0], [1], max_len=0, pad_id=P)
    with pytest.raises(ValueError, match="padding"):
        history_windows(ITEMS, [0], [1], max_len=2, pad_id=P, padding="middle")
    with pytest.raises(ValueError, match="starts <= ends"):
        history_windows(ITEMS, [2], [1], max_len=2, pad_id=P)


def test_prefix_targets_skip_held_out_items() -> None:
    # user 0 (4 items): targets need >= 1 item before and exclude the last 2 -> position 1 only
    assert prefix_target_positions(INDPTR, min_history=1, exclude_last=2).tolist() == [1]
    assert prefix_target_positions(INDPTR, min_history=1).tolist() == [1, 2, 3, 5]
    assert prefix_target_positions(INDPTR, min_history=0).tolist() == [0, 1, 2, 3, 4, 5]


def test_examples_take_builds_only_the_batch() -> None:
    examples = examples_from_sequences(INDPTR, ITEMS, np.array([3, 5, 1]), max_len=3, pad_id=P)
    assert len(examples) == 3
    assert examples.targets.tolist() == [13, 21, 11]
    assert examples.users.tolist() == [0, 1, 0]
    assert examples.lengths.tolist() == [3, 1, 1]
    batch = examples.take(np.array([1, 2]))
    assert isinstance(batch, SequenceExamples)
    np.testing.assert_array_equal(batch.history, [[P, P, 20], [P, P, 10]])
    np.testing.assert_array_equal(examples.history[0], [10, 11, 12])


def test_to_torch() -> None:
    examples = examples_from_sequences(INDPTR, ITEMS, np.array([3, 5]), max_len=2, pad_id=P)
    tensors = examples.take(slice(None)).to_torch()
    assert set(tensors) == {"history", "lengths", "targets", "users"}
    assert tensors["history"].dtype == torch.int64 and tensors["history"].shape == (2, 2)
    assert tensors["targets"].tolist() == [13, 21]
    assert examples.to_torch()["lengths"].tolist() == [2, 1]


def test_sequence_examples_validate_shapes() -> None:
    with pytest.raises(ValueError, match="disagree"):
        SequenceExamples(np.zeros((2, 3), np.int64), np.zeros(3, np.int64), np.zeros(2, np.int64))


def test_last_per_user_keeps_each_users_longest_window() -> None:
    # unsorted positions of users 0 (1, 2, 3) and 1 (5): the latest are 3 and 5
    examples = examples_from_sequences(INDPTR, ITEMS, np.array([2, 5, 1, 3]), max_len=3, pad_id=P)
    last = examples.last_per_user()
    assert last.target_positions.tolist() == [3, 5]
    np.testing.assert_array_equal(last.history, [[10, 11, 12], [P, P, 20]])
    assert last.targets.tolist() == [13, 21]
    empty = examples_from_sequences(INDPTR, ITEMS, np.array([], dtype=np.int64), 3, P)
    assert len(empty.last_per_user()) == 0
