"""`tune`, `experiment` and `reproduce` on data no preset was tuned on: what they check before
training and what they tell a user to do next.

Found by an audit that tuned and compared presets on ML-100K and Amazon Toys sequence files;
each test failed before its fix. Training is replaced by a stand-in where only the commands'
own behaviour is under test.
"""

from __future__ import annotations

import csv
import shlex
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recdiff.cli.main import app
from recdiff.config import load_config
from recdiff.config.sources import resolve_source
from recdiff.experiments.experiment import ExperimentError, run_experiment
from recdiff.experiments.space import SearchSpace, SpaceError
from recdiff.experiments.trials import trial_config
from recdiff.experiments.tune import STUDY_NAME, tune
from recdiff.train.run import RunResult

runner = CliRunner()


def _stand_in(calls: list[str]):
    """A run_training replacement that records the runs it was asked for."""

    def run_training(config, runs_dir, progress=None, on_event=None):
        calls.append(config.name)
        directory = Path(runs_dir) / config.name
        directory.mkdir(parents=True)
        metrics = {
            "valid": {config.train.metric: config.train.lr},
            "test": {config.train.metric: 0.5},
            "best_epoch": 1,
            "seconds": {"total": 0.0},
        }
        return RunResult(directory, metrics, model=None)

    return run_training


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_a_space_whose_values_fit_only_together_is_not_refused_before_the_search():
    """noise_max 1e-3 or 2e-3 is below the preset's noise_min (5e-3), but the space lowers
    noise_min too: the pair fits, so the space must not be called a wrong path. A key that no
    value can set is still caught."""
    pytest.importorskip("optuna")
    base = load_config("demo-diffrec").model_dump(mode="json")
    lower = SearchSpace.from_dict(
        {
            "model.diffusion.noise_min": {"type": "categorical", "choices": [1e-4, 5e-4]},
            "model.diffusion.noise_max": {"type": "categorical", "choices": [1e-3, 2e-3]},
        },
        "lower noise",
    )
    assert base["model"]["diffusion"]["noise_min"] == 5e-3
    lower.check_against(base, base, lambda raw: trial_config(raw, {}, "x"))
    typo = SearchSpace.from_dict(
        {
            "model.diffusion.noise_min": {"type": "categorical", "choices": [1e-4, 5e-4]},
            "model.diffusion.noise_mx": {"type": "categorical", "choices": [1e-3, 2e-3]},
        },
        "typo",
    )
    typo_message = r"key 'model\.diffusion\.noise_mx': unknown key; did you mean 'noise_max'\?"
    with pytest.raises(SpaceError, match=typo_message):
        typo.check_against(base, base, lambda raw: trial_config(raw, {}, "x"))


def test_a_choice_that_is_never_valid_is_named_before_the_search():
    """``train.ema_decay: 0.0`` is no valid setting (off is null): every trial drawing it is
    skipped as invalid, and a measured search lost 21 of 73 trials so. The space check names the
    choice and why before the search starts. Not named: null in its place; a choice that fits
    beside another searched value (noise_max below the preset's noise_min); and a clash with a
    setting the search may move (noise_min 0.01 against the preset's noise_max 0.01), which the
    trials report instead."""
    base = load_config("demo-diffrec").model_dump(mode="json")

    def warnings_of(params):
        lines = []
        space = SearchSpace.from_dict(params, "sp.yaml")
        space.check_against(base, base, lambda raw: trial_config(raw, {}, "x"), lines.append)
        return lines

    (line,) = warnings_of({"train.ema_decay": {"type": "categorical", "choices": [0.0, 0.99]}})
    assert line == (
        "sp.yaml: key 'train.ema_decay': choice 0.0 is never valid (train.ema_decay: Input "
        "should be greater than 0); every trial that draws it is skipped as invalid: drop it or "
        "give a valid value"
    )
    assert warnings_of({"train.ema_decay": {"type": "categorical", "choices": [None, 0.99]}}) == []
    lists = {"model.hidden_dims": {"type": "categorical", "choices": [[200], [0], [-1]]}}
    first, second = warnings_of(lists)
    assert "choice [0] is never valid (model.hidden_dims.0: " in first
    assert "choice [-1] is never valid" in second
    together = {
        "model.diffusion.noise_min": {"type": "categorical", "choices": [1e-4, 5e-3]},
        "model.diffusion.noise_max": {"type": "categorical", "choices": [1e-3, 1e-2]},
    }
    assert warnings_of(together) == []
    clash = {"model.diffusion.noise_min": {"type": "categorical", "choices": [1e-3, 1e-2]}}
    assert warnings_of(clash) == []


