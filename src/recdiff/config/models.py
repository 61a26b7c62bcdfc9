"""Model names in run configs -> validated settings and a constructed recommender."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recdiff.config.problems import ModelSettingsError, validate_dataclass, validation_problems
from recdiff.config.sources import resolve_source
from recdiff.models.base import SavedModel
from recdiff.train.config import TrainConfig, chosen_keys

__all__ = [
    "CLOSED_FORM_TRAIN_READS",
    "MODEL_NAMES",
    "SEQUENTIAL_MODELS",
    "build_model",
    "multvae_params",
    "resolved_settings",
    "validate_model_params",
]


class EASESpec(BaseModel):
    """EASE's settings: one lambda, or a grid searched on validation."""

    model_config = ConfigDict(extra="forbid")

    l2_lambda: float | None = Field(None, gt=0, description="fixed L2 penalty")
    l2_lambda_grid: list[float] | None = Field(
        None, min_length=1, description="lambdas tried on validation (default grid if neither)"
    )


class PopularitySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _settings_class(name: str) -> type:
    """Model ``name``'s settings class, imported on first use (the model modules import torch)."""
    if name in ("diffrec", "ldiffrec"):
        from recdiff.models.diffrec import DiffRecConfig
        from recdiff.models.ldiffrec_config import LDiffRecConfig

        return DiffRecConfig if name == "diffrec" else LDiffRecConfig
    if name in ("sasrec", "mostpop"):
        from recdiff.models.sasrec import MostPopularConfig, SASRecConfig

        return SASRecConfig if name == "sasrec" else MostPopularConfig
    if name == "dreamrec":
        from recdiff.models.dreamrec_config import DreamRecConfig

        return DreamRecConfig
    if name == "multvae":
        from recdiff.models.multvae import MultVAEConfig

        return MultVAEConfig
    return {"ease": EASESpec, "popularity": PopularitySpec}[name]


_MODELS = ("dreamrec", "sasrec", "mostpop", "diffrec", "ldiffrec", "ease", "multvae", "popularity")
MODEL_NAMES = tuple(sorted(_MODELS))
#: Models that score item sequences (next-item examples) rather than user rows.
SEQUENTIAL_MODELS = frozenset({"sasrec", "dreamrec", "mostpop"})


def validate_model_params(name: str, params: dict[str, Any]) -> Any:
    """The model's own settings object; raises :class:`ModelSettingsError` (a ValueError) naming
    unknown models or the dotted keys (``model.diffusion.steps``) of invalid settings."""
    if name not in MODEL_NAMES:
        raise ModelSettingsError(
            [("model.name", f"unknown model {name!r}; choose one of {list(MODEL_NAMES)}")]
        )
    settings = _settings_class(name)
    try:
        if name == "multvae":  # a dataclass, with its own loop's settings
            return validate_dataclass(settings, params, "model", also_takes=("name",))
        return settings(**params)
    except ValidationError as error:
        problems = validation_problems(error, ("model",), settings, root_keys=("name",))
        raise ModelSettingsError(problems) from None
    except ModelSettingsError:
        raise
    except ValueError as error:  # e.g. a Mult-VAE setting its own checks refuse
        raise ModelSettingsError([("model", str(error))]) from None


# Mult-VAE keeps its own training loop (Adam, validation every epoch, fp32): these train.* settings
# reach it under its own names; the others do not apply to it.
MULTVAE_TRAIN_KEYS = {
    "epochs": "max_epochs",
    "lr": "lr",
    "batch_size": "batch_size",
    "patience": "patience",
    "weight_decay": "weight_decay",
    "metric": "valid_metric",
    "device": "device",
}
_ANY_MODEL_TRAIN_KEYS = {"seed", "progress", "tensorboard", "checkpoint_every"}

#: The train.* settings the models without a training loop read (the others are ignored, with
#: a warning when set).
CLOSED_FORM_TRAIN_READS = {
    "ease": {"seed", "progress", "tensorboard", "device", "metric"},  # metric selects lambda
    "popularity": {"seed", "progress", "tensorboard", "device"},
    # Next-item presets name hit_rate@20, the metric `recdiff experiment` compares them by.
    "mostpop": {"seed", "progress", "tensorboard", "device", "metric"},
}


