"""Early stopping: patience in epochs, and optionally in optimizer steps (train.patience_steps)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from pydantic import ValidationError

from recdiff.train.config import TrainConfig
from recdiff.train.trainer import Trainer


class _LeastSquares:
    module: torch.nn.Module

    def __init__(self) -> None:
        self.module = torch.nn.Linear(3, 1)

    def loss(self, rows: torch.Tensor) -> torch.Tensor:
        return (self.module(rows) - 1.0).pow(2).mean()

    def score(self, rows):
        raise NotImplementedError


def _fit(**settings):
    """12 rows in batches of 4 (3 steps an epoch), validated every epoch on a made-up curve
    whose best is epoch 2."""
    rows = sp.csr_matrix(np.random.default_rng(0).random((12, 3)))
    curve = iter([0.1, 0.3, 0.2, 0.25, 0.2, 0.1, 0.15, 0.2, 0.1, 0.1, 0.1, 0.1])
    training = TrainConfig(lr=0.01, batch_size=4, epochs=12, eval_every=1, progress=False)
    return Trainer(
        training.model_copy(update=settings), lambda score: {"valid": {"recall@20": next(curve)}}
    ).fit(_LeastSquares(), rows)


@pytest.mark.parametrize(
    ("settings", "epochs_run"),
    [
        ({"patience": 3}, 5),  # 3 epochs after the best
        ({"patience": 3, "patience_steps": 6}, 5),  # 6 steps is 2 epochs: the epochs decide
        ({"patience": 3, "patience_steps": 9}, 5),  # 9 steps is the same 3 epochs
        ({"patience": 3, "patience_steps": 10}, 6),  # 10 steps need a 4th epoch
        ({"patience": 1, "patience_steps": 21}, 9),  # 7 epochs of 3 steps after epoch 2
        ({"patience": 3, "patience_steps": 100}, 12),  # never: the epoch budget ends it
    ],
)
def test_stopping_waits_for_both_epochs_and_steps_without_gain(settings, epochs_run):
    result = _fit(**settings)
    assert result.epochs_run == epochs_run
    assert result.stopped_early == (epochs_run < 12)
    assert (result.best_epoch, result.best_step, result.steps) == (2, 6, 3 * epochs_run)


def test_patience_steps_must_be_positive():
    with pytest.raises(ValidationError, match="patience_steps"):
        TrainConfig(patience_steps=0)


class _DivergesAt(_LeastSquares):
    """Least squares whose loss turns NaN from optimizer step ``step`` on."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.step, self.calls = step, 0

    def loss(self, rows: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        loss = super().loss(rows)
        return loss * float("nan") if self.calls >= self.step else loss


def test_divergence_keeps_the_best_validated_epoch_and_says_so():
    rows = sp.csr_matrix(np.random.default_rng(0).random((12, 3)))
    model = _DivergesAt(step=13)  # epoch 5's first step (3 steps an epoch)
    curve = iter([0.1, 0.3, 0.2, 0.25, 0.9])
    training = TrainConfig(lr=0.01, batch_size=4, epochs=12, eval_every=1, progress=False)
    trainer = Trainer(training, lambda score: {"valid": {"recall@20": next(curve)}})
    with pytest.warns(UserWarning, match=r"diverged in epoch 5 \(mean loss nan\); kept epoch 2"):
        result = trainer.fit(model, rows)
    assert (result.diverged_epoch, result.epochs_run, result.best_epoch) == (5, 5, 2)
    assert result.stopped_early and len(result.history) == 4  # epoch 5 was not validated
    assert all(torch.isfinite(p).all() for p in model.module.parameters())


def test_divergence_before_any_validation_is_an_error_naming_the_lr():
    rows = sp.csr_matrix(np.random.default_rng(0).random((12, 3)))
    training = TrainConfig(lr=0.01, batch_size=4, epochs=12, eval_every=5, progress=False)
    trainer = Trainer(training, lambda score: {"valid": {"recall@20": 0.1}})
    with pytest.raises(ValueError, match=r"diverged in epoch 2 .* lower train\.lr \(now 0\.01\)"):
        trainer.fit(_DivergesAt(step=4), rows)


class _GrowsFrom(_LeastSquares):
    """Least squares whose loss is multiplied by ``factor`` from optimizer step ``step`` on:
    finite, but far above where training began."""

    def __init__(self, step: int, factor: float) -> None:
        super().__init__()
        self.step, self.factor, self.calls = step, factor, 0

    def loss(self, rows: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        loss = super().loss(rows)
        return loss * self.factor if self.calls >= self.step else loss


def _fit_model(model, epochs=4):
    rows = sp.csr_matrix(np.random.default_rng(0).random((12, 3)))
    training = TrainConfig(lr=0.01, batch_size=4, epochs=epochs, eval_every=1, progress=False)
    return Trainer(training, lambda score: {"valid": {"recall@20": 0.1}}).fit(model, rows)


def test_a_loss_grown_a_thousandfold_is_warned_of_once_naming_the_lr():
    """A learning rate far too high can send the loss to 1e19 without a NaN: the run finished
    with metrics that looked like a model's, and nothing said so."""
    with pytest.warns(UserWarning, match=r"mean loss of epoch 3 .* times the first step's") as seen:
        result = _fit_model(_GrowsFrom(step=7, factor=1e6))  # epoch 3 on
    growth = [w for w in seen if "times the first step's" in str(w.message)]
    assert len(growth) == 1 and "lower train.lr (now 0.01)" in str(growth[0].message)
    assert result.epochs_run == 4 and result.diverged_epoch is None  # a warning, not a stop


def test_a_loss_that_falls_or_grows_moderately_is_not_warned_of():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        _fit_model(_LeastSquares())
        _fit_model(_GrowsFrom(step=7, factor=100.0))
