"""Readers: CSV/TSV/Parquet/DataFrame, MovieLens, RecBole, DiffRec npy; malformed input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recdiff.data import (
    DataFormatError,
    Vocabulary,
    read_diffrec_splits,
    read_interactions,
    read_movielens,
    read_recbole_inter,
)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------- happy paths
def test_csv_with_custom_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "uid,iid,stars,when\n7,a,4,100\n3,b,5,50\n7,b,1,70\n")
    data = read_interactions(
        path, user_col="uid", item_col="iid", rating_col="stars", time_col="when"
    )
    assert data.users.ids.tolist() == [3, 7] and data.items.ids.tolist() == ["a", "b"]
    np.testing.assert_array_equal(data.matrix.toarray(), [[0, 5], [4, 1]])
    np.testing.assert_array_equal(data.timestamps.toarray(), [[0, 50], [100, 70]])


def test_tsv_parquet_and_frame_agree(tmp_path: Path) -> None:
    frame = pd.DataFrame({"user": [1, 2, 2], "item": [5, 5, 6]})
    frame.to_csv(tmp_path / "r.tsv", sep="\t", index=False)
    frame.to_parquet(tmp_path / "r.parquet")
    results = [
        read_interactions(tmp_path / "r.tsv"),
        read_interactions(tmp_path / "r.parquet"),
        read_interactions(frame),
    ]
    for data in results:
        np.testing.assert_array_equal(data.matrix.toarray(), [[1, 0], [1, 1]])


def test_str_dtype_keeps_zero_padded_ids(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "user,item\n007,1\n7,1\n")
    assert read_interactions(path, dtype=str).users.ids.tolist() == ["007", "7"]


def test_movielens_dat_and_udata(tmp_path: Path) -> None:
    dat = write(
        tmp_path / "ratings.dat",
        "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n",
    )
    data = read_movielens(dat)
    assert data.users.ids.tolist() == [1, 2] and data.items.ids.tolist() == [661, 1193]
    np.testing.assert_array_equal(data.matrix.toarray(), [[3, 5], [0, 4]])
    assert data.timestamps.toarray()[1, 1] == 978298413

    udata = write(tmp_path / "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    data = read_movielens(udata)
    assert data.nnz == 2 and data.ratings.data.tolist() == [3.0, 3.0]
    assert data.to_frame().values.tolist()[0] == [186, 302, 3.0, 891717742.0]


def test_recbole_inter_typed_header(tmp_path: Path) -> None:
    path = write(
        tmp_path / "x.inter", "user_id:token\titem_id:token\trating:float\nu1\t10\t4\nu2\t010\t5\n"
    )
    data = read_recbole_inter(path)
    assert data.users.ids.tolist() == ["u1", "u2"]
    assert data.items.ids.tolist() == ["010", "10"]  # "010" cannot become an int losslessly
    assert data.ratings is not None and data.timestamps is None


# ------------------------------------------------------------------------------- malformed
def test_missing_column_names_file_columns_and_fix(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "user,product\n1,2\n")
    with pytest.raises(DataFormatError) as info:
        read_interactions(path)
    message = str(info.value)
    assert "r.csv" in message and "['item']" in message and "'product'" in message
    assert "item_col='item'" in message and "data.item_col" in message  # Python and config


def test_non_numeric_rating_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "user,item,rating\n1,1,4\n1,2,five\n2,1,3\n")
    with pytest.raises(DataFormatError, match=r"'rating'.*r\.csv at line 3 .*'five'"):
        read_interactions(path, rating_col="rating")


def test_empty_file_and_header_only(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="empty"):
        read_interactions(write(tmp_path / "e.csv", ""))
    with pytest.raises(DataFormatError, match="no data rows"):
        read_interactions(write(tmp_path / "h.csv", "user,item\n"))
    with pytest.raises(DataFormatError, match="empty"):
        read_interactions(pd.DataFrame({"user": [], "item": []}))


def test_duplicate_rows_name_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "user,item\n1,1\n2,1\n1,1\n")
    with pytest.raises(DataFormatError, match=r"\(1, 1\) at lines 2, 4.*data\.duplicates"):
        read_interactions(path)
    assert read_interactions(path, duplicates="last").nnz == 2


def test_nan_ids_name_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "user,item\n1,1\n,2\n3,3\n")
    with pytest.raises(DataFormatError, match=r"'user' in .*r\.csv at line 3; drop or fill"):
        read_interactions(path)


def test_blank_lines_keep_line_numbers_exact(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "user,item,rating\n1,1,4\n\n1,2,bad\n")
    with pytest.raises(DataFormatError, match="line 4"):
        read_interactions(path, rating_col="rating")


def test_ragged_line_is_a_parse_error(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "user,item\n1,1\n1,2,3,4\n")
    with pytest.raises(DataFormatError, match=r"cannot parse .*r\.csv.*line 3"):
        read_interactions(path)


def test_trailing_separators_do_not_shift_the_columns(tmp_path: Path) -> None:
    # pandas took a first data line longer than the header for an index column: the users
    # became the index, the items the users and the ratings the items, without a word.
    path = write(tmp_path / "r.csv", "user,item,rating\n1,10,5,\n2,20,4,\n2,30,3\n")
    data = read_interactions(path, rating_col="rating")
    assert data.users.ids.tolist() == [1, 2] and data.items.ids.tolist() == [10, 20, 30]
    np.testing.assert_array_equal(data.matrix.toarray(), [[5, 0, 0], [0, 4, 3]])


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("user,item\n1,10,7\n2,20,8\n", 2),  # every line one field longer than the header
        ("user,item\n\n1,10,\n2,20,8\n", 4),  # a blank line; the first extra field is empty
        ('user,item\n"a\nb",10\n2,20,8\n', 4),  # a quoted id spans lines 2 and 3
    ],
    ids=["all", "blank-and-empty", "quoted-newline"],
)
def test_fields_beyond_the_header_are_refused_naming_the_line(
    tmp_path: Path, text: str, line: int
) -> None:
    path = write(tmp_path / "r.csv", text)
    with pytest.raises(
        DataFormatError, match=rf"cannot parse .*r\.csv: line {line} has 3 fields.* 2 columns"
    ):
        read_interactions(path)


def test_movielens_line_with_a_fifth_field_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "ratings.dat", "1::10::5::100::x\n2::20::4::200::y\n")
    with pytest.raises(
        DataFormatError, match=r"ratings\.dat: line 1 has 5 fields.* 4 columns.*sep='::'"
    ):
        read_movielens(path)


def test_unknown_suffix_asks_for_sep(tmp_path: Path) -> None:
    # a run config cannot set sep: the file name is what a CLI user changes
    with pytest.raises(DataFormatError, match=r"name the file .*\.csv.*sep="):
        read_interactions(write(tmp_path / "r.weird", "user,item\n1,1\n"))


def test_untyped_recbole_header(tmp_path: Path) -> None:
    path = write(tmp_path / "x.inter", "user_id\titem_id:token\n1\t2\n")
    with pytest.raises(DataFormatError, match=r"line 1.*user_id"):
        read_recbole_inter(path)


def test_recbole_header_naming_a_field_twice(tmp_path: Path) -> None:
    # Two columns named user_id once the types are cut off: a frame column of two columns,
    # which failed deep inside as "user_idx and item_idx must be 1-d arrays".
    path = write(tmp_path / "x.inter", "user_id:token\titem_id:token\tuser_id:float\n1\t2\t3\n")
    with pytest.raises(DataFormatError, match=r"x\.inter line 1: .*\['user_id'\] more than once"):
        read_recbole_inter(path)


# ------------------------------------------------------------------ ids as written, encodings
def test_text_ids_keep_their_written_form(tmp_path: Path) -> None:
    # "007" and "7" are two users: as ints they would merge (silently with duplicates="first")
    csv = write(tmp_path / "r.csv", "user,item\n007,1\n7,1\n")
    for data in (read_interactions(csv), read_interactions(csv, duplicates="first")):
        assert data.users.ids.tolist() == ["007", "7"] and data.nnz == 2
    dat = write(tmp_path / "ratings.dat", "1::05::4::10\n1::5::3::11\n")
    assert read_movielens(dat).items.ids.tolist() == ["05", "5"]
    tsv = write(tmp_path / "r.tsv", "user\titem\n1\t7.0\n1\t7\n2\t-3\n")
    data = read_interactions(tsv)
    assert data.users.ids.tolist() == [1, 2] and data.items.ids.tolist() == ["-3", "7", "7.0"]
    # plain integers are ints, exactly, even beyond float64's precision
    big = write(tmp_path / "b.csv", "user,item\n9007199254740993,1\n9007199254740992,1\n")
    assert read_interactions(big).users.ids.tolist() == [9007199254740992, 9007199254740993]


def test_parquet_ids_keep_their_stored_type(tmp_path: Path) -> None:
    pd.DataFrame({"user": ["1", "2"], "item": [7, 8]}).to_parquet(tmp_path / "r.parquet")
    data = read_interactions(tmp_path / "r.parquet")
    assert data.users.ids.tolist() == ["1", "2"] and data.items.ids.tolist() == [7, 8]


def test_parquet_uint64_ids_beyond_int64_are_not_wrapped(tmp_path: Path) -> None:
    # Hashed ids are often uint64: 2**63 and up became negative ints, other ids than stored.
    users = np.array([2**63, 2**64 - 1, 5], dtype=np.uint64)
    pd.DataFrame({"user": users, "item": [1, 1, 2]}).to_parquet(tmp_path / "r.parquet")
    data = read_interactions(tmp_path / "r.parquet")
    assert data.users.ids.tolist() == ["18446744073709551615", "5", "9223372036854775808"]
    np.testing.assert_array_equal(data.matrix.toarray(), [[1, 0], [0, 1], [1, 0]])


def test_ids_that_pandas_calls_missing_are_ids(tmp_path: Path) -> None:
    # pandas reads NA, None, null, nan, N/A, ... as missing values: those items were refused
    # as "missing ids". Only an empty field is missing.
    path = write(tmp_path / "r.csv", "user,item,rating\nu1,NA,5\nu1,None,4\nu2,null,3\nu2,nan,2\n")
    data = read_interactions(path, rating_col="rating")
    assert data.items.ids.tolist() == ["NA", "None", "nan", "null"]
    np.testing.assert_array_equal(data.matrix.toarray(), [[5, 4, 0, 0], [0, 0, 2, 3]])
    empty = write(tmp_path / "e.csv", "user,item\nu1,NA\nu2,\n")
    with pytest.raises(DataFormatError, match=r"missing .* 'item' in .*e\.csv at line 3;"):
        read_interactions(empty)
    rating = write(tmp_path / "n.csv", "user,item,rating\nu1,i1,NA\n")
    with pytest.raises(DataFormatError, match=r"'rating' .* at line 2 \(values: 'NA'\)"):
        read_interactions(rating, rating_col="rating")


def test_missing_datetimes_name_the_file_and_rows(tmp_path: Path) -> None:
    when = pd.to_datetime(["2024-01-01", None, "2024-01-03", None]).tz_localize("Europe/Paris")
    frame = pd.DataFrame({"user": [1, 1, 2, 2], "item": [1, 2, 1, 2], "when": when})
    frame.to_parquet(tmp_path / "r.parquet")
    with pytest.raises(
        DataFormatError,
        # Parquet has no lines: data rows counted from 1, as the message says
        match=r"2 missing datetime\(s\) in column 'when' in .*r\.parquet at rows 2, 4 "
        r"\(data rows counted from 1\);",
    ):
        read_interactions(tmp_path / "r.parquet", time_col="when")


def test_spaces_around_ids_are_not_part_of_them(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "user_id, item_id, rating\nu0, i17, 1\nu1 , i17 ,2\n")
    data = read_interactions(path, user_col="user_id", item_col="item_id", rating_col="rating")
    assert data.users.ids.tolist() == ["u0", "u1"] and data.items.ids.tolist() == ["i17"]
    numbers = write(tmp_path / "n.csv", "user,item\n 1,5 \n2, 5\n")
    assert read_interactions(numbers).items.ids.tolist() == [5]
    padded = write(tmp_path / "p.csv", "user, item\n1, 007\n1, 7\n")  # " item" is "item"
    assert read_interactions(padded).items.ids.tolist() == ["007", "7"]
    frame = pd.DataFrame({"user": [" a", "a "], "item": ["x", "y"]})
    assert read_interactions(frame).users.ids.tolist() == ["a"]
    blank = write(tmp_path / "blank.csv", 'user,item\nu0,i1\nu1," "\n')
    with pytest.raises(DataFormatError, match=r"'item' in .*blank\.csv at line 3"):
        read_interactions(blank)


def test_byte_order_mark_is_not_part_of_the_first_id(tmp_path: Path) -> None:
    bom = b"\xef\xbb\xbf"
    dat = tmp_path / "ratings.dat"
    dat.write_bytes(bom + b"0::17::1::1000\n0::33::3::1100\n")
    assert read_movielens(dat).users.ids.tolist() == [0]
    csv = tmp_path / "r.csv"
    csv.write_bytes(bom + b"user,item\n007,1\n")
    assert read_interactions(csv).users.ids.tolist() == ["007"]


def test_movielens_dat_still_reads_latin1(tmp_path: Path) -> None:
    dat = tmp_path / "ratings.dat"
    dat.write_bytes("1::caf\xe9::5::1\n".encode("latin-1"))
    assert read_movielens(dat).items.ids.tolist() == ["caf\xe9"]


def test_file_that_is_not_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes("user,item\n1,a\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"r\.csv line 3 is not UTF-8.*save the file as UTF"):
        read_interactions(path)


def test_file_format_chooses_the_separator_and_must_match_the_suffix(tmp_path: Path) -> None:
    log = write(tmp_path / "log.txt", "user,item\n1,5\n2,6\n")
    assert read_interactions(log, file_format="csv").nnz == 2
    tabs = write(tmp_path / "log.data", "user\titem\n1\t5\n")
    assert read_interactions(tabs, file_format="tsv").nnz == 1
    pd.DataFrame({"user": [1], "item": [2]}).to_parquet(tmp_path / "log.bin")
    assert read_interactions(tmp_path / "log.bin", file_format="parquet").nnz == 1
    tsv = write(tmp_path / "r.tsv", "user\titem\n1\t5\n")
    with pytest.raises(DataFormatError, match=r"r\.tsv is named as a tsv file.*asked for is csv"):
        read_interactions(tsv, file_format="csv")
    csv = write(tmp_path / "r.csv", "user,item\n1,5\n")
    with pytest.raises(DataFormatError, match=r"csv file.*asked for is parquet.*format=csv") as no:
        read_interactions(csv, file_format="parquet")
    assert "data.sep" not in str(no.value)
    # A tab-separated file named .csv: the separator that reads it, as the shell passes it on
    tabs_named_csv = write(tmp_path / "t.csv", "user\titem\n1\t5\n")
    with pytest.raises(DataFormatError) as caught:
        read_interactions(tabs_named_csv, file_format="tsv")
    assert str(caught.value).endswith(
        "if it is separated by tabs whatever its name, set data.format=csv and data.sep "
        "(--set 'data.sep=\"\\t\"')"
    )
    assert read_interactions(tabs_named_csv, file_format="csv", sep="\t").nnz == 1


# ------------------------------------------------------------------------------- DiffRec npy
def test_diffrec_splits_tiny(tmp_path: Path) -> None:
    np.save(tmp_path / "train_list.npy", np.array([[0, 2], [0, 0], [1, 1]]))
    np.save(tmp_path / "valid_list.npy", np.array([[1, 0]]))
    np.save(tmp_path / "test_list.npy", np.array([[2, 3]]))  # user 2, item 3 only in test
    splits = read_diffrec_splits(tmp_path)
    assert (splits.n_users, splits.n_items) == (3, 4)
    assert splits.train.users is splits.test.users and splits.train.items is splits.valid.items
    np.testing.assert_array_equal(
        splits.train.matrix.toarray(), [[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    )
    # row order within the file is kept as the time key: item 2 came before item 0
    np.testing.assert_array_equal(splits.train.timestamps.toarray()[0], [1, 0, 0, 0])


def test_diffrec_overlap_and_bad_arrays(tmp_path: Path) -> None:
    np.save(tmp_path / "train_list.npy", np.array([[0, 0]]))
    np.save(tmp_path / "valid_list.npy", np.array([[0, 0]]))
    np.save(tmp_path / "test_list.npy", np.zeros((0, 2), dtype=np.int64))
    with pytest.raises(DataFormatError, match="both train and valid") as info:
        read_diffrec_splits(tmp_path)
    assert "allow_overlap=True" in str(info.value) and "run config" in str(info.value)
    assert read_diffrec_splits(tmp_path, allow_overlap=True).valid.nnz == 1
    np.save(tmp_path / "test_list.npy", np.array([1.5, 2.0]))
    with pytest.raises(DataFormatError, match=r"\(N, 2\)"):
        read_diffrec_splits(tmp_path)
    np.save(tmp_path / "test_list.npy", np.array([[0, 1], [0, 1]]))
    with pytest.raises(DataFormatError, match="duplicate"):
        read_diffrec_splits(tmp_path)
    assert read_diffrec_splits(tmp_path, allow_overlap=True, duplicates="first").test.nnz == 1
    (tmp_path / "test_list.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"test_list\.npy"):
        read_diffrec_splits(tmp_path)


@pytest.mark.data
def test_diffrec_ml1m_clean_known_sizes(datasets_root: Path) -> None:
    splits = read_diffrec_splits(datasets_root / "diffrec" / "ml-1m_clean")
    assert (splits.n_users, splits.n_items) == (5949, 2810)
    assert (splits.train.nnz, splits.valid.nnz, splits.test.nnz) == (403277, 110722, 57532)
    assert splits.users == Vocabulary.range(5949)
    # README: every valid and test user and item occurs in train
    for part in (splits.valid, splits.test):
        assert np.all(splits.train.user_counts()[part.user_counts() > 0] > 0)
        assert np.all(splits.train.item_counts()[part.item_counts() > 0] > 0)
    first = np.load(datasets_root / "diffrec" / "ml-1m_clean" / "train_list.npy")[:3]
    assert splits.train.row(int(first[0, 0]))[:3].tolist() == sorted(first[:, 1].tolist())


@pytest.mark.data
def test_recbole_ml100k(datasets_root: Path) -> None:
    data = read_recbole_inter(datasets_root / "recbole_ml-100k" / "ml-100k.inter")
    assert (data.n_users, data.n_items, data.nnz) == (943, 1682, 100000)
    assert data.users.kind == "int"
    # first data line: 196 242 3 881250949
    u, i = data.users.index([196])[0], data.items.index([242])[0]
    assert data.ratings[u, i] == 3.0 and data.timestamps[u, i] == 881250949.0


@pytest.mark.data
def test_ml100k_above_a_rating_bar_split_per_user_in_time(datasets_root: Path) -> None:
    """The run-config path (read, min_rating, user_temporal) against pandas counting by hand:
    who and what has a rating >= 4 (942 users, 1,447 items), and floor(0.7 n) / floor(0.8 n)
    of each user's n; the held-out rows of items nobody has in train are dropped."""
    import pandas as pd

    from recdiff.config.schema import DataConfig
    from recdiff.train.datasets import load_splits

    path = datasets_root / "recbole_ml-100k" / "ml-100k.inter"
    frame = pd.read_csv(path, sep="\t")
    frame.columns = [c.split(":")[0] for c in frame.columns]
    liked = frame[frame["rating"] >= 4]
    n = liked.groupby("user_id").size().to_numpy()
    train, upto_valid = n * 7 // 10, n * 8 // 10  # exact: 0.7 * 30 is 20.999... in floats
    config = DataConfig(format="recbole", source=str(path), min_rating=4, split="user_temporal")
    splits = load_splits(config)
    assert (len(splits.train.users), len(splits.train.items)) == (
        liked["user_id"].nunique(),
        liked["item_id"].nunique(),
    )
    assert splits.train.nnz == train.sum()
    dropped = splits.dropped
    assert splits.valid.nnz + splits.test.nnz + dropped.nnz == (n - train).sum()
    # dropped, measured (61 and 202 when ratings at the same second were ordered by item index
    # rather than by the file's row order)
    assert (upto_valid - train).sum() - splits.valid.nnz == 58
    assert (n - upto_valid).sum() - splits.test.nnz == 198
    trained = splits.train.item_counts() > 0
    assert not trained[dropped.item_indices()].any()  # only items new after training go
    assert trained[splits.valid.item_indices()].all() and trained[splits.test.item_indices()].all()


def test_iso_dates_in_a_text_time_column_are_seconds(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(
        "user,item,when\n"
        "a,x,1970-01-02\n"  # no offset: UTC
        "a,y,1970-01-02T01:00:00+01:00\n"  # the same instant
        "b,x,2024-05-01 13:00:00Z\n"
    )
    data = read_interactions(path, user_col="user", item_col="item", time_col="when")
    assert sorted(data.timestamps.data.tolist()) == [86_400.0, 86_400.0, 1_714_568_400.0]
    path.write_text("user,item,when\na,x,1970-01-02\nb,y,yesterday\n")
    with pytest.raises(DataFormatError, match=r"line 3 are neither numbers nor ISO 8601 dates"):
        read_interactions(path, user_col="user", item_col="item", time_col="when")
    # seconds among dates: the odd one out is named, not the dates
    path.write_text("user,item,when\na,x,1970-01-02\nb,y,2024-05-01\nc,z,1714567890\n")
    with pytest.raises(
        DataFormatError,
        match=r"mixes 1 number\(s\) and 2 ISO 8601 date\(s\).*the 1 number\(s\) at line 4 "
        r"\(values: '1714567890'\)",
    ):
        read_interactions(path, user_col="user", item_col="item", time_col="when")
