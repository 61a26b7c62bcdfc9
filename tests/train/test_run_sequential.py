"""Runs of next-item models: the run directory, selection on validation, data configs."""

import json

import numpy as np
import pandas as pd
import pytest

from recdiff.config import load_config
from recdiff.config.schema import DataConfig
from recdiff.data.sequences import UserSequences
from recdiff.models.base import SavedModel
from recdiff.serving.predictor import Predictor
from recdiff.train.datasets import load_sequences, load_sequences_and_low_ratings, load_splits
from recdiff.train.run import run_training
from recdiff.train.run_sequential import evaluate_sequential

FAST = ["train.epochs=4", "train.eval_every=2", "model.dim=16"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return run_training(
        load_config("demo-sasrec", FAST), tmp_path_factory.mktemp("runs"), progress=False
    )


def test_run_directory_is_complete(run):
    names = {p.relative_to(run.directory).as_posix() for p in run.directory.rglob("*")}
    assert {
        "config.yaml",
        "events.jsonl",
        "metrics.json",
        "curves.png",
        "model/config.json",
        "model/weights.safetensors",
        "data/items.json",
        "data/users.json",
        "data/sequences.npz",
        "test_per_user.npz",
    } <= names
    assert not any(name.endswith(".tmp") for name in names)


def test_metrics_select_on_validation_and_match_a_reload(run):
    metrics = json.loads((run.directory / "metrics.json").read_text())
    events = [
        json.loads(line)
        for line in (run.directory / "events.jsonl").read_text().split("\n")
        if line
    ]
    evals = [e for e in events if e["event"] == "eval"]
    assert [e["epoch"] for e in evals] == [2, 4]
    assert not any(key.startswith("test/") for e in evals for key in e)  # test is never looked at
    best = max(evals, key=lambda e: e["valid/hit_rate@10"])
    assert metrics["best_epoch"] == best["epoch"]
    config = load_config(str(run.directory / "config.yaml"), [])
    data = load_sequences(config.data)[0].with_layout("left")
    reloaded = evaluate_sequential(SavedModel.load(run.directory / "model"), data, config)
    assert reloaded["test"].means == pytest.approx(metrics["test"])
    per_example = np.load(run.directory / "test_per_user.npz")
    assert per_example["hit_rate@10"].mean() == pytest.approx(metrics["test"]["hit_rate@10"])
    assert len(per_example["hit_rate@10"]) == metrics["data"]["test"]
    # one value an example: the means are over examples, whatever eval.averaging names
    assert metrics["averaged_over"] == "examples"


def test_saved_sequences_round_trip(run):
    folder = run.directory / "data"
    saved = np.load(folder / "sequences.npz")
    config = load_config(str(run.directory / "config.yaml"), [])
    _, sequences = load_sequences(config.data)
    assert np.array_equal(saved["indptr"], sequences.indptr)
    assert np.array_equal(saved["items"], sequences.item_idx)


def test_leave_one_out_from_a_table(tmp_path):
    frame = pd.DataFrame(
        {
            "user": ["a", "a", "a", "a", "b", "b", "b"],
            "item": ["x", "y", "z", "x", "y", "z", "w"],
            "ts": [1, 2, 3, 4, 5, 6, 7],
        }
    )
    frame = frame.sample(frac=1.0, random_state=0)  # file order must not matter, time does
    path = tmp_path / "log.csv"
    frame.to_csv(path, index=False)
    config = DataConfig(
        format="csv", source=str(path), time_col="ts", split="leave_one_out", max_len=2
    )
    data, sequences = load_sequences(config)
    items = data.items
    assert isinstance(sequences, UserSequences)
    # user a: x y z x -> test target x after [y, z]; valid target z after [x, y]
    test = data.test.materialize()
    row = int(np.flatnonzero(test.targets == items.index(["x"])[0])[0])
    assert items.ids[test.history[row]].tolist() == ["y", "z"]
    assert len(data.valid) == 2 and len(data.test) == 2


def test_data_configs_that_cannot_work_say_why(tmp_path):
    with pytest.raises(ValueError, match="next-item models split"):
        load_sequences(DataConfig(format="csv", source="x.csv", split="random"))
    with pytest.raises(ValueError, match="time-ordered"):
        load_sequences(DataConfig(format="diffrec", source="x"))
    with pytest.raises(ValueError, match="next-item model"):
        load_splits(DataConfig(format="dreamrec", source="x"))
    # a sequence file read as users' rows: no times to compare users by, no ratings
    with pytest.raises(ValueError, match="no times to compare users by"):
        load_splits(DataConfig(format="sequences", source="x.txt"))
    with pytest.raises(ValueError, match="no ratings"):
        load_splits(DataConfig(format="sequences", source="x.txt", split="random", min_rating=4))


def test_a_sequence_file_gives_interaction_rows_split_leave_one_out(tmp_path):
    """Users' rows from `user item item ...` lines (DiffRec, EASE, ... on SASRec's files): per
    user the last item is test, the one before valid; items never in train leave valid/test."""
    path = tmp_path / "seqs.txt"
    path.write_text("1 10 11 12 13\n2 11 12 15\n3 10\n4 13 10 11 10\n5 12 14 10 11\n")
    splits = load_splits(DataConfig(format="sequences", source=str(path), split="leave_one_out"))
    users = (1, 2, 3, 4, 5)

    def items(part, user):
        row = part.matrix[part.users.index([user])[0]]
        return sorted(part.items.ids[row.indices].tolist())

    assert [items(splits.train, u) for u in users] == [[10, 11], [11], [10], [13], [12, 14]]
    assert [items(splits.valid, u) for u in users] == [[12], [12], [], [11], [10]]
    # user 2's 15 is in no train row; user 4's repeated 10 counts once, at its latest place
    assert [items(splits.test, u) for u in users] == [[13], [], [], [10], [11]]
    config = load_config(
        "demo-ease", ["data.format=sequences", f"data.source={path}", "data.split=leave_one_out"]
    )
    result = run_training(config, tmp_path / "runs", progress=False)
    assert result.metrics["data"]["test_users"] == 3


@pytest.mark.data
def test_most_popular_on_zhihu_matches_the_paper(tmp_path):
    """A known answer: DreamRec's paper reports most-popular at 1.43% HR@20, 0.54% NDCG@20."""
    result = run_training(load_config("mostpop-zhihu", []), tmp_path, progress=False)
    assert result.metrics["test"]["hit_rate@20"] == pytest.approx(0.0143, abs=5e-5)
    assert result.metrics["test"]["ndcg@20"] == pytest.approx(0.0054, abs=5e-5)
    assert result.metrics["data"] == {
        "n_users": None,
        "n_items": 4838,
        "train": 61641,
        "valid": 8160,
        "test": 7911,
        "max_len": 10,
    }


def test_evaluating_a_run_whose_data_changed_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        [(u, int(rng.integers(12)), t) for u in range(8) for t in range(6)],
        columns=["user", "item", "ts"],
    )
    path = tmp_path / "log.csv"
    frame.to_csv(path, index=False)
    settings = [*FAST, "data.format=csv", f"data.source={path}", "data.time_col=ts",
                "data.split=leave_one_out"]  # fmt: skip
    run = run_training(load_config("demo-sasrec", settings), tmp_path / "runs", progress=False)
    assert Predictor.load(run.directory).evaluate()["test"] == pytest.approx(run.metrics["test"])
    # Same items, one user's history shortened by a row: the run no longer matches its data.
    frame.drop(index=1).to_csv(path, index=False)
    with pytest.raises(ValueError, match="users' sequences differ"):
        Predictor.load(run.directory).evaluate()


