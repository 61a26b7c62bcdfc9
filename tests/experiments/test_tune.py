"""`recdiff tune`: a resumable Optuna search selected on validation, with pruning.

The end-to-end tests train tiny DiffRec models on the demo data; the selection and pruning tests
replace training by a stand-in whose validation and test numbers are chosen to disagree.
"""

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest
from tune_helpers import rows as _rows
from tune_helpers import sets as _sets
from tune_helpers import study_of as _study
from typer.testing import CliRunner

from recdiff.atomic import sigterm_unwinds
from recdiff.cli.main import app
from recdiff.config import load_config
from recdiff.experiments.space import SearchSpace, get_dotted
from recdiff.experiments.tune import PruningReporter, TuneError, selection_metric, tune
from recdiff.train.run import RunResult

optuna = pytest.importorskip("optuna")
runner = CliRunner()

SPACE = """\
train.lr: {type: float, low: 1e-4, high: 3e-3, log: true}
model.hidden_dims: {type: categorical, choices: [[16], [32, 16, 32]]}
model.diffusion.inference_noise_steps:
  {type: categorical, choices: [0, 0.5], fraction_of: model.diffusion.steps}
"""
TINY = ["train.epochs=2", "train.eval_every=1", "model.diffusion.steps=4"]


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    """Three real trials, then the same command with --trials 5 (a resumed study)."""
    folder = tmp_path_factory.mktemp("tune")
    space = folder / "space.yaml"
    space.write_text(SPACE)
    out = folder / "out"
    command = ["tune", "demo-diffrec", "--space", str(space), "--out", str(out), *_sets(TINY)]
    first = runner.invoke(app, [*command, "--trials", "3"])
    assert first.exit_code == 0, first.output
    before = _rows(out / "trials.csv")
    second = runner.invoke(app, [*command, "--trials", "5"])
    assert second.exit_code == 0, second.output
    return {"out": out, "space": space, "before": before, "output": second.output}


def test_resuming_adds_trials_to_the_same_study(search):
    out = search["out"]
    assert (out / "study.db").is_file()
    after = _rows(out / "trials.csv")
    assert len(search["before"]) == 3 and len(after) == 5
    assert after[:3] == search["before"]  # the first trials are kept, not re-run
    assert [r["number"] for r in after] == ["0", "1", "2", "3", "4"]
    complete = [r for r in after if r["state"] == "COMPLETE"]
    # Relative to the tune folder: they stay right when it moves or is read from elsewhere.
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(
        str(Path(r["run_dir"]).relative_to("runs")) for r in complete
    )
    assert "best trial" in search["output"] and "best.yaml" in search["output"]


def test_best_yaml_is_a_preset_holding_the_best_trials_settings(search):
    out = search["out"]
    rows = [r for r in _rows(out / "trials.csv") if r["state"] == "COMPLETE"]
    best_row = max(rows, key=lambda r: float(r["valid/recall@20"]))
    best = _study(out).best_trial
    assert best.number == int(best_row["number"])
    config = load_config(str(out / "best.yaml"))
    assert config.name == "demo-diffrec-tuned"
    dumped = config.model_dump(mode="json")
    settings = best.user_attrs["settings"]
    assert set(settings) == {
        "train.lr",
        "model.hidden_dims",
        "model.diffusion.inference_noise_steps",
    }
    for key, value in settings.items():
        assert get_dotted(dumped, key) == value
    assert settings["model.diffusion.inference_noise_steps"] in (0, 2)  # 0 or half of T = 4
    assert config.train.epochs == 2  # the base config's overrides are kept


def test_a_study_refuses_another_metric_and_a_test_metric(search, tmp_path):
    result = runner.invoke(
        app,
        ["tune", "demo-diffrec", "--space", str(search["space"]), "--out", str(search["out"]),
         "--metric", "valid/ndcg@20", *_sets(TINY)],
    )  # fmt: skip
    assert result.exit_code == 2
    assert 'metric: "recall@20" in the study, "ndcg@20" here' in result.output
    result = runner.invoke(
        app,
        ["tune", "demo-diffrec", "--space", "diffrec-paper", "--metric", "test/recall@20",
         "--out", str(tmp_path / "t")],
    )  # fmt: skip
    assert result.exit_code == 2 and "validation only" in result.output
    assert not (tmp_path / "t").exists()


