"""UserSequences, leave-one-out examples and the sequence readers (synthetic + real files)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recdiff.config.schema import DataConfig
from recdiff.data import (
    DataFormatError,
    Interactions,
    UserSequences,
    read_diffurec,
    read_dreamrec,
    read_dreamrec_frame,
    read_interactions,
    read_sequence_file,
    read_table_sequences,
    read_user_item_lines,
    read_user_sequences,
)
from recdiff.train.datasets import load_sequences


def test_from_pairs_groups_users_and_keeps_order() -> None:
    seqs = UserSequences.from_pairs(["b", "a", "b", "a"], [30, 10, 20, 30])
    assert seqs.users.ids.tolist() == ["a", "b"] and seqs.items.ids.tolist() == [10, 20, 30]
    assert seqs.sequence(0).tolist() == [0, 2]  # a: 10 then 30
    assert seqs.sequence(1).tolist() == [2, 1]  # b: 30 then 20
    assert seqs.lengths().tolist() == [2, 2]


def test_from_interactions_orders_by_time_and_back() -> None:
    frame = pd.DataFrame({"user": [1, 1, 1, 2], "item": [5, 6, 7, 5], "t": [3, 1, 2, 9]})
    seqs = UserSequences.from_interactions(Interactions.from_frame(frame, time_col="t"))
    assert seqs.items.external(seqs.sequence(0)).tolist() == [6, 7, 5]
    back = seqs.to_interactions()
    assert back.matrix.toarray().tolist() == [[1, 1, 1], [1, 0, 0]]
    with pytest.raises(ValueError, match=r"data\.time_col.*time_col="):
        UserSequences.from_interactions(Interactions.from_frame(frame))  # no times to order by


def test_repeated_items_keep_their_latest_position() -> None:
    seqs = UserSequences.from_lists({"u": [1, 2, 1]})
    assert seqs.sequence(0).tolist() == [0, 1, 0]
    inter = seqs.to_interactions()
    assert inter.nnz == 2 and inter.timestamps.toarray().tolist() == [[2.0, 1.0]]


def test_leave_one_out_examples() -> None:
    # a: 1 2 3 4, b: 5 6, c: 7; item index = id - 1; pad = n_items = 7
    seqs = UserSequences.from_lists({"a": [1, 2, 3, 4], "b": [5, 6], "c": [7]})
    data = seqs.leave_one_out(max_len=3)
    assert data.pad_id == 7 and data.padding == "left" and data.n_items == 7
    test = data.test.materialize()
    np.testing.assert_array_equal(test.history, [[0, 1, 2], [7, 7, 4]])
    assert test.targets.tolist() == [3, 5] and test.users.tolist() == [0, 1]
    valid = data.valid.materialize()
    np.testing.assert_array_equal(valid.history, [[7, 0, 1]])
    assert valid.targets.tolist() == [2]
    train = data.train.materialize()
    np.testing.assert_array_equal(train.history, [[7, 7, 0]])
    assert train.targets.tolist() == [1] and train.lengths.tolist() == [1]


def test_from_lists_keeps_users_without_items() -> None:
    seqs = UserSequences.from_lists({1: [3], 2: []})
    assert seqs.n_users == 2 and seqs.lengths().tolist() == [1, 0]


# ------------------------------------------------------------------------------ text files
def test_user_sequences_file(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("1 5 6 7\n2 6\n\n3\n")
    seqs = read_user_sequences(path)
    assert seqs.users.ids.tolist() == [1, 2, 3]
    assert [seqs.items.external(seqs.sequence(u)).tolist() for u in range(3)] == [
        [5, 6, 7],
        [6],
        [],
    ]


def test_user_sequences_duplicate_user_and_empty(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("1 5\n2 6\n1 7\n")
    with pytest.raises(DataFormatError, match=r"user 1 .*lines 1, 3"):
        read_user_sequences(path)
    path.write_text("\n\n")
    with pytest.raises(DataFormatError, match="empty"):
        read_user_sequences(path)


def test_user_sequences_keep_ids_as_written(tmp_path: Path) -> None:
    # "007" and "7" are two users, "05" and "5" two items: as ints they would merge
    path = tmp_path / "x.txt"
    path.write_text("007 05 5\n7 5\n")
    seqs = read_user_sequences(path)
    assert seqs.users.ids.tolist() == ["007", "7"]
    assert seqs.items.external(seqs.sequence(0)).tolist() == ["05", "5"]


def test_user_sequences_ignore_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_bytes(b"\xef\xbb\xbf1 5 6\n2 6\n")
    assert read_user_sequences(path).users.ids.tolist() == [1, 2]


def test_user_sequences_not_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_bytes("1 5 6\n2 caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"x\.txt line 2 is not UTF-8.*save the file as"):
        read_user_sequences(path)


def test_user_sequences_without_any_item_say_how_to_separate(tmp_path: Path) -> None:
    # comma-separated lines are one token each: users without items, nothing to split
    path = tmp_path / "x.txt"
    path.write_text("1,37,55\n2,32\n")
    with pytest.raises(DataFormatError, match=r"no line of .*x\.txt has an item.*line 1.*spaces"):
        read_user_sequences(path)


def test_a_comma_separated_line_among_others_is_named(tmp_path: Path) -> None:
    # It was read as user "2,5,6" without items, and made every id of the file a string.
    path = tmp_path / "x.txt"
    path.write_text("1\t5\t6\n\n2,5,6\n3 7 8\n")
    with pytest.raises(DataFormatError, match=r"x\.txt line 3 reads '2,5,6'.*not commas"):
        read_user_sequences(path)


@pytest.mark.parametrize(
    ("text", "shown", "token"),
    [
        ("user0, s7, s8, s9\nuser1, s8, s9\n", "user0, s7, s8, s9", "user0,"),
        ("u0, s7\nu0, s8\nu1, s8\n", "u0, s7", "u0,"),  # SASRec's pairs, with commas
        ("u0 s7, s8, s9\nu1 s8, s9\n", "u0 s7, s8, s9", "s7,"),  # most ids end in one
    ],
)
def test_a_comma_separated_sequence_file_is_refused(
    tmp_path: Path, text: str, shown: str, token: str
) -> None:
    # Split at spaces, "user0, s7, s8" trained without a word on users "user0," and items "s7,".
    path = tmp_path / "x.txt"
    path.write_text(text)
    for read in (read_sequence_file, read_user_sequences):
        with pytest.raises(DataFormatError) as caught:
            read(path)
        assert str(caught.value) == (
            f"{path} line 1 reads {shown!r}: ids in a sequence file (data.format=sequences) are "
            f"separated by spaces or tabs, not commas, so {token!r} would be an id; replace the "
            "commas with spaces, or, for a table of one interaction per line with a header, set "
            "data.format=csv with data.user_col, data.item_col and data.time_col naming its "
            "columns"
        )


def test_an_id_that_happens_to_end_in_a_comma_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("1 5 6\n2 a, 7\n3 8 9\n")
    assert "a," in read_sequence_file(path).items.ids.tolist()


def test_user_item_lines(tmp_path: Path) -> None:
    path = tmp_path / "video.txt"
    path.write_text("1 9\n1 3\n2 3\n1 4\n")
    seqs = read_user_item_lines(path)
    assert seqs.items.external(seqs.sequence(0)).tolist() == [9, 3, 4]
    path.write_text("1 9\n1\n")
    with pytest.raises(DataFormatError, match=r"'item'.*line 2"):
        read_user_item_lines(path)
    path.write_text("1 09\n1 9\n")
    assert read_user_item_lines(path).items.ids.tolist() == ["09", "9"]


def test_sequence_file_tells_pairs_from_user_lines_and_types_columns_apart(tmp_path: Path) -> None:
    # SASRec's pairs: a user on several lines. Users and items are typed column by column, as
    # read_user_item_lines does ("09" keeps the items strings, the users stay ints).
    path = tmp_path / "video.txt"
    path.write_text("1 09\n2 9\n1 9\n")
    seqs = read_sequence_file(path)
    assert seqs.users.ids.tolist() == [1, 2] and seqs.items.ids.tolist() == ["09", "9"]
    assert seqs.items.external(seqs.sequence(0)).tolist() == ["09", "9"]
    same = read_user_item_lines(path)
    assert same.items.ids.tolist() == seqs.items.ids.tolist() and same.indptr.tolist() == (
        seqs.indptr.tolist()
    )
    # two ids a line, every user once: ICLRec's lines with one item each
    path.write_text("1 5\n2 6\n")
    assert read_sequence_file(path).lengths().tolist() == [1, 1]
    # a line of ICLRec's anywhere decides it: then a user on two lines is an error
    path.write_text("1 5\n2 6 7\n1 8\n")
    with pytest.raises(DataFormatError, match=r"user 1 .*lines 1, 3"):
        read_sequence_file(path)
    with pytest.raises(DataFormatError, match="not a file"):
        read_sequence_file(tmp_path)
    with pytest.raises(FileNotFoundError, match="nothere"):
        read_sequence_file(tmp_path / "nothere.txt")


# ------------------------------------------------------------------------------ tables
def write_table(path: Path, times: list[str], users: list[str] | None = None) -> Path:
    """``user,item,rating,timestamp`` rows: user 1 has items 0..n-1 at ``times``, rating 5."""
    users = users or ["1"] * len(times)
    rows = [f"{u},{i},5,{t}" for i, (u, t) in enumerate(zip(users, times, strict=True))]
    path.write_text("user,item,rating,timestamp\n" + "\n".join(rows) + "\n")
    return path


def test_table_sequences_order_by_numeric_time(tmp_path: Path) -> None:
    # times 0..11 out of file order: sorted as text, 10 and 11 would come right after 1
    times = ["9", "10", "11", "0", "1", "2", "3", "4", "5", "6", "7", "8"]
    seqs = read_table_sequences(write_table(tmp_path / "r.csv", times))
    assert seqs.items.external(seqs.sequence(0)).tolist() == [3, 4, 5, 6, 7, 8, 9, 10, 11, 0, 1, 2]


def test_table_sequences_keep_repeats_and_file_order_on_ties(tmp_path: Path) -> None:
    # a sequence is a history: (1, 7) twice stays twice; equal times keep the file order
    path = tmp_path / "r.csv"
    path.write_text("user,item,timestamp\n1,7,5\n1,8,5\n2,7,1\n1,7,2\n")
    seqs = read_table_sequences(path)
    assert [seqs.items.external(seqs.sequence(u)).tolist() for u in range(2)] == [[7, 7, 8], [7]]
    with pytest.raises(ValueError, match=r"ordered by time: set data\.time_col"):
        read_table_sequences(path, time_col=None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("times", "users", "where"),
    [
        # the matrix reader refuses a time that is not a number (text dates included, since it
        # does not parse them); the sequence reader must refuse it with the same message, not
        # sort the column as text. Line 4 = header + the third row; a date among numbers is
        # named as the odd one out.
        *[
            (["0", "1", bad, "3"], None, "'timestamp' in .*r\\.csv at line 4 ")
            for bad in ["junk", "yesterday"]
        ],
        # an empty time is missing, not malformed
        (["0", "1", "", "3"], None, "missing .* time .*'timestamp' in .*r\\.csv at line 4;"),
        (["0", "1", "2020-01-02", "3"], None, "'timestamp' in .*r\\.csv mixes 3 number.* line 4 "),
        # a missing user: the same message, the file and its line, not a row position
        (["0", "1", "2", "3"], ["1", "1", "", "2"], "'user' in .*r\\.csv at line 4;"),
    ],
)
def test_table_sequences_refuse_bad_rows_like_interactions(
    tmp_path: Path, times: list[str], users: list[str] | None, where: str
) -> None:
    path = write_table(tmp_path / "r.csv", times, users=users)
    with pytest.raises(DataFormatError) as matrix_error:
        read_interactions(path, time_col="timestamp")
    with pytest.raises(DataFormatError, match=where) as info:
        read_table_sequences(path)
    assert str(info.value) == str(matrix_error.value)


def test_table_sequences_datetimes_like_interactions(tmp_path: Path) -> None:
    # real datetime columns (Parquet, or a frame) are accepted, as by the matrix reader
    frame = pd.DataFrame(
        {
            "user": [1, 1, 1],
            "item": [5, 6, 7],
            "timestamp": pd.to_datetime(["2020-01-03", "2019-12-31", "2020-01-01"]),
        }
    )
    frame.to_parquet(tmp_path / "r.parquet")
    for source in (frame, tmp_path / "r.parquet"):
        seqs = read_table_sequences(source)
        assert seqs.items.external(seqs.sequence(0)).tolist() == [6, 7, 5]


def test_table_sequences_keep_ids_as_written_and_take_a_format(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    path.write_text("user\titem\ttimestamp\n1\t007\t1\n1\t7\t2\n")
    seqs = read_table_sequences(path, file_format="tsv")
    assert seqs.items.external(seqs.sequence(0)).tolist() == ["007", "7"]


def test_table_sequences_min_rating(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("user,item,stars,timestamp\n1,5,4,3\n1,6,2,1\n1,7,5,2\n2,5,1,0\n")
    seqs = read_table_sequences(path, rating_col="stars", min_rating=4)
    assert seqs.users.ids.tolist() == [1]  # user 2 had no rating >= 4
    assert seqs.items.external(seqs.sequence(0)).tolist() == [7, 5]
    # the threshold needs the rating column: name the config key and the argument
    with pytest.raises(ValueError, match=r"data\.rating_col.*rating_col="):
        read_table_sequences(path, min_rating=4)
    # a threshold nothing passes says so, instead of handing on an empty dataset
    with pytest.raises(ValueError, match=r"no 'stars' rating .*>= 6.*lower data\.min_rating"):
        read_table_sequences(path, rating_col="stars", min_rating=6)
    # and a rating that is not a number names its line, as a time does
    path.write_text("user,item,stars,timestamp\n1,5,4,3\n1,6,high,1\n")
    with pytest.raises(DataFormatError, match=r"'stars' in .*r\.csv at line 3 "):
        read_table_sequences(path, rating_col="stars", min_rating=4)


# ------------------------------------------------------------------------------ DreamRec
def dreamrec_frame(**columns: object) -> pd.DataFrame:
    base: dict[str, object] = {
        "seq": [[9, 9, 9], [4, 9, 9], [4, 2, 9]],
        "seq_len": [1, 1, 2],
        "tgt": [4, 2, 0],
    }
    base.update(columns)
    return pd.DataFrame({k: v for k, v in base.items() if v is not None})


def test_dreamrec_frame_both_namings(tmp_path: Path) -> None:
    dreamrec_frame().to_pickle(tmp_path / "a.df")
    new = read_dreamrec_frame(tmp_path / "a.df", n_items=9)
    assert new.lengths.tolist() == [0, 1, 2]  # true counts; the file says 1 for empty
    assert new.targets.tolist() == [4, 2, 0]
    old = dreamrec_frame(seq_len=None, tgt=None, len_seq=[1, 1, 2], next=[4.0, 2.0, 0.0])
    old.to_pickle(tmp_path / "b.df")
    same = read_dreamrec_frame(tmp_path / "b.df", n_items=9)
    np.testing.assert_array_equal(same.history, new.history)
    np.testing.assert_array_equal(same.targets, new.targets)


def test_a_dreamrec_folder_rewindowed_keeps_the_newest_items(tmp_path: Path) -> None:
    frame = dreamrec_frame(seq=[[9, 9, 9], [4, 9, 9], [4, 2, 9]])
    pd.DataFrame({"seq_size": [3], "item_num": [9]}).to_pickle(tmp_path / "data_statis.df")
    for name in ("train", "val", "test"):
        frame.to_pickle(tmp_path / f"{name}_data.df")
    data = read_dreamrec(tmp_path)
    short = data.with_max_len(1)
    assert short.test.history.tolist() == [[9], [4], [2]]  # the newest of [4, 2] is 2
    assert short.test.lengths.tolist() == [0, 1, 1] and short.max_len == 1
    wide = data.with_max_len(5)  # longer windows: the same items, more padding
    assert wide.test.history.tolist() == [[9] * 5, [4, 9, 9, 9, 9], [4, 2, 9, 9, 9]]
    assert wide.test.lengths.tolist() == [0, 1, 2] and wide.padding == "right"
    assert data.with_max_len(3) is data
    # ... and a run reads a DreamRec folder with the history its data.max_len asks for
    config = DataConfig(format="dreamrec", source=str(tmp_path), max_len=1)
    assert load_sequences(config)[0].test.history.tolist() == [[9], [4], [2]]


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"tgt": None}, "needs 'seq'"),
        ({"seq": [[9, 9, 9], [4, 9], [4, 2, 9]]}, "3 slots"),
        (
            {"seq": [[9, 9, 9], [9, 4, 9], [4, 2, 9]]},
            r"right-padded with pad id 9: not so at row 1 \(positions counted from 0\)$",
        ),
        ({"tgt": [4.5, 2, 0]}, "whole numbers"),
        ({"tgt": [4, 2, 12]}, "outside 0..8"),
        ({"seq_len": [1, 3, 2]}, "disagrees"),
    ],
)
def test_dreamrec_frame_malformed(tmp_path: Path, columns: dict[str, object], message: str) -> None:
    dreamrec_frame(**columns).to_pickle(tmp_path / "bad.df")
    with pytest.raises(DataFormatError, match=message):
        read_dreamrec_frame(tmp_path / "bad.df", n_items=9)


def test_diffurec_tiny(tmp_path: Path) -> None:
    data = {
        "train": {0: [1, 2], 1: [3]},
        "val": {0: [3], 1: [1]},
        "test": {0: [4], 1: [2]},
        "umap": {10: 0, 11: 1},
        "smap": {7: 1, 8: 2, 9: 3, 6: 4, 5: 5},
    }
    (tmp_path / "dataset.pkl").write_bytes(pickle.dumps(data))
    seqs = read_diffurec(tmp_path / "dataset.pkl")
    assert seqs.n_items == 5  # item 5 of smap never occurs but keeps a column
    assert seqs.items.external(seqs.sequence(0)).tolist() == [1, 2, 3, 4]
    loo = seqs.leave_one_out(max_len=5)
    assert seqs.items.external(loo.test.targets).tolist() == [4, 2]
    assert seqs.items.external(loo.valid.targets).tolist() == [3, 1]


# ------------------------------------------------------------------------------ real files
@pytest.mark.data
def test_real_dreamrec_zhihu(datasets_root: Path) -> None:
    data = read_dreamrec(datasets_root / "dreamrec" / "zhihu")
    assert (len(data.train), len(data.valid), len(data.test)) == (61641, 8160, 7911)
    assert data.n_items == 4838 and data.pad_id == 4838 and data.padding == "right"
    assert data.max_len == 10
    assert data.test.targets[:3].tolist() == [4707, 4631, 4447]
    assert data.test.lengths[:3].tolist() == [0, 1, 2]
    assert data.test.history[2, :3].tolist() == [4707, 4631, 4838]
    for split in ("val", "test"):
        old = read_dreamrec_frame(
            datasets_root / "dreamrec" / "zhihu-original-columns" / f"{split}_data.df", 4838
        )
        new = data.valid if split == "val" else data.test
        np.testing.assert_array_equal(old.history, new.history)
        np.testing.assert_array_equal(old.targets, new.targets)


@pytest.mark.data
@pytest.mark.parametrize(
    ("name", "users", "items", "total"),
    [("Beauty", 22363, 12101, 198502), ("Toys_and_Games", 19412, 11924, 167597)],
)
def test_real_iclrec_and_diffurec_agree(
    datasets_root: Path, name: str, users: int, items: int, total: int
) -> None:
    seqs = read_user_sequences(datasets_root / "iclrec" / f"{name}.txt")
    assert (seqs.n_users, seqs.n_items, int(seqs.lengths().sum())) == (users, items, total)
    folder = {"Beauty": "amazon_beauty", "Toys_and_Games": "toys"}[name]
    diffurec = read_diffurec(datasets_root / "diffurec" / folder / "dataset.pkl")
    np.testing.assert_array_equal(diffurec.indptr, seqs.indptr)  # README: same sequences
    np.testing.assert_array_equal(
        diffurec.items.external(diffurec.item_idx), seqs.items.external(seqs.item_idx)
    )
    loo = seqs.leave_one_out(max_len=50)
    assert len(loo.test) == users and len(loo.valid) == users  # 5-core: all users qualify
    assert len(loo.train) == total - 3 * users


@pytest.mark.data
def test_real_video_and_diffurec_ml1m(datasets_root: Path) -> None:
    video = read_user_item_lines(datasets_root / "sasrec" / "Video.txt")
    assert (video.n_users, video.n_items, int(video.lengths().sum())) == (31013, 23715, 287107)
    ml = read_diffurec(datasets_root / "diffurec" / "ml-1m" / "dataset.pkl")
    assert (ml.n_users, ml.n_items, int(ml.lengths().sum())) == (6040, 3706, 1000209)


def test_sasrec_lines_with_stray_whitespace_read_as_the_clean_ones(tmp_path):
    """A trailing space or tab, or two spaces between the ids, failed in pandas ("Expected 2
    fields in line 3, saw 3"), though ICLRec's lines with the same whitespace read fine."""
    from recdiff.data.sequence_readers import read_sequence_file

    clean, messy = tmp_path / "clean.txt", tmp_path / "messy.txt"
    clean.write_text("1 10\n1 11\n2 12\n2 10\n")
    messy.write_text("1 10 \n1  11\n2\t12\t\n 2 10\r\n")
    a, b = read_sequence_file(clean), read_sequence_file(messy)
    assert a.users == b.users and a.items == b.items
    assert a.indptr.tolist() == b.indptr.tolist() and a.item_idx.tolist() == b.item_idx.tolist()


def test_a_header_line_above_integer_ids_is_refused(tmp_path):
    """Read as data, "user_id item_id" was a user with a fake item, and every id a string."""
    from recdiff.data import DataFormatError
    from recdiff.data.sequence_readers import read_sequence_file

    path = tmp_path / "seq.txt"
    path.write_text("user_id item_id\n1 10\n1 11\n2 12\n")
    with pytest.raises(DataFormatError, match="line 1 reads 'user_id item_id' above lines of"):
        read_sequence_file(path)
    path.write_text("alice x1 x2\nbob x2 x3\n")  # ids that are words: no header to suspect
    assert read_sequence_file(path).users.ids.tolist() == ["alice", "bob"]
