"""The commands the documentation shows still run: sub-commands, options, presets, ``--set`` keys.

Every ``recdiff ...`` and ``python3 benchmarks/X.py ...`` command of README.md, docs/results.md
and benchmarks/README.md, in code blocks and in inline code (joined when it wraps), is parsed by
the command it names, without running it: the sub-command exists, the CLI (Click, as Typer builds
it) or the script's argparse parser accepts every option and value, the presets resolve, every
``--set`` validates against the typed config of the preset it applies to, and ``--space`` names a
shipped search space. No data is read: config validation does not open ``data.source``.

Placeholders: ``$NAME`` takes the value the document gives it in a code block above
(``D="--set ..."``); one with no such value (``$RUN``) stands for its name. RUN, PATH, OUT and
NAME stand for paths and names as written; the numbers S, W, P, E, N and K get one; ``...``
(and the option it follows) is dropped; ``[optional parts]`` are checked as if given; a preset
written ``demo-<model>`` must match at least one preset, and each match is checked. A config
given as a YAML file the docs have a command write first (``OUT/best.yaml``) is not validated.

Settings shown alone in inline code (``--set model.latent.svd_dim=16``) must validate on the
preset named before them, or else on at least one shipped preset; an option named alone
(``--include-seen``) must be one of some ``recdiff`` sub-command or benchmark script.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import functools
import io
import itertools
import re
import runpy
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
import typer

from recdiff.cli.experiments import overrides_for
from recdiff.cli.main import app
from recdiff.cli.reproduce import PAPER_RESULTS
from recdiff.config import ConfigError, list_presets, load_config
from recdiff.experiments.space import load_space

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
DOCS = ("README.md", "docs/results.md", "benchmarks/README.md")

#: Placeholders for numbers (seeds, guidance weights, epochs, counts), as a whole word or as the
#: value of ``--set key=VALUE``: each gets a number its setting accepts.
NUMBERS = {"S": "1", "W": "0.1", "P": "0.1", "E": "10", "N": "3", "K": "5"}

#: Commands the docs show on purpose although they no longer run, with why: (document, command
#: as checked, i.e. ``Command.shown``) -> reason.
HISTORICAL: dict[tuple[str, str], str] = {}

#: Options of other programs that the docs name in inline code: option -> program.
OTHER_PROGRAMS = {
    "--logdir": "tensorboard",
    "--nproc_per_node": "torchrun",
    "--diffuser_type": "DreamRec's released code",
    "--epoch": "DreamRec's released code",
    "--check": "ruff format",
}

#: Fewest commands each document should yield, per kind: far fewer means the extraction broke.
#: (The comments give the counts when this test was written.)
FEWEST = {
    ("README.md", "recdiff"): 30,  # 37
    ("README.md", "benchmarks"): 4,  # 5
    ("docs/results.md", "recdiff"): 55,  # 65
    ("docs/results.md", "benchmarks"): 27,  # 34
    ("benchmarks/README.md", "recdiff"): 5,  # 7
    ("benchmarks/README.md", "benchmarks"): 24,  # 30
}

#: Fewest inline ``--set`` settings shown outside commands (39).
FEWEST_SETTINGS = 30

_START = re.compile(
    r"(?<![\w./$-])(?:recdiff\s+(?=[a-z$])|python3?\s+(?:\S*/)?benchmarks/\w+\.py(?![\w.]))"
)
_ASSIGNMENT = re.compile(r"^([A-Za-z_]\w*)=(.*)$", re.S)
_VARIABLE = re.compile(r"^\$\{?([A-Za-z_]\w*)\}?$")
_OPTION = re.compile(r"^--?[A-Za-z][\w-]*")
_HINT = re.compile(r"(?<![\w-])--[A-Za-z][\w-]*")
_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
_ANGLED = re.compile(r"<([A-Za-z][\w-]*)>")
_OPERATORS = ";&|()<>`"  # a command ends at the first; a backtick ends inline code in a block


@dataclass(frozen=True)
class Command:
    """One command of a document, as the checks read it."""

    doc: str
    line: int
    words: tuple[str, ...]  # program first (``recdiff`` or ``benchmarks/X.py``), then its args
    hints: tuple[str, ...] = ()  # options named in the comment after it (``# --threads 2``)

    @property
    def kind(self) -> str:
        return "recdiff" if self.words[0] == "recdiff" else "benchmarks"

    @property
    def shown(self) -> str:
        return shlex.join(self.words)

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {self.shown}"


# --- extraction -----------------------------------------------------------------------------


def _code_lines(text: str) -> tuple[list[tuple[int, str]], str]:
    """The logical lines of the fenced code blocks (a trailing backslash joins the next line),
    each with its first line's number; and the text with those blocks blanked out."""
    lines = text.split("\n")
    code, prose = [], list(lines)
    fence = None
    pending, pending_line = "", 0
    for number, line in enumerate(lines, start=1):
        marker = re.match(r"\s*(`{3,}|~{3,})", line)
        if fence is None:
            if marker:
                fence = marker.group(1)
                prose[number - 1] = ""
            continue
        prose[number - 1] = ""
        if marker and marker.group(1).startswith(fence) and not line.strip(fence[0] + " "):
            fence = None
            continue
        if not pending:
            pending_line = number
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        code.append((pending_line, pending + line))
        pending = ""
    return code, "\n".join(prose)


