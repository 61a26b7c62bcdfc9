"""A metric's cut-off written with leading zeros (``recall@020``) is the evaluator's
``recall@20`` everywhere a metric is named: a user's walk found it accepted by every check, then
a KeyError after training (train, tune and experiment alike)."""

from __future__ import annotations

import pytest

from recdiff.config import load_config
from recdiff.data import demo_splits
from recdiff.experiments.experiment import run_experiment
from recdiff.experiments.tune import selection_metric
from recdiff.models.diffrec import DiffRec, DiffRecConfig, DiffusionConfig
from recdiff.models.multvae import MultVAEConfig
from recdiff.train.config import TrainConfig


def test_the_trainers_metric_is_named_as_the_evaluator_names_it():
    assert TrainConfig(metric="recall@020").metric == "recall@20"
    assert MultVAEConfig(valid_metric="ndcg@010").valid_metric == "ndcg@10"
    assert load_config("demo-diffrec", ["train.metric=recall@020"]).train.metric == "recall@20"
    for bad in ("recall@²", "recall@0", "recall@-5", "recall@"):
        with pytest.raises(ValueError, match="must look like 'recall@20'"):
            TrainConfig(metric=bad)


def test_a_model_selects_on_a_cut_off_written_with_zeros():
    splits = demo_splits()
    config = DiffRecConfig(hidden_dims=[32], diffusion=DiffusionConfig(steps=5))
    training = TrainConfig(epochs=1, batch_size=200, progress=False, metric="recall@020")
    model = DiffRec(config, training).fit(splits.train.matrix, splits.valid.matrix)
    assert model.result.best_epoch == 1
    assert set(model.result.best_metrics["valid"]) == {"recall@20"}


def test_tune_and_experiment_take_it_too(tmp_path):
    config = load_config("demo-popularity")
    assert selection_metric("valid/recall@020", config) == "recall@20"
    result = run_experiment([config], 1, tmp_path / "exp", metric="recall@020")
    assert result.records[0].valid["recall@20"] > 0
    assert "validation recall@20" in (tmp_path / "exp" / "results.md").read_text()
