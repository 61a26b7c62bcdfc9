"""Running an experiment again into its OUT with other settings: each run whose record was made
with other settings is trained again, and the command says which settings differ (a user's walk
found it retrained in silence, leaving the old runs in OUT/runs beside the new ones)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from recdiff.cli.main import app

runner = CliRunner()


def test_a_record_made_with_other_settings_is_named_and_trained_again(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    command = ["experiment", "demo-ease", "--seeds", "1", "--quiet", "--out", "exp"]
    first = runner.invoke(app, [*command, "--set", "model.l2_lambda=500"])
    assert first.exit_code == 0, first.output
    record = tmp_path / "exp" / "records" / "demo-ease" / "seed-1.json"
    assert json.loads(record.read_text())["config"]["model"]["l2_lambda"] == 500

    again = runner.invoke(app, [*command, "--set", "model.l2_lambda=50"])
    assert again.exit_code == 0, again.output
    assert (
        "demo-ease seed 1: seed-1.json in exp/records/demo-ease was made with other settings "
        "(model.l2_lambda: 500 there, 50 here); trained again with these (the run it named "
        "stays in exp/runs)\n"
    ) in again.output
    assert json.loads(record.read_text())["config"]["model"]["l2_lambda"] == 50
    assert len(list((tmp_path / "exp" / "runs").iterdir())) == 2

    same = runner.invoke(app, [*command, "--set", "model.l2_lambda=50"])
    assert same.exit_code == 0, same.output
    assert "done before" in same.output and "other settings" not in same.output