def _split_comment(line: str) -> tuple[str, str]:
    """``code  # comment`` -> (code, comment): the first ``#`` that starts a word outside quotes."""
    quote = None
    for index, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index], line[index + 1 :]
    return line, ""


def _unbracket(word: str) -> str:
    """``[--eval-dropout]`` -> ``--eval-dropout``, ``0.99]`` -> ``0.99``; ``[200]`` stays."""
    if word.startswith("[-") and word.endswith("]"):
        word = word[1:-1]
    while word.startswith("[") and word.count("[") > word.count("]"):
        word = word[1:]
    while word.endswith("]") and word.count("]") > word.count("["):
        word = word[:-1]
    return word


def _words(text: str, variables: dict[str, str]) -> list[str]:
    """The words of one command, up to the first shell operator, placeholders resolved."""
    text = _ANGLED.sub(r"{\1}", text)  # demo-<model> is a placeholder, not a redirection
    lexer = shlex.shlex(text, posix=True, punctuation_chars=_OPERATORS)
    lexer.whitespace_split = True
    lexer.commenters = ""
    words: list[str] = []
    for word in lexer:
        if word and set(word) <= set(_OPERATORS):
            break
        variable = _VARIABLE.match(word)
        if variable:
            name = variable.group(1)
            words += shlex.split(variables[name]) if name in variables else [name]
            continue
        word = _unbracket(word)
        if word:
            words.append(word)
    resolved: list[str] = []
    for word in words:
        if word.endswith("...") and word != "...":  # RUN... -> RUN
            word = word[:-3]
        if word == "...":  # something left out; with the option that would take it
            if resolved and resolved[-1].startswith("-"):
                resolved.pop()
            continue
        key, equals, value = word.partition("=")
        if word in NUMBERS:
            word = NUMBERS[word]
        elif equals and value in NUMBERS and resolved and resolved[-1] == "--set":
            word = f"{key}={NUMBERS[value]}"
        resolved.append(word)
    return resolved


def _program(words: list[str]) -> list[str]:
    """``python3 benchmarks/X.py ...`` -> ``benchmarks/X.py ...``; ``recdiff ...`` as it is."""
    if words and words[0] != "recdiff":
        script = words[1]
        return [f"benchmarks/{script.rpartition('benchmarks/')[2]}", *words[2:]]
    return words


def _commands_in(text: str, variables: dict[str, str]) -> list[list[str]]:
    """The words of each command starting in ``text``."""
    return [_program(_words(text[start.start() :], variables)) for start in _START.finditer(text)]


