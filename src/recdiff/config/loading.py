"""Loading run configs: preset names or YAML files, plus dotted ``key=value`` overrides."""

from __future__ import annotations

import difflib
import os
import textwrap
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

import yaml
from pydantic import BaseModel, ValidationError

from recdiff.config.problems import BOOLEAN_FOR_NUMBER, validation_problems
from recdiff.config.schema import RunConfig, leave_one_out_only
from recdiff.config.sources import DATASETS_PREFIX
from recdiff.config.yaml_io import ConfigLoader, load_yaml

__all__ = ["ConfigError", "apply_overrides", "list_presets", "load_config"]


class ConfigError(ValueError):
    """A config that cannot be used; the message says which key and how to fix it."""


def list_presets() -> list[str]:
    """Names of the shipped presets (``recdiff train NAME``)."""
    folder = resources.files("recdiff.config") / "presets"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _read_yaml(text: str, where: str) -> dict[str, Any]:
    try:
        data = load_yaml(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{where} is not valid YAML: {_yaml_problem(error, text)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must hold a mapping of settings, got {type(data).__name__}")
    return data


def _yaml_problem(error: yaml.YAMLError, text: str) -> str:
    """PyYAML's message on one line, with the line and column: its own spans several lines,
    quotes the source and names the file "<unicode string>"."""
    if isinstance(error, yaml.reader.ReaderError):  # a character YAML does not allow
        line = text.count("\n", 0, error.position) + 1
        column = error.position - (text.rfind("\n", 0, error.position) + 1) + 1
        where = f"line {line} column {column}"
        return f"character {chr(error.character)!r} is not allowed in YAML ({where})"
    if not isinstance(error, yaml.MarkedYAMLError) or error.problem_mark is None:
        return str(error).splitlines()[0] if str(error) else type(error).__name__
    mark = error.problem_mark
    problem = error.problem or ""
    if problem.startswith("but ") and error.context:  # "expected a single document ..."
        problem = f"{error.context}, {problem}"
    problem += f" (line {mark.line + 1} column {mark.column + 1})"
    if "'\\t'" in (error.problem or ""):
        problem += ": indent with spaces, not tabs"
    return problem


def _raw_config(preset_or_path: str) -> dict[str, Any]:
    if not preset_or_path.strip():  # Path("") is the working folder
        raise ConfigError("no config given: name a preset (recdiff presets) or a YAML file")
    path = Path(preset_or_path)
    is_file = path.suffix in {".yaml", ".yml"} or path.is_file()
    if is_file or (path.exists() and preset_or_path not in list_presets()):
        if path.is_dir():  # a folder of the preset's name (e.g. its runs) does not hide it
            raise ConfigError(
                f"{path} is a folder, not a config: give a preset (recdiff presets) or a YAML file"
            )
        if not path.is_file():
            raise ConfigError(f"config file {path} not found")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise ConfigError(
                f"{path} is not UTF-8 text ({error.reason} at byte {error.start})"
            ) from None
        raw = _read_yaml(text, str(path))
        if not raw:  # all defaults: the demo DiffRec, surely not what an empty file meant
            raise ConfigError(
                f"{path} holds no settings: write them there (a preset's file is a start: "
                "recdiff presets), or give a preset's name"
            )
        return raw
    if preset_or_path not in list_presets():
        raise ConfigError(
            f"{preset_or_path!r} is neither a config file nor a preset{_closest(preset_or_path)}; "
            f"presets: {', '.join(list_presets())}"
        )
    return _read_yaml(preset_text(preset_or_path), f"preset {preset_or_path}")


def _closest(name: str) -> str:
    """ " (did you mean 'demo-diffrec'?)" for a mistyped preset name, else nothing."""
    close = difflib.get_close_matches(name, list_presets(), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def preset_text(name: str) -> str:
    """A shipped preset's YAML file as written: its comment says what it is and where its
    settings come from."""
    if name not in list_presets():
        raise ConfigError(
            f"no preset {name!r}{_closest(name)}; presets: {', '.join(list_presets())}"
        )
    return (resources.files("recdiff.config") / "presets" / f"{name}.yaml").read_text("utf-8")


def resolved_yaml(config: RunConfig, model_defaults: bool = False) -> str:
    """Every setting of ``config``, defaults filled in: a run's ``config.yaml``. Its model
    section lists what was set (the model's own ``model/config.json`` has every setting), and,
    with ``model_defaults``, every setting of the model too, as ``presets NAME --resolved``
    shows it. There the train section lists only what the model reads, and a closing comment
    names the others (EASE's and the counts' ignored ones; Mult-VAE's, read into its model
    section or not at all)."""
    settings = config.model_dump(mode="json")
    note = ""
    if model_defaults:
        from recdiff.config.models import resolved_settings

        name = config.model.name
        model, settings["train"], note = resolved_settings(
            name, config.model.params(), config.train
        )
        settings["model"] = {"name": name, **model}
    text = yaml.safe_dump(settings, sort_keys=False)
    return text + "".join(f"# {line}\n" for line in textwrap.wrap(note, 94)) if note else text


def apply_overrides(config: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set ``a.b.c=value`` entries (values parsed as YAML) in a nested dict, in place; a later
    entry wins over an earlier one. A mapping value is merged into the section it names, key by
    key (``model.diffusion={steps: 5}`` is ``model.diffusion.steps=5``: the section's other
    settings stay); to replace a whole section, set it to null first."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} must look like key.path=value")
        *parents, leaf = key.strip().split(".")
        if not all(part.strip() for part in (*parents, leaf)):
            raise ConfigError(
                f"override {item!r}: the key {key.strip()!r} has an empty part; "
                "write it as section.key=value"
            )
        node = config
        for part in parents:
            if node.get(part) is None:  # absent, or null as a resolved config writes it
                node[part] = {}
            child = node[part]
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} is a value, not a section")
            node = child
        _merge_into(node, leaf, _read_value(text, item))
    return config


def _merge_into(node: dict[str, Any], key: str, value: Any) -> None:
    """``node[key] = value``, but a mapping into a mapping key by key, at every depth."""
    if isinstance(value, dict) and isinstance(node.get(key), dict):
        for inner, inner_value in value.items():
            _merge_into(node[key], inner, inner_value)
        return
    node[key] = value


def _read_value(text: str, item: str) -> Any:
    if text and not text.strip():
        # Spaces or a tab typed as the value mean themselves (``data.sep= ``); YAML would read
        # them as null, and the setting would fall back to its default without a word.
        return text
    try:
        value = load_yaml(text) if text else None
        if "#" in text:
            _no_comment(text, item)
    except yaml.YAMLError:
        _no_syntax(text, item, failed=True)
        raise ConfigError(f"override {item!r}: the value is not valid YAML") from None
    _no_syntax(text, item, value=value)
    return value


# Characters YAML reads as syntax at the start of a value, not as text: ``data.sep=|`` was a
# block scalar with nothing in it (''), refused as "at least 1 character"; ``@`` and the
# backtick are reserved, ``%`` starts a directive. What each starts, for the message.
_SYNTAX = {
    "|": "a block scalar",
    ">": "a folded block scalar",
    "%": "a directive",
    "@": "a reserved indicator",
    "`": "a reserved indicator",
    "!": "a tag",
    "&": "an anchor",
    "*": "an alias",
    "-": "a list item",
    "?": "a mapping key",
    ":": "a mapping",
    ",": "a separator",
}
# What YAML makes of such a value when it reads one at all: nothing, or an empty structure.
_NOTHING = (None, "", [None], {None: None})


def _no_syntax(text: str, item: str, value: Any = None, failed: bool = False) -> None:
    """Refuse a value YAML reads as syntax rather than as the text written: one that starts
    with a character of :data:`_SYNTAX` and fails to read, or reads as nothing (``|`` is '',
    ``&x`` null, ``-`` a list holding null). ``!!str 5`` (an explicit tag) and a block of text
    spanning lines read as written and pass."""
    stripped = text.strip()
    first = stripped[:1]
    if first not in _SYNTAX or stripped.startswith("!!") or "\n" in stripped:
        return
    if not failed and not any(value == nothing for nothing in _NOTHING):
        return
    key = item.partition("=")[0].strip()
    raise ConfigError(
        f"override {item!r}: YAML reads {first!r} at the start of a value as syntax "
        f"({_SYNTAX[first]}), not as text: quote the value ({_typed_as_text(key, stripped)})"
    )


def _typed_as_text(key: str, value: str) -> str:
    """``--set "key='value'"``: how to type an override in a shell so that both the shell and
    YAML leave ``value`` as written (the shell drops the outer quotes, YAML the inner ones)."""
    if not set(value) & set('$`"\\!'):  # nothing a shell expands inside double quotes
        inner = value.replace("'", "''")  # YAML's single quotes escape a quote by doubling it
        return f"--set \"{key}='{inner}'\""
    if "'" not in value:  # single quotes for the shell, YAML's double quotes inside
        inner = value.replace("\\", "\\\\").replace('"', '\\"')
        return f"--set '{key}=\"{inner}\"'"
    return f"in a run config file, {key}: '{value.replace(chr(39), chr(39) * 2)}'"


def _no_comment(text: str, item: str) -> None:
    """Refuse a value that YAML would cut at `` #`` (a comment): ``name=my run #2`` read as
    ``my run`` without a word."""
    node = yaml.compose(text, Loader=ConfigLoader)
    rest = text[node.end_mark.index :] if node is not None else text
    if rest.strip().startswith("#"):
        key = item.partition("=")[0].strip()
        raise ConfigError(
            f"override {item!r}: YAML reads {rest.strip()!r} as a comment and drops it: "
            f"quote the value ({_typed_as_text(key, text.strip())}) or remove the comment"
        )


def load_config(preset_or_path: str, overrides: list[str] | None = None) -> RunConfig:
    """Validate a preset or YAML file with overrides; errors name the offending key."""
    raw = _raw_config(preset_or_path)
    written = _relative_paths(raw)
    set_keys = [item.partition("=")[0].strip() for item in overrides or []]
    given = set_keys + [f"train.{key}" for key in _train_keys_written(raw)]
    raw = apply_overrides(raw, list(overrides or []))
    _multvae_reads_what_was_set(raw, given)
    config, problems = None, []
    try:
        config = RunConfig.model_validate(raw)
    except ValidationError as error:
        problems = _problems(raw, error)
    booleans = [(key, BOOLEAN_FOR_NUMBER) for key in _booleans_for_numbers(raw, problems)]
    if booleans or problems:
        _invalid(preset_or_path, booleans + problems)
    _relative_paths_found(Path(preset_or_path), written, set_keys)
    _split_set_for_next_item(preset_or_path, raw, config, set_keys)
    return config


def _split_set_for_next_item(
    preset_or_path: str, raw: dict[str, Any], config: RunConfig, set_keys: list[str]
) -> None:
    """A next-item model's sequences are split leave-one-out: validation takes the default
    ``global_temporal`` (also what a resolved config of a DreamRec folder run lists) for "not
    asked", and any other split is refused. Set on the command line, ``global_temporal`` was
    asked for, and is refused as the others are, not dropped without a word."""
    given = (raw.get("data") or {}).get("split")
    if "data.split" in set_keys and given != config.data.split == "leave_one_out":
        _invalid(preset_or_path, [("", leave_one_out_only(given))])


# Settings that hold a path; a config file may write it relative to the working directory.
_PATH_KEYS = (("data", "source"), ("model", "latent", "item_embeddings"))


def _relative_paths(raw: dict[str, Any]) -> dict[str, str]:
    """The relative paths of :data:`_PATH_KEYS` in a raw config, by dotted key."""
    found = {}
    for keys in _PATH_KEYS:
        node: Any = raw
        for key in keys:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, str) and node and not node.startswith(DATASETS_PREFIX):
            if not Path(node).expanduser().is_absolute():
                found[".".join(keys)] = node
    return found


def _relative_paths_found(path: Path, written: dict[str, str], set_keys: list[str]) -> None:
    """Refuse a relative path a config file writes that names nothing. It is resolved against
    the working directory, as a command line's paths are (and as many tools do; runs rely on
    it), not against the file's folder: the message says so, and names the file next to the
    config when there is one. Paths set with --set are the readers' to report."""
    for key, value in written.items():
        if any(key == k or key.startswith(f"{k}.") for k in set_keys):
            continue  # replaced on the command line
        if Path(value).expanduser().exists():
            continue
        beside = os.path.abspath(path.parent / value)
        fix = (
            f"{beside} is next to the config file: write that path in it, or run recdiff from "
            f"{os.path.abspath(path.parent)}"
            if os.path.exists(beside)
            else "write a path relative to the working directory, or an absolute one"
        )
        raise ConfigError(
            f"{key} {value!r} in {path} is resolved against the working directory, {Path.cwd()} "
            f"(as a relative path in a config file is, not against the file's folder), and "
            f"{os.path.abspath(value)} does not exist: {fix}"
        )


# Keys every resolved config (a run's config.yaml) has listed in its train section, whatever
# recdiff version wrote it; a file that lists them all was written by recdiff, not by hand.
_RESOLVED_TRAIN_KEYS = frozenset(
    {"lr", "weight_decay", "optimizer", "batch_size", "epochs", "eval_every", "patience"}
    | {"metric", "seed", "precision", "device", "progress"}
)


def _train_keys_written(raw: dict[str, Any]) -> list[str]:
    """The ``train.*`` keys a hand-written config file sets; none for a resolved config, which
    lists every key, defaults too, so that its keys cannot say they were chosen."""
    train = raw.get("train")
    if not isinstance(train, dict) or _RESOLVED_TRAIN_KEYS <= train.keys():
        return []
    return [str(key) for key in train]


def _multvae_reads_what_was_set(raw: dict[str, Any], given: list[str]) -> None:
    """``train.batch_size: 400`` for Mult-VAE, in place: also ``model.batch_size: 400``.

    Mult-VAE maps ``train.*`` keys onto its own settings only when they differ from the
    trainer's defaults (a resolved config lists every key, so an equal one cannot say it was
    set), and its defaults differ (batch 500, not 400). A key set on the command line or
    written in a hand-written file (``given``) says so: its value is copied to the model key
    Mult-VAE reads, unless that one was set too (then the usual check reports a
    contradiction). A resolved config's keys stay ambiguous and keep the rule above."""
    from recdiff.config.models import MULTVAE_TRAIN_KEYS

    model, train = raw.get("model"), raw.get("train")
    if not isinstance(model, dict) or model.get("name") != "multvae":
        return
    if not isinstance(train, dict):  # train=null: left to validation, as for any model
        return
    for key, field in MULTVAE_TRAIN_KEYS.items():
        # ``key in train``: a key given, then dropped by train=null (a preset's), is not set
        still_set = f"train.{key}" in given and key in train
        if still_set and f"model.{field}" not in given and field not in model:
            model[field] = train[key]


def _problems(raw: dict[str, Any], error: ValidationError) -> list[tuple[str, str]]:
    problems = validation_problems(error, root=RunConfig)
    problems += [p for p in _model_problems(raw, error) if p not in problems]
    return [(key, message + _other_section(key, message)) for key, message in problems]


def _other_section(key: str, message: str) -> str:
    """``"; max_len is a setting of another section: data.max_len"`` for an unknown key that
    the data, train or eval section takes (``model.max_len``, SASRec's own name for the history
    length, is ``data.max_len`` here), else "". (The model section's keys depend on the model,
    and its validation names them.)"""
    section, _, name = key.rpartition(".")
    if not message.startswith("unknown key") or "." in section:
        return ""
    found = [
        f"{other}.{name}"
        for other, field in RunConfig.model_fields.items()
        if other not in (section, "model")
        and isinstance(field.annotation, type)
        and issubclass(field.annotation, BaseModel)
        and name in field.annotation.model_fields
    ]
    return f"; {name} is a setting of another section: {' or '.join(found)}" if found else ""


def _booleans_for_numbers(raw: dict[str, Any], problems: list[tuple[str, str]]) -> list[str]:
    """Keys holding a boolean where a number belongs, besides the ``problems`` validation
    found. pydantic's lax mode reads such a boolean as 1 or 0 and reports nothing there:
    ``train.epochs=true`` would train one epoch, and a problem it causes downstream
    (``eval.ks=[true]`` lacks the metric's cut-off) would name the wrong fix. Written as the
    text "true", a boolean still validates where a boolean belongs and fails where a number
    does."""
    as_text, keys = _booleans_as_text(raw, "")
    if not keys:
        return []
    try:
        RunConfig.model_validate(as_text)
    except ValidationError as error:
        failing = {key for key, _ in _problems(as_text, error)}
    else:
        return []
    already = {key for key, _ in problems}
    return [key for key in keys if key in failing and key not in already]


def _booleans_as_text(raw: Any, key: str) -> tuple[Any, list[str]]:
    if isinstance(raw, bool):
        return str(raw).lower(), [key]
    keys: list[str] = []
    if isinstance(raw, dict):
        copied = {}
        for name, item in raw.items():
            copied[name], found = _booleans_as_text(item, f"{key}.{name}" if key else str(name))
            keys += found
        return copied, keys
    if isinstance(raw, list):
        copied = []
        for index, item in enumerate(raw):
            value, found = _booleans_as_text(item, f"{key}.{index}")
            copied.append(value)
            keys += found
        return copied, keys
    return raw, keys


def _model_problems(raw: dict[str, Any], error: ValidationError) -> list[tuple[str, str]]:
    """The model section's own problems, when another section's hid them: the model's settings
    are checked (by its config class) only once the rest of the run config is valid, and an
    invalid config should list every bad key at once."""
    if any(str(e["loc"][0]) == "model" for e in error.errors() if e["loc"]) or not isinstance(
        raw.get("model"), dict
    ):
        return []
    try:
        RunConfig.model_validate({"name": "model-check", "model": raw["model"]})
    except ValidationError as model_error:
        problems = validation_problems(model_error, root=RunConfig)
        return [p for p in problems if p[0].startswith("model")]
    return []


def _invalid(preset_or_path: str, problems: list[tuple[str, str]]) -> NoReturn:
    lines = [f"  {key}: {message}" if key else f"  {message}" for key, message in problems]
    raise ConfigError(f"invalid config {preset_or_path!r}:\n" + "\n".join(lines)) from None
