"""What the trainer reports at the edges of a training: patience running out in the last epoch,
a divergence in the last epoch, weights turned non-finite behind a finite loss; finding an
interrupted run to resume whatever characters its name holds, and a damaged event log met on
resuming."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import yaml

from recdiff.config import load_config
from recdiff.eval.ranking import topk_items
from recdiff.train.config import TrainConfig, selection_summary
from recdiff.train.folders import CHECKPOINT_FILE, find_resumable_run, unfinished
from recdiff.train.run import resumable_from, resume_training, run_training
from recdiff.train.trainer import Trainer


class _LeastSquares:
    """A linear map of 3 features to 4 item scores, fitted to 1; from optimizer step
    ``nan_step`` on its loss is NaN, and at step ``nan_gradient_step`` the loss stays finite
    but the gradient is NaN (an overflow in the backward pass, say)."""

    def __init__(self, nan_step: int | None = None, nan_gradient_step: int | None = None) -> None:
        torch.manual_seed(0)
        self.module = torch.nn.Linear(3, 4)
        self.nan_step, self.nan_gradient_step, self.calls = nan_step, nan_gradient_step, 0

    def loss(self, rows: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        loss = (self.module(rows) - 1.0).pow(2).mean()
        if self.calls == self.nan_gradient_step:
            weight = self.module.weight
            # sqrt'(0) is infinite: the term adds 0 to the loss and NaN to the gradient
            loss = loss + 0.0 * torch.sqrt(weight - weight.detach()).sum()
        if self.nan_step is not None and self.calls >= self.nan_step:
            loss = loss * float("nan")
        return loss

    def score(self, rows: sp.csr_matrix) -> torch.Tensor:
        return self.module(torch.as_tensor(rows.toarray(), dtype=torch.float32))


def _rows() -> sp.csr_matrix:
    """12 rows: 3 steps an epoch in batches of 4."""
    return sp.csr_matrix(np.random.default_rng(0).random((12, 3)))


def _curve(values):
    """A validation callback that reports ``values`` in turn, after ranking the model's scores
    as every evaluation does (which refuses NaN scores)."""
    values = iter(values)

    def evaluate(score):
        topk_items(score(_rows()), 2)
        return {"valid": {"recall@20": next(values)}}

    return evaluate


def _training(**update) -> TrainConfig:
    settings = {"lr": 0.01, "batch_size": 4, "epochs": 12, "eval_every": 1, "progress": False}
    return TrainConfig(**{**settings, **update})


# best at epoch 2, never beaten after it
_CURVE = [0.1, 0.3, 0.2, 0.25, 0.2, 0.1, 0.15, 0.2, 0.1, 0.1, 0.1, 0.1]


@pytest.mark.parametrize(
    ("patience", "epochs_run", "stopped_early"),
    [
        (9, 11, True),  # 9 epochs after epoch 2: one epoch was left to train
        (10, 12, False),  # spent in the last epoch: every epoch ran, nothing was stopped
        (11, 12, False),  # never spent
    ],
)
def test_patience_spent_in_the_last_epoch_is_no_early_stop(patience, epochs_run, stopped_early):
    """Before, patience running out in the last epoch set stopped_early, and metrics.json said
    "stopped_early": true beside "epochs_run" equal to train.epochs."""
    result = Trainer(_training(patience=patience), _curve(_CURVE)).fit(_LeastSquares(), _rows())
    assert (result.best_epoch, result.epochs_run) == (2, epochs_run)
    assert result.stopped_early is stopped_early
    assert selection_summary(result)["stopped_early"] is stopped_early


@pytest.mark.parametrize(("epochs", "stopped_early"), [(12, False), (13, True)])
def test_a_divergence_in_the_last_epoch_is_no_early_stop(epochs, stopped_early):
    model = _LeastSquares(nan_step=34)  # epoch 12's first step
    trainer = Trainer(_training(epochs=epochs, patience=20), _curve(_CURVE))
    with pytest.warns(UserWarning, match=r"diverged in epoch 12 \(mean loss nan\); kept epoch 2"):
        result = trainer.fit(model, _rows())
    assert (result.diverged_epoch, result.epochs_run, result.best_epoch) == (12, 12, 2)
    assert result.stopped_early is stopped_early


def test_weights_turned_non_finite_behind_a_finite_loss_are_a_divergence():
    """The last step of epoch 3 has a finite loss and a NaN gradient: epoch 3's mean loss is
    finite, its weights are not. Before, validating them failed on NaN scores ("scores contain
    NaN"), and the run was lost although epochs 1 and 2 had been validated."""
    events = []
    model = _LeastSquares(nan_gradient_step=9)
    trainer = Trainer(_training(), _curve([0.2, 0.3, 0.9]), events.append)
    expected = r"diverged in epoch 3 \(its weights turned non-finite\); kept epoch 2"
    with pytest.warns(UserWarning, match=expected):
        result = trainer.fit(model, _rows())
    assert (result.diverged_epoch, result.epochs_run, result.best_epoch) == (3, 3, 2)
    assert result.stopped_early and len(result.history) == 2  # epoch 3 was not validated
    assert [(e["event"], e["epoch"]) for e in events][-2:] == [("epoch", 3), ("diverged", 3)]
    assert np.isfinite(events[-1]["loss"])  # the loss did not show it
    assert all(torch.isfinite(p).all() for p in model.module.parameters())


def test_weights_turned_non_finite_before_any_validation_fail_naming_the_epoch():
    trainer = Trainer(_training(eval_every=5), _curve([0.2]))
    expected = r"diverged in epoch 1 \(its weights turned non-finite\), before any validated"
    with pytest.raises(ValueError, match=expected):
        trainer.fit(_LeastSquares(nan_gradient_step=3), _rows())


@pytest.mark.parametrize("name", ["plain", "ml[1m]", "run*2"])
def test_an_interrupted_run_is_found_whatever_its_name_holds(tmp_path, name):
    """Before, a name holding glob's brackets ("ml[1m]") was read as a pattern: `recdiff
    experiment` found no interrupted run to resume and trained it again from the start."""
    config = load_config("demo-diffrec").model_copy(update={"name": name})
    final = tmp_path / f"{name}-20261130-010203"
    final.mkdir()
    hidden = unfinished(final)
    hidden.mkdir()
    (hidden / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json")))
    (hidden / CHECKPOINT_FILE).write_bytes(b"")
    assert find_resumable_run(tmp_path, config) == final
    other = config.model_copy(update={"name": "another"})
    assert find_resumable_run(tmp_path, other) is None


@pytest.mark.parametrize(
    ("line", "shown"), [('{"event": "epoch", "ep', "Unterminated string"), ("[1, 2]", "a list")]
)
def test_a_damaged_event_log_is_named_with_its_line_on_resuming(
    interrupt_at, tmp_path, line, shown
):
    """Before, resuming failed with json's bare "Unterminated string starting at: line 1 column
    20 (char 19)", naming neither the file nor its line (a list failed later, with a
    traceback); the run stays resumable once the line is back."""
    settings = ["train.epochs=4", "train.eval_every=1", "train.checkpoint_every=2"]
    config = load_config("demo-diffrec", [*settings, "model.hidden_dims=[16]"])
    with pytest.raises(KeyboardInterrupt) as stop:
        run_training(config, tmp_path, progress=False, on_event=interrupt_at(3))
    run = resumable_from(stop.value)
    log = unfinished(run) / "events.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join([lines[0], line + "\n", *lines[2:]]))
    expected = rf"events.jsonl, line 2, is not an event record \({shown}.*train the run again"
    with pytest.raises(ValueError, match=expected):
        resume_training(run, progress=False)
    log.write_text("".join(lines))
    assert resume_training(run, progress=False).metrics["epochs_run"] == 4
