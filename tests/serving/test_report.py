"""`recdiff report`: a self-contained HTML page with the run's numbers and same-data runs."""

from __future__ import annotations

import base64
import json
import re
import shutil

import pytest
from typer.testing import CliRunner

from recdiff.cli.main import app
from recdiff.config import load_config
from recdiff.serving.report import build_report
from recdiff.train.run import run_training

runner = CliRunner()


@pytest.fixture(scope="module")
def runs(run_dir, tmp_path_factory):
    """The DiffRec run, an EASE run on the same data and one on other data, in one folder."""
    folder = tmp_path_factory.mktemp("report-runs")
    diffrec = folder / run_dir.name
    shutil.copytree(run_dir, diffrec)
    ease = run_training(load_config("demo-ease", []), folder, progress=False).directory
    other = run_training(load_config("demo-ease", ["data.seed=1"]), folder, progress=False)
    return diffrec, ease, other.directory


def test_report_holds_the_metrics_data_config_and_curves(runs, tmp_path):
    diffrec, _, _ = runs
    out = tmp_path / "out" / "report.html"
    result = runner.invoke(app, ["report", str(diffrec), "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    metrics = json.loads((diffrec / "metrics.json").read_text())
    for split in ("valid", "test"):
        for name in ("recall@20", "ndcg@10"):
            assert f"<td>{metrics[split][name]:.4f}</td>" in page
    assert f"<td>{metrics['data']['train']:,}</td>" in page  # data statistics
    assert "hidden_dims:" in page and "- 32" in page  # the config, as YAML
    image = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert image is not None
    assert base64.b64decode(image.group(1)) == (diffrec / "curves.png").read_bytes()
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # written atomically


def test_comparison_lists_only_runs_on_the_same_data(runs):
    diffrec, ease, other = runs
    page = build_report(diffrec)
    table = page.split("Runs on the same data (2)")[1].split("<h2>")[0]
    assert ease.name in table and diffrec.name in table and other.name not in table
    assert "<tr class=this><td>" + diffrec.name in table
    assert "1 other run(s)" in table
    ease_test = json.loads((ease / "metrics.json").read_text())["test"]["recall@20"]
    assert f"<td>{ease_test:.4f}</td>" in table
    # --compare points at another folder: only the run itself is left.
    assert "Runs on the same data (1)" in build_report(diffrec, compare=diffrec / "model")


def test_default_output_is_in_the_run_and_errors_are_clear(runs, tmp_path):
    _, ease, _ = runs
    result = runner.invoke(app, ["report", str(ease)])
    assert result.exit_code == 0 and (ease / "report.html").is_file()
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "not a complete run directory" in result.output
    result = runner.invoke(app, ["report", str(ease), "--compare", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "not a folder of run directories" in result.output
