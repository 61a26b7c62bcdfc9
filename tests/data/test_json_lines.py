"""JSON Lines logs (Amazon's and Yelp's review dumps): what is read, and what is refused with the
line to fix. The known answers are written out by hand beside small files."""

from __future__ import annotations

import bz2
import gzip
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from recdiff.config import load_config
from recdiff.data.errors import DataFormatError, RowNumbers
from recdiff.data.json_lines import read_json_lines
from recdiff.data.readers import read_interactions
from recdiff.data.sequence_readers import read_table_sequences
from recdiff.data.tables import read_table
from recdiff.train.datasets import load_splits

# Amazon 2018's fields, with the review text and a nested "style" the reader must skip.
AMAZON = [
    {"reviewerID": "A1", "asin": "007", "overall": 5.0, "unixReviewTime": 30,
     "reviewText": "great", "style": {"Format:": " Hardcover"}},
    {"reviewerID": "A2", "asin": 7, "overall": 4.0, "unixReviewTime": 10},
    {"reviewerID": "A1", "asin": "8", "overall": 2.0, "unixReviewTime": 20},
]  # fmt: skip
COLUMNS = {"user_col": "reviewerID", "item_col": "asin"}


def _write(path: Path, records: list[dict], blank_after: int | None = None) -> Path:
    lines = [json.dumps(r) for r in records]
    if blank_after is not None:
        lines.insert(blank_after, "")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_fields_ids_and_lines_are_read_as_written(tmp_path: Path) -> None:
    path = _write(tmp_path / "reviews.json", AMAZON, blank_after=1)
    frame, lines = read_table(path, ids=["reviewerID", "asin"], columns=["reviewerID", "asin"])
    # only the asked-for fields; "007", 7 and "8" are three ids, as in a CSV file
    assert list(frame.columns) == ["reviewerID", "asin"]
    assert frame["asin"].tolist() == ["007", "7", "8"]
    assert lines.tolist() == [1, 3, 4]  # the blank line 2 is skipped, the numbers stay exact
    # every id a plain integer: ints, as a text reader makes them
    ints, _ = read_table(_write(tmp_path / "i.jsonl", [{"u": "3", "i": 5}]), ids=["u", "i"])
    assert ints["u"].tolist() == [3] and ints["i"].dtype == np.int64


def test_interactions_from_an_amazon_dump(tmp_path: Path) -> None:
    path = _write(tmp_path / "Books.json", AMAZON)
    read = read_interactions(path, rating_col="overall", time_col="unixReviewTime", **COLUMNS)
    assert read.users.ids.tolist() == ["A1", "A2"]
    assert read.items.ids.tolist() == ["007", "7", "8"]
    dense = read.matrix.toarray()
    np.testing.assert_array_equal(dense, [[5.0, 0.0, 2.0], [0.0, 4.0, 0.0]])


def test_compressed_zipped_and_array_files_read_alike(tmp_path: Path) -> None:
    text = "".join(json.dumps(r) + "\n" for r in AMAZON)
    with gzip.open(tmp_path / "a.jsonl.gz", "wt") as f:
        f.write(text)
    (tmp_path / "a.ndjson.bz2").write_bytes(bz2.compress(text.encode()))
    with zipfile.ZipFile(tmp_path / "a.json.zip", "w") as archive:
        archive.writestr("a.json", text)
    (tmp_path / "array.json").write_text(json.dumps(AMAZON, indent=2))
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + text.encode())
    for name in ("a.jsonl.gz", "a.ndjson.bz2", "a.json.zip", "array.json", "bom.jsonl"):
        read = read_interactions(tmp_path / name, **COLUMNS)
        assert read.items.ids.tolist() == ["007", "7", "8"], name
    # an array's records have no lines: errors count its records
    _, rows = read_json_lines(tmp_path / "array.json", ["asin"])
    assert isinstance(rows, RowNumbers) and rows.tolist() == [1, 2, 3]


def test_a_yelp_dump_with_dates_orders_each_user_by_time(tmp_path: Path) -> None:
    reviews = [
        {"user_id": "u", "business_id": "b2", "stars": 5, "date": "2016-03-09 10:00:00"},
        {"user_id": "u", "business_id": "b1", "stars": 4, "date": "2015-01-01 00:00:00"},
        {"user_id": "v", "business_id": "b1", "stars": 1, "date": "2017-06-01 12:30:00"},
    ]
    sequences = read_table_sequences(
        _write(tmp_path / "review.json", reviews),
        user_col="user_id",
        item_col="business_id",
        time_col="date",
    )
    u = int(np.flatnonzero(sequences.users.ids == "u")[0])
    assert sequences.items.ids[sequences.sequence(u)].tolist() == ["b1", "b2"]