def test_evaluate_can_mask_each_users_past_whatever_the_run_did(run):
    """`recdiff evaluate RUN --exclude-history` scores the saved model with every item of the
    user's past masked; --keep-history (the run's own setting here) gives the run's metrics."""
    from typer.testing import CliRunner

    from recdiff.cli.main import app

    runner = CliRunner()
    config = load_config(str(run.directory / "config.yaml"), [])
    assert config.eval.exclude_history is False and run.metrics["exclude_history"] is False
    masked_config = load_config(str(run.directory / "config.yaml"), ["eval.exclude_history=true"])
    data = load_sequences(config.data)[0].with_layout("left")
    model = SavedModel.load(run.directory / "model")
    masked = evaluate_sequential(model, data, masked_config)["test"].means
    predictor = Predictor.load(run.directory)
    assert predictor.evaluate(exclude_history=False)["test"] == pytest.approx(run.metrics["test"])
    assert predictor.evaluate(exclude_history=True)["test"] == pytest.approx(masked)
    assert masked != pytest.approx(run.metrics["test"])  # past items ranked above targets
    for flag, expected in (("--keep-history", run.metrics["test"]), ("--exclude-history", masked)):
        result = runner.invoke(app, ["evaluate", str(run.directory), flag])
        assert result.exit_code == 0, result.output
        test_row = next(line for line in result.stdout.splitlines() if line.startswith("test"))
        assert f"{expected['hit_rate@10']:.4f}" in test_row


def test_sequences_above_a_rating_bar_and_a_run_saved_before_it_dropped_emptied_ids(
    monkeypatch, tmp_path
):
    """A RecBole file read as sequences with min_rating: the item rated 1 by everyone and the
    user who rated everything 2 leave the catalogue. A run saved when they stayed still
    evaluates as it was trained."""
    from recdiff.train import run_sequential

    rows = [(u, i, 5, 10 * u + i) for u in range(6) for i in range(u % 2, u % 2 + 5)]
    rows += [(u, 99, 1, 10 * u + 9) for u in range(6)] + [(7, i, 2, 80 + i) for i in range(4)]
    path = tmp_path / "log.inter"
    path.write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        + "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows)
    )
    settings = ["data.format=recbole", f"data.source={path}", "data.split=leave_one_out",
                "data.min_rating=4"]  # fmt: skip
    config = load_config("mostpop-zhihu", settings)
    data, sequences = load_sequences(config.data)
    assert 99 not in data.items.ids and 7 not in sequences.users.ids
    assert (len(data.items), len(sequences.users)) == (6, 6)

    def as_before(data_config):
        return load_sequences_and_low_ratings(data_config, drop_emptied=False)

    monkeypatch.setattr(run_sequential, "load_sequences_and_low_ratings", as_before)
    old = run_training(config, tmp_path / "runs", progress=False)
    monkeypatch.undo()
    predictor = Predictor.load(old.directory)
    assert len(predictor.items) == 7
    assert predictor.evaluate()["test"] == pytest.approx(old.metrics["test"])


def test_most_popular_names_the_train_settings_it_ignores(tmp_path):
    # Counts have no learning rate or epochs: a moved train.* setting is named, not dropped.
    settings = ["data.format=demo", "data.source=null", "train.lr=0.5", "train.epochs=3"]
    with pytest.warns(UserWarning, match=r"train.epochs, train.lr do not apply to mostpop"):
        run = run_training(load_config("mostpop-zhihu", settings), tmp_path, progress=False)
    assert run.metrics["test"]["hit_rate@20"] > 0
