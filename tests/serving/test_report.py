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
    """The DiffRec run, an EASE run on the same data and one on other data, in one folder, and
    a SASRec run whose data section equals theirs but whose data (sequences) differ."""
    folder = tmp_path_factory.mktemp("report-runs")
    diffrec = folder / run_dir.name
    shutil.copytree(run_dir, diffrec)
    ease = run_training(load_config("demo-ease", []), folder, progress=False).directory
    other = run_training(load_config("demo-ease", ["data.seed=1"]), folder, progress=False)
    fast = ["train.epochs=1", "train.eval_every=1", "model.dim=8"]
    sasrec = run_training(load_config("demo-sasrec", fast), folder, progress=False).directory
    return diffrec, ease, other.directory, sasrec


def test_report_holds_the_metrics_data_config_and_curves(runs, tmp_path):
    diffrec, _, _, _ = runs
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
    diffrec, ease, other, sasrec = runs
    page = build_report(diffrec)
    table = page.split("Runs on the same data (2)")[1].split("<h2>")[0]
    assert ease.name in table and diffrec.name in table
    assert other.name not in table and sasrec.name not in table
    assert "<tr class=this><td>" + diffrec.name in table
    assert "2 other run(s)" in table
    # The demo sequences and the demo matrix share a data section, not their items or targets.
    alone = build_report(sasrec).split("Runs on the same data (1)")[1].split("<h2>")[0]
    assert sasrec.name in alone and diffrec.name not in alone and "3 other run(s)" in alone
    assert "<th>test hit_rate@10</th>" in alone  # the metric the run was selected on
    # EASE is fitted in closed form: no epochs, shown as "-" rather than "None".
    overview = build_report(ease).split("<h2>")[0]
    assert "<th>best epoch</th><td>-</td>" in overview and "None" not in overview
    ease_test = json.loads((ease / "metrics.json").read_text())["test"]["recall@20"]
    assert f"<td>{ease_test:.4f}</td>" in table
    # --compare points at another folder: only the run itself is left.
    assert "Runs on the same data (1)" in build_report(diffrec, compare=diffrec / "model")


def test_damaged_runs_are_left_out_of_the_comparison_and_named_when_reported(runs, tmp_path):
    diffrec = runs[0]
    folder = tmp_path / "runs"
    shutil.copytree(diffrec, folder / diffrec.name)
    for name, config, metrics in [("list-metrics", None, "[]"), ("list-config", "- a\n", "{}")]:
        (folder / name).mkdir()
        (folder / name / "config.yaml").write_text(config or (diffrec / "config.yaml").read_text())
        (folder / name / "metrics.json").write_text(metrics)
    assert "Runs on the same data (1)" in build_report(folder / diffrec.name)
    result = runner.invoke(app, ["report", str(folder / "list-metrics")])
    assert result.exit_code == 2 and "metrics.json holds a list, not the mapping" in result.output
    result = runner.invoke(app, ["report", str(folder / "list-config")])
    assert result.exit_code == 2 and "config.yaml holds a list, not the mapping" in result.output


def test_default_output_is_in_the_run_and_errors_are_clear(runs, tmp_path):
    _, ease, _, _ = runs
    result = runner.invoke(app, ["report", str(ease)])
    assert result.exit_code == 0 and (ease / "report.html").is_file()
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "not a complete run directory" in result.output
    result = runner.invoke(app, ["report", str(ease), "--compare", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "not a folder of run directories" in result.output