def test_a_study_from_before_a_new_setting_resumes_but_a_changed_one_is_refused(search, tmp_path):
    """Settings added to recdiff later (at their defaults) do not change a search; a setting the
    user changed does."""
    command = ["tune", "demo-diffrec", "--space", str(search["space"]), *_sets(TINY)]
    for name, edit, accepted in (
        ("older", lambda train: train.pop("ema_decay"), True),
        ("changed", lambda train: train.update(lr=0.5), False),
    ):
        out = tmp_path / name
        shutil.copytree(search["out"], out)
        study = _study(out)
        fingerprint = study.user_attrs["fingerprint"]
        edit(fingerprint["config"]["train"])
        study.set_user_attr("fingerprint", fingerprint)
        result = runner.invoke(app, [*command, "--out", str(out), "--trials", "5"])
        if accepted:
            assert result.exit_code == 0, result.output
            assert len(_rows(out / "trials.csv")) == 5  # nothing re-run
        else:
            assert result.exit_code == 2 and "another config" in result.output


def test_missing_optuna_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna -> ImportError
    result = runner.invoke(
        app, ["tune", "demo-diffrec", "--space", "diffrec-paper", "--out", str(tmp_path / "t")]
    )
    assert result.exit_code == 2
    assert "pip install 'recdiff[tune]'" in result.output


# ----------------------------------------------------------- selection and pruning, no training
def _stand_in(curve_for, reached=None):
    """A run_training replacement: validation curve from the config, test = 1 - validation."""

    def run_training(config, runs_dir, progress=None, on_event=None):
        curve = curve_for(config)
        for epoch, value in enumerate(curve, start=1):
            if reached is not None:
                reached[config.name] = epoch
            on_event({"event": "epoch", "epoch": epoch, "loss": 1.0})
            on_event({"event": "eval", "epoch": epoch, "valid/recall@20": value})
        directory = Path(runs_dir) / config.name
        directory.mkdir(parents=True)
        metrics = {
            "valid": {"recall@20": curve[-1]},
            "test": {"recall@20": 1 - curve[-1]},
            "best_epoch": len(curve),
            "seconds": {"total": 0.0},
        }
        return RunResult(directory, metrics, model=None)

    return run_training


LR_SPACE = SearchSpace.from_dict(
    {
        "train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "model.diffusion.noise_min": {"type": "categorical", "choices": [5e-4, 5e-3, 1e-2]},
    }
)


def test_selection_uses_validation_even_when_test_disagrees(monkeypatch, tmp_path):
    monkeypatch.setattr("recdiff.train.run.run_training", _stand_in(lambda c: [c.train.lr * 50]))
    result = tune(load_config("demo-diffrec"), LR_SPACE, 8, tmp_path, seed=3, prune=False)
    rows = _rows(tmp_path / "trials.csv")
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    assert len(complete) == 8
    by_valid = max(complete, key=lambda r: float(r["valid/recall@20"]))
    by_test = max(complete, key=lambda r: float(r["test/recall@20"]))
    assert by_valid["number"] != by_test["number"]
    assert result.best_number == int(by_valid["number"])
    assert load_config(str(tmp_path / "best.yaml")).train.lr == float(by_valid["train.lr"])
    # noise_min 1e-2 with the preset's noise_max 1e-2 is invalid: skipped with the reason.
    invalid = [r for r in rows if r["state"] == "INVALID"]
    assert invalid and all("noise_min (0.01) must be smaller" in r["error"] for r in invalid)
    assert result.counts["invalid"] == len(invalid)


def test_pruning_stops_trials_below_the_median(monkeypatch, tmp_path):
    reached = {}

    def curve(config):  # noise-like in lr, so the sampler cannot learn to avoid bad trials
        level = (config.train.lr * 1e6) % 1
        return [level * epoch / 4 for epoch in range(1, 5)]

    monkeypatch.setattr("recdiff.train.run.run_training", _stand_in(curve, reached))
    result = tune(load_config("demo-diffrec"), LR_SPACE, 14, tmp_path, seed=0)
    rows = _rows(tmp_path / "trials.csv")
    pruned = [r for r in rows if r["state"] == "PRUNED"]
    assert result.counts["pruned"] == len(pruned) >= 1
    for row in pruned:
        epoch = int(row["pruned_at_epoch"])
        assert reached[f"demo-diffrec-trial{row['number']}"] == epoch < 4  # stopped there
        assert row["run_dir"] == "" and row["valid/recall@20"] == ""
    assert result.counts["complete"] + result.counts["pruned"] == 14


class _FakeTrial:
    def __init__(self, prune_at: int) -> None:
        self.prune_at, self.reports = prune_at, []

    def report(self, value, step):
        self.reports.append((step, value))

    def should_prune(self):
        return self.reports[-1][0] >= self.prune_at