def extract(doc: str, text: str) -> list[Command]:
    """Every command of a Markdown document, in code blocks and in inline code."""
    code, prose = _code_lines(text)
    definitions: list[tuple[int, str, str]] = []  # (line, name, value) of simple assignments
    for number, line in code:
        source, _ = _split_comment(line)
        assignment = _ASSIGNMENT.match(source.strip())
        if assignment and "$(" not in assignment.group(2):
            definitions.append((number, assignment.group(1), " ".join(shlex.split(assignment[2]))))

    def variables(line: int) -> dict[str, str]:
        """The values given above ``line``; a name given only below, its first value there
        ("its `D` settings" of the comparison further down)."""
        known = {name: value for number, name, value in reversed(definitions) if number > line}
        known.update({name: value for number, name, value in definitions if number < line})
        return known

    commands = []
    for number, line in code:
        source, comment = _split_comment(line)
        known = variables(number)
        here = _commands_in(source, known)
        in_comment = _commands_in(comment, known)  # "# error: ...; resume with: recdiff resume"
        hints = () if in_comment else tuple(_HINT.findall(comment))
        for index, words in enumerate(here):
            last = index == len(here) - 1
            commands.append(Command(doc, number, tuple(words), hints if last else ()))
        commands += [Command(doc, number, tuple(words)) for words in in_comment]
    for number, span in _spans(prose):
        for start in _START.finditer(span):
            at = number + span.count("\n", 0, start.start())
            words = _program(_words(span[start.start() :].replace("\n", " "), variables(at)))
            commands.append(Command(doc, at, tuple(words)))
    return sorted(commands, key=lambda command: command.line)


def _spans(prose: str) -> list[tuple[int, str]]:
    """The inline code of the text outside code blocks, each with its first line's number.
    Spans never cross a paragraph, so one stray backtick cannot pair all the rest wrongly."""
    found, offset = [], 0
    for paragraph in re.split(r"(\n\s*\n)", prose):
        for span in _SPAN.finditer(paragraph):
            found.append((prose.count("\n", 0, offset + span.start(2)) + 1, span.group(2)))
        offset += len(paragraph)
    return found


@dataclass(frozen=True)
class Settings:
    """``--set key=value ...`` shown in inline code on its own, not as part of a command."""

    doc: str
    line: int
    overrides: tuple[str, ...]
    preset: str | None = None  # named first (`ldiffrec-ml1m-tuned --set ...`), else any preset

    def __str__(self) -> str:
        named = f"{self.preset} " if self.preset else ""
        return f"{self.doc}:{self.line}: {named}" + " ".join(f"--set {o}" for o in self.overrides)


def settings_in(doc: str, text: str) -> list[Settings]:
    """Each inline ``--set key=value`` (one or more) outside a command. Syntax examples
    (``--set key.path=value``, ``--set CONFIG:key=value``, ``KEY=VALUE``) are not settings."""
    found = []
    for number, span in _spans(_code_lines(text)[1]):
        if _START.search(span.replace("\n", " ")):
            continue  # a command: checked whole
        words = _words(span.replace("\n", " "), {})
        overrides = []
        for option, value in itertools.pairwise(words):
            key = value.partition("=")[0]
            if option == "--set" and key != "key.path" and not re.search(r"[A-Z:]", key):
                overrides.append(value)
        if overrides:
            preset = words[0] if words[0] in list_presets() else None
            found.append(Settings(doc, number, tuple(overrides), preset))
    return found


@functools.cache
def documented_settings() -> tuple[Settings, ...]:
    return tuple(
        settings for doc in DOCS for settings in settings_in(doc, (REPO / doc).read_text("utf-8"))
    )


