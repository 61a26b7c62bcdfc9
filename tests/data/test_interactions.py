"""Interactions: CSR + vocabularies; shapes from vocabularies, duplicates, selections."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recdiff.data import DataFormatError, Interactions, UnknownIdError, Vocabulary


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user": ["bob", "amy", "amy", "cat"],
            "item": [10, 20, 10, 20],
            "rating": [5, 3, 4, 1],
            "ts": [100, 200, 0, 400],
        }
    )


def test_from_frame_known_matrix(frame: pd.DataFrame) -> None:
    data = Interactions.from_frame(frame, rating_col="rating", time_col="ts")
    # users sorted: amy=0, bob=1, cat=2; items: 10=0, 20=1; values are the ratings
    np.testing.assert_array_equal(data.matrix.toarray(), [[4, 3], [5, 0], [0, 1]])
    np.testing.assert_array_equal(data.ratings.toarray(), [[4, 3], [5, 0], [0, 1]])
    assert data.timestamps.data.tolist() == [0.0, 200.0, 100.0, 400.0]  # explicit 0 kept
    assert data.matrix.dtype == np.float32 and data.timestamps.dtype == np.float64
    assert (data.n_users, data.n_items, data.nnz) == (3, 2, 4)
    assert data.user_counts().tolist() == [2, 1, 1]
    assert data.item_counts().tolist() == [2, 2]
    assert data.row(0).tolist() == [0, 1]


def test_implicit_values_are_one(frame: pd.DataFrame) -> None:
    data = Interactions.from_frame(frame)
    assert data.matrix.data.tolist() == [1.0] * 4
    assert data.ratings is None and data.timestamps is None


def test_shape_comes_from_vocabularies_not_largest_id() -> None:
    users, items = Vocabulary.range(5), Vocabulary.range(7)
    split = Interactions.from_frame(
        pd.DataFrame({"user": [0], "item": [2]}), users=users, items=items
    )
    assert split.shape == (5, 7)
    assert split.users is users and split.items is items


def test_unknown_ids_with_given_vocabulary() -> None:
    frame = pd.DataFrame({"user": [0, 9, 1], "item": [0, 0, 5]})
    users, items = Vocabulary.range(2), Vocabulary.range(2)
    with pytest.raises(UnknownIdError, match=r"\[9\].*rows 1, 2"):
        Interactions.from_frame(frame, users=users, items=items)
    kept = Interactions.from_frame(frame, users=users, items=items, unknown="drop")
    assert kept.to_frame().values.tolist() == [[0, 0]]


def test_duplicates_raise_naming_pair_and_fix() -> None:
    frame = pd.DataFrame({"user": ["a", "b", "a"], "item": [1, 2, 1], "r": [1.0, 2.0, 5.0]})
    with pytest.raises(DataFormatError) as info:
        Interactions.from_frame(frame, rating_col="r")
    message = str(info.value)
    assert "('a', 1)" in message and "rows 0, 2" in message
    assert "'last'" in message and "'sum'" in message
    # the fix names the run-config key as well as the Python argument
    assert "Remove the repeated rows" in message and "data.duplicates" in message
    assert "duplicates=..." in message


@pytest.mark.parametrize(
    ("policy", "rating", "time"), [("last", 5.0, 30.0), ("first", 1.0, 10.0), ("sum", 6.0, 30.0)]
)
def test_duplicate_policies(policy: str, rating: float, time: float) -> None:
    frame = pd.DataFrame(
        {"user": ["a", "b", "a"], "item": [1, 2, 1], "r": [1.0, 2.0, 5.0], "t": [10, 20, 30]}
    )
    data = Interactions.from_frame(frame, rating_col="r", time_col="t", duplicates=policy)
    assert data.nnz == 2
    assert data.ratings.toarray()[0, 0] == rating  # ('a', 1)
    assert data.matrix.toarray()[0, 0] == rating
    assert data.timestamps.toarray()[0, 0] == time  # sum keeps the latest time
    assert data.ratings.toarray()[1, 1] == 2.0


def test_sum_counts_implicit_repeats() -> None:
    data = Interactions.from_frame(
        pd.DataFrame({"user": [1, 1, 1], "item": [4, 4, 5]}), duplicates="sum"
    )
    assert data.matrix.toarray().tolist() == [[2.0, 1.0]]


def test_select_users_compact_binarize(frame: pd.DataFrame) -> None:
    data = Interactions.from_frame(frame, rating_col="rating", time_col="ts")
    sub = data.select_users([2, 0])
    assert sub.users.ids.tolist() == ["amy", "cat"]  # vocabulary order
    np.testing.assert_array_equal(sub.matrix.toarray(), [[4, 3], [0, 1]])
    np.testing.assert_array_equal(sub.timestamps.toarray(), [[0, 200], [0, 400]])
    assert sub.items is data.items

    only_bob = data.select_entries(np.array([False, False, True, False])).compact()
    assert only_bob.users.ids.tolist() == ["bob"] and only_bob.items.ids.tolist() == [10]
    assert only_bob.ratings.toarray().tolist() == [[5.0]]

    binary = data.binarize()
    assert binary.matrix.data.tolist() == [1.0] * 4
    assert binary.ratings.data.tolist() == [4.0, 3.0, 5.0, 1.0]


def test_rows_builds_a_batch_in_given_order(frame: pd.DataFrame) -> None:
    data = Interactions.from_frame(frame)
    batch = data.rows(np.array([2, 0]))
    assert sp.issparse(batch)
    np.testing.assert_array_equal(batch.toarray(), [[0, 1], [1, 1]])


def test_to_frame_round_trip(frame: pd.DataFrame) -> None:
    data = Interactions.from_frame(frame, rating_col="rating", time_col="ts")
    out = data.to_frame()
    assert out.columns.tolist() == ["user", "item", "rating", "timestamp"]
    assert out.values.tolist() == [
        ["amy", 10, 4.0, 0.0],
        ["amy", 20, 3.0, 200.0],
        ["bob", 10, 5.0, 100.0],
        ["cat", 20, 1.0, 400.0],
    ]
    back = Interactions.from_frame(out, rating_col="rating", time_col="timestamp")
    assert (back.matrix != data.matrix).nnz == 0
    assert back.users == data.users and back.items == data.items


def test_side_matrices_must_share_pattern() -> None:
    m = sp.csr_matrix(np.array([[1, 0], [0, 1]], dtype=np.float32))
    other = sp.csr_matrix(np.array([[1, 1], [0, 1]], dtype=np.float32))
    with pytest.raises(ValueError, match="sparsity pattern"):
        Interactions(m, Vocabulary.range(2), Vocabulary.range(2), ratings=other)
    with pytest.raises(ValueError, match="does not match"):
        Interactions(m, Vocabulary.range(3), Vocabulary.range(2))


def test_non_canonical_matrix_is_summed() -> None:
    coo = sp.coo_matrix(([1.0, 1.0], ([0, 0], [1, 1])), shape=(1, 2))
    data = Interactions(coo.tocsr(copy=False), Vocabulary.range(1), Vocabulary.range(2))
    assert data.matrix.toarray().tolist() == [[0.0, 2.0]]


def test_from_indices_checks_ranges() -> None:
    with pytest.raises(ValueError, match="out of range"):
        Interactions.from_indices(Vocabulary.range(2), Vocabulary.range(2), [0, 2], [0, 0])


def test_pickle_round_trip_for_worker_processes(frame: pd.DataFrame) -> None:
    data = Interactions.from_frame(frame, rating_col="rating", time_col="ts")
    back = pickle.loads(pickle.dumps(data))
    assert back.users == data.users and not back.users.ids.flags.writeable
    assert (back.matrix != data.matrix).nnz == 0
    np.testing.assert_array_equal(back.timestamps.data, data.timestamps.data)


def test_datetime_time_column_becomes_unix_seconds() -> None:
    frame = pd.DataFrame(
        {
            "user": [1, 1],
            "item": [1, 2],
            "when": pd.to_datetime(["1970-01-02 00:00:00", "2020-09-13 12:26:40"]),
        }
    )
    data = Interactions.from_frame(frame, time_col="when")
    assert data.timestamps.data.tolist() == [86400.0, 1600000000.0]