def resolved_settings(
    name: str, params: dict[str, Any], train: TrainConfig
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The model section and the train section as the model reads them, for a resolved view
    (``presets NAME --resolved``), and a comment naming the train.* settings left out: those
    a model without a loop ignores, and Mult-VAE's, which reach its own loop as model.*
    settings (shown there, filled in) or do not apply to it."""
    shown = train.model_dump(mode="json")
    if name == "multvae":
        merged = multvae_params(params, train)
        filled = dataclasses.asdict(validate_model_params(name, merged))
        if "seed" not in params:  # train.seed's, and said there
            filled.pop("seed")
        model = json.loads(json.dumps(filled))  # tuples as lists
        mapped = ", ".join(
            f"train.{key} as model.{field}" for key, field in MULTVAE_TRAIN_KEYS.items()
        )
        unread = sorted(shown.keys() - MULTVAE_TRAIN_KEYS.keys() - _ANY_MODEL_TRAIN_KEYS)
        note = (
            f"Mult-VAE's own loop (Adam, fp32, validation every epoch) reads {mapped}; "
            f"{', '.join(f'train.{k}' for k in unread)} do not apply to it"
        )
        train_shown = {k: v for k, v in shown.items() if k in _ANY_MODEL_TRAIN_KEYS}
        return model, train_shown, note
    model = validate_model_params(name, params).model_dump(mode="json")
    reads = CLOSED_FORM_TRAIN_READS.get(name)
    if reads is None:
        return model, shown, ""
    unread = sorted(shown.keys() - reads)
    note = f"{', '.join(f'train.{k}' for k in unread)} do not apply to {name} (no training loop)"
    return model, {k: v for k, v in shown.items() if k in reads}, note


def multvae_params(params: dict[str, Any], train: TrainConfig) -> dict[str, Any]:
    """Mult-VAE's model settings with the run config's ``train.*`` ones folded in: those the
    config sets away from their defaults (``train.epochs`` becomes ``max_epochs``, ...), and the
    seed unless ``model.seed`` is given. A ``train.*`` setting Mult-VAE cannot honour, or one that
    contradicts the ``model.*`` key it maps to, is an error rather than silently ignored. (A
    resolved config lists every ``train.*`` key; those at their defaults say nothing.)"""
    merged, problems = dict(params), []
    chosen = chosen_keys(train)
    for key, field in MULTVAE_TRAIN_KEYS.items():
        if key not in chosen:
            continue
        value = getattr(train, key)
        if field in params and params[field] != value:
            problems.append(
                (
                    f"train.{key}",
                    f"{value!r} contradicts model.{field} ({params[field]!r}), which Mult-VAE "
                    "reads: set one of them",
                )
            )
        merged[field] = value
    for key in sorted(chosen - MULTVAE_TRAIN_KEYS.keys() - _ANY_MODEL_TRAIN_KEYS):
        problems.append(
            (
                f"train.{key}",
                "does not apply to multvae, which trains with Adam in fp32 and validates every "
                "epoch; remove it (its settings: model.max_epochs, lr, batch_size, patience, "
                "...), or, in `recdiff experiment`, give it to the other configs only with "
                "--set CONFIG:key=value",
            )
        )
    if problems:
        raise ModelSettingsError(problems)
    merged.setdefault("seed", train.seed)
    return merged


def build_model(name: str, params: dict[str, Any], train: TrainConfig) -> SavedModel:
    """An unfitted recommender from a run config's model section and training settings."""
    if name == "multvae":  # its own loop: train.* settings map onto model.*
        params = multvae_params(params, train)
    settings = validate_model_params(name, params)
    if name == "sasrec":
        from recdiff.models.sasrec import SASRec

        return SASRec(settings, train)
    if name == "dreamrec":
        from recdiff.models.dreamrec import DreamRec

        return DreamRec(settings, train)
    if name == "mostpop":
        from recdiff.models.sasrec import MostPopular

        return MostPopular(settings, train)
    if name == "diffrec":
        from recdiff.models.diffrec import DiffRec

        return DiffRec(settings, train)
    if name == "ldiffrec":
        from recdiff.models.item_clusters import EMBEDDINGS_FROM_DATA
        from recdiff.models.ldiffrec import LDiffRec

        if settings.latent.item_embeddings:  # "datasets:..." paths resolve like data sources
            path = str(
                resolve_source(
                    settings.latent.item_embeddings,
                    key="model.latent.item_embeddings",
                    otherwise=EMBEDDINGS_FROM_DATA,
                )
            )
            latent = settings.latent.model_copy(update={"item_embeddings": path})
            settings = settings.model_copy(update={"latent": latent})
        return LDiffRec(settings, train)
    if name == "multvae":
        from recdiff.models.multvae import MultVAE

        return MultVAE(settings)
    if name == "ease":
        from recdiff.models.ease import EASE

        return EASE(l2_lambda=settings.l2_lambda) if settings.l2_lambda else EASE()
    from recdiff.models.popularity import Popularity

    return Popularity()