def options_alone(text: str) -> list[tuple[int, str]]:
    """Each ``--option`` named in inline code outside a command (`--include-seen`), by line."""
    found = []
    for number, span in _spans(_code_lines(text)[1]):
        if not _START.search(span.replace("\n", " ")):
            found += [(number, option) for option in _HINT.findall(span)]
    return found


@functools.cache
def documented() -> tuple[Command, ...]:
    return tuple(
        command for doc in DOCS for command in extract(doc, (REPO / doc).read_text("utf-8"))
    )


# --- checks ---------------------------------------------------------------------------------


@functools.cache
def _cli():
    """The ``recdiff`` command as Typer builds it (a Click group, from Typer's own Click)."""
    return typer.main.get_command(app)


def _option_names(command) -> set[str]:
    names = {"--help"}
    for param in command.params:
        if param.param_type_name == "option":
            names.update(param.opts + param.secondary_opts)
    return names


def _unknown_options(args: list[str], accepted: set[str], hints: tuple[str, ...]) -> list[str]:
    problems = []
    for word in [*args, *hints]:
        if word == "--":
            break
        option = _OPTION.match(word)
        if option and option.group(0) not in accepted:
            problems.append(f"unknown option {option.group(0)}")
    return problems


def _config_problems(config: str, overrides: list[str]) -> list[str]:
    """``load_config`` of a preset (or each preset a ``demo-<model>`` pattern matches)."""
    if "{" in config:
        pattern = re.sub(r"{[^}]*}", "*", config)
        matches = fnmatch.filter(list_presets(), pattern)
        if not matches:
            return [f"no preset matches {config}"]
        return [p for match in matches for p in _config_problems(match, overrides)]
    if config.endswith((".yaml", ".yml")) and not (REPO / config).is_file():
        return []  # a file an earlier command writes (tune's OUT/best.yaml)
    try:
        load_config(str(REPO / config) if (REPO / config).is_file() else config, overrides)
    except ConfigError as error:
        return [f"{config}: {error}"]
    return []


def _recdiff_problems(words: list[str], hints: tuple[str, ...]) -> list[str]:
    command = _cli()
    path = ["recdiff"]
    args = list(words)
    while hasattr(command, "commands"):  # a group: `recdiff`, `recdiff demo`
        if not args or args[0] not in command.commands:
            given = args[0] if args else "nothing"
            return [f"{' '.join(path)} has no sub-command {given!r}: {sorted(command.commands)}"]
        path.append(args[0])
        command = command.commands[args.pop(0)]
    problems = _unknown_options(args, _option_names(command), hints)
    if problems:
        return problems
    try:
        with command.make_context(" ".join(path), args) as context:
            params = dict(context.params)
    except typer.TyperException as error:  # Click's errors, as Typer raises them
        param = getattr(error, "param", None)
        if type(error).__name__ == "MissingParameter" and param.param_type_name == "argument":
            return []  # a mention of the command's options (`recdiff serve --threads 1`)
        return [error.format_message()]
    return _setting_problems(path[-1], params)


def _setting_problems(name: str, params: dict) -> list[str]:
    """The presets, ``--set`` overrides and ``--space`` of a parsed command."""
    configs = list(params.get("configs") or [])
    configs += [params[key] for key in ("config", "preset") if params.get(key) is not None]
    overrides = list(params.get("overrides") or [])
    problems = []
    if name == "reproduce" and params["preset"] not in PAPER_RESULTS:
        problems.append(f"reproduce has no paper numbers for {params['preset']!r}")
    for config in configs:
        try:
            chosen = (
                overrides_for(config, overrides, configs) if name == "experiment" else overrides
            )
        except ConfigError as error:
            problems.append(str(error))
            continue
        problems += _config_problems(config, chosen)
    space = params.get("space")
    if space is not None and not (
        space.endswith((".yaml", ".yml")) and not (REPO / space).is_file()
    ):
        try:
            load_space(REPO / space if (REPO / space).is_file() else space)
        except ConfigError as error:  # SpaceError is one
            problems.append(f"--space {space}: {error}")
    return problems


