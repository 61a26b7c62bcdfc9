"""Config validation reported as problems: ``(dotted key, message)`` pairs naming the key the
same way for every section, and the booleans that pydantic's lax mode quietly read as numbers.

:class:`ModelSettingsError` carries a ``model`` section's problems through pydantic (a model's
settings are validated by its own class, inside the run config's validation), so
:func:`validation_problems` can report them with their full paths.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

__all__ = [
    "BOOLEAN_FOR_NUMBER",
    "ModelSettingsError",
    "coerced_booleans",
    "validate_dataclass",
    "validation_problems",
]


class ModelSettingsError(ValueError):
    """Invalid settings in a run config's ``model`` section.

    ``problems`` holds ``(dotted key, message)`` pairs with full paths (``model.diffusion``), so a
    config error names the key the same way for every section.
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{key}: {message}" for key, message in problems))


def validation_problems(
    error: ValidationError, prefix: tuple[str, ...] = ()
) -> list[tuple[str, str]]:
    """``(dotted key, message)`` per problem of a pydantic error, without pydantic's type tags,
    input dumps and links; ``prefix`` is prepended to each key. A key is "" for a problem of the
    whole object, whose message names the keys itself."""
    problems = []
    for e in error.errors():
        cause = (e.get("ctx") or {}).get("error")
        if isinstance(cause, ModelSettingsError):
            problems += cause.problems
            continue
        key = ".".join(str(part) for part in (*prefix, *e["loc"]))
        if isinstance(e.get("input"), bool) and e["type"] in _BOUNDS:
            # pydantic read true/false as 1/0 and then found it out of range
            problems.append((key, BOOLEAN_FOR_NUMBER))
            continue
        problems.append((key, e["msg"].removeprefix("Value error, ")))
    return problems


BOOLEAN_FOR_NUMBER = "expected a number, not true/false"
_BOUNDS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "multiple_of"}


def validate_dataclass(cls: type, params: dict[str, Any], where: str) -> Any:
    """Build a dataclass config, failing on unknown keys with the allowed ones listed."""
    allowed = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {where}; allowed: {sorted(allowed)}")
    return TypeAdapter(cls).validate_python(params)


def coerced_booleans(raw: Any, value: Any, key: str = "") -> list[str]:
    """Dotted keys where ``raw`` holds a boolean (YAML true/false, yes/no) that validation
    turned into a number (pydantic's lax mode reads ``true`` as 1); ``value`` is the validated
    object (a pydantic model, dataclass, dict or list) built from ``raw``."""
    if isinstance(raw, bool):
        return [] if isinstance(value, bool) else [key]
    found = []
    if isinstance(raw, dict):
        for name, item in raw.items():
            if isinstance(value, dict):
                validated = value.get(name, _MISSING)
            elif isinstance(value, BaseModel) or dataclasses.is_dataclass(value):
                validated = getattr(value, str(name), _MISSING)
            else:
                continue
            if validated is not _MISSING:
                found += coerced_booleans(item, validated, f"{key}.{name}" if key else str(name))
    elif isinstance(raw, list | tuple) and isinstance(value, list | tuple):
        for index, (item, validated) in enumerate(zip(raw, value, strict=False)):
            found += coerced_booleans(item, validated, f"{key}.{index}")
    return found


_MISSING = object()
