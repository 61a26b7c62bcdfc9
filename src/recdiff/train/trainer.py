"""The training loop shared by recdiff's neural recommenders.

The trainer owns what a model should not: the optimizer, the epoch loop over shuffled user rows,
mixed precision, periodic validation, early stopping on a validation metric, and restoring the
best weights. It is thrown away after ``fit``; the model keeps only what inference needs.

A model is trained through the small :class:`Trainable` protocol: a ``module`` whose parameters are
optimised and ``loss(batch)``. What a batch is comes from the training data (``TrainData``,
:mod:`recdiff.train.batches`): a dense block of user rows for the DiffRec family (``RowBatches``,
built from a CSR), a dict of history/target tensors for next-item models (``ExampleBatches``).
Selection uses the validation split only; other splits (e.g. test) may be evaluated in the same
pass for the curves, never for choosing.

Under torchrun the trainer is also where data-parallel training happens (:mod:`recdiff.train.
distributed`): each process trains on its shard of every global batch through a DDP wrapper around
``model.loss``, so any Trainable gets it without code of its own; rank 0 evaluates and logs.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from recdiff.progress import progress_bar
from recdiff.train.averaging import WeightAverage
from recdiff.train.batches import RowBatches, TrainData
from recdiff.train.checkpoint import (
    active_checkpoints,
    plain,
    restore_random_states,
    result_state,
)
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

#: The most epochs a config may ask for (a bigger bound is a typo; progress bars overflow on it).
MAX_EPOCHS = 10**6


class TrainConfig(BaseModel):
    """How a model is trained (the released DiffRec settings are the defaults)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    lr: float = Field(1e-3, gt=0, description="learning rate")
    weight_decay: float = Field(0.0, ge=0, description="decoupled weight decay (AdamW)")
    optimizer: Literal["adamw", "adam"] = Field("adamw", description="optimizer")
    batch_size: int = Field(
        400,
        ge=1,
        description="examples per gradient step (last partial kept); under torchrun the global "
        "batch over all processes, each taking about batch_size / world_size",
    )
    epochs: int = Field(1000, ge=1, le=MAX_EPOCHS, description="upper bound on epochs")
    eval_every: int = Field(5, ge=1, description="validate every k epochs")
    patience: int = Field(20, ge=0, description="stop after this many epochs without gain")
    patience_steps: int | None = Field(
        None,
        ge=1,
        description="and only once this many optimizer steps passed without gain (None: epochs "
        "alone). An epoch of a small dataset is a few steps, so a patience in epochs alone stops "
        "there long before the model has settled; the L-DiffRec presets set their patience x "
        "their data's steps per epoch, which leaves their own runs as they were",
    )
    metric: str = Field("recall@20", description="validation metric that selects the epoch")
    seed: int = Field(1, description="seed of initialisation, shuffling, dropout and noise")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32",
        description="bf16: autocast matmuls to bfloat16 (faster on CPUs with bf16 units, GPUs)",
    )
    device: str = Field("cpu", description="torch device, e.g. cpu or cuda")
    ema_decay: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="validate, select and keep an exponential moving average of the weights "
        "(DDPM's EMA) with this decay per step, warmed up as min(decay, (1 + n) / (10 + n)) "
        "over the first n steps; None: the weights as trained",
    )
    checkpoint_every: int | None = Field(
        None,
        ge=1,
        description="write a resume checkpoint into the unfinished run folder every k epochs "
        "(and when a stage ends), so that `recdiff resume RUN` continues an interrupted run to "
        "the result it would have had; None: no checkpoints (an interrupted run is removed)",
    )
    progress: bool = Field(
        True, description="show progress bars (on a terminal; never in a log file)"
    )
    tensorboard: bool = Field(
        False,
        description="also log each epoch's and evaluation's scalars for TensorBoard, into the "
        "run directory's tensorboard/ (needs the tensorboard extra)",
    )

    @field_validator("metric")
    @classmethod
    def _metric_has_cutoff(cls, value: str) -> str:
        name, _, k = value.partition("@")
        if not name or not k.isdigit():
            raise ValueError(f"metric must look like 'recall@20', got {value!r}")
        return value


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


