"""Bringing one's own files: what a researcher's real logs hold (spaces in a header, compressed
files, a folder or a damaged file as the source, RecBole fields named otherwise, SASRec lines
mixing tabs and spaces, a CSV without a header line). Expectations are written by hand."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np
import pytest

from recdiff.data import DataFormatError, read_interactions, read_movielens, read_recbole_inter
from recdiff.data.sequence_readers import read_sequence_file


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def gzipped(path: Path, text: str) -> Path:
    with gzip.open(path, "wt") as f:
        f.write(text)
    return path


# ------------------------------------------------------------------------ header names
@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("h.csv", "user ,item ,ts\n007,1,1\n7,2,2\n"),
        ("h.csv", '"user ","item",ts\n007,1,1\n7,2,2\n'),
        ("h.tsv", "user \titem\tts\n007\t1\t1\n7\t2\t2\n"),
    ],
)
def test_a_space_after_an_id_column_name_keeps_ids_as_written(
    tmp_path: Path, name: str, text: str
) -> None:
    # Before, pandas did not match "user " to the id columns read as text: it read them as
    # numbers, and users 007 and 7 became one user 7.
    data = read_interactions(write(tmp_path / name, text), time_col="ts")
    assert data.users.ids.tolist() == ["007", "7"]
    assert data.items.ids.tolist() == [1, 2]


def test_a_csv_without_a_header_line_is_told_to_add_one(tmp_path: Path) -> None:
    # The first interaction was read as the header; "pass the right names" alone would have
    # had that row dropped without a word.
    path = write(tmp_path / "log.csv", "196,242,3,881250949\n186,302,3,891717742\n")
    with pytest.raises(DataFormatError) as info:
        read_interactions(path)
    message = str(info.value)
    assert "The header holds numbers (['196', '242', '3'])" in message
    assert "if the file has no header line, add one" in message


# ------------------------------------------------------------------------ the source itself
def test_a_folder_as_source_is_called_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    with pytest.raises(DataFormatError, match=r"logs is a folder, not a file"):
        read_interactions(folder, file_format="csv")


def test_compressed_movielens_and_sequence_files_read_as_the_plain_ones(tmp_path: Path) -> None:
    text = "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978300761\n"
    plain = read_movielens(write(tmp_path / "ratings.dat", text))
    packed = read_movielens(gzipped(tmp_path / "ratings.dat.gz", text))
    assert packed.users.ids.tolist() == [1, 2]
    assert packed.items.ids.tolist() == [661, 1193]
    assert (packed.matrix != plain.matrix).nnz == 0
    np.testing.assert_array_equal(packed.ratings.data, [3.0, 5.0, 4.0])
    sequences = read_sequence_file(gzipped(tmp_path / "seq.txt.gz", "1 5 6 7\n2 5 8\n"))
    assert sequences.items.ids[sequences.sequence(0)].tolist() == [5, 6, 7]


def test_a_damaged_compressed_file_is_a_data_error_naming_it(tmp_path: Path) -> None:
    # A truncated gzip raised EOFError, which the command line showed as a bare "Aborted."
    whole = gzipped(tmp_path / "whole.csv.gz", "user,item\n" + "1,2\n" * 200)
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(whole.read_bytes()[:20])
    with pytest.raises(DataFormatError, match=r"cannot decompress .*cut\.csv\.gz"):
        read_interactions(cut, file_format="csv")
    fake = write(tmp_path / "fake.csv.gz", "user,item\n1,2\n")
    with pytest.raises(DataFormatError, match=r"cannot decompress .*fake\.csv\.gz"):
        read_interactions(fake, file_format="csv")


def zipped(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return path


def test_a_zip_holding_several_files_is_named_with_the_fix(tmp_path: Path) -> None:
    # pandas said "Multiple files found in ZIP file. Only one file per ZIP: [...]": which zip?
    both = {"a.csv": "user,item\n1,2\n", "b.csv": "user,item\n1,3\n"}
    path = zipped(tmp_path / "log.csv.zip", both)
    expected = (
        f"{path} holds 2 files (a.csv, b.csv), but a zipped data file must hold exactly one: "
        "keep only the one to read in the zip, or extract it (unzip) and give that file as the "
        "source"
    )
    with pytest.raises(DataFormatError) as caught:
        read_interactions(path)
    assert str(caught.value) == expected
    sequences = zipped(tmp_path / "seq.txt.zip", {"a.txt": "1 5 6\n", "b.txt": "2 5 6\n"})
    with pytest.raises(DataFormatError, match=r"seq\.txt\.zip holds 2 files \(a\.txt, b\.txt\)"):
        read_sequence_file(sequences)
    empty = zipped(tmp_path / "empty.csv.zip", {})
    with pytest.raises(DataFormatError, match=r"empty\.csv\.zip holds no file, but a zipped"):
        read_interactions(empty)


def test_a_zip_with_a_folder_entry_reads_its_one_file(tmp_path: Path) -> None:
    # pandas counted the folder entry "logs/" as a second file and refused the zip
    path = zipped(tmp_path / "log.csv.zip", {"logs/": "", "logs/log.csv": "user,item\n1,2\n"})
    data = read_interactions(path)
    assert data.users.ids.tolist() == [1] and data.items.ids.tolist() == [2]


def test_a_file_that_is_not_parquet_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "log.parquet", "user,item\n1,2\n")
    with pytest.raises(DataFormatError, match=r"log\.parquet is not a readable Parquet file"):
        read_interactions(path)


# ------------------------------------------------------------------------ RecBole, SASRec
def test_recbole_rating_or_time_named_otherwise_must_be_in_the_file(tmp_path: Path) -> None:
    # Before, a field the file lacks was dropped as if the file had no ratings (or times), and
    # the threshold's (or split's) error then asked for the data.rating_col already set.
    path = write(
        tmp_path / "m.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t10\t4\t1\n",
    )
    for column in ("rating_col", "time_col"):
        with pytest.raises(DataFormatError, match=r"column\(s\) \['stars'\] not found"):
            read_recbole_inter(path, **{column: "stars"})
    plain = write(tmp_path / "n.inter", "user_id:token\titem_id:token\n1\t10\n")
    assert read_recbole_inter(plain).ratings is None  # RecBole's own names stay optional


def test_sasrec_lines_may_mix_tabs_and_spaces(tmp_path: Path) -> None:
    # Before, the tab on line 1 made every line tab-separated: line 2 read as a missing item.
    sequences = read_sequence_file(write(tmp_path / "s.txt", "1\t5\n1 6\n2\t5\n2 8\n"))
    assert sequences.users.ids.tolist() == [1, 2]
    assert sequences.items.ids[sequences.sequence(0)].tolist() == [5, 6]
    assert sequences.items.ids[sequences.sequence(1)].tolist() == [5, 8]


def test_user_item_time_lines_are_told_to_be_read_as_a_table(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    path.write_text("1 5 100\n1 6 101\n2 5 102\n")
    with pytest.raises(DataFormatError, match=r"user 1 has several lines .* are a table, not a "):
        read_sequence_file(path)
    # the advice works: the same lines with a header, as a space-separated table
    table = tmp_path / "log.csv"
    table.write_text("user item time\n" + path.read_text())
    data = read_interactions(table, user_col="user", item_col="item", time_col="time", sep=" ")
    assert data.nnz == 3 and data.timestamps.data.tolist() == [100.0, 101.0, 102.0]
    # ICLRec lines of three fields, one per user, are still a sequence file
    path.write_text("1 5 6\n2 5 7\n")
    assert read_sequence_file(path).lengths().tolist() == [2, 2]


# ------------------------------------------------------------- text spanning lines
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_lines_named_in_errors_count_the_lines_of_quoted_text_before_them(
    tmp_path: Path, newline: str
) -> None:
    """A review's text in quotes may span lines; an error names the line an editor shows.
    By hand: the header is line 1, u1's review spans lines 3-5, u2's lines 6-7, so u3 is on
    line 8 and u4 (no item) on line 9; the pair (u0, i1) repeats on lines 2 and 10."""
    rows = [
        "user,item,review",
        "u0,i1,ok",
        'u1,i2,"great',
        "product",
        'really"',
        'u2,i3,"two',
        'lines"',
        "u3,i4,ok",
        "u4,,ok",
        "u0,i1,again",
    ]
    path = tmp_path / "reviews.csv"
    path.write_bytes(newline.join(rows).encode() + newline.encode())
    with pytest.raises(DataFormatError, match=r"in id column 'item' .* at line 9;"):
        read_interactions(path, user_col="user", item_col="item")
    path.write_bytes(path.read_bytes().replace(b"u4,,ok", b"u4,i5,ok"))
    with pytest.raises(DataFormatError, match=r"\('u0', 'i1'\) at lines 2, 10"):
        read_interactions(path, user_col="user", item_col="item")