def test_pruning_reporter_reports_validation_only_and_raises_when_told():
    trial = _FakeTrial(prune_at=10)
    reporter = PruningReporter(trial, "recall@20")
    reporter({"event": "epoch", "epoch": 5, "loss": 0.3})
    reporter({"event": "eval", "epoch": 5, "valid/recall@20": 0.1, "test/recall@20": 0.9})
    assert trial.reports == [(5, 0.1)]
    with pytest.raises(optuna.TrialPruned, match="epoch 10"):
        reporter({"event": "eval", "epoch": 10, "valid/recall@20": 0.05})
    assert trial.reports == [(5, 0.1), (10, 0.05)]


def test_pruning_reporter_skips_pre_training_stages():
    trial = _FakeTrial(prune_at=100)
    reporter = PruningReporter(trial, "recall@20")
    reporter({"event": "eval", "epoch": 5, "valid/recall@20": 0.08, "stage": "autoencoder"})
    reporter({"event": "eval", "epoch": 5, "valid/recall@20": 0.1})  # the final model's epoch 5
    assert trial.reports == [(5, 0.1)]


def test_a_search_selects_on_the_configs_own_metric_by_default(tmp_path):
    """A next-item preset selects on hit_rate: the shipped dreamrec-paper space runs without
    --metric (it failed asking for valid/recall@20, which such runs do not compute)."""
    args = ["tune", "demo-dreamrec", "--space", "dreamrec-paper", "--trials", "1"]
    args += ["--out", str(tmp_path / "t"), "--no-prune", *_sets(["train.epochs=1"])]
    args += _sets(["train.eval_every=1", "model.diffusion.steps=5", "data.max_len=5"])
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "best trial 0: valid/hit_rate@10" in result.output
    with pytest.raises(TuneError, match=r"use e\.g\. valid/hit_rate@20"):
        selection_metric("valid/recall@20", load_config("demo-dreamrec"))


def test_bad_trial_counts_and_metrics_fail_clearly(tmp_path):
    config = load_config("demo-diffrec")
    with pytest.raises(TuneError, match="at least 1"):
        tune(config, LR_SPACE, 0, tmp_path)
    with pytest.raises(TuneError, match="not computed"):
        tune(config, LR_SPACE, 2, tmp_path, metric="valid/recall@7")
    assert json.loads(json.dumps(LR_SPACE.to_dict()))["train.lr"]["log"] is True


