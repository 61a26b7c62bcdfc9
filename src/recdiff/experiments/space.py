"""Search spaces: which settings a hyper-parameter search varies, and over what values.

A space file is YAML mapping dotted setting paths (as in ``--set``) to distributions::

    train.lr: {type: float, low: 1e-5, high: 1e-3, log: true}
    model.hidden_dims: {type: categorical, choices: [[300], [600, 200, 600], [1000]]}
    model.diffusion.steps: {type: int, low: 2, high: 100, log: true}
    model.diffusion.inference_noise_steps:
      {type: categorical, choices: [0, 0.25, 0.5], fraction_of: model.diffusion.steps}

``fraction_of`` makes a setting a fraction of another integer setting, rounded down (DiffRec's
T' in {0, T/4, T/2}). Shipped spaces live in ``recdiff/config/spaces`` and are named like presets.
The keys ``name`` and ``train.progress`` cannot be searched: a search sets both for each trial.
Optuna's categorical parameters hold only None/bool/int/float/str, so choices that are lists or
mappings are stored in the study as JSON text and decoded back when applied.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from recdiff.config.loading import ConfigError
from recdiff.config.yaml_io import ConfigLoader
from recdiff.experiments.parameters import CategoricalParam, FloatParam, IntParam, Parameter

__all__ = [
    "CategoricalParam",
    "FloatParam",
    "IntParam",
    "SearchSpace",
    "SpaceError",
    "get_dotted",
    "list_spaces",
    "load_space",
    "set_dotted",
]

_KEY = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
#: Keys a search sets itself, with why a space may not: the sampled value would be overwritten.
_RESERVED_KEYS = {
    "name": "a search names each trial's run itself (CONFIG-trialN), over the sampled value",
    "train.progress": "a search trains its trials without progress bars, over the sampled value",
    "train.metric": "a search's trials select their epochs on its --metric, over the sampled value",
}


class SpaceError(ConfigError):
    """A search space that cannot be used; the message names the key and what to change."""


_SPACE = TypeAdapter(dict[str, Parameter])


def _explain(error: dict[str, Any]) -> str:
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        got = error.get("input", {}).get("type") if isinstance(error.get("input"), dict) else None
        return f"type must be float, int or categorical (got {got!r})"
    where = ".".join(str(p) for p in error["loc"][2:])  # past the key and the type tag
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


@dataclass(frozen=True)
class SearchSpace:
    """Dotted setting path -> distribution, in file order."""

    params: dict[str, FloatParam | IntParam | CategoricalParam]
    source: str = "<space>"

    @classmethod
    def from_dict(cls, data: Any, source: str = "<space>") -> SearchSpace:
        """Validate a mapping of dotted keys to distributions; errors name the key."""
        if not isinstance(data, dict) or not data:
            raise SpaceError(
                f"{source} must map setting paths to distributions, e.g. "
                "'train.lr: {type: float, low: 1e-5, high: 1e-3, log: true}'"
            )
        bad = [str(k) for k in data if not isinstance(k, str) or not _KEY.match(k)]
        if bad:
            raise SpaceError(f"{source}: {bad} are not dotted setting paths like model.dropout")
        for key in data:
            if key in _RESERVED_KEYS:
                raise SpaceError(
                    f"{source}: key {key!r} cannot be searched: {_RESERVED_KEYS[key]}; remove it"
                )
        for key, spec in data.items():
            if not isinstance(spec, dict):
                raise SpaceError(
                    f"{source}: key {key!r} must be a mapping like {{type: float, low: .., "
                    f"high: ..}}, got {spec!r}"
                )
        try:
            params = _SPACE.validate_python(data)
        except ValidationError as error:
            lines = [f"  {e['loc'][0]}: {_explain(e)}" for e in error.errors()]
            raise SpaceError(f"invalid search space {source}:\n" + "\n".join(lines)) from None
        for key, param in params.items():
            target = getattr(param, "fraction_of", None)
            if target is None:
                continue
            if target == key:
                raise SpaceError(f"{source}: key {key!r} cannot be a fraction of itself")
            if getattr(params.get(target), "fraction_of", None):
                raise SpaceError(
                    f"{source}: key {key!r} is a fraction of {target!r}, which is itself a "
                    "fraction; point fraction_of at a plain setting"
                )
        return cls(dict(params), source)

    def to_dict(self) -> dict[str, Any]:
        return {k: p.model_dump(exclude_none=True) for k, p in self.params.items()}

    # ------------------------------------------------------------------- sampling
    def suggest(self, trial: Any) -> dict[str, Any]:
        """Ask an optuna trial for every parameter; returns optuna's (encoded) values."""
        values = {}
        for key, p in self.params.items():
            if isinstance(p, FloatParam):
                values[key] = trial.suggest_float(key, p.low, p.high, log=p.log, step=p.step)
            elif isinstance(p, IntParam):
                values[key] = trial.suggest_int(key, p.low, p.high, log=p.log, step=p.step)
            else:
                values[key] = trial.suggest_categorical(key, p.optuna_choices())
        return values

    def settings(self, values: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
        """Setting path -> value to apply: JSON choices decoded, fractions resolved against
        the other sampled values or, for settings outside the space, the ``base`` config."""
        decoded = {}
        for key, p in self.params.items():
            value = values[key]
            if isinstance(p, CategoricalParam) and p.encoded:
                value = json.loads(value)
            decoded[key] = value
        for key, p in self.params.items():
            target = getattr(p, "fraction_of", None)
            if target is None:
                continue
            try:
                whole = decoded[target] if target in decoded else get_dotted(base, target)
            except KeyError:
                raise SpaceError(
                    f"{self.source}: key {key!r} is a fraction of {target!r}, which is neither "
                    "in the space nor in the config: add it to one of them"
                ) from None
            if isinstance(whole, bool) or not isinstance(whole, int):
                raise SpaceError(
                    f"{self.source}: key {key!r} is a fraction of {target!r}, which must be an "
                    f"integer setting; it is {whole!r}"
                )
            decoded[key] = math.floor(float(decoded[key]) * whole)
        return decoded

    def check_against(
        self,
        base: dict[str, Any],
        lookup: dict[str, Any],
        validate: Callable[[dict], Any],
        warn: Callable[[str], None] | None = None,
    ) -> None:
        """Fail early on a key that no value of its range can set in ``base`` (a typo, or a
        setting of another model). ``lookup`` resolves ``fraction_of`` references (the config
        with defaults filled in); ``validate(raw)`` raises ValueError for an invalid config.

        Each key is tried first beside the config's own values of the other keys, then beside
        values the space gives them: a value may fit only with another searched one (a lower
        ``noise_max`` with a lower ``noise_min``). A categorical choice that the setting's own
        check refuses (``train.ema_decay: 0.0``) goes to ``warn``: every trial that draws it will
        be skipped as invalid."""
        for key, p in self.params.items():
            errors = {}  # candidate index -> why it gave no valid config
            for index, candidate in enumerate(p.candidates()):
                error = self._misfit(key, candidate, base, lookup, validate)
                if error is not None:
                    errors[index] = error
            if len(errors) == len(p.candidates()):
                unknown = _unknown_key(key, base, _first(p))
                if unknown:
                    raise SpaceError(f"{self.source}: key {key!r}: {unknown}")
                raise SpaceError(
                    f"{self.source}: no value of key {key!r} gives a valid config (is the path "
                    f"right for this model?): {errors[max(errors)]}"
                )
            if warn is not None and isinstance(p, CategoricalParam):
                # Every trial that draws such a choice is skipped as invalid: a search of 73
                # trials lost 21 to `train.ema_decay: 0.0` (off is null there). Named only when
                # the setting's own check refuses it (a range, a type), which no other value can
                # change; a clash with another setting (dim and heads) may fit beside values the
                # check did not try. A warning, not a refusal: the search still runs.
                for index, error in errors.items():
                    if error.startswith((f"{key}:", f"{key}.")):
                        warn(
                            f"{self.source}: key {key!r}: choice {json.dumps(p.choices[index])} "
                            f"is never valid ({error}); every trial that draws it is skipped as "
                            "invalid: drop it or give a valid value"
                        )

    def _misfit(
        self,
        key: str,
        candidate: Any,
        base: dict[str, Any],
        lookup: dict[str, Any],
        validate: Callable[[dict], Any],
    ) -> str | None:
        """None if ``candidate`` for ``key`` gives a valid config beside the config's own
        values of the other keys or beside some values the space gives them; else why it does
        not (the error beside the config's own values)."""
        fraction_of = getattr(self.params[key], "fraction_of", None)
        first = {k: _first(q) for k, q in self.params.items()}
        error = None
        for context in itertools.chain([None], self._other_values(key)):
            values = {**first, **(context or {}), key: candidate}
            raw = copy.deepcopy(base)
            try:
                settings = self.settings(values, lookup)
                for k in list(settings) if context else [key, fraction_of]:
                    if k in settings:
                        set_dotted(raw, k, settings[k])
                validate(raw)
                return None
            except ValueError as failed:
                if context is None:  # about the key itself: the values it was given alone
                    error = str(failed)
        return error

    def _other_values(self, key: str) -> Iterator[dict[str, Any]]:
        """Combinations of the candidates of the keys other than ``key``: all of them, or
        ``_COMBINATIONS_TRIED`` seeded draws when there are more."""
        choices = {k: q.candidates() for k, q in self.params.items() if k != key}
        if not choices:
            return
        if math.prod(len(c) for c in choices.values()) <= _COMBINATIONS_TRIED:
            for combination in itertools.product(*choices.values()):
                yield dict(zip(choices, combination, strict=True))
            return
        for index in range(_COMBINATIONS_TRIED):
            draw = random.Random(index)
            yield {k: draw.choice(c) for k, c in choices.items()}


#: Combinations of the other keys' values tried beside a key that fits none of the config's.
_COMBINATIONS_TRIED = 64


def _unknown_key(key: str, base: dict[str, Any], value: Any) -> str | None:
    """The message ``--set`` gives a key that is no setting ("unknown key; did you mean 'lr'?
    (this section takes: ...)"), when ``key`` (or a section on its path) is one in ``base``,
    else None. pydantic's own said only "Extra inputs are not permitted"."""
    from recdiff.config.problems import validation_problems
    from recdiff.config.schema import RunConfig

    raw = copy.deepcopy(base)
    set_dotted(raw, key, value)
    try:
        RunConfig.model_validate(raw)
    except ValidationError as error:
        for where, message in validation_problems(error, root=RunConfig):
            on_path = where == key or key.startswith(f"{where}.")
            if on_path and message.startswith("unknown key"):
                return message
    return None


def _first(param: FloatParam | IntParam | CategoricalParam) -> Any:
    if isinstance(param, CategoricalParam):
        return param.optuna_choices()[0]
    return param.low


def get_dotted(config: dict[str, Any], key: str) -> Any:
    """The value at ``a.b.c`` in a nested dict; KeyError names the missing part."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"setting {key!r} is not in the config ({part!r} missing)")
        node = node[part]
    return node


def set_dotted(config: dict[str, Any], key: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested dict in place, creating sections as needed."""
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise SpaceError(f"cannot set {key!r}: {part!r} is a value, not a section")
        node = child
    node[leaf] = copy.deepcopy(value)


def _spaces_folder():
    return resources.files("recdiff.config") / "spaces"


def list_spaces() -> list[str]:
    """Names of the shipped search spaces (``recdiff tune CONFIG --space NAME``)."""
    return sorted(
        p.name[: -len(".yaml")] for p in _spaces_folder().iterdir() if p.name.endswith(".yaml")
    )


def load_space(name_or_path: str | Path) -> SearchSpace:
    """A shipped space by name, or a YAML file."""
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"} or path.exists():
        if not path.is_file():
            raise SpaceError(f"search space file {path} not found")
        source = file = str(path)
        text = path.read_text(encoding="utf-8")
    elif str(name_or_path) in list_spaces():
        shipped = _spaces_folder() / f"{name_or_path}.yaml"
        source, file = f"space {name_or_path}", str(shipped)
        text = shipped.read_text(encoding="utf-8")
    else:
        raise SpaceError(
            f"{str(name_or_path)!r} is neither a space file nor a shipped space; shipped: "
            f"{list_spaces()}"
        )
    try:
        data = _parse(text, file)
    except yaml.YAMLError as error:
        raise SpaceError(f"{source} is not valid YAML: {error}") from None
    return SearchSpace.from_dict(data, source)


def _parse(text: str, file: str) -> Any:
    """``yaml.load`` with error marks that name ``file``: PyYAML names a str stream
    ``"<unicode string>"``. Read from the string, the marks keep their snippet of the line."""
    try:
        loader = ConfigLoader(text)  # a SafeLoader subclass; checks the characters first
    except yaml.reader.ReaderError as error:
        error.name = file
        raise
    loader.name = file  # read when a mark is made
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
