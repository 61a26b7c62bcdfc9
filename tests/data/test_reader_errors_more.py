"""Errors a user loading their own files meets: repeated header columns, Parquet row numbers,
empty RecBole times, and splits that leave users without train interactions."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recdiff.data import (
    DataFormatError,
    Interactions,
    Vocabulary,
    read_diffrec_splits,
    read_interactions,
    read_recbole_inter,
    split_global_temporal,
    split_random,
    split_user_temporal,
)
from recdiff.data.sequence_readers import read_table_sequences
from recdiff.data.splits import UsersWithoutTrainWarning


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ------------------------------------------------------------------------ repeated columns
@pytest.mark.parametrize(
    ("name", "text", "repeated", "columns"),
    [
        ("r.csv", "user,item,user\n1,10,2\n2,11,3\n", "user", {}),
        ("r.csv", "user,item,rating,rating\n1,10,5,4\n", "rating", {"rating_col": "rating"}),
        ("r.tsv", "user\titem\tuser\n1\t10\t2\n", "user", {}),
        ("r.csv", "user, item ,item\n1,10,2\n", "item", {}),  # spaces around names aside
    ],
)
def test_a_header_naming_a_column_twice_is_refused(
    tmp_path: Path, name: str, text: str, repeated: str, columns: dict[str, str]
) -> None:
    # Before, pandas renamed the second one "user.1" and the first was read without a word.
    path = write(tmp_path / name, text)
    with pytest.raises(DataFormatError) as info:
        read_interactions(path, **columns)
    message = str(info.value)
    assert f"{path} line 1: the header names column(s) [{repeated!r}] more than once" in message
    assert "give every column its own name" in message


def test_repeated_columns_are_refused_by_every_table_reader(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "user,item,timestamp,item\n1,10,5,4\n")
    with pytest.raises(DataFormatError, match=r"r\.csv line 1: the header names .*\['item'\]"):
        read_table_sequences(path)
    inter = write(tmp_path / "r.inter", "user_id:token\titem_id:token\tuser_id:token\n1\t2\t3\n")
    with pytest.raises(DataFormatError, match=r"r\.inter line 1: .*\['user_id:token'\]"):
        read_recbole_inter(inter)
    # pyarrow's own message ("Multiple matches for FieldRef") named neither file nor fix
    table = pa.table(
        [pa.array([1, 2]), pa.array([3, 4]), pa.array([5, 6])], ["user", "item", "user"]
    )
    pq.write_table(table, tmp_path / "r.parquet")
    with pytest.raises(DataFormatError, match=r"r\.parquet names column\(s\) \['user'\] more"):
        read_interactions(tmp_path / "r.parquet")
    with pytest.raises(ValueError, match=r"repeat \['user'\]"):
        read_interactions(path, header=False, names=["user", "item", "user", "x"])


def test_a_column_that_only_looks_renamed_is_read(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "user,item,user.1\n1,10,2\n2,11,3\n")
    assert read_interactions(path).users.ids.tolist() == [1, 2]
    assert read_interactions(path, user_col="user.1").users.ids.tolist() == [2, 3]


# ------------------------------------------------------------------------ Parquet rows
def test_parquet_errors_name_data_rows_counted_from_1(tmp_path: Path) -> None:
    # Before: "at row 1", a 0-based position, where a CSV of the same rows says "line 3".
    frame = pd.DataFrame({"user": [1.0, None, 3.0], "item": [1, 2, 3], "r": [1.0, 2.0, None]})
    frame.to_parquet(tmp_path / "m.parquet")
    with pytest.raises(DataFormatError) as info:
        read_interactions(tmp_path / "m.parquet")
    assert "'user' in " in str(info.value)
    assert "m.parquet at row 2 (data rows counted from 1);" in str(info.value)
    frame.assign(user=[1, 2, 3]).to_parquet(tmp_path / "r.parquet")
    with pytest.raises(DataFormatError, match=r"r\.parquet at row 3 \(data rows counted from 1\)"):
        read_interactions(tmp_path / "r.parquet", rating_col="r")
    pd.DataFrame({"user": [1, 2, 1], "item": [5, 6, 5]}).to_parquet(tmp_path / "d.parquet")
    with pytest.raises(
        DataFormatError, match=r"\(1, 5\) at rows 1, 3 \(data rows counted from 1\)"
    ):
        read_interactions(tmp_path / "d.parquet")
    # unknown ids dropped before the duplicate check: the rows still count in the file
    pd.DataFrame({"user": [9, 1, 2, 1], "item": [5, 5, 6, 5]}).to_parquet(tmp_path / "u.parquet")
    with pytest.raises(DataFormatError, match=r"at rows 2, 4 \(data rows counted from 1\)"):
        read_interactions(tmp_path / "u.parquet", users=Vocabulary.from_ids([1, 2]), unknown="drop")
    times = pd.DataFrame({"user": [1, 1, 2], "item": [1, 2, 1], "t": [1.0, np.nan, 3.0]})
    times.to_parquet(tmp_path / "t.parquet")
    with pytest.raises(DataFormatError, match=r"t\.parquet at row 2 \(data rows counted from 1\)"):
        read_table_sequences(tmp_path / "t.parquet", time_col="t")


def test_frames_in_memory_keep_row_positions(tmp_path: Path) -> None:
    frame = pd.DataFrame({"user": [1.0, None], "item": [1, 2]})
    with pytest.raises(DataFormatError) as info:
        read_interactions(frame)
    assert str(info.value).endswith("at row 1 (positions counted from 0); drop or fill those rows")


def test_diffrec_negative_ids_name_rows_counted_from_1(tmp_path: Path) -> None:
    for name, pairs in (("train", [[0, 0], [1, 1]]), ("valid", [[0, 1]]), ("test", [[0, -1]])):
        np.save(tmp_path / f"{name}_list.npy", np.array(pairs, dtype=np.int64))
    with pytest.raises(DataFormatError, match=r"row 1 \(rows counted from 1\) has a negative id"):
        read_diffrec_splits(tmp_path)


# ------------------------------------------------------------------------ missing times
@pytest.mark.parametrize(
    ("times", "lines"),
    [
        (["100", ""], "line 3"),
        (["2024-05-01", ""], "line 3"),  # before: "neither numbers nor ISO 8601 dates"
        (["", ""], "lines 2, 3"),
    ],
)
def test_an_empty_recbole_timestamp_is_missing(
    tmp_path: Path, times: list[str], lines: str
) -> None:
    rows = "".join(f"{u}\t{10 + u}\t{t}\n" for u, t in enumerate(times, start=1))
    path = write(tmp_path / "a.inter", "user_id:token\titem_id:token\ttimestamp:float\n" + rows)
    with pytest.raises(DataFormatError) as info:
        read_recbole_inter(path)
    message = str(info.value)
    assert f"missing (NaN/empty) time value(s) in column 'timestamp' in {path} at {lines};" in (
        message
    )
    assert "neither numbers nor ISO 8601" not in message and "fill or drop" in message


def test_an_empty_time_in_a_csv_is_missing_like_an_empty_id(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "user,item,when\na,x,2024-05-01\nb,y,\n")
    with pytest.raises(DataFormatError, match=r"missing .* time .*'when' in .*r\.csv at line 3;"):
        read_interactions(path, time_col="when")


# ------------------------------------------------------------------------ users without train
def late_user_data() -> Interactions:
    """Users a, b, c early; user d's only interaction is the last of all."""
    frame = pd.DataFrame(
        {
            "user": ["a", "a", "a", "b", "b", "c", "c", "a", "a", "d"],
            "item": [1, 2, 3, 1, 4, 2, 5, 6, 7, 8],
            "t": range(10),
        }
    )
    return Interactions.from_frame(frame, time_col="t")