class _Parser(Exception):
    def __init__(self, parser: argparse.ArgumentParser):
        super().__init__("parser built")
        self.parser = parser


def _capture(parser: argparse.ArgumentParser, *args, **kwargs):
    raise _Parser(parser)


@functools.cache
def _benchmark_parser(script: str) -> argparse.ArgumentParser | None:
    """The argparse parser a benchmark script builds, stopped before it parses anything."""
    path = REPO / script
    if not path.is_file():
        return None
    sys.path.insert(0, str(BENCHMARKS))
    try:
        with (
            mock.patch.object(argparse.ArgumentParser, "parse_args", _capture),
            mock.patch.object(argparse.ArgumentParser, "parse_known_args", _capture),
            mock.patch.object(sys, "argv", [str(path)]),
        ):
            runpy.run_path(str(path), run_name="__main__")
    except _Parser as built:
        return built.parser
    finally:
        sys.path.remove(str(BENCHMARKS))
    raise AssertionError(f"{script} ran without parsing its arguments")


def _benchmark_problems(script: str, args: list[str], hints: tuple[str, ...]) -> list[str]:
    parser = _benchmark_parser(script)
    if parser is None:
        return [f"no script {script}"]
    accepted = set(parser._option_string_actions)
    problems = _unknown_options(args, accepted, hints)
    if problems:
        return problems
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            namespace = parser.parse_args(args)
    except SystemExit:
        message = errors.getvalue().strip().splitlines()[-1]
        missing = message.partition("the following arguments are required: ")[2]
        if missing and not any(name.startswith("-") for name in missing.split(", ")):
            return []  # a mention without the positional arguments
        return [message]
    # A script that trains a preset (test_peaks.py PRESET, --preset X) loads it with its --set
    # as `recdiff train` does; run_all.py's --set MODEL:key=value names models, not presets.
    preset = getattr(namespace, "preset", None)
    if not isinstance(preset, str):
        return []
    action = parser._option_string_actions.get("--set")
    overrides = (getattr(namespace, action.dest) or []) if action else []
    return _config_problems(preset, list(overrides))


@functools.cache
def every_option() -> frozenset[str]:
    """The options of every ``recdiff`` sub-command and every benchmark script."""
    options: set[str] = set()
    groups = [_cli()]
    while groups:
        for command in groups.pop().commands.values():
            if hasattr(command, "commands"):
                groups.append(command)
            else:
                options |= _option_names(command)
    for script in sorted(BENCHMARKS.glob("[!_]*.py")):
        options |= set(_benchmark_parser(f"benchmarks/{script.name}")._option_string_actions)
    return frozenset(options)


@functools.cache
def _refusal(preset: str, overrides: tuple[str, ...]) -> str | None:
    try:
        load_config(preset, list(overrides))
    except ConfigError as error:
        return str(error)
    return None


def settings_problems(settings: Settings) -> list[str]:
    """Why no preset (or not the one named) accepts inline ``--set`` settings; empty if one does."""
    refusals = []
    for preset in [settings.preset] if settings.preset else list_presets():
        refusal = _refusal(preset, settings.overrides)
        if refusal is None:
            return []
        refusals.append(refusal)
    # Shown: the refusal of a preset they fit best, one that has the keys' sections (it names
    # the keys whole, where another says `model.latent: Extra inputs are not permitted`).
    keys = [override.partition("=")[0] for override in settings.overrides]
    closest = max(
        refusals, key=lambda refusal: (sum(f"{k}:" in refusal for k in keys), -len(refusal))
    )
    return [f"no shipped preset accepts them; e.g. {closest}"]


def problems(command: Command) -> list[str]:
    """What is wrong with a documented command; empty when it would run as written."""
    program, *args = command.words
    if program == "recdiff":
        return _recdiff_problems(args, command.hints)
    return _benchmark_problems(program, args, command.hints)


