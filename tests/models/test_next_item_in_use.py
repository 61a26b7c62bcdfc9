"""Next-item models (SASRec, DreamRec, most-popular) as a researcher uses them: a run on a tiny
sequence file checked by hand, sweeps from Python, settings that must be refused by name, and a
run folder holding another run's model."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from recdiff.config import load_config
from recdiff.models.dreamrec import DreamRec
from recdiff.models.dreamrec_config import DreamRecConfig, GuidedDiffusionConfig
from recdiff.serving.predictor import Predictor
from recdiff.train.config import TrainConfig
from recdiff.train.run import run_training

# Items a..g, t, z (indices 0..8 in sorted order). Leave-one-out: u2 (2 items) is tested only,
# u3 (1 item) nowhere, u5 is tested on t, which nothing before it holds; u4 repeats c.
TINY = """u1 a b c d e f g
u2 b c
u3 z
u4 c c d c e
u5 a b t
u6 a b c d
"""


def _tiny_config(tmp_path, model: str, *overrides: str):
    source = tmp_path / "tiny.txt"
    source.write_text(TINY)
    data = [f"data.source={source}", "data.max_len=3", "data.split=leave_one_out"]
    settings = ["data.format=sequences", *data, "eval.ks=[1,5,10,20]", f"name=tiny-{model}"]
    if model == "mostpop":  # no preset on own data: counted, so no train settings
        preset = tmp_path / "mostpop.yaml"
        preset.write_text("model:\n  name: mostpop\ntrain:\n  metric: hit_rate@10\n")
        return load_config(str(preset), [*settings, "eval.metrics=[hit_rate,ndcg]", *overrides])
    return load_config(f"demo-{model}", [*settings, *overrides])


@pytest.fixture(scope="module")
def mostpop_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tiny-mostpop")
    return run_training(_tiny_config(tmp, "mostpop"), tmp / "runs", progress=False)


def test_most_popular_on_a_tiny_file_matches_the_hand_computation(mostpop_run):
    # Train targets (max_len 3): u1 b c d e, u4 c d, u6 b -> counts b 2, c 2, d 2, e 1, rest 0.
    # Ranking (ties: lower index first): b c d e a f g t z. Valid targets f c b c sit at ranks
    # 5 1 0 1; test targets g c e t d at 6 1 3 7 2. K = 20 exceeds the 9 items: every hit.
    valid, test = mostpop_run.metrics["valid"], mostpop_run.metrics["test"]
    ndcg = lambda ranks, k: sum(1 / np.log2(r + 2) for r in ranks if r < k)  # noqa: E731
    assert valid["hit_rate@1"] == pytest.approx(1 / 4)
    assert valid["hit_rate@5"] == pytest.approx(3 / 4)
    assert valid["ndcg@5"] == pytest.approx(ndcg([5, 1, 0, 1], 5) / 4)
    assert valid["hit_rate@20"] == valid["hit_rate@10"] == 1.0
    assert test["hit_rate@1"] == 0.0
    assert test["hit_rate@5"] == pytest.approx(3 / 5)
    assert test["ndcg@10"] == pytest.approx(ndcg([6, 1, 3, 7, 2], 10) / 5)
    assert test["ndcg@20"] == pytest.approx(test["ndcg@10"])
    assert mostpop_run.metrics["data"]["test"] == 5 and mostpop_run.metrics["data"]["valid"] == 4


def test_a_run_holding_another_models_weights_is_named_damaged(mostpop_run, tmp_path):
    # A SASRec model copied into a most-popular run used to be loaded, evaluated and served
    # under the run's name, with no error.
    sasrec = run_training(
        _tiny_config(tmp_path, "sasrec", "train.epochs=1", "train.eval_every=1", "model.dim=8"),
        tmp_path / "runs",
        progress=False,
    )
    mixed = tmp_path / "mixed"
    shutil.copytree(mostpop_run.directory, mixed)
    shutil.rmtree(mixed / "model")
    shutil.copytree(sasrec.directory / "model", mixed / "model")
    with pytest.raises(ValueError, match=r"holds a sasrec model, but config.yaml trains a mostpop"):
        Predictor.load(mixed)
    assert Predictor.load(sasrec.directory).model.model_name == "sasrec"


def test_a_row_run_holding_another_models_weights_is_named_damaged(tmp_path):
    """The same for the models of users' rows, whose registered names differ in case (EASE)."""
    runs = tmp_path / "runs"
    ease = run_training(load_config("demo-ease"), runs, progress=False).directory
    popularity = run_training(load_config("demo-popularity"), runs, progress=False).directory
    shutil.rmtree(ease / "model")
    shutil.copytree(popularity / "model", ease / "model")
    with pytest.raises(
        ValueError, match=r"holds a Popularity model, but config.yaml trains a ease"
    ):
        Predictor.load(ease)
    assert Predictor.load(popularity).model.model_name == "Popularity"


def _untrained_dreamrec(**diffusion) -> DreamRec:
    """A built (not fitted) DreamRec: its sampling is what these tests look at."""
    config = DreamRecConfig(
        dim=8, hidden_dims=[16], diffusion=GuidedDiffusionConfig(steps=20, **diffusion)
    )
    model = DreamRec(config, TrainConfig(seed=3, progress=False)).build(n_items=6, max_len=3)
    model.net.eval()
    return model


def test_a_changed_eta_is_used_by_the_next_sampling():
    # The samplers were cached by (kind, steps, device): setting config.diffusion.eta for a
    # sweep kept sampling with the first eta.
    history = torch.tensor([[6, 0, 1], [2, 3, 4]])
    model = _untrained_dreamrec()
    deterministic = model.score(history, sampler="ddim", sampling_steps=4)
    model.config.diffusion.eta = 1.0
    swept = model.score(history, sampler="ddim", sampling_steps=4)
    fresh = _untrained_dreamrec(eta=1.0).score(history, sampler="ddim", sampling_steps=4)
    assert model.sampler("ddim", 4).eta == 1.0
    torch.testing.assert_close(swept, fresh, rtol=0, atol=0)
    assert not torch.equal(swept, deterministic)


def test_bad_guidance_weights_name_the_setting():
    model = _untrained_dreamrec()
    history = torch.tensor([[6, 0, 1]])
    for w in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"guidance_weight must be a finite number >= 0"):
            model.score(history, guidance_weight=w)
    for w in (True, "2"):  # True was taken for w = 1; "2" failed inside a comparison
        with pytest.raises(TypeError, match=r"guidance_weight must be a number"):
            model.score(history, guidance_weight=w)
    torch.testing.assert_close(
        model.score(history, guidance_weight=np.float32(0.0)),
        model.score(history, guidance_weight=0),
    )


def test_a_negative_sample_seed_is_refused_by_the_config():
    # A negative seed was accepted, and the run failed after training, at its first evaluation
    # ("expected non-negative integer", naming no setting).
    for seed in (-1, 2**64):
        with pytest.raises(ValidationError, match="sample_seed"):
            DreamRecConfig(sample_seed=seed)
    assert DreamRecConfig(sample_seed=2**64 - 1).sample_seed == 2**64 - 1
