"""Reproducibility in use: a run's seed fixes its numbers, whatever the settings that should not
matter (evaluation batch size, how often it validates) and wherever torch's global generator
stands when a saved run is evaluated or asked for recommendations."""

import json

import numpy as np
import torch
from safetensors.numpy import load_file

from recdiff.config import load_config
from recdiff.serving.predictor import Predictor
from recdiff.train.run import run_training

# DiffRec scoring from the history noised to T' = 2 (diffrec-ml1m-search noises to T' = 1, and
# the diffrec-paper search space samples T'): the scores draw noise.
NOISED = [
    "model.hidden_dims=[32]",
    "model.diffusion.steps=5",
    "model.diffusion.inference_noise_steps=2",
    "train.epochs=2",
]


def _run(tmp_path, name, *settings):
    return run_training(load_config("demo-diffrec", [*NOISED, *settings]), tmp_path / name, False)


def _losses(run):
    lines = (run.directory / "events.jsonl").read_text().splitlines()
    return [event["loss"] for event in map(json.loads, lines) if event["event"] == "epoch"]


def _eval_at(run, epoch):
    lines = (run.directory / "events.jsonl").read_text().splitlines()
    (event,) = [e for e in map(json.loads, lines) if e["event"] == "eval" and e["epoch"] == epoch]
    return {k: v for k, v in event.items() if k.startswith(("valid/", "test/"))}


def _weights(run):
    return load_file(run.directory / "model" / "weights.safetensors")


def test_noised_scores_do_not_depend_on_the_batch_or_the_global_generator(tmp_path):
    run = _run(tmp_path, "a", "train.eval_every=2")
    model = Predictor.load(run.directory).model
    rows = Predictor.load(run.directory).inputs[:6]
    torch.manual_seed(0)
    first = model.score(rows)
    torch.manual_seed(1)
    assert torch.equal(model.score(rows), first)
    torch.testing.assert_close(model.score(rows[:2]), first[:2])


def test_noised_metrics_do_not_depend_on_eval_batch_size(tmp_path):
    base = _run(tmp_path, "a", "train.eval_every=2")
    other = _run(tmp_path, "b", "train.eval_every=2", "eval.batch_size=37")
    assert other.metrics["valid"] == base.metrics["valid"]
    assert other.metrics["test"] == base.metrics["test"]


def test_validation_does_not_change_what_is_trained(tmp_path):
    """Validating after epoch 1 or not, epoch 2 trains on the same draws (noise, timesteps,
    dropout): evaluation must not take numbers from the training's generator."""
    every = _run(tmp_path, "every", "train.eval_every=1")
    last = _run(tmp_path, "last", "train.eval_every=2")
    assert _losses(every) == _losses(last)
    # Epoch 2's validation and test numbers are those of the same weights in both runs.
    at_2 = _eval_at(every, 2)
    assert "valid/recall@20" in at_2 and at_2 == _eval_at(last, 2)
    # Both keep epoch 2's weights (measured valid recall@20: 0.081 after epoch 1, 0.111 after
    # epoch 2), so the saved weights must be equal: checked, never skipped.
    assert (every.metrics["best_epoch"], last.metrics["best_epoch"]) == (2, 2)
    a, b = _weights(every), _weights(last)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_evaluate_reproduces_the_recorded_metrics_of_a_noised_run(tmp_path):
    run = _run(tmp_path, "a", "train.eval_every=2")
    torch.manual_seed(123)  # wherever the global generator stands
    again = Predictor.load(run.directory).evaluate(averaging=run.metrics["averaging"])
    assert again["valid"] == run.metrics["valid"]
    assert again["test"] == run.metrics["test"]


def test_an_evaluation_pass_noises_each_user_with_draws_of_their_own(tmp_path):
    """In a run's evaluation (and recdiff evaluate) every user's row gets its own T' noise, by
    its row in the pass, as the released code's batch noise does: two users with the same
    history do not share one draw, and how the pass is batched does not matter."""
    import scipy.sparse as sp

    from recdiff.train.run_rows import evaluation_scorer

    run = _run(tmp_path, "a", "train.eval_every=2")
    predictor = Predictor.load(run.directory)
    model, row = predictor.model, predictor.inputs[:1]
    twins = sp.vstack([row, row, predictor.inputs[1:4]], format="csr")
    scores = evaluation_scorer(model, model.score)(twins)
    assert not torch.equal(scores[0], scores[1])  # same history, different draws
    torch.testing.assert_close(model.score(twins)[0], model.score(twins)[1])  # served: alike
    in_two = evaluation_scorer(model, model.score)
    torch.testing.assert_close(torch.cat([in_two(twins[:2]), in_two(twins[2:])]), scores)
    assert torch.equal(evaluation_scorer(model, model.score)(twins), scores)  # a pass repeats
