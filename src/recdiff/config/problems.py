"""Config validation reported as problems: ``(dotted key, message)`` pairs naming the key the
same way for every section (loading names the booleans pydantic's lax mode reads as numbers).

:class:`ModelSettingsError` carries a ``model`` section's problems through pydantic (a model's
settings are validated by its own class, inside the run config's validation), so
:func:`validation_problems` can report them with their full paths.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import TypeAdapter, ValidationError

__all__ = [
    "BOOLEAN_FOR_NUMBER",
    "ModelSettingsError",
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
