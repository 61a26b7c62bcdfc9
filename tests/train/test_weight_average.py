"""The trainer's exponential moving average of the weights (``train.ema_decay``), against the
average computed by hand from the recorded trajectory of the trained weights."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from pydantic import ValidationError

from recdiff.train.averaging import WeightAverage
from recdiff.train.config import TrainConfig
from recdiff.train.trainer import Trainer


class _Recorder:
    """Least squares on a 3-vector; ``loss`` records the weights each step starts from."""

    def __init__(self) -> None:
        self.module = torch.nn.ParameterDict(
            {"w": torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))}
        )
        self.seen: list[torch.Tensor] = []

    def loss(self, rows: torch.Tensor) -> torch.Tensor:
        self.seen.append(self.module["w"].detach().clone())
        return ((rows @ self.module["w"]) - 1.0).pow(2).mean()

    def score(self, rows):
        raise NotImplementedError


def _rows() -> sp.csr_matrix:
    rng = np.random.default_rng(0)
    return sp.csr_matrix(rng.random((12, 3)) * (rng.random((12, 3)) < 0.7) + np.eye(12, 3))


def _by_hand(trajectory: list[torch.Tensor], decay: float) -> list[torch.Tensor]:
    """EMA after each step: a_0 = w_0; a_n = d_n a_(n-1) + (1 - d_n) w_n, d_n = min(decay,
    (1 + n) / (10 + n))."""
    averages, average = [], trajectory[0].clone()
    for n, weights in enumerate(trajectory[1:], start=1):
        d = min(decay, (1 + n) / (10 + n))
        average = d * average + (1 - d) * weights
        averages.append(average)
    return averages


def test_weight_average_first_updates_by_hand():
    module = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        module.weight.fill_(0.0)
    average = WeightAverage(module, decay=0.9)
    with torch.no_grad():
        module.weight.fill_(1.0)
    average.update()  # d_1 = 2 / 11
    assert average.average[0].item() == pytest.approx(9 / 11)
    average.update()  # d_2 = 3 / 12: 0.25 * 9/11 + 0.75
    assert average.average[0].item() == pytest.approx(0.25 * 9 / 11 + 0.75)
    for _ in range(100):  # the decay caps at 0.9 once (1 + n) / (10 + n) exceeds it
        average.update()
    with torch.no_grad():
        module.weight.fill_(3.0)
    before = average.average[0].item()
    average.update()
    assert average.average[0].item() == pytest.approx(0.9 * before + 0.1 * 3.0)
    with average.applied():
        assert module.weight.item() == pytest.approx(average.average[0].item())
    assert module.weight.item() == 3.0  # the trained weights are back


def test_trainer_validates_and_keeps_the_average_of_the_best_epoch():
    rows, decay = _rows(), 0.8
    training = TrainConfig(
        lr=0.05, batch_size=4, epochs=4, eval_every=1, patience=10, progress=False, seed=3
    )
    plain = _Recorder()
    Trainer(training).fit(plain, rows)

    seen_at_eval: list[torch.Tensor] = []
    model = _Recorder()

    def evaluate(score_fn):
        seen_at_eval.append(model.module["w"].detach().clone())
        # Epoch 2 is the best on this made-up validation curve.
        return {"valid": {"recall@20": [0.1, 0.3, 0.2, 0.25][len(seen_at_eval) - 1]}}

    result = Trainer(training.model_copy(update={"ema_decay": decay}), evaluate).fit(model, rows)
    # Averaging never changes what is trained: the same steps from the same weights.
    assert len(model.seen) == len(plain.seen) == 12
    for ours, theirs in zip(model.seen, plain.seen, strict=True):
        torch.testing.assert_close(ours, theirs)
    # The weights each step started from give the averages after steps 1 .. 11 (3 an epoch).
    steps_per_epoch = 3
    averages = _by_hand(model.seen, decay)
    for epoch, weights in enumerate(seen_at_eval, start=1):
        step = epoch * steps_per_epoch
        if step < len(model.seen):
            torch.testing.assert_close(weights, averages[step - 1])
    assert result.best_epoch == 2
    torch.testing.assert_close(model.module["w"].detach(), averages[2 * steps_per_epoch - 1])


def test_without_validation_the_average_is_kept():
    rows, decay = _rows(), 0.5
    training = TrainConfig(lr=0.05, batch_size=4, epochs=2, progress=False, seed=3)
    raw = _Recorder()
    Trainer(training).fit(raw, rows)
    model = _Recorder()
    Trainer(training.model_copy(update={"ema_decay": decay})).fit(model, rows)
    trajectory = [*model.seen, raw.module["w"].detach()]  # + the weights after the last step
    torch.testing.assert_close(model.module["w"].detach(), _by_hand(trajectory, decay)[-1])
    assert not torch.allclose(model.module["w"], raw.module["w"])


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.1])
def test_decay_outside_the_open_unit_interval_is_refused(decay):
    with pytest.raises(ValidationError, match="ema_decay"):
        TrainConfig(ema_decay=decay)


def test_extra_state_without_its_loader_is_refused_before_training():
    class Half(_Recorder):
        def extra_state(self) -> dict[str, torch.Tensor]:
            return {}

    model = Half()
    with pytest.raises(TypeError, match="extra_state / load_extra_state"):
        Trainer(TrainConfig(epochs=1, progress=False)).fit(model, _rows())
    assert model.seen == []  # refused before any step


def test_an_evaluation_that_raises_leaves_the_trained_weights_in_place():
    model, rows = _Recorder(), _rows()
    training = TrainConfig(lr=0.05, batch_size=4, epochs=1, eval_every=1, ema_decay=0.5,
                           progress=False)  # fmt: skip

    def evaluate(score_fn):
        raise RuntimeError("validation data went missing")

    with pytest.raises(RuntimeError, match="went missing"):
        Trainer(training, evaluate).fit(model, rows)
    plain = _Recorder()
    Trainer(training.model_copy(update={"ema_decay": None})).fit(plain, rows)
    torch.testing.assert_close(model.module["w"].detach(), plain.module["w"].detach())


def test_with_fewer_epochs_than_eval_every_the_last_epoch_is_validated_and_kept():
    """Before, two epochs with validation every five never validated (a warning said so)."""
    model, rows = _Recorder(), _rows()
    training = TrainConfig(lr=0.05, batch_size=4, epochs=2, eval_every=5, progress=False)
    result = Trainer(training, lambda score_fn: {"valid": {"recall@20": 1.0}}).fit(model, rows)
    assert result.best_epoch == 2 and [e["epoch"] for e in result.history] == [2]