def test_a_study_file_that_is_no_database_is_named(tmp_path):
    """OUT/study.db that SQLite cannot read (another file saved under that name, a truncated
    copy) ended the command in a SQLAlchemy traceback; the file is left as it was."""
    study = tmp_path / "study.db"
    study.write_text("not a database\n")
    with pytest.raises(TuneError) as caught:
        tune(load_config("demo-diffrec"), LR_SPACE, 1, tmp_path)
    assert str(caught.value) == (
        f"{study}: cannot be opened as the search's study (file is not a database); if it is "
        "not the study.db of a `recdiff tune` run, move it away or pass another --out"
    )
    assert study.read_text() == "not a database\n"
    result = runner.invoke(
        app, ["tune", "demo-diffrec", "--space", "diffrec-paper", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.splitlines()[-1] == f"error: {caught.value}"


def test_a_trial_left_running_by_a_killed_process_is_marked_failed(monkeypatch, tmp_path):
    """A killed process leaves its trial RUNNING with a heartbeat that no longer moves; the next
    command fails it, says so, and goes on with the trials it was asked for."""
    monkeypatch.setattr("recdiff.experiments.storage.HEARTBEAT_SECONDS", 1)
    monkeypatch.setattr("recdiff.experiments.storage.STALE_AFTER_SECONDS", 1)
    monkeypatch.setattr("recdiff.train.run.run_training", _stand_in(lambda c: [c.train.lr]))
    config = load_config("demo-diffrec")
    tune(config, LR_SPACE, 2, tmp_path, prune=False)
    study = _study(tmp_path)
    killed = study.ask()  # what a killed `recdiff tune` leaves: RUNNING, one old heartbeat
    study._storage.record_heartbeat(killed._trial_id)
    time.sleep(2.5)
    lines = []
    result = tune(config, LR_SPACE, 3, tmp_path, prune=False, report=lines.append)
    states = {t.number: t.state.name for t in _study(tmp_path).get_trials()}
    assert states[killed.number] == "FAIL"
    assert f"trial {killed.number}: its process stopped while it ran" in lines[0]
    assert result.counts["complete"] == 3 and result.counts["running"] == 0


def test_a_search_under_torchrun_is_refused_before_the_study_is_opened(monkeypatch, tmp_path):
    """Each torchrun process would run its own search on the same study, and DDP would join
    processes training different settings: tune refuses, and writes nothing."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(TuneError, match=r"WORLD_SIZE=2 .* without torchrun"):
        tune(load_config("demo-diffrec"), LR_SPACE, 2, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_trial_that_raises_stops_the_search_and_is_listed_as_failed(monkeypatch, tmp_path):
    """The third trial that trains raises (e.g. out of memory): the error ends the search, and
    trials.csv and best.yaml already hold it and the two trials before it."""
    good, trained = _stand_in(lambda config: [config.train.lr]), []

    def run_training(config, runs_dir, progress=None, on_event=None):
        trained.append(config.name)
        if len(trained) == 3:
            raise RuntimeError("out of memory")
        return good(config, runs_dir, progress, on_event)

    monkeypatch.setattr("recdiff.train.run.run_training", run_training)
    with pytest.raises(RuntimeError, match="out of memory"):
        tune(load_config("demo-diffrec"), LR_SPACE, 5, tmp_path, seed=3, prune=False)
    rows = [r for r in _rows(tmp_path / "trials.csv") if r["state"] != "INVALID"]
    assert [f"demo-diffrec-trial{r['number']}" for r in rows] == trained
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE", "FAIL"]
    best = max(rows[:2], key=lambda r: float(r["valid/recall@20"]))
    assert f"(trial {best['number']})" in (tmp_path / "best.yaml").read_text()


@pytest.mark.parametrize(
    ("how", "raised", "reason"),
    [
        ("sigterm", SystemExit, "stopped by SIGTERM"),
        ("ctrl-c", KeyboardInterrupt, "interrupted (Ctrl-C)"),
    ],
)
def test_a_trial_stopped_by_a_signal_is_marked_failed_and_the_search_goes_on(
    monkeypatch, tmp_path, how, raised, reason
):
    """SIGTERM during the second trial's training unwinds it (as ``run_training`` does) as
    ``SystemExit(143)``, which Optuna lets through with the trial still RUNNING; Ctrl-C Optuna
    fails itself. Either way the trial is FAIL with the reason, and the same command then
    completes the trials asked for."""
    good, trained = _stand_in(lambda config: [config.train.lr]), []

    def run_training(config, runs_dir, progress=None, on_event=None):
        trained.append(config.name)
        if len(trained) == 2 and how == "ctrl-c":
            raise KeyboardInterrupt
        if len(trained) == 2:
            with sigterm_unwinds():  # the real run_training's own, in case tune has none
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(30)  # the signal's handler raises before this ends
        return good(config, runs_dir, progress, on_event)

    monkeypatch.setattr("recdiff.train.run.run_training", run_training)
    config = load_config("demo-diffrec")
    with pytest.raises(raised) as stopped:
        tune(config, LR_SPACE, 3, tmp_path, seed=3, prune=False)
    assert how == "ctrl-c" or stopped.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    rows = [r for r in _rows(tmp_path / "trials.csv") if r["state"] != "INVALID"]
    assert [(r["state"], r["error"]) for r in rows] == [("COMPLETE", ""), ("FAIL", reason)]
    result = tune(config, LR_SPACE, 3, tmp_path, seed=3, prune=False)
    assert (result.counts["complete"], result.counts["fail"], result.counts["running"]) == (3, 1, 0)


def test_sigterm_to_the_command_fails_the_running_trial_and_exits_143(
    tmp_path, signal_while_training
):
    """``recdiff tune`` sent SIGTERM while a trial trains: one line, exit status 143, the trial
    FAIL in trials.csv and in the study (not RUNNING forever), and no run folder left."""
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    out = tmp_path / "out"
    long = ["train.epochs=100000", "train.patience=100000", "model.diffusion.steps=4"]
    command = ["tune", "demo-diffrec", "--space", str(space), "--trials", "3", "--out", str(out)]
    code, stderr = signal_while_training(
        [*command, *_sets(long)], out / "runs", training=1, sig=signal.SIGTERM
    )
    assert code == 143, stderr[-2000:]
    assert stderr.splitlines()[-1] == (
        "error: stopped by SIGTERM; run the same command again to continue where it stopped"
    )
    rows = [r for r in _rows(out / "trials.csv") if r["state"] != "INVALID"]
    assert [(r["state"], r["error"]) for r in rows] == [("FAIL", "stopped by SIGTERM")]
    assert [t.state.name for t in _study(out).get_trials() if "invalid" not in t.user_attrs] == [
        "FAIL"
    ]
    assert list((out / "runs").iterdir()) == []