def test_tune_prints_the_never_valid_warning_first(tmp_path):
    pytest.importorskip("optuna")
    space = SearchSpace.from_dict(
        {"train.ema_decay": {"type": "categorical", "choices": [0.0, 0.9]}}, "sp.yaml"
    )
    config = load_config("demo-diffrec", ["train.epochs=1", "train.eval_every=1"])
    lines = []
    tune(config, space, 1, tmp_path, seed=0, prune=False, report=lines.append)
    assert lines[0].startswith("warning: sp.yaml: key 'train.ema_decay': choice 0.0 is never ")


def test_tune_suggests_an_experiment_on_the_same_data(monkeypatch, tmp_path):
    """The printed next step compares best.yaml with the base config: the --set overrides that
    moved the search onto the user's data must reach the base config too (scoped to it), else
    the base would run on the preset's own data."""
    pytest.importorskip("optuna")
    calls: list[str] = []
    monkeypatch.setattr("recdiff.train.run.run_training", _stand_in(calls))
    space = tmp_path / "space.yaml"
    space.write_text("train.lr: {type: float, low: 1e-4, high: 1e-2, log: true}\n")
    out = tmp_path / "out"
    sets = ["data.seed=7", "train.epochs=1"]
    command = ["tune", "demo-diffrec", "--space", str(space), "--out", str(out), "--trials", "2"]
    result = runner.invoke(app, [*command, *(p for s in sets for p in ("--set", s))])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.stdout.splitlines() if x.startswith("next: "))
    words = shlex.split(line.removeprefix("next: "))
    assert words[:4] == ["recdiff", "experiment", str(out / "best.yaml"), "demo-diffrec"]
    scoped = [words[i + 1] for i, word in enumerate(words) if word == "--set"]
    assert scoped == ["demo-diffrec:data.seed=7", "demo-diffrec:train.epochs=1"]
    # Searched on another --metric, best.yaml selects its epochs on it: the base must too, else
    # the comparison handicaps it (a user's walk found the hint left it on recall@20).
    other = runner.invoke(
        app, [*command, "--out", str(tmp_path / "o2"), "--metric", "ndcg@10", "--set", sets[1]]
    )
    assert other.exit_code == 0, other.output
    line = next(x for x in other.stdout.splitlines() if x.startswith("next: "))
    words = shlex.split(line.removeprefix("next: "))
    scoped = [words[i + 1] for i, word in enumerate(words) if word == "--set"]
    assert scoped == ["demo-diffrec:train.epochs=1", "demo-diffrec:train.metric=ndcg@10"]


