"""Export and item files on a run of the user's own table (found by using them as a user would):
users left with no item are counted, not silently missing; a user list may name its column as
the run's data does; an item file whose id column holds none of the run's items is refused
rather than shown as "(not in the item file)" on every row, and ``--item-id-col`` names it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from recdiff.cli.main import app
from recdiff.config import load_config
from recdiff.serving.export import read_user_list
from recdiff.train.run import run_training

runner = CliRunner()

ITEMS = ["a", "b", "c", "d", "e"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """Popularity on 12 users of 5 items; u2 and u5 have every item."""
    folder = tmp_path_factory.mktemp("own-table")
    rows = []
    for u in range(12):
        held = ITEMS if u in (2, 5) else ITEMS[u % 3 : u % 3 + 3]
        rows += [(f"u{u}", item, len(rows)) for item in held]
    table = folder / "log.csv"
    pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).to_csv(table, index=False)
    overrides = [
        "data.format=csv",
        f"data.source={table}",
        "data.user_col=user_id",
        "data.item_col=item_id",
        "data.time_col=timestamp",
        "data.split=user_temporal",
    ]
    config = load_config("demo-popularity", overrides)
    return run_training(config, folder / "runs", progress=False).directory


def _export(run: Path, out: Path, *args: str):
    return runner.invoke(app, ["export", str(run), "--out", str(out), "--quiet", *args])


def test_export_counts_the_users_it_has_no_item_for(tmp_path, run) -> None:
    out = tmp_path / "recs.csv"
    result = _export(run, out)
    assert result.exit_code == 0, result.output
    assert "wrote 20 rows for 12 users" in result.stdout  # 10 users x the 2 items they lack
    assert set(pd.read_csv(out)["user"]) == {f"u{u}" for u in range(12)} - {"u2", "u5"}
    # Before, nothing said why u2 and u5 are not in the file.
    assert "note: 2 of them got no row" in result.stderr
    assert "--include-seen" in result.stderr
    result = _export(run, out, "--users", "u5")
    assert "wrote 0 rows for 1 user" in result.stdout
    assert "note: the user got no row" in result.stderr
    result = _export(run, out, "--include-seen")
    assert "wrote 60 rows for 12 users" in result.stdout
    assert "note" not in result.stderr


def test_a_user_list_may_name_its_column_as_the_run_does(tmp_path, run) -> None:
    listed = tmp_path / "users.csv"
    listed.write_text("user_id\nu1\nu3\n")
    out = tmp_path / "recs.csv"
    result = _export(run, out, "--users", str(listed))
    assert result.exit_code == 0, result.output  # was: "no 'user' column"
    assert sorted(set(pd.read_csv(out)["user"])) == ["u1", "u3"]
    assert read_user_list(str(listed), "user_id") == ["u1", "u3"]
    with pytest.raises(ValueError, match="no 'user' column"):
        read_user_list(str(listed))  # without the run's name, only 'user' is read
    listed.write_text("user_id,user\nu1,u3\n")
    result = _export(run, out, "--users", str(listed))
    assert result.exit_code == 2
    assert "both a 'user' and a 'user_id' column" in result.stderr


def test_an_item_file_matching_none_of_the_items_is_refused(tmp_path, run) -> None:
    meta = tmp_path / "meta.csv"
    meta.write_text("title,sku\nAlpha,a\nDelta,d\n")  # ids in the second column
    base = ["recommend", str(run), "--user", "u0", "--k", "2", "--item-info", str(meta)]
    result = runner.invoke(app, base)
    assert result.exit_code == 2  # was: exit 0, every item "(not in the item file)"
    assert "none of the run's 5 items" in result.stderr
    assert "column 'title'" in result.stderr and "--item-id-col" in result.stderr
    result = runner.invoke(app, [*base, "--item-id-col", "sku"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].endswith("Delta")  # u0 holds a, b and c
    out = tmp_path / "recs.csv"
    result = _export(run, out, "--item-info", str(meta), "--item-id-col", "sku")
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert frame["in_item_file"].any() and "sku" not in frame.columns
    result = runner.invoke(app, [*base[:6], "--item-id-col", "sku"])
    assert result.exit_code == 2
    assert "--item-id-col names a column of --item-info FILE" in result.stderr