def test_global_temporal_warns_of_users_without_train_rows() -> None:
    data = late_user_data()
    with pytest.warns(UsersWithoutTrainWarning) as caught:
        splits = split_global_temporal(data)
    message = str(caught[0].message)
    assert "split_global_temporal: 1 of 2 user(s) with valid/test interactions" in message
    assert "no train interaction" in message and "'d'" in message
    assert "scored from an empty history" in message and "drop_unseen=True" in message
    assert caught[0].filename == __file__  # points at the caller
    # only a warning: user d is still held out, with an empty train row
    d = splits.users.index(np.array(["d"]))[0]
    assert splits.train.user_counts()[d] == 0 and splits.test.user_counts()[d] == 1


def test_no_warning_when_unseen_users_are_dropped_or_absent() -> None:
    data = late_user_data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dropped = split_global_temporal(data, drop_unseen=True)  # what a run config does
        split_global_temporal(data.select_users(np.array([0, 1])))  # a and b: both in train
    assert dropped.dropped is not None and frame_of(dropped.dropped) == {
        ("a", 6),  # item 6 and 7 are not in train
        ("a", 7),
        ("d", 8),
    }
    with pytest.warns(UsersWithoutTrainWarning):
        kept = split_global_temporal(data)
    assert frame_of(kept.train) == frame_of(dropped.train) and kept.dropped is None
    assert frame_of(kept.valid) | frame_of(kept.test) == frame_of(dropped.dropped)


