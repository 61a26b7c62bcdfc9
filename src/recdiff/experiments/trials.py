"""The config a search trial trains: the base config with the trial's sampled settings applied,
validated again. A combination that does not fit (``noise_min >= noise_max``) raises
:class:`TrialConfigError` with pydantic's problems flattened to one line, which the search
records as the trial's reason for being INVALID.

:func:`lookup_view` is the base config as a search space reads it to resolve ``fraction_of``
references: with the model's defaults filled in.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from pydantic import ValidationError

from recdiff.config.schema import RunConfig
from recdiff.experiments.space import set_dotted

__all__ = ["TrialConfigError", "lookup_view", "trial_config"]


class TrialConfigError(ValueError):
    """The sampled settings make an invalid config (the trial is skipped, the search goes on)."""


def _describe(error: ValidationError) -> str:
    """One line per problem, ``path: message``, without pydantic's links and type tags."""
    parts = []
    for e in error.errors():
        where = ".".join(str(p) for p in e["loc"])
        message = _flatten(e["msg"].removeprefix("Value error, "))
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def _flatten(message: str) -> str:
    """A nested pydantic error text (a model's own settings) as one short line."""
    message = re.sub(r"\s*\[type=[^\]]*\]", "", message)
    message = re.sub(r"\s*For further information visit \S+", "", message)
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if len(lines) < 3 or len(lines) % 2 == 0:
        return " ".join(lines)
    head = re.sub(r":?\s*\d+ validation errors? for \w+$", "", lines[0])
    details = [
        f"{loc}: {text.removeprefix('Value error, ')}"
        for loc, text in zip(lines[1::2], lines[2::2], strict=True)
    ]
    return f"{head}: " + "; ".join(details)


def trial_config(base: dict[str, Any], settings: dict[str, Any], name: str) -> RunConfig:
    """The base config (a ``model_dump``) with ``settings`` applied, validated."""
    raw = copy.deepcopy(base)
    for key, value in settings.items():
        set_dotted(raw, key, value)
    raw["name"] = name
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as error:
        raise TrialConfigError(_describe(error)) from None


def lookup_view(config: RunConfig) -> dict[str, Any]:
    """The config with the model's defaults filled in (for ``fraction_of`` references only:
    trials apply settings to the config as written, so seeds etc. keep their usual source)."""
    from pydantic import TypeAdapter

    from recdiff.config.models import validate_model_params

    view = config.model_dump(mode="json")
    settings = validate_model_params(config.model.name, config.model.params())
    resolved = TypeAdapter(type(settings)).dump_python(settings, mode="json")
    view["model"] = _merged({"name": config.model.name, **resolved}, view["model"])
    return view


def _merged(defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """``given`` over ``defaults``, section by section."""
    out = dict(defaults)
    for key, value in given.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merged(out[key], value) if both else value
    return out
