"""Item metadata (``--item-info``): typed Parquet cells reach JSON answers and export
text, rows without an id are refused rather than matching an item ``nan``, a JSON file's ids
are read as the JSON Lines interaction reader reads them, and a large JSON file is read for the
fields shown only."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from recdiff.cli.options import item_info
from recdiff.data.errors import DataFormatError
from recdiff.serving import item_info as item_info_module
from recdiff.serving.item_info import ItemInfo, describe_item


def test_typed_parquet_cells_are_plain_values(tmp_path: Path) -> None:
    path = tmp_path / "meta.parquet"
    pd.DataFrame(
        {
            "item": [1, 2],
            "tags": [["a", "b"], []],  # a list column (Amazon's categories, as Parquet)
            "when": pd.to_datetime(["2020-01-02", None]),
            "count": pd.array([3, None], dtype="Int64"),
            "name": pd.array(["x", None], dtype="string"),
            "price": [9.5, np.nan],
        }
    ).to_parquet(path)
    found = ItemInfo(path).lookup([1, 2])
    assert found == [
        {"tags": '["a", "b"]', "when": "2020-01-02 00:00:00", "count": 3, "name": "x",
         "price": 9.5},
        {"tags": "[]", "when": None, "count": None, "name": None, "price": None},
    ]  # fmt: skip
    json.dumps(found)  # what recommend --json and the service answer with
    assert describe_item(found[1]) == "[] |  |  |  | "  # missing: empty, not "<NA>" or "NaT"


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("items.csv", "item,title\n1,A\n,B\n", 3),
        ("items.jsonl", '{"item": 1, "title": "A"}\n{"title": "B"}\n', 2),
    ],
)
def test_a_row_without_an_id_is_refused(tmp_path: Path, name: str, text: str, line: int) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataFormatError, match=rf"no item id in column 'item' at line {line};"):
        ItemInfo(path)  # before: keyed 'nan' (or 'None'), so item "nan" was shown as B


def test_parquet_float_ids_with_a_gap_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "meta.parquet"
    pd.DataFrame({"item": [1.0, np.nan], "title": ["a", "b"]}).to_parquet(path)
    with pytest.raises(DataFormatError, match=r"no item id in column 'item' at row 2"):
        ItemInfo(path)


def test_json_ids_are_read_as_the_interaction_reader_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "meta.jsonl"
    path.write_text('{"item": 7.0, "t": "a"}\n{"item": true, "t": "b"}\n{"item": 8, "t": "c"}\n')
    # a JSON Lines run holds the ids "7.0" and "true" for these, and 8 for 8 or "8"
    assert ItemInfo(path).lookup(["7.0", "true", 8, "8", 7, "True"]) == [
        {"t": "a"},
        {"t": "b"},
        {"t": "c"},
        {"t": "c"},
        None,
        None,
    ]


def test_a_whole_table_in_one_json_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "meta.json"
    pd.DataFrame({"asin": ["B1", "B2"], "title": ["x", "y"]}).to_json(path)  # orient=columns
    with pytest.raises(DataFormatError, match=r"a whole table in one object"):
        ItemInfo(path, item_col="asin")  # before: one row, and every item "not in the file"


def test_json_metadata_reads_only_the_fields_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "meta_Books.json"
    rows = [{"sku": f"B{i}", "asin": f"A{i}", "title": f"T{i}", "description": ["long"] * 50}
            for i in range(3)]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    asked: list[object] = []
    real = item_info_module.read_json_lines

    def spy(*args, **kwargs):
        asked.append(kwargs.get("columns"))
        return real(*args, **kwargs)

    monkeypatch.setattr(item_info_module, "read_json_lines", spy)
    assert ItemInfo(path, ["title"], item_col="asin").lookup(["A1"]) == [{"title": "T1"}]
    assert asked == [["asin", "title"]]  # not the descriptions of every item
    # no item_col in the file: its first field holds the ids, read too
    asked.clear()
    assert ItemInfo(path, ["title"], item_col="item").lookup(["B2"]) == [{"title": "T2"}]
    assert asked[-1] == ["item", "sku", "title"]  # item: in case a later line has it
    # an unknown field is named beside the file's fields, not only those read
    with pytest.raises(DataFormatError, match=r"no column\(s\) \['price'\]; its columns are "
                       r"\['sku', 'asin', 'title', 'description'\]"):  # fmt: skip
        ItemInfo(path, ["price"], item_col="asin")
    assert ItemInfo(path, item_col="asin").fields == ["sku", "title", "description"]


def test_item_fields_may_be_written_with_spaces(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text("item,title,price\n1,A,3\n")
    predictor = SimpleNamespace(
        config=SimpleNamespace(data=SimpleNamespace(item_col="item")),
        items=SimpleNamespace(ids=np.array([1, 2])),
    )
    info = item_info(path, "title, price,title", predictor)
    assert info.fields == ["title", "price"]  # as a header's names: spaces dropped, once each


def test_an_empty_u_item_is_refused(tmp_path: Path) -> None:
    (tmp_path / "u.item").write_text("")
    with pytest.raises(DataFormatError, match=r"u\.item holds no items"):
        ItemInfo(tmp_path / "u.item")


def test_movielens_titles_keep_their_quotes(tmp_path: Path) -> None:
    # ML-1M's movies.dat and ML-100K's u.item quote nothing: a leading quote is the title's
    (tmp_path / "movies.dat").write_bytes(
        b'1::Toy Story (1995)::Animation\n\n2::"Great Performances" Cats (1998)::Musical\n'
    )
    movies = ItemInfo(tmp_path / "movies.dat")
    assert movies.lookup([2]) == [
        {"title": '"Great Performances" Cats (1998)', "genres": "Musical"}
    ]
    flags = "|".join(["0"] * 19)
    (tmp_path / "u.item").write_bytes(
        f'1|"Quoted" (1995)|01-Jan-1995||http://x|{flags}\n2|Caf\xe9|||http://y|{flags}\n'.encode(
            "latin-1"
        )
    )
    assert ItemInfo(tmp_path / "u.item").lookup([1, 2]) == [
        {"title": '"Quoted" (1995)', "release_date": "01-Jan-1995"},
        {"title": "Café", "release_date": None},
    ]
    (tmp_path / "movies.dat").write_text("1::Toy Story::Animation\n2::Heat\n")
    with pytest.raises(DataFormatError, match=r"movies\.dat line 2 has 2 fields separated by "
                       r"'::', but MovieLens' movies files have 3"):  # fmt: skip
        ItemInfo(tmp_path / "movies.dat")