def frame_of(part: Interactions) -> set[tuple[object, object]]:
    return set(map(tuple, part.to_frame()[["user", "item"]].values.tolist()))


def test_per_user_splits_name_their_own_cause() -> None:
    frame = pd.DataFrame({"user": ["a"] * 5 + ["b"], "item": [1, 2, 3, 4, 5, 1], "t": range(6)})
    data = Interactions.from_frame(frame, time_col="t")
    with pytest.warns(UsersWithoutTrainWarning, match="too few interactions for a train share"):
        split_user_temporal(data, (0.8, 0.1, 0.1))
    with pytest.warns(UsersWithoutTrainWarning, match=r"split_random\(per_user=True\): 1 of"):
        split_random(data, (0.8, 0.1, 0.1), per_user=True)


# ------------------------------------------------------------------------ negative ratings
DISLIKES = "user,item,rating,t\na,1,1,1\na,2,-1,2\na,3,1,3\nb,1,1,4\nb,2,1,5\nb,3,-1,6\n"
NEGATIVE = (
    "2 of 6 rating(s){where} are negative (as low as -1) and are kept as interactions, like any "
    "rated row: to drop them, set data.min_rating (e.g. --set data.min_rating=0, or 1; "
    "min_rating=... or filter_ratings from Python)"
)


def test_negative_ratings_kept_as_interactions_are_warned_of(tmp_path: Path) -> None:
    """A -1 "dislike" row was trained on as an interaction without a word."""
    from recdiff.config.schema import DataConfig
    from recdiff.data.prepare import NegativeRatingsWarning
    from recdiff.train.datasets import load_splits

    path = write(tmp_path / "likes.csv", DISLIKES)
    columns = {"rating_col": "rating", "time_col": "t"}
    config = DataConfig(format="csv", source=str(path), split="user_temporal", **columns)
    with pytest.warns(NegativeRatingsWarning) as caught:
        splits = load_splits(config)
    assert [str(w.message) for w in caught] == [NEGATIVE.format(where="")]
    parts = (splits.train, splits.valid, splits.test, splits.dropped)
    assert sum(part.nnz for part in parts) == 6  # the dislikes kept, not dropped
    with pytest.warns(NegativeRatingsWarning) as caught:
        read_table_sequences(path, **columns)
    assert [str(w.message) for w in caught] == [NEGATIVE.format(where=f" in {path}")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = read_interactions(path, **columns)  # no warning yet: min_rating may follow
    with pytest.warns(NegativeRatingsWarning) as caught:
        split_random(data, (0.5, 0.25, 0.25), drop_unseen=True)
    negative = [w for w in caught if w.category is NegativeRatingsWarning]
    assert len(negative) == 1 and negative[0].filename == __file__  # points at the caller


def test_no_negative_ratings_warning_once_min_rating_drops_them(tmp_path: Path) -> None:
    from recdiff.config.schema import DataConfig
    from recdiff.train.datasets import load_splits

    path = write(tmp_path / "likes.csv", DISLIKES)
    columns = {"rating_col": "rating", "time_col": "t"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config = DataConfig(format="csv", source=str(path), split="random", min_rating=0, **columns)
        splits = load_splits(config)
        read_table_sequences(path, min_rating=0, **columns)
        zero = write(tmp_path / "zero.csv", DISLIKES.replace("-1", "0"))  # 0 is no dislike
        read_table_sequences(zero, **columns)
    assert splits.train.nnz + splits.valid.nnz + splits.test.nnz + splits.dropped.nnz == 4
