"""The training loop shared by recdiff's neural recommenders.

The trainer owns what a model should not: the optimizer, the epoch loop over shuffled user rows,
mixed precision, periodic validation, early stopping on a validation metric, and restoring the
best weights. It is thrown away after ``fit``; the model keeps only what inference needs.

A model is trained through the small :class:`Trainable` protocol: a ``module`` whose parameters are
optimised and ``loss(batch)``. What a batch is comes from the training data (``TrainData``,
:mod:`recdiff.train.batches`): a dense block of user rows for the DiffRec family (``RowBatches``,
built from a CSR), a dict of history/target tensors for next-item models (``ExampleBatches``).
Selection uses the validation split only; other splits (e.g. test) may be evaluated in the same
pass for the curves, never for choosing. The settings and the result are
:mod:`recdiff.train.config`'s types; what a resume checkpoint keeps of a stage is
:mod:`recdiff.train.checkpoint`'s.

Under torchrun the trainer is also where data-parallel training happens (:mod:`recdiff.train.
distributed`): each process trains on its shard of every global batch through a DDP wrapper around
``model.loss``, so any Trainable gets it without code of its own; rank 0 evaluates and logs.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp
import torch

from recdiff._warnings import warn
from recdiff.memory import format_bytes, require_memory
from recdiff.progress import progress_bar
from recdiff.train.averaging import WeightAverage
from recdiff.train.batches import RowBatches, TrainData
from recdiff.train.checkpoint import (
    active_checkpoints,
    model_extra_state,
    progress_state,
    restore_ended,
    restore_progress,
    restore_weights,
    result_state,
    weights_state,
)
from recdiff.train.config import MAX_EPOCHS, TrainConfig, TrainResult
from recdiff.train.config import selection_summary as selection_summary
from recdiff.train.config import stage_summaries as stage_summaries
from recdiff.train.distributed import (
    all_reduce_sum,
    broadcast_object,
    data_parallel_loss,
    epoch_batches,
    failure_is_final,
    init_from_env,
    rank,
    rank_seed,
    shard,
    world_size,
)

__all__ = [
    "MAX_EPOCHS",
    "OnEvent",
    "TrainConfig",
    "TrainResult",
    "Trainable",
    "Trainer",
    "autocast",
    "seed_everything",
]

#: A mean epoch loss this many times the first step's is warned of as diverging.
LOSS_GROWTH = 1e3

# MAX_EPOCHS, TrainConfig, TrainResult and the summaries moved to recdiff.train.config; they stay
# importable from here, where code written before the move imports them.


class Trainable(Protocol):
    """What the trainer needs from a model."""

    module: torch.nn.Module

    def loss(self, batch: Any) -> torch.Tensor:
        """Mean training loss over the examples of one batch from :meth:`TrainData.batch`.

        Under DDP it is called on each process's shard of the global batch; it must be a mean
        over examples for the weighted shards to add up to the global batch's mean.
        """

    def score(self, *inputs: Any) -> Any:
        """``[batch, n_items]`` scores (module in eval mode), for the caller's ``evaluate``."""

    # Optional:
    # - ``loss_weight(batch) -> float | None``, how many terms :meth:`loss` averages over when
    #   that is not the number of examples (e.g. every position of a sequence; None: the
    #   examples). Under DDP the shards are then weighted by it, so the step follows the global
    #   mean over those terms.
    # - ``extra_state() -> dict[str, Tensor]`` and ``load_extra_state(state)``: state outside
    #   the module that belongs with the selected weights (e.g. a loss history); kept and
    #   restored with them.
    # - ``training_state() -> dict`` and ``load_training_state(state)``: plain values outside
    #   the module that the loss advances as training goes (e.g. a KL annealing step count);
    #   resume checkpoints (:mod:`recdiff.train.checkpoint`) keep and restore them.
    # - ``parameter_groups() -> list[dict]``: the optimizer's parameter groups (``params`` plus
    #   settings such as ``lr`` that override the config's for that group), covering the module's
    #   parameters; frozen ones are left out. Default: one group, the config's settings.
    # - ``trains_every_parameter: bool``, True when every loss gives each trainable parameter a
    #   gradient. DDP then skips its per-step search for unused parameters (and its warning that
    #   it found none). Default: False, the search, right for any model.


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch and numpy; return a numpy-independent torch generator for shuffling."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (seeds any legacy numpy RNG use downstream)
    return torch.Generator().manual_seed(seed)


