"""What a training is asked to do (:class:`TrainConfig`) and what it did (:class:`TrainResult`).

Kept apart from the loop in :mod:`recdiff.train.trainer`: the config schema, the models' settings
and the run summaries use these types without reading (or importing) how training is done.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "MAX_EPOCHS",
    "TrainConfig",
    "TrainResult",
    "chosen_keys",
    "selection_summary",
    "stage_summaries",
]


def chosen_keys(settings: BaseModel) -> set[str]:
    """The keys of a settings object set away from their defaults: the ones that say a choice
    (a resolved config lists every key, defaults too)."""
    defaults = type(settings).model_fields
    return {k for k in settings.model_fields_set if getattr(settings, k) != defaults[k].default}


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
    eval_every: int = Field(5, ge=1, description="validate every k epochs, and after the last")
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
    seed: int = Field(
        1, ge=0, lt=2**64, description="seed of initialisation, shuffling, dropout and noise"
    )
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
        from recdiff.eval.metrics import canonical_metric  # imports torch: only when validating

        return canonical_metric(value, "metric")


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