def test_a_missing_dataset_names_the_paths_looked_in(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECDIFF_DATASETS", str(tmp_path / "data"))
    with pytest.raises(FileNotFoundError) as error:
        resolve_source("datasets:diffrec/yelp_clean")
    message = str(error.value)
    assert str(tmp_path / "data" / "diffrec" / "yelp_clean") in message
    assert str(tmp_path / "shared" / "datasets" / "diffrec" / "yelp_clean") in message
    assert "not set" not in message
    monkeypatch.delenv("RECDIFF_DATASETS")
    with pytest.raises(FileNotFoundError, match=r"\$RECDIFF_DATASETS is not set"):
        resolve_source("datasets:diffrec/yelp_clean")


def test_an_experiment_checks_every_configs_data_before_training_any(monkeypatch, tmp_path):
    """A missing file in the last config fails at once, not after the others trained."""
    calls: list[str] = []
    monkeypatch.setattr("recdiff.train.run.run_training", _stand_in(calls))
    missing = tmp_path / "absent.csv"
    configs = [
        load_config("demo-ease"),
        load_config("demo-ease", ["name=mine", "data.format=csv", f"data.source={missing}"]),
    ]
    with pytest.raises(ExperimentError, match=rf"config 'mine': {missing} not found"):
        run_experiment(configs, 1, tmp_path / "out")
    assert calls == []


def test_a_search_checks_its_data_before_opening_a_study(monkeypatch, tmp_path):
    """Else every call adds a failed trial to the study, and trials.csv says nothing of why."""
    pytest.importorskip("optuna")
    calls: list[str] = []
    monkeypatch.setattr("recdiff.train.run.run_training", _stand_in(calls))
    missing = tmp_path / "absent.csv"
    config = load_config("demo-diffrec", ["data.format=csv", f"data.source={missing}"])
    space = SearchSpace.from_dict({"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2}})
    with pytest.raises(FileNotFoundError, match=str(missing)):
        tune(config, space, 2, tmp_path / "out")
    assert calls == [] and not (tmp_path / "out").exists()


def test_a_failed_trial_keeps_its_error_in_the_trials_table(monkeypatch, tmp_path):
    pytest.importorskip("optuna")

    def run_training(config, runs_dir, progress=None, on_event=None):
        raise RuntimeError("out of memory")

    monkeypatch.setattr("recdiff.train.run.run_training", run_training)
    space = SearchSpace.from_dict({"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2}})
    with pytest.raises(RuntimeError):
        tune(load_config("demo-diffrec"), space, 2, tmp_path)
    (row,) = _rows(tmp_path / "trials.csv")
    assert (row["state"], row["error"]) == ("FAIL", "RuntimeError: out of memory")


def test_reproduce_notes_name_only_the_data_settings_that_changed():
    """The preset reads a DiffRec folder, which ignores data.seed and data.ratios: on a CSV
    file the note must not call them changed from null (the preset holds the same values)."""
    from recdiff.cli.reproduce import PAPER_RESULTS, _reproduce_notes

    preset = load_config("diffrec-ml1m")
    mine = ["data.format=csv", "data.source=/data/log.csv", "data.split=user_temporal"]
    config = load_config("diffrec-ml1m", mine)
    (note,) = _reproduce_notes("diffrec-ml1m", preset, config, PAPER_RESULTS["diffrec-ml1m"])
    assert "data.format=csv (preset diffrec)" in note
    assert "data.source=/data/log.csv (preset datasets:diffrec/ml-1m_clean)" in note
    assert "data.split=user_temporal (preset global_temporal)" in note
    assert "data.seed" not in note and "data.ratios" not in note


def test_a_killed_trials_leftover_folders_go_when_it_is_marked_failed(monkeypatch, tmp_path):
    """SIGKILL leaves a trial RUNNING and its run's hidden folder and empty reserved folder in
    OUT/runs. A trial is never resumed: once the next command marks it FAIL, both go, and the
    finished trials' runs stay."""
    optuna = pytest.importorskip("optuna")
    monkeypatch.setattr("recdiff.experiments.storage.HEARTBEAT_SECONDS", 1)
    monkeypatch.setattr("recdiff.experiments.storage.STALE_AFTER_SECONDS", 1)
    monkeypatch.setattr("recdiff.train.run.run_training", _stand_in([]))
    config = load_config("demo-diffrec")
    space = SearchSpace.from_dict({"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2}})
    tune(config, space, 1, tmp_path, prune=False)
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{tmp_path / 'study.db'}")
    killed = study.ask()
    study._storage.record_heartbeat(killed._trial_id)
    reserved = tmp_path / "runs" / f"demo-diffrec-trial{killed.number}-20261129-120000"
    hidden = reserved.parent / f".{reserved.name}.incomplete"
    hidden.mkdir()
    reserved.mkdir()
    (hidden / "events.jsonl").write_text("{}\n")
    time.sleep(2.5)
    tune(config, space, 2, tmp_path, prune=False)
    assert not hidden.exists() and not reserved.exists()
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "demo-diffrec-trial0",
        f"demo-diffrec-trial{killed.number + 1}",
    ]


def test_an_experiment_metric_given_as_a_test_metric_is_explained(tmp_path):
    """`--metric test/ndcg@20` was refused as "not computed", though every config computes
    ndcg@20: the prefix is what is wrong (the baseline is chosen on validation)."""
    out = tmp_path / "out"
    command = ["experiment", "demo-ease", "demo-popularity", "--seeds", "1", "--out", str(out)]
    result = runner.invoke(app, [*command, "--metric", "test/ndcg@20"])
    assert result.exit_code == 2
    assert "give the metric alone, e.g. --metric ndcg@20" in result.stderr
    assert "chosen on its validation value" in result.stderr
    assert not out.exists()


def test_a_study_of_another_config_names_the_settings_that_differ(monkeypatch, tmp_path):
    """The same command with one --set changed was refused as "another config", leaving the
    user to find which of many settings it was."""
    pytest.importorskip("optuna")
    monkeypatch.setattr("recdiff.train.run.run_training", _stand_in([]))
    space = SearchSpace.from_dict({"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2}})
    tune(load_config("demo-diffrec", ["train.epochs=3"]), space, 1, tmp_path)
    with pytest.raises(
        ValueError, match=r"another config \(train\.epochs: 3 in the study, 4 here\)"
    ):
        tune(load_config("demo-diffrec", ["train.epochs=4"]), space, 2, tmp_path)