# --- tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", documented(), ids=str)
def test_a_documented_command_runs_as_written(command):
    reason = HISTORICAL.get((command.doc, command.shown))
    if reason:
        pytest.skip(f"shown on purpose although it no longer runs: {reason}")
    found = problems(command)
    assert not found, f"{command}\n" + "\n".join(found)


@pytest.mark.parametrize("settings", documented_settings(), ids=str)
def test_documented_settings_outside_commands_validate_on_a_preset(settings):
    # `--set model.latent.svd_dim=16` in prose names no preset: some shipped preset must take it.
    found = settings_problems(settings)
    assert not found, f"{settings}\n" + "\n".join(found)


@pytest.mark.parametrize("doc", DOCS)
def test_options_named_alone_are_options_of_recdiff_or_a_benchmark(doc):
    # `--include-seen`, `--ef-search` in prose: which command they belong to is the text's to
    # say; that some command still has them is checked here.
    named = options_alone((REPO / doc).read_text("utf-8"))
    assert len(named) >= 5, named
    unknown = [
        f"{doc}:{line}: {option}"
        for line, option in named
        if option not in every_option() and option not in OTHER_PROGRAMS
    ]
    assert not unknown, f"no recdiff sub-command or benchmark script has {unknown}"


def test_the_docs_yield_commands_of_each_kind_from_each_document():
    counts = {key: 0 for key in FEWEST}
    for command in documented():
        key = (command.doc, command.kind)
        counts[key] = counts.get(key, 0) + 1
    print("documented commands checked:", counts, "inline settings:", len(documented_settings()))
    too_few = {key: n for key, n in counts.items() if n < FEWEST.get(key, 1)}
    assert not too_few, f"far fewer commands than the docs hold: {too_few} (expected {FEWEST})"
    assert len(documented_settings()) >= FEWEST_SETTINGS
    stale = [key for key in HISTORICAL if key not in {(c.doc, c.shown) for c in documented()}]
    assert not stale, f"allow-listed commands the docs no longer show: {stale}"


_PAGE = """\
Train it:

```bash
D="--set data.format=csv \\
   --set data.source=my_log.csv"
recdiff train demo-diffrec $D --set train.epochs=S \\
  --quiet   # or --runs-dir OUT
python3 benchmarks/untrained_items.py RUN RUN --threads 1   # --seed 2
```

Then `recdiff experiment demo-diffrec
demo-ease --seeds 3 --set demo-diffrec:model.diffusion.steps=4` and
`recdiff tune demo-diffrec --space diffrec-paper --trials 2`.
"""


def test_commands_are_found_in_code_and_in_wrapped_inline_code_with_variables_expanded():
    commands = extract("page.md", _PAGE)
    assert [(c.line, c.shown, c.hints) for c in commands] == [
        (
            6,
            "recdiff train demo-diffrec --set data.format=csv --set data.source=my_log.csv "
            "--set train.epochs=1 --quiet",
            ("--runs-dir",),
        ),
        (8, "benchmarks/untrained_items.py RUN RUN --threads 1", ("--seed",)),
        (
            11,
            "recdiff experiment demo-diffrec demo-ease --seeds 3 "
            "--set demo-diffrec:model.diffusion.steps=4",
            (),
        ),
        (13, "recdiff tune demo-diffrec --space diffrec-paper --trials 2", ()),
    ]
    assert all(not problems(command) for command in commands)


