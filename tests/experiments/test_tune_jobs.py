"""`recdiff tune --jobs N`: several trials at once on one study, in worker processes.

Tiny DiffRec runs on the demo data; a search of two workers takes ~10 s here.
"""

import csv
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recdiff.cli.main import app

optuna = pytest.importorskip("optuna")
runner = CliRunner()

SPACE = """\
train.lr: {type: float, low: 1e-4, high: 3e-3, log: true}
model.hidden_dims: {type: categorical, choices: [[16], [32, 16, 32]]}
"""
TINY = ["train.epochs=2", "train.eval_every=1", "model.diffusion.steps=4"]


def _sets(overrides):
    return [part for item in overrides for part in ("--set", item)]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def _study(out: Path):
    return optuna.load_study(study_name="recdiff-tune", storage=f"sqlite:///{out / 'study.db'}")


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    """Five trials by two workers, then the same study continued to seven by one process."""
    folder = tmp_path_factory.mktemp("tune-jobs")
    (folder / "space.yaml").write_text(SPACE)
    out = folder / "out"
    command = ["tune", "demo-diffrec", "--space", str(folder / "space.yaml"), "--out", str(out)]
    first = runner.invoke(app, [*command, "--trials", "5", "--jobs", "2", *_sets(TINY)])
    assert first.exit_code == 0, first.output
    rows = _rows(out / "trials.csv")
    second = runner.invoke(app, [*command, "--trials", "7", *_sets(TINY)])
    assert second.exit_code == 0, second.output
    return {"out": out, "rows": rows, "output": first.output, "after": _rows(out / "trials.csv")}


def test_workers_fill_the_study_to_the_asked_number_of_trials(two_workers):
    rows = two_workers["rows"]
    # A worker starts no trial once finished and running ones reach --trials: none too many.
    assert [r["number"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert {r["state"] for r in rows} == {"COMPLETE"}
    out = two_workers["out"]
    assert all((out / r["run_dir"] / "metrics.json").is_file() for r in rows)
    assert not list(out.glob(".study-reserve*"))  # every worker gave its reserve back
    assert (out / "best.yaml").is_file()


def test_each_trial_is_reported_once_by_the_command(two_workers):
    lines = [line for line in two_workers["output"].splitlines() if line.startswith("trial ")]
    assert sorted(line.split(":")[0] for line in lines) == [f"trial {n}" for n in range(5)]
    assert "study" in two_workers["output"] and "5 complete" in two_workers["output"]


def test_the_workers_sample_apart(two_workers):
    """Trials 0 and 1 start together, one in each worker: with one sampler seed they would
    propose the very same settings."""
    first, second = two_workers["rows"][:2]
    assert first["train.lr"] != second["train.lr"]


def test_a_search_by_workers_continues_in_one_process(two_workers):
    after = two_workers["after"]
    assert after[:5] == two_workers["rows"]
    assert [r["number"] for r in after] == [str(n) for n in range(7)]
    assert {r["state"] for r in after} == {"COMPLETE"}
    # one run folder per trial, in the two commands together
    assert sorted(p.name for p in (two_workers["out"] / "runs").iterdir()) == sorted(
        Path(r["run_dir"]).name for r in after
    )


def test_a_failing_trial_in_a_worker_stops_the_search_and_is_listed(tmp_path):
    """A trial that raises (here a data file that is not there) stops every worker, as it
    stops a search of one: the error reaches the command, trials.csv lists the trial FAIL with
    it, nothing stays RUNNING in the study, and no run folder is left."""
    data = tmp_path / "good.csv"
    data.write_text(
        "user,item\n" + "".join(f"{u},{(u * 7 + k) % 40}\n" for u in range(60) for k in range(8))
    )
    missing = tmp_path / "missing.csv"
    (tmp_path / "space.yaml").write_text(
        SPACE + f"data.source: {{type: categorical, choices: [{missing}]}}\n"
    )
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "tune", "demo-diffrec", "--space", str(tmp_path / "space.yaml"), "--out", str(out),
            "--trials", "4", "--jobs", "2",
            *_sets([*TINY, "data.format=csv", f"data.source={data}"]),
        ],
    )  # fmt: skip
    assert result.exit_code != 0
    assert f"{missing} not found" in result.output
    rows = _rows(out / "trials.csv")
    assert rows and {r["state"] for r in rows} == {"FAIL"}
    assert any(f"{missing} not found" in r["error"] for r in rows)
    assert not [t for t in _study(out).get_trials() if t.state.name == "RUNNING"]
    assert list((out / "runs").iterdir()) == []
    assert not list(out.glob(".study-reserve*"))


def test_sigterm_stops_every_worker_and_fails_their_trials(tmp_path, signal_while_training):
    (tmp_path / "space.yaml").write_text(SPACE)
    out = tmp_path / "out"
    long = ["train.epochs=100000", "train.patience=100000", "model.diffusion.steps=4"]
    command = [
        "tune", "demo-diffrec", "--space", str(tmp_path / "space.yaml"), "--trials", "4",
        "--out", str(out), "--jobs", "2",
    ]  # fmt: skip
    code, stderr = signal_while_training(
        [*command, *_sets(long)], out / "runs", training=2, sig=signal.SIGTERM
    )
    assert code == 143, stderr[-2000:]
    assert stderr.splitlines()[-1] == (
        "error: stopped by SIGTERM; run the same command again to continue where it stopped"
    )
    rows = _rows(out / "trials.csv")
    assert [(r["state"], r["error"]) for r in rows] == [("FAIL", "stopped by SIGTERM")] * 2
    assert [t.state.name for t in _study(out).get_trials()] == ["FAIL", "FAIL"]
    assert list((out / "runs").iterdir()) == []


def test_jobs_below_one_are_refused(tmp_path):
    from recdiff.config import load_config
    from recdiff.experiments.space import SearchSpace
    from recdiff.experiments.tune import TuneError, tune

    space = SearchSpace.from_dict({"train.lr": {"type": "float", "low": 1e-4, "high": 1e-3}})
    with pytest.raises(TuneError, match="jobs must be at least 1, got 0"):
        tune(load_config("demo-diffrec"), space, 2, tmp_path / "out", jobs=0)
    assert not (tmp_path / "out").exists()