@dataclass
class TrainResult:
    """What happened: the selected epoch, its metrics, and the record of every evaluation."""

    best_epoch: int = 0
    best_metric: float = -math.inf
    best_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    epochs_run: int = 0
    steps: int = 0  # optimizer steps taken
    best_step: int = 0  # ... when the selected weights were validated
    seconds: float = 0.0
    stopped_early: bool = False
    diverged_epoch: int | None = None  # the epoch whose loss was not finite, if any
    weight_average: bool = False  # the kept weights are a moving average (train.ema_decay)


def selection_summary(result: TrainResult | None) -> dict[str, Any]:
    """How a training chose its weights, as ``metrics.json`` records it (``None``: a model
    without a training loop, e.g. EASE)."""
    return {
        "best_epoch": getattr(result, "best_epoch", None),
        "epochs_run": getattr(result, "epochs_run", None),
        # False: no validation ran, so best_epoch is the last epoch, not a selection
        "validated": bool(getattr(result, "history", None)),
        "stopped_early": getattr(result, "stopped_early", None),
        "diverged_epoch": getattr(result, "diverged_epoch", None),
        "weight_average": getattr(result, "weight_average", None),
    }


def stage_summaries(model: Any) -> dict[str, dict[str, Any]]:
    """The same for each pre-training stage a model ran (``model.stage_results``: L-DiffRec's
    autoencoders, DreamRec's SASRec items), with the validation metrics of the weights kept."""
    stages = getattr(model, "stage_results", None) or {}
    return {
        name: {**selection_summary(result), "valid": result.best_metrics.get("valid", {})}
        for name, result in stages.items()
        if result is not None
    }


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
    """Epochs of shuffled mini-batches, validation every ``eval_every`` epochs, early stopping.

    Args:
        config: the training settings.
        evaluate: maps a score function to ``{"valid": {metric: value}, ...}``; only ``valid``
            selects. None trains for ``epochs`` without selection. Under torchrun it runs on rank
            0 only, and its metrics are broadcast to the other processes.
        on_event: called with each epoch's and evaluation's record (for run logs), with the same
            records on every process (an epoch's loss is the mean over all processes' examples, or
            over the loss terms a model's ``loss_weight`` counts).
        settings: the config keys its messages name for ``lr`` and ``eval_every``, where a
            pre-training stage takes them from elsewhere (default ``train.lr``, ...).
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
            return _restore_ended(model, ended, cfg.device)
        generator = seed_everything(cfg.seed)  # the same shuffling in every process
        if world > 1:
            torch.manual_seed(rank_seed(cfg.seed, this_rank))  # but each its own noise
        model.module.to(cfg.device)
        optimizer = self._optimizer(model)
        compute_loss = data_parallel_loss(model, cfg.device)  # model.loss in one process
        loss_weight = getattr(model, "loss_weight", None)
        average = WeightAverage(model.module, cfg.ema_decay) if cfg.ema_decay else None
        result = TrainResult()
        best_state: dict[str, Any] | None = None
        first, seconds_before = 1, 0.0
        saved = checkpoints.progress(stage) if checkpoints is not None else None
        if saved is not None:  # resumed inside this stage: from its last checkpoint
            result, best_state = _restore_progress(saved, model, optimizer, generator, average)
            _restore_weights(model, saved, cfg.device)
            first, seconds_before = result.epochs_run + 1, result.seconds
        start = time.perf_counter() - seconds_before
        epochs = progress_bar(
            range(first, cfg.epochs + 1), show=cfg.progress and this_rank == 0, desc="epochs"
        )
        for epoch in epochs:
            model.module.train()
            epoch_start, total, count = time.perf_counter(), 0.0, 0
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
                total += float(loss.detach()) * terms
                count += terms
            total, count = all_reduce_sum([total, count], cfg.device)
            record = {
                "epoch": epoch,
                "loss": total / max(count, 1),
                "seconds": time.perf_counter() - epoch_start,
            }
            self.on_event({"event": "epoch", **record})
            epochs.set_postfix(loss=f"{record['loss']:.4f}")
            result.epochs_run = epoch
            if not math.isfinite(record["loss"]):  # the same on every rank: an all-reduced sum
                self._diverged(epoch, record["loss"], result, best_state is not None)
                break
            if self.evaluate is not None and epoch % cfg.eval_every == 0:
                # With an average of the weights, it is what is validated and kept.
                with average.applied() if average is not None else contextlib.nullcontext():
                    kept = self._validate_and_select(model, epoch, result)
                if kept is not None:
                    best_state = kept
                elif self._patience_spent(epoch, result):
                    result.stopped_early = True
                    break
            if checkpoints is not None and epoch % checkpoints.every == 0 and epoch < cfg.epochs:
                result.seconds = time.perf_counter() - start
                checkpoints.save_progress(
                    stage,
                    {
                        **_weights_state(model),
                        "optimizer": optimizer.state_dict(),
                        "shuffle": generator.get_state(),
                        "average": average.state() if average is not None else None,
                        "result": result_state(result),
                        "best": best_state,
                    },
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
            if self.evaluate is not None:
                kept = (
                    f"the moving average of the weights ({self._key('ema_decay')}) at the last "
                    "epoch is kept"
                    if average is not None
                    else "the last epoch's weights are kept"
                )
                warnings.warn(
                    f"no validation ran: {result.epochs_run} epoch(s) but "
                    f"{self._key('eval_every')} is {cfg.eval_every}; {kept} (lower "
                    f"{self._key('eval_every')} to select on validation)",
                    stacklevel=3,  # the caller of fit
                )
        model.module.eval()
        result.seconds = time.perf_counter() - start
        if checkpoints is not None:
            checkpoints.finish_stage(
                stage, {**_weights_state(model), "result": result_state(result)}
            )
        return result

    def _diverged(self, epoch: int, loss: float, result: TrainResult, kept: bool) -> None:
        """A non-finite epoch loss: the weights are lost. Keep the best validated ones, with a
        warning, or fail naming the epoch when none was validated."""
        result.diverged_epoch, result.stopped_early = epoch, True
        self.on_event({"event": "diverged", "epoch": epoch, "loss": loss})
        what = f"training diverged in epoch {epoch} (mean loss {loss})"
        if not kept:
            raise ValueError(
                f"{what}, before any validated epoch: lower {self._key('lr')} (now "
                f"{self.config.lr}), "
                "or check the data for extreme values"
            )
        warnings.warn(
            f"{what}; kept epoch {result.best_epoch}, the best validated before it (a lower "
            f"{self._key('lr')} than {self.config.lr} may train further)",
            stacklevel=4,
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
            "extra": copy.deepcopy(_extra_state(model)),
        }

    def _validate(self, model: Trainable) -> tuple[dict[str, dict[str, float]], float]:
        """The evaluation callback's metrics for the current weights, and its seconds."""
        model.module.eval()
        eval_start = time.perf_counter()
        with torch.no_grad():
            metrics = self.evaluate(model.score)
        return metrics, time.perf_counter() - eval_start