def autocast(
    precision: str, device: str | torch.device = "cpu"
) -> contextlib.AbstractContextManager:
    """bfloat16 autocast for ``bf16`` (matmuls in bf16, reductions in fp32); no-op for fp32."""
    if precision == "bf16":
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


Evaluate = Callable[[Callable[[sp.csr_matrix], Any]], dict[str, dict[str, float]]]
OnEvent = Callable[[dict[str, Any]], None]


class Trainer:
    """Epochs of shuffled mini-batches, validation every ``eval_every`` epochs and after the
    last, early stopping.

    Args:
        config: the training settings.
        evaluate: maps a score function to ``{"valid": {metric: value}, ...}``; only ``valid``
            selects. None trains for ``epochs`` without selection. Under torchrun it runs on rank
            0 only, and its metrics are broadcast to the other processes.
        on_event: called with each epoch's and evaluation's record (for run logs), with the same
            records on every process (an epoch's loss is the mean over all processes' examples, or
            over the loss terms a model's ``loss_weight`` counts).
        settings: the config keys its messages name for ``lr``, where a pre-training stage
            takes it from elsewhere (default ``train.lr``).
    """

    def __init__(
        self,
        config: TrainConfig,
        evaluate: Evaluate | None = None,
        on_event: OnEvent | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.config = config
        self.evaluate = evaluate
        self.on_event = on_event or (lambda record: None)
        self.settings = settings or {}

    def _key(self, name: str) -> str:
        """The config key a message names for the training setting ``name``."""
        return self.settings.get(name, f"train.{name}")

    def _optimizer(self, model: Trainable) -> torch.optim.Optimizer:
        kind = torch.optim.AdamW if self.config.optimizer == "adamw" else torch.optim.Adam
        custom = getattr(model, "parameter_groups", None)
        groups = custom() if custom else [{"params": list(model.module.parameters())}]
        # Frozen parts stay put; a group left with nothing to train is dropped.
        groups = [
            {**group, "params": [p for p in group["params"] if p.requires_grad]} for group in groups
        ]
        groups = [group for group in groups if group["params"]]
        # The fused kernel updates all parameters in one pass: on CPU it is several times faster
        # than the per-tensor loop, which otherwise costs as much as the forward/backward here.
        return kind(groups, lr=self.config.lr, weight_decay=self.config.weight_decay, fused=True)

    def _check_memory(self, model: Trainable) -> None:
        """Refuse, before the first step, a model on the CPU whose training state alone does not
        fit in the memory available: beside its weights, a gradient and Adam's two moments per
        trainable weight, and copies of the weights for the best epoch and the average. (A
        lower bound: the batches' activations come on top.) Mult-VAE's [600] layers over
        1,000,000 items are 1.2 billion weights, 24 GB with that state: the kernel would kill
        the process in the first epoch, without a word."""
        if torch.device(self.config.device).type != "cpu":
            return
        count = weights = trainable = 0
        for parameter in model.module.parameters():
            size = parameter.numel() * parameter.element_size()
            count += parameter.numel()
            weights += size
            trainable += size if parameter.requires_grad else 0
        copies = (self.evaluate is not None) + bool(self.config.ema_decay)
        require_memory(
            3 * trainable + copies * weights,
            f"training {type(model).__name__} ({count:,} weights, {format_bytes(weights)}) "
            "for its gradients, Adam's moments and the best epoch's copy",
            "train a smaller model: fewer items (data.k_core=K drops items with fewer than K "
            "interactions), narrower layers (model.hidden_dims), L-DiffRec for a wide "
            "catalogue; or train on a GPU (train.device=cuda)",
        )

    def fit(self, model: Trainable, train: sp.csr_matrix | TrainData) -> TrainResult:
        """Train ``model`` on ``train``: a users x items CSR (rows may be weighted), or any
        :class:`TrainData`."""
        with failure_is_final():  # under torchrun, a failed process exits and stops the others
            return self._fit(model, train)

    def _fit(self, model: Trainable, train: sp.csr_matrix | TrainData) -> TrainResult:
        cfg = self.config
        data = RowBatches(train) if sp.issparse(train) else train
        init_from_env(cfg.device)
        this_rank, world = rank(), world_size()
        if hasattr(model, "extra_state") != hasattr(model, "load_extra_state"):
            raise TypeError(
                f"{type(model).__name__} defines one of extra_state / load_extra_state; "
                "a Trainable needs both (to restore what it keeps) or neither"
            )
        checkpoints = active_checkpoints()
        stage = checkpoints.begin_stage() if checkpoints is not None else -1
        ended = checkpoints.finished_stage(stage) if checkpoints is not None else None
        if ended is not None:  # resumed after this stage had ended: it is not trained again
            return restore_ended(model, ended, cfg.device)
        generator = seed_everything(cfg.seed)  # the same shuffling in every process
        if world > 1:
            torch.manual_seed(rank_seed(cfg.seed, this_rank))  # but each its own noise
        model.module.to(cfg.device)
        self._check_memory(model)
        optimizer = self._optimizer(model)
        compute_loss = data_parallel_loss(model, cfg.device)  # model.loss in one process
        loss_weight = getattr(model, "loss_weight", None)
        average = WeightAverage(model.module, cfg.ema_decay) if cfg.ema_decay else None
        result = TrainResult()
        best_state: dict[str, Any] | None = None
        first, seconds_before = 1, 0.0
        saved = checkpoints.progress(stage) if checkpoints is not None else None
        if saved is not None:  # resumed inside this stage: from its last checkpoint
            result, best_state = restore_progress(saved, model, optimizer, generator, average)
            restore_weights(model, saved, cfg.device)
            first, seconds_before = result.epochs_run + 1, result.seconds
        start = time.perf_counter() - seconds_before
        opening: float | None = None  # the loss of this call's first step, before any update
        epochs = progress_bar(
            range(first, cfg.epochs + 1), show=cfg.progress and this_rank == 0, desc="epochs"
        )
        for epoch in epochs:
            model.module.train()
            epoch_start, count = time.perf_counter(), 0
            # Summed on the loss's device and read once an epoch: a float() every step would
            # wait for a GPU to finish it (float64, the same sums as Python floats on a CPU).
            total = torch.zeros((), dtype=torch.float64, device=cfg.device)
            order = torch.randperm(len(data), generator=generator).numpy()
            for index in epoch_batches(order, cfg.batch_size, world):
                local = shard(index, this_rank, world)
                batch = data.batch(local, cfg.device)
                with autocast(cfg.precision, cfg.device):
                    loss = compute_loss(batch)
                optimizer.zero_grad(set_to_none=True)
                counted = loss_weight(batch) if loss_weight else None
                terms = len(local) if counted is None else counted
                if world > 1:
                    # DDP averages the processes' gradients; weighting each shard's mean loss by
                    # world x its share of the batch's terms makes that the global mean's gradient.
                    # Whether a step reduces the count is the same on every rank (same config).
                    if counted is None:
                        all_terms = len(index)
                    else:
                        (all_terms,) = all_reduce_sum([counted], cfg.device)
                    (loss * (world * terms / max(all_terms, 1))).backward()
                else:
                    loss.backward()
                optimizer.step()
                result.steps += 1
                if average is not None:
                    average.update()
                total += loss.detach().double() * terms
                if opening is None:  # read once a call: no wait for a GPU at every step
                    opening = float(loss.detach())  # this process's shard: for a warning only
                count += terms
            # Non-finite weights behind a finite loss (a step whose gradient overflowed) would
            # fail validation on NaN scores: a divergence too, decided alike on every rank.
            non_finite = 0.0 if _finite_weights(model.module) else 1.0
            total, count, non_finite = all_reduce_sum([float(total), count, non_finite], cfg.device)
            record = {
                "epoch": epoch,
                "loss": total / max(count, 1),
                "seconds": time.perf_counter() - epoch_start,
            }
            self.on_event({"event": "epoch", **record})
            epochs.set_postfix(loss=f"{record['loss']:.4f}")
            result.epochs_run = epoch
            if not math.isfinite(record["loss"]) or non_finite:  # all-reduced: alike everywhere
                self._diverged(epoch, record["loss"], result, best_state is not None)
                break
            if opening is not None and opening > 0 and record["loss"] > LOSS_GROWTH * opening:
                # finite, but on its way to overflow: the metrics may still look like a model's
                self._growing(opening, epoch, record["loss"])
                opening = math.inf  # said once
            # The last epoch is validated too, whatever eval_every: trained weights that
            # selection never saw would be thrown away unjudged.
            if self.evaluate is not None and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
                # With an average of the weights, it is what is validated and kept.
                with average.applied() if average is not None else contextlib.nullcontext():
                    kept = self._validate_and_select(model, epoch, result)
                if kept is not None:
                    best_state = kept
                elif epoch < cfg.epochs and self._patience_spent(epoch, result):
                    # (at the last epoch nothing is left to stop: not an early stop)
                    result.stopped_early = True
                    break
            if checkpoints is not None and epoch % checkpoints.every == 0 and epoch < cfg.epochs:
                result.seconds = time.perf_counter() - start
                checkpoints.save_progress(
                    stage, progress_state(model, optimizer, generator, average, result, best_state)
                )
        if best_state is not None:
            model.module.load_state_dict(best_state["module"])
            if best_state["extra"] is not None:
                model.load_extra_state(best_state["extra"])
        elif average is not None:
            average.copy_to_module()  # no selection: keep the average of the last steps
        result.weight_average = average is not None
        if not result.history:  # nothing selected: best_epoch names the weights kept
            result.best_epoch = result.epochs_run
        model.module.eval()
        result.seconds = time.perf_counter() - start
        if checkpoints is not None:
            checkpoints.finish_stage(
                stage, {**weights_state(model), "result": result_state(result)}
            )
        return result

    def _diverged(self, epoch: int, loss: float, result: TrainResult, kept: bool) -> None:
        """A non-finite epoch loss or weights: the weights are lost. Keep the best validated
        ones, with a warning, or fail naming the epoch when none was validated."""
        result.diverged_epoch = epoch
        result.stopped_early = epoch < self.config.epochs  # epochs were left to train
        self.on_event({"event": "diverged", "epoch": epoch, "loss": loss})
        cause = f"mean loss {loss}" if not math.isfinite(loss) else "its weights turned non-finite"
        what = f"training diverged in epoch {epoch} ({cause})"
        if not kept:
            raise ValueError(
                f"{what}, before any validated epoch: lower {self._key('lr')} (now "
                f"{self.config.lr}), "
                "or check the data for extreme values"
            )
        warn(
            f"{what}; kept epoch {result.best_epoch}, the best validated before it (a lower "
            f"{self._key('lr')} than {self.config.lr} may train further)"
        )

    def _growing(self, opening: float, epoch: int, loss: float) -> None:
        warn(
            f"the mean loss of epoch {epoch} ({loss:.4g}) is {loss / opening:.1e} times the "
            f"first step's ({opening:.4g}): training is diverging; lower {self._key('lr')} "
            f"(now {self.config.lr})"
        )

    def _patience_spent(self, epoch: int, result: TrainResult) -> bool:
        """No gain for train.patience epochs, and for train.patience_steps steps if set."""
        cfg = self.config
        if epoch - result.best_epoch < cfg.patience:
            return False
        return cfg.patience_steps is None or result.steps - result.best_step >= cfg.patience_steps

    def _validate_and_select(
        self, model: Trainable, epoch: int, result: TrainResult
    ) -> dict[str, Any] | None:
        """Validate the module's weights as they are and record it; return a copy of their state
        when they are the best so far, else None."""
        metrics, seconds = broadcast_object(self._validate(model) if rank() == 0 else None)
        value = metrics["valid"][self.config.metric]
        event = {"event": "eval", "epoch": epoch, "seconds": seconds}
        event.update(
            {f"{split}/{name}": v for split, ms in metrics.items() for name, v in ms.items()}
        )
        result.history.append(event)
        self.on_event(event)
        # Every process holds the same weights and metrics, so all decide alike.
        if value <= result.best_metric:
            return None
        result.best_epoch, result.best_metric, result.best_metrics = epoch, value, metrics
        result.best_step = result.steps
        return {
            "module": copy.deepcopy(model.module.state_dict()),
            "extra": copy.deepcopy(model_extra_state(model)),
        }

    def _validate(self, model: Trainable) -> tuple[dict[str, dict[str, float]], float]:
        """The evaluation callback's metrics for the current weights, and its seconds."""
        model.module.eval()
        eval_start = time.perf_counter()
        with torch.no_grad():
            metrics = self.evaluate(model.score)
        return metrics, time.perf_counter() - eval_start


def _finite_weights(module: torch.nn.Module) -> bool:
    """Whether every trainable weight is finite: one device sync, and no temporary the size of
    a weight (the extremes are NaN or infinite when any entry is)."""
    trained = [p.detach() for p in module.parameters() if p.requires_grad and p.numel()]
    ends = [end.float() for p in trained for end in p.aminmax()]
    return not ends or bool(torch.isfinite(torch.stack(ends)).all())
