"""What the trainer keeps, and what it says it kept: the last epoch is validated whatever
``train.eval_every``; without an evaluation function (or in a run written before that), the last
epoch's weights, or their moving average with ``train.ema_decay``, never a "best" epoch."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from typer.testing import CliRunner

from recdiff.cli.main import app
from recdiff.cli.results import selection_line
from recdiff.train.config import TrainConfig, selection_summary
from recdiff.train.trainer import Trainer


class _Line:
    """A linear score of the rows, fitted to 1 by least squares."""

    def __init__(self) -> None:
        self.module = torch.nn.Linear(4, 1, bias=False)

    def loss(self, rows: torch.Tensor) -> torch.Tensor:
        return (self.module(rows) - 1.0).pow(2).mean()

    def score(self, rows: torch.Tensor) -> torch.Tensor:
        return self.module(rows)


def _rows() -> sp.csr_matrix:
    return sp.csr_matrix(np.random.default_rng(0).random((16, 4)))


def _training(**update) -> TrainConfig:
    settings = {"lr": 0.05, "batch_size": 4, "epochs": 2, "eval_every": 5, "progress": False}
    return TrainConfig(**{**settings, **update})


def test_fewer_epochs_than_eval_every_still_validate_the_last_epoch_and_select_on_it():
    """Before, two epochs with validation every five never validated: a warning said the last
    epoch's weights (or their moving average) were kept unjudged."""
    seen = []

    def evaluate(score_fn):
        seen.append(float(score_fn(torch.ones(1, 4))))
        return {"valid": {"recall@20": 0.5}}

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = Trainer(_training(ema_decay=0.9), evaluate).fit(_Line(), _rows())
    assert len(seen) == 1 and [e["epoch"] for e in result.history] == [2]
    assert (result.best_epoch, result.best_metric, result.weight_average) == (2, 0.5, True)
    summary = selection_summary(result)
    assert (summary["validated"], summary["weight_average"]) == (True, True)


def test_validation_every_k_epochs_adds_the_last_one_when_k_does_not_divide_it():
    result = Trainer(
        _training(epochs=7, eval_every=3, patience=100),
        lambda score_fn: {"valid": {"recall@20": 0.5}},
    ).fit(_Line(), _rows())
    assert [e["epoch"] for e in result.history] == [3, 6, 7]


def test_without_an_evaluation_function_best_epoch_is_the_last_one_too():
    """Before, best_epoch stayed 0 (metrics.json said "best_epoch": 0, "validated": false)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing was asked to validate: nothing to warn about
        result = Trainer(_training()).fit(_Line(), _rows())
    assert (result.best_epoch, result.epochs_run, result.weight_average) == (2, 2, False)


@pytest.mark.parametrize(
    ("metrics", "line"),
    [
        ({"best_epoch": 4, "epochs_run": 9, "validated": True}, "best epoch 4"),
        (
            {"best_epoch": 2, "epochs_run": 2, "validated": False, "weight_average": False},
            "no validation ran: kept the weights of the last epoch (2)",
        ),
        (
            {"best_epoch": 2, "epochs_run": 2, "validated": False, "weight_average": True},
            "no validation ran: kept the moving average of the weights of the last epoch (2)",
        ),
        # EASE: no training loop (validated is False there too), lambda chosen on validation
        (
            {"best_epoch": None, "validated": False, "selected": {"l2_lambda": 500.0}},
            "chosen on validation: l2_lambda 500",
        ),
        ({"best_epoch": 3}, "best epoch 3"),  # metrics written before "validated" existed
    ],
)
def test_the_selection_line_claims_a_best_epoch_only_when_validation_chose_it(metrics, line):
    assert selection_line(metrics) == line


def test_recdiff_train_with_fewer_epochs_than_eval_every_selects_the_last_epoch(tmp_path):
    """Before: the warning that no validation ran, and "no validation ran: kept the weights of
    the last epoch (2)" under the metrics."""
    settings = ["train.epochs=2", "train.eval_every=5", "model.hidden_dims=[32]"]
    command = ["train", "demo-diffrec", "--quiet", "--runs-dir", str(tmp_path)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = CliRunner().invoke(app, [*command, *(f"--set={s}" for s in settings)])
    assert result.exit_code == 0, result.output
    assert "best epoch 2" in result.stdout and "no validation ran" not in result.output


@pytest.mark.parametrize("metric", ["foo@20", "recall@0", "recall", "@20"])
def test_a_selection_metric_that_names_no_metric_is_refused_before_training(metric):
    """Before, ``foo@20`` and ``recall@0`` were accepted and failed only after the first
    ``eval_every`` epochs had trained (a KeyError in the trainer)."""
    with pytest.raises(ValueError, match="metric"):
        TrainConfig(metric=metric)


@pytest.mark.parametrize("model_name", ["diffrec", "ldiffrec"])
def test_diffrec_fit_selects_on_any_metric_without_an_evaluate_callback(model_name):
    """DiffRec's and L-DiffRec's own validation computed recall and NDCG only, so a
    ``train.metric`` of hit_rate (or precision, MRR) failed with a KeyError after training."""
    from recdiff.data import demo_splits
    from recdiff.models.diffrec import DiffRec, DiffRecConfig, DiffusionConfig
    from recdiff.models.ldiffrec import LatentConfig, LDiffRec, LDiffRecConfig

    splits = demo_splits()
    training = TrainConfig(
        epochs=2, eval_every=1, batch_size=200, progress=False, metric="hit_rate@20"
    )
    diffusion = DiffusionConfig(steps=5)
    if model_name == "diffrec":
        model = DiffRec(DiffRecConfig(hidden_dims=[32], diffusion=diffusion), training)
    else:
        latent = LatentConfig(epochs=1, latent_dim=20)
        model = LDiffRec(LDiffRecConfig(latent=latent, diffusion=diffusion), training)
    model.fit(splits.train.matrix, splits.valid.matrix)
    events = model.result.history
    assert [[key for key in e if key.startswith("valid/")] for e in events] == [
        ["valid/hit_rate@20"],
        ["valid/hit_rate@20"],
    ]
    assert model.result.best_metric == max(e["valid/hit_rate@20"] for e in events) > 0