def _extra_state(model: Trainable) -> dict[str, torch.Tensor] | None:
    return model.extra_state() if hasattr(model, "extra_state") else None


def _weights_state(model: Trainable) -> dict[str, Any]:
    """The module's weights and the model's state outside it, as a checkpoint keeps them
    (:func:`_restore_weights` puts them back)."""
    training = plain(model.training_state()) if hasattr(model, "training_state") else None
    return {"module": model.module.state_dict(), "extra": _extra_state(model), "training": training}


def _restore_weights(model: Trainable, state: dict[str, Any], device: str) -> None:
    model.module.load_state_dict(state["module"])
    model.module.to(device)
    if state["extra"] is not None:
        model.load_extra_state(state["extra"])
    if state["training"] is not None:
        model.load_training_state(state["training"])


def _restore_progress(
    saved: dict[str, Any],
    model: Trainable,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    average: WeightAverage | None,
) -> tuple[TrainResult, dict[str, Any] | None]:
    """Put a stage's training state back as its last checkpoint left it (the weights are
    :func:`_restore_weights`'s); return its result so far and its best validated state. (The
    checkpoint's config, EMA included, was checked against the run's when it was loaded.)"""
    optimizer.load_state_dict(saved["optimizer"])
    generator.set_state(saved["shuffle"])
    if average is not None:
        average.load_state(saved["average"])
    restore_random_states(saved["rng"])
    return TrainResult(**saved["result"]), saved["best"]


def _restore_ended(model: Trainable, ended: dict[str, Any], device: str) -> TrainResult:
    """A stage that ended before the run was resumed: its final weights, result and the
    generators' states as they were when it ended."""
    _restore_weights(model, ended, device)
    model.module.eval()
    restore_random_states(ended["rng"])
    return TrainResult(**ended["result"])
