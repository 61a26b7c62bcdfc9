"""Config validation reported as problems: ``(dotted key, message)`` pairs naming the key the
same way for every section (loading names the booleans pydantic's lax mode reads as numbers).

:class:`ModelSettingsError` carries a ``model`` section's problems through pydantic (a model's
settings are validated by its own class, inside the run config's validation), so
:func:`validation_problems` can report them with their full paths.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

__all__ = [
    "BOOLEAN_FOR_NUMBER",
    "ModelSettingsError",
    "SettingsDoNotFitData",
    "unknown_key_message",
    "validate_dataclass",
    "validation_problems",
]


class SettingsDoNotFitData(ValueError):
    """Settings valid on their own that the data cannot take (more item clusters than items):
    found only once the data is read. ``recdiff tune`` skips such a sampled trial as INVALID,
    as it does a combination the config refuses, rather than ending the search."""


class ModelSettingsError(ValueError):
    """Invalid settings in a run config's ``model`` section.

    ``problems`` holds ``(dotted key, message)`` pairs with full paths (``model.diffusion``), so a
    config error names the key the same way for every section.
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{key}: {message}" for key, message in problems))


def validation_problems(
    error: ValidationError,
    prefix: tuple[str, ...] = (),
    root: type[BaseModel] | None = None,
    root_keys: tuple[str, ...] = (),
) -> list[tuple[str, str]]:
    """``(dotted key, message)`` per problem of a pydantic error, without pydantic's type tags,
    input dumps and links; ``prefix`` is prepended to each key. A key is "" for a problem of the
    whole object, whose message names the keys itself. With the ``root`` model that failed, an
    unknown key's message names the keys its section takes (and the one it may be a typo of);
    ``root_keys`` are keys the root's section takes besides its fields (a model's ``name``)."""
    problems = []
    for e in error.errors():
        cause = (e.get("ctx") or {}).get("error")
        if isinstance(cause, ModelSettingsError):
            problems += cause.problems
            continue
        key = ".".join(str(part) for part in (*prefix, *e["loc"]))
        if e["type"] == "extra_forbidden" and root is not None:
            known = _section_keys(root, e["loc"][:-1])
            if len(e["loc"]) == 1:  # the root's own section: it also takes root_keys
                known += root_keys
            if known:
                problems.append((key, unknown_key_message(str(e["loc"][-1]), known)))
                continue
        if isinstance(e.get("input"), bool) and e["type"] in _BOUNDS:
            # pydantic read true/false as 1/0 and then found it out of range
            problems.append((key, BOOLEAN_FOR_NUMBER))
            continue
        if e["type"] == "string_type" and isinstance(e.get("input"), (bool, int, float)):
            problems.append((key, _text_read_as_a_value(key, e["input"])))
            continue
        problems.append((key, e["msg"].removeprefix("Value error, ")))
    return problems


def _text_read_as_a_value(key: str, value: bool | int | float) -> str:
    """A text setting written as a number or a boolean (``name=2024``) is read as one: say so,
    with the quotes that keep it text."""
    kind = "a boolean" if isinstance(value, bool) else "a number"
    shown = str(value).lower() if isinstance(value, bool) else value
    return (
        f"Input should be a valid string, and {shown} reads as {kind}: quote it to keep it "
        f"text (--set '{key}=\"{shown}\"' on the command line, {key.rsplit('.', 1)[-1]}: "
        f"'{shown}' in a config file)"
    )


def unknown_key_message(name: str, known: list[str]) -> str:
    """ "unknown key; did you mean 'epochs'? (takes: ...)" for a key ``name`` among ``known``."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    guess = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown key{guess} (this section takes: {', '.join(sorted(known))})"


def _section_keys(root: type[BaseModel], path: tuple[Any, ...]) -> list[str]:
    """The field names of the section at ``path`` under ``root`` (``()``: root's own), or []
    where the path leaves the typed models (a list's index, a free-form mapping)."""
    model: Any = root
    for part in path:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            return []
        model = _model_in(field.annotation)
        if model is None:
            return []
    return list(model.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation holds (``X`` or ``X | None``), else None."""
    options = (
        typing.get_args(annotation)
        if typing.get_origin(annotation) in (typing.Union, types.UnionType)
        else (annotation,)
    )
    models = [o for o in options if isinstance(o, type) and issubclass(o, BaseModel)]
    return models[0] if len(models) == 1 else None


BOOLEAN_FOR_NUMBER = "expected a number, not true/false"
_BOUNDS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "multiple_of"}


def validate_dataclass(
    cls: type, params: dict[str, Any], section: str, also_takes: tuple[str, ...] = ()
) -> Any:
    """Build a dataclass config of a run config's ``section``; an unknown key fails named as
    pydantic's sections name theirs (``model.KEY``: the keys the section takes, ``also_takes``
    besides the fields, and a likely typo)."""
    allowed = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ModelSettingsError(
            [(f"{section}.{k}", unknown_key_message(k, [*allowed, *also_takes])) for k in unknown]
        )
    return TypeAdapter(cls).validate_python(params)
