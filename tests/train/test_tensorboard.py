"""TensorBoard logging: the scalars written are exactly the run's logged epoch and eval numbers."""

import json

import pytest

from recdiff.config import load_config
from recdiff.train.run import run_training
from recdiff.train.tensorboard import TensorBoardLog

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def _scalars(folder) -> dict[str, dict[int, float]]:
    acc = event_accumulator.EventAccumulator(str(folder))
    acc.Reload()
    return {
        tag: {event.step: event.value for event in acc.Scalars(tag)}
        for tag in acc.Tags()["scalars"]
    }


def test_run_writes_the_events_as_scalars(tmp_path):
    config = load_config(
        "demo-diffrec",
        [
            "train.epochs=4",
            "train.eval_every=2",
            "model.hidden_dims=[32]",
            "model.diffusion.steps=5",
            "train.tensorboard=true",
        ],
    )
    run = run_training(config, tmp_path, progress=False)
    scalars = _scalars(run.directory / "tensorboard")
    events = [
        json.loads(line)
        for line in (run.directory / "events.jsonl").read_text().split("\n")
        if line
    ]
    epochs = [e for e in events if e["event"] == "epoch"]
    evals = [e for e in events if e["event"] == "eval"]
    assert [e["epoch"] for e in evals] == [2, 4]
    assert scalars["epoch/loss"] == pytest.approx({e["epoch"]: e["loss"] for e in epochs})
    assert scalars["valid/recall@20"] == pytest.approx(
        {e["epoch"]: e["valid/recall@20"] for e in evals}
    )
    assert scalars["test/ndcg@20"] == pytest.approx({e["epoch"]: e["test/ndcg@20"] for e in evals})


def test_stages_prefix_their_tags_and_non_numbers_are_skipped(tmp_path):
    log = TensorBoardLog(tmp_path)
    log({"event": "epoch", "epoch": 1, "stage": "autoencoder", "loss": 2.5, "note": "x"})
    log({"event": "epoch", "epoch": 2, "stage": "autoencoder", "loss": 1.5, "stopped": True})
    log({"event": "select", "l2_lambda": 100.0})  # no sweep, no epoch: not a step of a curve
    log.close()
    scalars = _scalars(tmp_path)
    assert scalars == {"autoencoder/epoch/loss": {1: 2.5, 2: 1.5}}


def test_ease_logs_its_lambda_sweep_at_steps_of_lambda(tmp_path):
    """EASE trains no epochs: its validation sweep over lambda is what TensorBoard shows (it
    showed nothing before), each value at its own step, beside the lambda chosen."""
    config = load_config("demo-ease", ["train.tensorboard=true"])
    run = run_training(config, tmp_path, progress=False)
    (select,) = [
        json.loads(line) for line in (run.directory / "events.jsonl").read_text().splitlines()
    ]
    scalars = _scalars(run.directory / "tensorboard")
    assert set(scalars) == {"select/valid_by_l2_lambda", "select/l2_lambda"}
    assert scalars["select/valid_by_l2_lambda"] == pytest.approx(
        {int(float(key)): value for key, value in select["valid"].items()}
    )
    assert set(scalars["select/valid_by_l2_lambda"]) >= {50, 300, 5000}
    assert scalars["select/l2_lambda"] == {0: select["l2_lambda"]}


def test_a_sweep_of_fractions_is_logged_in_rank_order(tmp_path):
    log = TensorBoardLog(tmp_path)
    log({"event": "select", "alpha": 0.5, "valid": {"2.0": 0.3, "0.5": 0.4, "0.1": 0.2}})
    log.close()
    assert _scalars(tmp_path) == {
        "select/valid_by_alpha": {
            0: pytest.approx(0.2),
            1: pytest.approx(0.4),
            2: pytest.approx(0.3),
        },
        "select/alpha": {0: 0.5},
    }


def test_off_by_default_writes_no_tensorboard_folder(tmp_path):
    config = load_config(
        "demo-diffrec", ["train.epochs=1", "model.hidden_dims=[16]", "model.diffusion.steps=3"]
    )
    run = run_training(config, tmp_path, progress=False)
    assert not (run.directory / "tensorboard").exists()
