"""What recdiff reports, checked as a paper's author would use it: `reproduce`'s table, and the
benchmarks' results files, plots and failures (each expectation computed by hand)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from recdiff.cli.main import app

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _benchmark(name: str):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_reproduce_std_row_keeps_the_columns_with_ten_seeds_or_more(monkeypatch, tmp_path):
    """ "recdiff (n=10)" widens the label column: the std row used to be laid out alone, one
    character narrower, so its numbers stood under the wrong place of every column."""
    from recdiff.train import run

    def fake_run(config, *args, **kwargs):  # seed s scores recall@10 = s / 10, and so on
        s = config.train.seed
        test = {"recall@10": s / 10, "recall@20": s / 5, "ndcg@10": s / 100, "ndcg@20": s / 50}
        return SimpleNamespace(metrics={"test": test, "best_epoch": 5}, directory=tmp_path)

    monkeypatch.setattr(run, "run_training", fake_run)
    args = ["reproduce", "diffrec-ml1m", "--seeds", "10", "--runs-dir", str(tmp_path), "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    header, paper, mean, std = result.stdout.splitlines()[-4:]
    # seeds 1..10: mean 5.5 / 10; sample std sqrt(sum((s - 5.5)^2) / 9) = sqrt(82.5 / 9) / 10
    assert paper.split() == ["paper", "0.1058", "0.1787", "0.0901", "0.1148"]
    assert mean.split() == ["recdiff", "(n=10)", "0.5500", "1.1000", "0.0550", "0.1100"]
    assert std.split() == ["std", "0.3028", "0.6055", "0.0303", "0.0606"]
    assert len(header) == len(paper) == len(mean) == len(std)
    end = header.index("recall@10") + len("recall@10")  # numbers right-aligned under the name
    assert std[end - 6 : end] == "0.3028" and mean[end - 6 : end] == "0.5500"


def test_checkpoint_cost_times_neither_fit_with_the_processs_warm_up(monkeypatch, tmp_path):
    """The first fit of a process is slower (here 4 s against 1 s): it used to be the fit
    without checkpoints, so the cost came out as -75% and its share 4x too small; and the
    table said bf16 whatever --set train.precision said."""
    checkpoint_cost = _benchmark("checkpoint_cost")
    from recdiff.train import checkpoint

    monkeypatch.setattr(checkpoint.Checkpoints, "_write", checkpoint.Checkpoints._write)
    fits = []

    def fake_run(config, folder, progress):
        fits.append(config.train.epochs)
        fit = 4.0 if len(fits) == 1 else 1.0
        return SimpleNamespace(metrics={"seconds": {"fit": fit}, "valid": {}})

    monkeypatch.setattr(checkpoint_cost, "run_training", fake_run)
    args = ["--preset", "demo-diffrec", "--epochs", "4", "--every", "2", "--threads", "1"]
    checkpoint_cost.main([*args, "--set", "train.precision=fp32", "--results-dir", str(tmp_path)])
    assert fits == [2, 4, 4]  # an untimed two-epoch fit, then the two timed ones
    result = json.loads((tmp_path / "checkpoint_cost.json").read_text())
    assert result["fit_difference"] == 0.0 and result["precision"] == "fp32"
    assert [run["fit_seconds"] for run in result["runs"].values()] == [1.0, 1.0]
    table = (tmp_path / "checkpoint_cost.md").read_text()
    assert table.splitlines()[0] == "demo-diffrec, 4 epochs, fp32, 1 threads"
    assert "differ by +0.0%" in table


def _usage_error(script: str, *args: str, **env: str) -> str:
    command = [sys.executable, str(BENCHMARKS / script), *args]
    done = subprocess.run(command, capture_output=True, text=True, env={**ENV, **env}, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    return done.stderr


def test_benchmarks_without_their_data_say_where_they_looked(tmp_path):
    """They used to end in a traceback after their imports, as a crash would."""
    stderr = _usage_error("baselines_ml1m.py", "--data", str(tmp_path), "--out-dir", str(tmp_path))
    assert f"--data {tmp_path} holds no train_list.npy, valid_list.npy, test_list.npy" in stderr
    stderr = _usage_error(
        "dreamrec_released_loop.py", "--results-dir", str(tmp_path), RECDIFF_DATASETS=str(tmp_path)
    )
    assert f"{tmp_path / 'dreamrec' / 'zhihu'} holds no data_statis.df, train_data.df" in stderr
    assert list(tmp_path.iterdir()) == []  # no results file


@pytest.mark.slow  # moved out of the default run (~10 min on 2 cores); CI runs it
def test_guidance_sweep_is_drawn_in_order_of_w_and_records_the_machine(tmp_path):
    """--weights 4 0 2 used to be joined in that order: a line from w = 4 back to 0, then to 2.
    The sweep also timed its passes without saying on what machine."""
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "recdiff", "train", "demo-dreamrec", "--quiet"]
    command += ["--runs-dir", str(runs), "--set", "train.epochs=1", "--set", "train.eval_every=1"]
    command += ["--set", "model.diffusion.steps=5"]
    done = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = runs.iterdir()
    out = tmp_path / "out"
    command = [sys.executable, str(BENCHMARKS / "dreamrec_sampling.py"), str(run), "--fast"]
    command += ["--weights", "4", "0", "2", "0", "--threads", "1", "--results-dir", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "dreamrec_sampling.json").read_text())
    assert [row["w"] for row in result["guidance"]] == [0, 2, 4]
    assert result["machine"]["threads"] == 1 and result["machine"]["cpus"] == os.cpu_count()
    table = (out / "dreamrec_sampling.md").read_text()
    first_cells = [line.split(" | ")[0][2:] for line in table.splitlines() if line[:2] == "| "]
    assert [cell for cell in first_cells if cell.isdigit()] == ["0", "2", "4"]  # the w column
    assert (out / "dreamrec_guidance.png").is_file()


def test_the_report_of_ease_names_the_lambda_validation_chose(tmp_path):
    from recdiff.config import load_config
    from recdiff.serving.report import build_report
    from recdiff.train.run import run_training

    run = run_training(load_config("demo-ease"), tmp_path / "runs", progress=False).directory
    chosen = json.loads((run / "metrics.json").read_text())["selected"]["l2_lambda"]
    assert f"validation recall@20 (l2_lambda {chosen:g})" in build_report(run)


def test_a_null_validation_figure_sorts_last_among_compared_runs():
    """metrics.json writes a non-finite mean as null: the comparison must still sort."""
    from recdiff.serving.report import _sortable

    figures = [0.2, None, float("nan"), 0.3]
    assert sorted(figures, key=lambda v: -_sortable(v))[:2] == [0.3, 0.2]
