"""What a run leaves behind and the commands that read it: bugs found by using them as a user
would (export's user lists, evaluate on a next-item run)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from recdiff.cli.main import app
from recdiff.config import load_config
from recdiff.serving.export import read_user_list
from recdiff.serving.ids import split_id_list
from recdiff.train.run import run_training

runner = CliRunner()


@pytest.fixture(scope="module")
def popularity_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("popularity-runs")
    return run_training(load_config("demo-popularity", []), runs, progress=False).directory


@pytest.fixture(scope="module")
def sasrec_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("sasrec-runs")
    fast = ["train.epochs=1", "train.eval_every=1", "model.dim=16"]
    return run_training(load_config("demo-sasrec", fast), runs, progress=False).directory


def test_a_mistyped_users_file_is_named_not_read_as_a_user_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # Read as the id "users.csv", it failed with "user ids of this run are integers, got
    # ['users.csv']", or, for a run with string ids, "not among the users of this model".
    for name in ("users.csv", "users.parquet", "users.txt"):
        with pytest.raises(FileNotFoundError, match=f"^{name} does not exist"):
            read_user_list(name)
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(FileNotFoundError, match=r"^folder\.csv is not a file"):
        read_user_list("folder.csv")
    # ids are still ids: a list, and a value that is no file name
    assert read_user_list("a.csv,b") == ["a.csv", "b"]
    assert read_user_list("7") == ["7"]
    (tmp_path / "users.txt").write_text("4\n5\n")
    assert read_user_list("users.txt") == ["4", "5"]


def test_export_cli_says_the_users_file_is_missing(tmp_path, popularity_run):
    out = tmp_path / "recs.csv"
    missing = tmp_path / "listed.csv"
    result = runner.invoke(
        app, ["export", str(popularity_run), "--out", str(out), "--users", str(missing)]
    )
    assert result.exit_code == 2
    assert f"error: {missing} does not exist" in result.stderr
    assert "integers" not in result.stderr
    assert not out.exists()


def test_a_parquet_user_column_with_a_gap_is_read_as_its_ids(tmp_path, popularity_run):
    # pandas stores an integer column with a missing value as float: 3.0, NaN, 12.0
    path = tmp_path / "users.parquet"
    pd.DataFrame({"user": [3, None, 12]}).to_parquet(path)
    assert pd.read_parquet(path)["user"].dtype == "float64"
    assert read_user_list(str(path)) == ["3", "12"]  # was ["3.0", "None", "12.0"]: refused
    out = tmp_path / "recs.csv"
    result = runner.invoke(
        app,
        ["export", str(popularity_run), "--out", str(out), "--users", str(path), "--k", "2"],
    )
    assert result.exit_code == 0, result.output
    assert "wrote 4 rows for 2 users" in result.stdout
    frame = pd.read_csv(out)
    assert frame["user"].tolist() == [3, 3, 12, 12]
    assert frame["rank"].tolist() == [1, 2, 1, 2]


def test_a_users_text_file_with_a_byte_order_mark(tmp_path):
    # Notepad and Excel write a UTF-8 byte-order mark: it was read into the first id ("\ufeff4")
    path = tmp_path / "users.txt"
    path.write_bytes(b"\xef\xbb\xbf4\r\n5\r\n")
    assert read_user_list(str(path)) == ["4", "5"]


def test_users_listed_inline_take_quotes_as_history_does():
    # An id holding a comma is given quoted, as --history takes it; it was split on the comma.
    assert read_user_list('"a,b", c,,7') == ["a,b", "c", "7"]
    assert read_user_list(" 1,2 ,3") == ["1", "2", "3"]  # unquoted lists as before
    # The one splitter both options use: --history keeps pieces as typed (a padded id exists).
    assert split_id_list('"a,b",c', "--history") == ["a,b", "c"]
    assert split_id_list(" 1, 2,,", "--history") == [" 1", " 2"]


def test_evaluate_refuses_an_unknown_averaging_on_a_next_item_run(sasrec_run):
    # A row run refuses --averaging foo; a next-item run took it silently.
    result = runner.invoke(app, ["evaluate", str(sasrec_run), "--averaging", "foo"])
    assert result.exit_code == 2
    assert "error: averaging must be one of ('test_users', 'all_users'), got 'foo'" in (
        result.stderr
    )
    # both real averagings agree with the run's own test numbers (one target per example)
    test = json.loads((sasrec_run / "metrics.json").read_text())["test"]
    for averaging in ("test_users", "all_users"):
        result = runner.invoke(app, ["evaluate", str(sasrec_run), "--averaging", averaging])
        assert result.exit_code == 0, result.output
        row = next(line for line in result.stdout.splitlines() if line.startswith("test"))
        assert f"{test['hit_rate@10']:.4f}" == row.split()[1]  # columns sorted: hit_rate@10 first


def test_predictor_evaluate_repeats_the_run_under_its_own_averaging(tmp_path):
    """``Predictor.evaluate()`` defaulted to all-users averaging whatever the run used, so on a
    run trained with ``eval.averaging=test_users`` it disagreed with metrics.json (and with
    ``recdiff evaluate``, which reads the run's setting)."""
    from recdiff.serving.predictor import Predictor

    # Users 0-9 have 12 items and users 10-29 two: a random split leaves many without test items.
    lines = ["user,item"] + [f"{u},{(u * 7 + j) % 40}" for u in range(30) for j in range(12)]
    lines = [line for line in lines[1:] if int(line.split(",")[0]) < 10 or line[-1] in "05"]
    data = tmp_path / "log.csv"
    data.write_text("user,item\n" + "\n".join(lines) + "\n")
    settings = ["data.format=csv", f"data.source={data}", "data.split=random"]
    config = load_config("demo-popularity", [*settings, "eval.averaging=test_users"])
    run = run_training(config, tmp_path / "runs", progress=False)
    recorded = json.loads((run.directory / "metrics.json").read_text())
    assert recorded["data"]["test_users"] < recorded["data"]["n_users"]
    predictor = Predictor.load(run.directory)
    again = predictor.evaluate()
    assert again["test"] == pytest.approx(recorded["test"])
    assert again["valid"] == pytest.approx(recorded["valid"])
    all_users = predictor.evaluate(averaging="all_users")["test"]["recall@20"]
    assert all_users < again["test"]["recall@20"]  # the users without test items count as 0


def test_one_user_is_one_user(tmp_path, popularity_run):
    (tmp_path / "one.txt").write_text("3\n")
    out = tmp_path / "recs.csv"
    args = ["export", str(popularity_run), "--out", str(out), "--users", str(tmp_path / "one.txt")]
    result = runner.invoke(app, [*args, "--k", "1"])
    assert result.exit_code == 0, result.output
    assert f"wrote 1 row for 1 user to {out}" in result.stdout  # was "1 rows for 1 users"