@pytest.mark.parametrize(
    ("written", "stale", "expected"),
    [
        ("--quiet", "--quite", "unknown option --quite"),
        ("# or --runs-dir", "# or --run-dir", "unknown option --run-dir"),  # a comment's hint
        ("train.epochs=S", "train.epochz=S", "train.epochz: unknown key; did you mean 'epochs'?"),
        ("data.format=csv", "data.format=cvs", "data.format: Input should be"),  # inside $D
        ("train demo-diffrec", "train demo-difrec", "'demo-difrec' is neither a config file"),
        ("--threads 1", "--thread 1", "unknown option --thread"),
        ("# --seed 2", "# --sed 2", "unknown option --sed"),
        ("demo-diffrec:model", "demo-difrec:model", "'demo-difrec' is not one of the configs"),
        ("steps=4", "steps=many", "model.diffusion.steps: Input should be a valid integer"),
        ("--space diffrec-paper", "--space diffrec-papers", "neither a space file nor a shipped"),
        ("recdiff tune", "recdiff tuen", "has no sub-command 'tuen'"),
        ("--trials 2", "--trials two", "Invalid value for '--trials'"),
        ("untrained_items.py", "untrained_item.py", "no script benchmarks/untrained_item.py"),
    ],
)
def test_the_checks_reject_a_command_made_stale(written, stale, expected):
    assert _PAGE.count(written) == 1
    commands = extract("page.md", _PAGE.replace(written, stale))
    found = [problem for command in commands for problem in problems(command)]
    assert any(expected in problem for problem in found), found


def test_a_benchmark_preset_and_its_settings_are_checked_too():
    # test_peaks.py PRESET --set ...: the script loads the config as `recdiff train` would.
    good = Command(
        "page.md", 1, ("benchmarks/test_peaks.py", "dreamrec-zhihu", "--set", "train.seed=2")
    )
    assert not problems(good)
    bad = Command(
        "page.md", 1, ("benchmarks/test_peaks.py", "dreamrec-zhihu", "--set", "train.sed=2")
    )
    assert any("train.sed: unknown key; did you mean 'seed'?" in p for p in problems(bad))
    unknown = Command("page.md", 1, ("benchmarks/checkpoint_cost.py", "--preset", "demo-difrec"))
    assert any("'demo-difrec' is neither" in p for p in problems(unknown))


def test_settings_shown_alone_are_checked_on_some_preset():
    page = (
        "With `--set model.latent.svd_dim=16` (L-DiffRec), `--set CONFIG:key=value`, and "
        "`ldiffrec-ml1m-tuned --set model.latent.bounded_encoder=true`.\n"
    )
    shown = settings_in("page.md", page)
    assert [str(settings) for settings in shown] == [
        "page.md:1: --set model.latent.svd_dim=16",
        "page.md:1: ldiffrec-ml1m-tuned --set model.latent.bounded_encoder=true",
    ]
    assert not any(settings_problems(settings) for settings in shown)
    stale = settings_in("page.md", page.replace("svd_dim", "svd_dims").replace("=true", "=maybe"))
    assert (
        "model.latent.svd_dims: unknown key; did you mean 'svd_dim'?"
        in settings_problems(stale[0])[0]
    )
    assert (
        "model.latent.bounded_encoder: Input should be a valid boolean"
        in (settings_problems(stale[1])[0])
    )


@pytest.mark.parametrize(
    ("doc", "written", "stale", "expected"),
    [
        ("README.md", "--seeds 3 --jobs 2", "--seeds 3 --job 2", "unknown option --job"),
        ("docs/results.md", "data.min_rating=4", "data.min_ratings=4", "data.min_ratings"),
        ("benchmarks/README.md", "--no-ddp", "--no-dpp", "unknown option --no-dpp"),
    ],
)
def test_a_stale_command_planted_in_a_real_document_is_caught(doc, written, stale, expected):
    text = (REPO / doc).read_text("utf-8")
    assert written in text
    found = [p for command in extract(doc, text.replace(written, stale)) for p in problems(command)]
    assert any(expected in problem for problem in found), found


def test_an_option_named_alone_that_no_command_has_is_found():
    page = "Pass `--include-seen`, or `--index faiss`, not\n`--include-unseen`.\n"
    named = options_alone(page)
    assert named == [(1, "--include-seen"), (1, "--index"), (2, "--include-unseen")]
    assert [option for _, option in named if option not in every_option()] == ["--include-unseen"]
