"""A search's ``--metric`` is also what its trials select their epochs on. Before, a trial's
run selected its epoch on the config's ``train.metric`` and the search ranked it by another
metric read at that epoch: a number the run had not maximised."""

from pathlib import Path

import pytest

from recdiff.config import load_config
from recdiff.experiments.space import SearchSpace, SpaceError
from recdiff.experiments.tune import tune
from recdiff.train.run import RunResult

pytest.importorskip("optuna")

SPACE = SearchSpace.from_dict({"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2}})


def _recording(seen: list[str]):
    def run_training(config, runs_dir, progress=None, on_event=None):
        seen.append(config.train.metric)
        on_event({"event": "eval", "epoch": 1, "valid/ndcg@20": 0.5, "valid/recall@20": 0.1})
        directory = Path(runs_dir) / config.name
        directory.mkdir(parents=True)
        metrics = {
            "valid": {"ndcg@20": 0.5, "recall@20": 0.1},
            "test": {"ndcg@20": 0.4, "recall@20": 0.1},
            "best_epoch": 1,
            "seconds": {"total": 0.0},
        }
        return RunResult(directory, metrics, model=None)

    return run_training


def test_trials_select_epochs_on_the_searchs_metric(monkeypatch, tmp_path: Path) -> None:
    seen: list[str] = []
    lines: list[str] = []
    monkeypatch.setattr("recdiff.train.run.run_training", _recording(seen))
    config = load_config("demo-diffrec")
    assert config.train.metric == "recall@20"
    result = tune(config, SPACE, 2, tmp_path, metric="valid/ndcg@20", report=lines.append)
    assert seen == ["ndcg@20", "ndcg@20"]
    assert result.best_value == 0.5
    assert load_config(str(tmp_path / "best.yaml")).train.metric == "ndcg@20"
    assert lines[0] == (
        "trials select their epochs on valid/ndcg@20, the search's metric (the config's "
        "train.metric is recall@20)"
    )


def test_the_same_metric_changes_nothing_and_says_nothing(monkeypatch, tmp_path: Path) -> None:
    seen: list[str] = []
    lines: list[str] = []
    monkeypatch.setattr("recdiff.train.run.run_training", _recording(seen))
    tune(load_config("demo-diffrec"), SPACE, 1, tmp_path, report=lines.append)
    assert seen == ["recall@20"]
    assert not any("select their epochs" in line for line in lines)


def test_a_space_cannot_sample_the_selection_metric() -> None:
    with pytest.raises(SpaceError, match=r"'train\.metric' cannot be searched: .*--metric"):
        SearchSpace.from_dict(
            {"train.metric": {"type": "categorical", "choices": ["recall@20", "ndcg@20"]}}
        )