def test_a_run_config_reads_jsonl(tmp_path: Path) -> None:
    records = [
        {"user": f"u{u}", "item": f"i{(u + k) % 7}", "t": k} for u in range(6) for k in range(5)
    ]
    path = _write(tmp_path / "log.jsonl", records)
    config = load_config(
        "demo-diffrec",
        [
            "data.format=jsonl",
            f"data.source={path}",
            "data.time_col=t",
            "data.split=user_temporal",
        ],
    )
    splits = load_splits(config.data)
    total = sum(part.matrix.nnz for part in (splits.train, splits.valid, splits.test))
    assert total == 30 and splits.train.matrix.shape == (6, 7)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"reviewerID": "A1", "asin": "1"}\n{\'reviewerID\': \'A2\'}\n',
         r"line 2 is not JSON .*Python's dict syntax \(single quotes\)"),
        ('{\n  "reviewerID": "A1"\n}\n', r"line 1 is not JSON .*pretty-printed"),
        ('{"reviewerID": "A1", "asin": "1"}\n"just text"\n',
         r"line 2 holds the JSON value \"just text\", not an object"),
        ('{"reviewerID": {"id": 1}, "asin": "1"}\n',
         r"line 1: field 'reviewerID' holds a JSON object, but ids, ratings and times"),
        ('{"reviewerID": "A1", "asin": "1"}\n\n{"asin": "2"}\n',
         r"missing \(NaN/empty\) value\(s\) in id column 'reviewerID' .* at line 3"),
        ('[{"reviewerID": "A1", "asin": "1"}, 3]', r"the array's record 2 is the JSON value 3"),
        ("\n\n", r"holds no JSON object"),
        ('{"user": "A1", "item": "1"}\n',
         r"\['reviewerID', 'asin'\] not found.* has columns \['user', 'item'\]"),
    ],
)  # fmt: skip
def test_what_is_refused_names_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    with pytest.raises(DataFormatError, match=message):
        read_interactions(path, **COLUMNS)


def test_bytes_that_are_not_utf8_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"reviewerID": "A1", "asin": "1"}\n{"reviewerID": "J\xe9", "asin": "2"}\n')
    with pytest.raises(DataFormatError, match=r"latin\.jsonl line 2 is not UTF-8 text"):
        read_interactions(path, **COLUMNS)


def test_a_separator_or_another_format_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.json", AMAZON)
    with pytest.raises(DataFormatError, match=r"a jsonl file has none: drop data\.sep"):
        read_interactions(path, sep=",", **COLUMNS)
    with pytest.raises(DataFormatError, match="named as a jsonl file, but the format asked for"):
        read_interactions(path, file_format="csv", **COLUMNS)
    with pytest.raises(ValueError, match=r"data\.sep sets the separator of a csv or tsv file"):
        load_config("demo-diffrec", ["data.format=jsonl", f"data.source={path}", "data.sep=;"])


def test_a_field_first_seen_late_is_missing_before(tmp_path: Path) -> None:
    path = _write(tmp_path / "late.jsonl", [{"u": 1, "i": 2}, {"u": 1, "i": 3, "r": 4}])
    every, _ = read_json_lines(path)  # every field of any line, None where a line lacks it
    assert list(every.columns) == ["u", "i", "r"] and every["r"].tolist() == [None, 4]
    with pytest.raises(
        DataFormatError, match=r"non-numeric or missing value\(s\) .* at line 1 "
    ) as err:
        read_interactions(path, user_col="u", item_col="i", rating_col="r")
    assert "(values: missing)" in str(err.value)  # before: ['None'], as if the text None


def test_a_csv_rating_that_is_text_or_empty_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("u,i,r\n1,2,\n1,3,five\n1,4,4\n")
    with pytest.raises(DataFormatError, match=r"2 non-numeric or missing") as err:
        read_interactions(path, user_col="u", item_col="i", rating_col="r")
    assert "(values: missing, 'five')" in str(err.value)  # not ['missing', ...]: no such text


# ------------------------------------------------------------------ review: edge cases
def test_an_array_after_blank_lines_is_still_one_array(tmp_path: Path) -> None:
    path = tmp_path / "array.json"
    path.write_text("\n\n" + json.dumps(AMAZON, indent=2))  # an editor's leading blank lines
    assert read_interactions(path, **COLUMNS).items.ids.tolist() == ["007", "7", "8"]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le"])  # with and without the BOM
