"""Comparing and tuning at their edges: a search whose disk fills up in the middle of a trial, and
experiment requests that used to be found wrong only after training (or not at all)."""

import csv
import errno
import sqlite3
from pathlib import Path

import pytest

from recdiff.config import load_config
from recdiff.experiments import storage
from recdiff.experiments.experiment import ExperimentError, run_experiment
from recdiff.experiments.space import SearchSpace
from recdiff.experiments.storage import STUDY_NAME
from recdiff.experiments.tune import TuneError, tune
from recdiff.train.run import RunResult

optuna = pytest.importorskip("optuna")

LR_SPACE = SearchSpace.from_dict(
    {"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}
)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def _trials(out: Path) -> list[tuple[int, str, str | None]]:
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{out / 'study.db'}")
    return [(t.number, t.state.name, t.user_attrs.get("error")) for t in study.get_trials()]


def _trained(config, runs_dir, progress=None, on_event=None):
    """A run_training stand-in: one validated epoch, valid = lr, test = 1 - lr."""
    on_event({"event": "eval", "epoch": 1, "valid/recall@20": config.train.lr})
    directory = Path(runs_dir) / config.name
    directory.mkdir(parents=True)
    metrics = {
        "valid": {"recall@20": config.train.lr},
        "test": {"recall@20": 1 - config.train.lr},
        "best_epoch": 1,
        "seconds": {"total": 0.0},
    }
    return RunResult(directory, metrics, model=None)


class _Disk:
    """The disk of the output folder, filled up by another program at ``fill()``: from then on
    the study refuses every write, as SQLite does on a full disk ("database or disk is full",
    which Optuna re-raises as StorageInternalError), until a file in the folder is removed."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.capacity = folder, None

    def used(self) -> int:
        return sum(f.stat().st_size for f in self.folder.rglob("*") if f.is_file())

    def fill(self) -> None:
        self.capacity = self.used()

    def clear(self) -> None:
        self.capacity = None

    def refusing(self, write):
        def guarded(storage, *args, **kwargs):
            if self.capacity is not None and self.used() >= self.capacity:
                full = sqlite3.OperationalError("database or disk is full")
                full.sqlite_errorcode = 13  # SQLITE_FULL
                try:
                    raise full
                except sqlite3.OperationalError as error:
                    raise optuna.exceptions.StorageInternalError(
                        "An exception is raised during the commit."
                    ) from error
            return write(storage, *args, **kwargs)

        return guarded


def test_a_trial_that_fails_on_a_full_disk_ends_failed_with_its_error(monkeypatch, tmp_path):
    """The disk fills up while the second trial trains: its run fails with ENOSPC, and then
    every write to the study fails as well (the objective's error, Optuna's FAIL). The trial
    must not be left RUNNING until its heartbeat goes stale: it ends FAIL with the training
    error in the study and in trials.csv, the command says that the disk is full, and once
    there is room the same command completes the trials asked for."""
    disk, trained = _Disk(tmp_path), []
    # the class the study uses: a subclass made once per process, that captured the methods of
    # RDBStorage when made (patching RDBStorage itself worked only when this test ran first)
    storage_class = storage._uncut_storage(optuna)
    for name in ("set_trial_user_attr", "set_trial_state_values", "set_trial_intermediate_value"):
        monkeypatch.setattr(storage_class, name, disk.refusing(getattr(storage_class, name)))
    weights = tmp_path / "runs" / "weights.safetensors"

    def run_training(config, runs_dir, progress=None, on_event=None):
        trained.append(config.name)
        if len(trained) == 2:
            disk.fill()
            raise OSError(errno.ENOSPC, "No space left on device", str(weights))
        return _trained(config, runs_dir, progress, on_event)

    monkeypatch.setattr("recdiff.train.run.run_training", run_training)
    config = load_config("demo-diffrec")
    with pytest.raises(TuneError, match=r"cannot write the study .*database or disk is full"):
        tune(config, LR_SPACE, 3, tmp_path, seed=3, prune=False)
    error = f"OSError: [Errno 28] No space left on device: '{weights}'"
    assert _trials(tmp_path) == [(0, "COMPLETE", None), (1, "FAIL", error)]
    assert [(r["state"], r["error"]) for r in _rows(tmp_path / "trials.csv")] == [
        ("COMPLETE", ""),
        ("FAIL", error),
    ]
    disk.clear()  # room again
    result = tune(config, LR_SPACE, 3, tmp_path, seed=3, prune=False)
    assert (result.counts["complete"], result.counts["fail"], result.counts["running"]) == (3, 1, 0)


def test_a_search_gives_its_reserve_of_disk_back(monkeypatch, tmp_path):
    """The room a search holds for recording a failure is given back when it ends, whether it
    ends well or by an error."""
    monkeypatch.setattr("recdiff.train.run.run_training", _trained)
    tune(load_config("demo-diffrec"), LR_SPACE, 2, tmp_path, prune=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "best.yaml",
        "runs",
        "study.db",
        "trials.csv",
    ]

    def out_of_memory(config, runs_dir, progress=None, on_event=None):
        raise RuntimeError("out of memory")

    monkeypatch.setattr("recdiff.train.run.run_training", out_of_memory)
    with pytest.raises(RuntimeError, match="out of memory"):
        tune(load_config("demo-diffrec"), LR_SPACE, 3, tmp_path, prune=False)
    assert not (tmp_path / ".study-reserve").exists()
    assert [state for _, state, _ in _trials(tmp_path)] == ["COMPLETE", "COMPLETE", "FAIL"]


# --------------------------------------------------- experiment requests refused before training
def _no_training(task):
    raise AssertionError(f"trained {task['label']} although the request was refused")


def test_a_repeated_seed_is_refused_before_training(monkeypatch, tmp_path):
    """seeds [1, 2, 2] trained seed 2 twice and counted it twice: 3 seeds in the table over
    two distinct runs, a standard deviation that is not the one over seeds 1 and 2, and a
    header saying "Seeds 1, 2". Refused, before anything is trained or written."""
    monkeypatch.setattr("recdiff.experiments.experiment._run_one", _no_training)
    with pytest.raises(ExperimentError, match=r"seeds \[1, 2, 2\] repeat 2: give each seed once"):
        run_experiment([load_config("demo-ease")], [1, 2, 2], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_unknown_test_method_is_refused_before_training(monkeypatch, tmp_path):
    """The CLI checks --test itself; the library only found out in results.md, after every
    run had trained."""
    monkeypatch.setattr("recdiff.experiments.experiment._run_one", _no_training)
    with pytest.raises(ExperimentError, match=r"test must be one of \['ttest', 'wilcoxon'\]"):
        run_experiment([load_config("demo-ease")], 2, tmp_path / "out", test="t-test")
    assert not (tmp_path / "out").exists()
