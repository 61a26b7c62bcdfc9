"""Item metadata beside recommendations (``--item-info``): the files datasets ship, ids matched
as written, and what is refused; then ``recommend`` and ``export`` on a trained demo run."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from recdiff.cli.main import app
from recdiff.data.errors import DataFormatError
from recdiff.serving.item_info import ItemInfo, describe_item


def test_a_table_matches_ids_as_written(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text("item,title,price\n007,Bond,9.50\n7,Seven,\n12,Twelve,3\n")
    info = ItemInfo(path)
    assert info.fields == ["title", "price"]
    # "007" and 7 are two items; 7 and "7" one; an item the file lacks has no fields
    assert info.lookup(["007", 7, "7", 99]) == [
        {"title": "Bond", "price": "9.50"},
        {"title": "Seven", "price": None},
        {"title": "Seven", "price": None},
        None,
    ]
    assert describe_item(info.lookup(["007"])[0]) == "Bond | 9.50"
    assert describe_item(None) == "(not in the item file)"
    # the id column is the run's data.item_col when the file has it
    path.write_text("title,movieId\nBond,1\n")
    assert ItemInfo(path, item_col="movieId").lookup([1]) == [{"title": "Bond"}]


def test_movielens_and_recbole_item_files(tmp_path: Path) -> None:
    (tmp_path / "movies.dat").write_bytes(
        "1::Toy Story (1995)::Animation|Children's\n2::Misérables, Les (1995)::Drama\n".encode(
            "latin-1"
        )
    )
    movies = ItemInfo(tmp_path / "movies.dat")
    assert movies.lookup([2]) == [{"title": "Misérables, Les (1995)", "genres": "Drama"}]
    flags = "|".join(["0"] * 19)
    (tmp_path / "u.item").write_bytes(
        f"1|Café Society (1995)|01-Jan-1995||http://x|{flags}\n".encode("latin-1")
    )
    u_item = ItemInfo(tmp_path / "u.item")
    assert u_item.lookup([1]) == [{"title": "Café Society (1995)", "release_date": "01-Jan-1995"}]
    (tmp_path / "ml.item").write_text(
        "item_id:token\tmovie_title:token_seq\tclass:token_seq\n1\tToy Story\tAnimation\n"
    )
    recbole = ItemInfo(tmp_path / "ml.item", ["movie_title"], item_col="item_id")
    assert recbole.lookup(["1"]) == [{"movie_title": "Toy Story"}]


def test_json_metadata_shows_nested_fields_as_json(tmp_path: Path) -> None:
    path = tmp_path / "meta_Books.json"
    rows = [
        {"asin": "B1", "title": "Dune", "price": 9.5, "categories": [["Books", "SF"]]},
        {"asin": "B2", "title": "Emma"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    info = ItemInfo(path, ["title", "categories"], item_col="asin")
    assert info.lookup(["B2", "B1"]) == [
        {"title": "Emma", "categories": None},
        {"title": "Dune", "categories": '[["Books", "SF"]]'},
    ]


def test_what_is_refused_or_warned(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    # repeated items (Amazon's meta files have some): the first row shown, the lines named
    path.write_text("item,title\n1,A\n2,B\n1,C\n3,D\n2,E\n")
    with pytest.warns(UserWarning, match=r"2 item\(s\) more than once \(e.g. '1' at lines 2, 4\)"):
        repeated = ItemInfo(path)
    assert repeated.lookup([1, 2, 3]) == [{"title": "A"}, {"title": "B"}, {"title": "D"}]
    path.write_text("item,title\n1,A\n")
    with pytest.raises(DataFormatError, match=r"no column\(s\) \['name'\]; its columns are"):
        ItemInfo(path, ["name"])
    with pytest.raises(DataFormatError, match=r"no column 'sku' for the item ids"):
        ItemInfo(path, id_col="sku")


def test_recommend_and_export_show_the_fields(run_dir: Path, tmp_path: Path) -> None:
    info = tmp_path / "items.csv"
    info.write_text("item,title\n" + "".join(f"{i},Item number {i}\n" for i in range(0, 500, 2)))
    runner = CliRunner()
    args = ["recommend", str(run_dir), "--history", "1,2,3", "--k", "4"]
    plain = runner.invoke(app, args)
    shown = runner.invoke(app, [*args, "--item-info", str(info)])
    assert plain.exit_code == shown.exit_code == 0, shown.output
    for bare, line in zip(plain.stdout.splitlines(), shown.stdout.splitlines(), strict=True):
        item = int(bare.split()[1])
        expected = f"Item number {item}" if item % 2 == 0 else "(not in the item file)"
        assert line == f"{bare}  {expected}"
    as_json = json.loads(runner.invoke(app, [*args, "--item-info", str(info), "--json"]).stdout)
    assert as_json["info"] == [
        {"title": f"Item number {item}"} if item % 2 == 0 else None for item in as_json["items"]
    ]
    out = tmp_path / "top.csv"
    done = runner.invoke(
        app,
        ["export", str(run_dir), "--out", str(out), "--k", "3", "--users", "0,1",
         "--item-info", str(info), "--quiet"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    table = pd.read_csv(out)
    assert list(table.columns) == ["user", "rank", "item", "score", "in_item_file", "title"]
    for item, listed, title in zip(
        table["item"], table["in_item_file"], table["title"], strict=True
    ):
        assert listed == (item % 2 == 0)  # an item the file lacks is told from an empty title
        assert (title == f"Item number {item}") if item % 2 == 0 else pd.isna(title)
    alone = runner.invoke(app, [*args, "--item-fields", "title"])
    assert alone.exit_code == 2 and "--item-fields picks columns of --item-info" in alone.output
    clash = tmp_path / "clash.csv"
    clash.write_text("item,score\n1,5\n")
    refused = runner.invoke(
        app, ["export", str(run_dir), "--out", str(tmp_path / "x.csv"), "--item-info", str(clash)]
    )
    assert refused.exit_code == 2 and "would repeat the export's own columns" in refused.output
    assert not (tmp_path / "x.csv").exists()


def test_the_service_answers_with_the_fields(run_dir: Path, tmp_path: Path, serve_app) -> None:
    from recdiff.serving.service import create_app

    info = tmp_path / "items.csv"
    info.write_text("item,title\n" + "".join(f"{i},Item number {i}\n" for i in range(0, 500, 2)))
    body = {"history": [1, 2, 3], "k": 4}
    with serve_app(create_app(run_dir)) as http:
        plain = http.post("/recommend", json=body).json()
    with serve_app(create_app(run_dir, item_info=ItemInfo(info))) as http:
        shown = http.post("/recommend", json=body).json()
    assert "info" not in plain  # a service without an item file answers as before
    assert shown == {
        **plain,
        "info": [{"title": f"Item number {i}"} if i % 2 == 0 else None for i in plain["items"]],
    }


def test_a_value_holding_a_line_break_keeps_its_item_on_one_line() -> None:
    """Before, a title holding a newline split ``recommend``'s line for that item in two."""
    fields = {"title": "Two\nlines", "note": "tab\there\r\n"}
    assert describe_item(fields) == "Two\\nlines | tab\\there\\r\\n"
    assert "\n" not in describe_item(fields)
