"""`recdiff export` and export_recommendations: Parquet/CSV round trips equal to the Predictor."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from recdiff.cli.main import app
from recdiff.serving.export import export_recommendations, read_user_list
from recdiff.serving.predictor import Predictor

runner = CliRunner()


@pytest.fixture(scope="module")
def predictor(run_dir):
    return Predictor.load(run_dir)


def _check_against_predictor(frame, predictor, users, k, exclude_seen=True):
    assert list(frame.columns) == ["user", "rank", "item", "score"]
    assert frame["user"].unique().tolist() == list(users)
    for user in users:
        rows = frame[frame["user"] == user]
        expected = predictor.recommend(user=user, k=k, exclude_seen=exclude_seen)
        assert rows["rank"].tolist() == list(range(1, k + 1))
        assert rows["item"].tolist() == expected.items
        # Batched scoring may differ from one-row scoring in the last float32 bits.
        np.testing.assert_allclose(rows["score"], expected.scores, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_every_user_round_trips(tmp_path, predictor, suffix):
    out = tmp_path / f"recs{suffix}"
    result = export_recommendations(predictor, out, k=7, batch_size=300, progress=False)
    frame = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out)
    assert result.users == 1000 and result.rows == len(frame) == 7000
    sample = predictor.users.ids[[0, 299, 300, 301, 999]].tolist()  # across batch boundaries
    _check_against_predictor(frame[frame["user"].isin(sample)], predictor, sample, 7)
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary file left


def test_cli_listed_users_with_seen_items(tmp_path, run_dir, predictor):
    users_file = tmp_path / "users.txt"
    users_file.write_text("12\n\n5\n12\n")  # blank lines skipped, duplicates exported once
    out = tmp_path / "recs.parquet"
    args = ["--k", "4", "--users", str(users_file), "--include-seen", "--batch-size", "1"]
    result = runner.invoke(app, ["export", str(run_dir), "--out", str(out), *args, "--quiet"])
    assert result.exit_code == 0, result.output
    assert "wrote 8 rows for 2 users" in result.output
    _check_against_predictor(pd.read_parquet(out), predictor, [12, 5], 4, exclude_seen=False)


def test_unknown_users_fail_before_writing(tmp_path, run_dir):
    out = tmp_path / "recs.csv"
    result = runner.invoke(
        app, ["export", str(run_dir), "--out", str(out), "--users", "1,99999,2,99998"]
    )
    assert result.exit_code == 2
    assert "2 listed user id(s) are not among the 1000 users" in result.output
    assert "remove them from --users (export ranks the run's users" in result.output
    assert "99999" in result.output and "99998" in result.output
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "recs.json"], "must end in .parquet or .csv"),
        (["--out", "recs.csv", "--users", "1,x"], "integers"),
        (["--out", "recs.csv", "--users", "1,99999999999999999999"], "1 listed user id(s) are"),
        (["--out", "recs.csv", "--k", "501"], "k must lie in 1..500"),
    ],
)
def test_cli_errors_say_what_to_fix(tmp_path, run_dir, args, message):
    args = [str(tmp_path / a) if a.startswith("recs.") else a for a in args]
    result = runner.invoke(app, ["export", str(run_dir), *args])
    assert result.exit_code == 2 and message in result.output


def test_user_lists_from_text_csv_and_parquet(tmp_path):
    assert read_user_list("3, 1,,2") == ["3", "1", "2"]
    pd.DataFrame({"user": [5, 6], "rank": [1, 1]}).to_csv(tmp_path / "u.csv", index=False)
    assert read_user_list(str(tmp_path / "u.csv")) == ["5", "6"]
    # ids as written: "0001", "01" and "1" are three users, not user 1 three times
    (tmp_path / "z.csv").write_text("user\n0001\n01\n1\n")
    assert read_user_list(str(tmp_path / "z.csv")) == ["0001", "01", "1"]
    pd.DataFrame({"id": [5]}).to_parquet(tmp_path / "u.parquet")
    with pytest.raises(ValueError, match="no 'user' column"):
        read_user_list(str(tmp_path / "u.parquet"))


def test_string_ids_round_trip(tmp_path, named_predictor):
    named = named_predictor
    out = tmp_path / "recs.csv"
    export_recommendations(named, out, k=3, users=named.parse_users(["u0007", "u0001"]))
    frame = pd.read_csv(out, dtype={"user": str, "item": str})
    _check_against_predictor(frame, named, ["u0007", "u0001"], 3)
    assert frame["item"].str.startswith("i").all()


def test_python_listed_users_are_parsed_as_the_cli_parses_them(tmp_path, predictor):
    out = tmp_path / "recs.csv"
    export_recommendations(predictor, out, k=3, users=["3", " 7", 3], progress=False)
    assert pd.read_csv(out)["user"].unique().tolist() == [3, 7]  # "3" and 3 are one user
    with pytest.raises(ValueError, match="user ids of this run are integers"):
        export_recommendations(predictor, out, k=3, users=["1_0"], progress=False)