def test_utf16_is_refused_naming_the_encoding(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "w.jsonl"
    path.write_bytes("".join(json.dumps(r) + "\n" for r in AMAZON).encode(encoding))
    with pytest.raises(DataFormatError, match=r"w\.jsonl line 1 .*UTF-16.*save the file as UTF-8"):
        read_interactions(path, **COLUMNS)


def test_a_lone_surrogate_is_refused_only_in_a_field_read(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl"
    # review text cut inside an emoji's surrogate pair: not read, so no error
    path.write_text('{"reviewerID": "A1", "asin": "1", "reviewText": "so good \\ud83d"}\n')
    assert read_interactions(path, **COLUMNS).users.ids.tolist() == ["A1"]
    path.write_text(path.read_text() + '{"reviewerID": "A\\uDC00", "asin": "2"}\n')
    with pytest.raises(DataFormatError, match=r"cut\.jsonl line 2: field 'reviewerID' holds .*"
                       r"surrogate"):  # fmt: skip
        read_interactions(path, **COLUMNS)


def test_a_missing_id_leaves_the_others_as_written(tmp_path: Path) -> None:
    path = _write(tmp_path / "gap.jsonl", [{"i": None}, {"i": 12345678901234567}, {"i": 3}])
    frame, _ = read_json_lines(path, ["i"], ids=["i"])
    # the id check names line 1; the others are not turned into floats ("1.2345678901234568e+16")
    assert frame["i"].isna().tolist() == [True, False, False]
    assert frame["i"].tolist()[1:] == ["12345678901234567", "3"]


@pytest.mark.parametrize("orient", ["columns", "index", "split"])
def test_a_whole_table_in_one_object_names_the_layout(tmp_path: Path, orient: str) -> None:
    import pandas as pd

    path = tmp_path / "frame.json"
    pd.DataFrame({"reviewerID": ["A1", "A2"], "asin": ["1", "2"]}).to_json(path, orient=orient)
    with pytest.raises(DataFormatError, match=r"frame\.json holds one JSON object .*"
                       r"orient='records', lines=True"):  # fmt: skip
        read_interactions(path, **COLUMNS)
    # two lines of objects of objects are two records, refused by field as before
    path.write_text('{"reviewerID": {"a": 1}}\n{"reviewerID": {"a": 2}}\n')
    with pytest.raises(DataFormatError, match=r"line 1: field 'reviewerID' holds a JSON object"):
        read_interactions(path, **COLUMNS)


def test_a_field_read_and_named_twice_in_one_object_is_refused_with_its_line(tmp_path):
    """``{"user": 2, "item": 4, "item": 3}`` read as item 3 without a word (Python's json keeps
    the last value; JSON leaves open which counts): now the line, the field and its values are
    named. A JSON array's record is refused alike. Left alone: a repeat with one value, and a
    field the read does not ask for (review text; every field when none is asked for, as item
    metadata is shown, unless it holds the ids): one odd line of a dump must not stop the read."""
    path = tmp_path / "log.jsonl"
    path.write_text('{"user": 1, "item": 2}\n{"user": 2, "item": 4, "item": 3}\n')
    with pytest.raises(DataFormatError) as caught:
        read_interactions(path)
    assert str(caught.value) == (
        f"{path} line 2 names the field 'item' 2 times with different values (4 and 3): JSON "
        "leaves open which one counts, so the reader will not guess. Give the field once per "
        "object"
    )
    array = tmp_path / "log.json"
    long = "u" * 60
    array.write_text(f'[{{"user": 1, "item": 2}}, {{"user": "{long}", "user": 5, "item": 3}}]')
    with pytest.raises(DataFormatError, match=r"record 2 names the field 'user' 2 times") as c:
        read_interactions(array, file_format="jsonl")
    assert f'("{"u" * 35}..." and 5)' in str(c.value)
    path.write_text(
        '{"user": 1, "item": 2, "item": 2, "text": "a", "text": "b"}\n{"user": 2, "item": 3}\n'
    )
    read = read_interactions(path)
    assert read.matrix.nnz == 2 and list(read.users.ids) == [1, 2]
    frame, _ = read_json_lines(path)  # no field asked for: shown as read, the last value
    assert list(frame["text"]) == ["b", None]
    path.write_text('{"user": 1, "item": 2, "user": 3}\n')
    with pytest.raises(DataFormatError, match=r"line 1 names the field 'user' 2 times"):
        read_json_lines(path, ids=["user"])  # but the ids are checked
