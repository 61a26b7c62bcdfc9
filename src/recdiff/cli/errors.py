"""One place that turns mistakes in user input and files into ``error: ...`` (exit code 2).

Commands run their work inside :func:`user_errors`. It knows the exceptions a user causes: a file
where a folder should be (or the reverse), a damaged run folder (corrupt JSON, YAML or weights;
an invalid ``config.yaml``), and the types a command lists as its own (``ConfigError``,
``ValueError``, ...). Each becomes one line that names the file or setting to fix; any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import json
import os
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import typer
import yaml
from pydantic import ValidationError

from recdiff.atomic import stop_signal
from recdiff.config.problems import validation_problems
from recdiff.config.schema import RunConfig

__all__ = ["check_device", "check_extras", "fail", "stopped", "user_errors"]

#: What a user can do about a run folder whose files cannot be read.
_DAMAGED = "looks damaged: re-train the run or restore the folder from a backup"


def fail(message: str, code: int = 2) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=code)


def stopped(stop: KeyboardInterrupt | SystemExit, after: str, during: str = "") -> NoReturn:
    """End a command that Ctrl-C, SIGTERM or SIGHUP (``sigterm_unwinds`` raises those as
    ``SystemExit(128 + N)``) stopped: one line, ``interrupted{during}; {after}`` or ``stopped by
    SIGTERM...``, with the exit status a shell gives the signal. Any other ``SystemExit`` goes
    on as it is."""
    if isinstance(stop, KeyboardInterrupt):
        fail(f"interrupted{during}; {after}", code=130)
    name = stop_signal(stop)
    if name is not None:
        fail(f"stopped by {name}{during}; {after}", code=stop.code)
    raise stop


@contextmanager
def user_errors(
    *expected: type[Exception], run: Path | None = None, retry: str | None = None
) -> Iterator[None]:
    """Fail with one line on path mistakes, on a damaged ``run`` folder (files named) and on the
    ``expected`` exception types (their message is the error); re-raise everything else.
    ``retry`` is what to do once a full or read-only disk is fixed, where writing elsewhere is
    no remedy (resuming a run in place); by default the message says to write elsewhere."""
    try:
        yield
    except Exception as error:
        message = describe(error, expected, run, retry)
        if message is None:
            raise
        fail(message)


def describe(
    error: Exception,
    expected: tuple[type[Exception], ...] = (),
    run: Path | None = None,
    retry: str | None = None,
) -> str | None:
    """The one-line message for ``error``, or None when it is not a user's mistake."""
    if run is not None:
        damaged = _damaged_file(Path(run), error)
        if damaged is not None:
            path, reason = damaged
            return f"{path}: {reason}; the run folder {run} {_DAMAGED}"
    if isinstance(error, OSError):
        message = _path_problem(error)
        if message is not None:
            return message
    full = _storage_problem(error, retry)
    if full is not None:
        return full
    if isinstance(error, expected):
        if isinstance(error, KeyError) and error.args:
            return str(error.args[0])
        return str(error)
    return None


def check_device(device: str, fix: str = "use --set train.device=cpu") -> None:
    """Fail before training when ``train.device`` names hardware this machine does not have;
    ``fix`` says what to do instead."""
    import torch

    kind = torch.device(device)  # a device string: RunConfig has checked it
    if kind.type == "cpu":
        return
    if kind.type == "cuda":
        if not torch.cuda.is_available():
            fail(f"train.device is {device!r}, but torch sees no CUDA GPU here: {fix}")
        count = torch.cuda.device_count()
        if kind.index is not None and kind.index >= count:
            fail(f"train.device is {device!r}, but this machine has {count} CUDA GPU(s): {fix}")
        return
    if kind.type == "mps":
        backend = torch.backends.mps
    else:
        backend = getattr(torch, kind.type, None)
    available = getattr(backend, "is_available", None)
    if available is None:
        fail(f"train.device {device!r}: recdiff cannot train on {kind.type}; use cpu or cuda")
    if not available():
        fail(f"train.device is {device!r}, but torch sees no {kind.type} device here: {fix}")


def check_extras(config: RunConfig) -> None:
    """Fail before training when a setting needs an optional package that is not installed
    (``train.tensorboard``: the tensorboard extra), rather than with a traceback as it starts."""
    if config.train.tensorboard:
        from recdiff.train.tensorboard import summary_writer

        try:
            summary_writer()
        except ImportError as error:
            fail(str(error))


# ----------------------------------------------------------------------------- files and folders
def _path_problem(error: OSError) -> str | None:
    """A file where a folder should be, a folder where a file should be, or no permission."""
    if not isinstance(error, FileExistsError | NotADirectoryError | IsADirectoryError):
        if isinstance(error, PermissionError) and error.filename is not None:
            return f"permission denied: {os.fsdecode(error.filename)}"
        return None
    # os.replace(tmp, target) onto a folder names the target second.
    name = error.filename2 if isinstance(error, IsADirectoryError) else None
    name = name if name is not None else error.filename
    if name is None:
        return None
    path = Path(os.fsdecode(name))
    if isinstance(error, IsADirectoryError):
        return f"{path} is a folder, not a file: give the path of a file" if path.is_dir() else None
    blocker = _file_in_the_way(path)
    if blocker is None:  # nothing the user put there: a bug, keep its traceback
        return None
    where = "" if blocker == path else f"{path}: "
    return (
        f"{where}{blocker} is a file where a folder is needed: choose another path, "
        "or move the file away"
    )


#: Errors of the storage itself, whatever the path: no space, no quota, mounted read-only.
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


def _storage_problem(error: Exception, retry: str | None = None) -> str | None:
    """A full or read-only disk while writing, said as such (safetensors reports a full disk
    in its own error's text); ``retry`` as for :func:`user_errors`."""
    from safetensors import SafetensorError

    elsewhere = "write to another folder (--runs-dir, --out)"
    if isinstance(error, OSError) and error.errno in _STORAGE_ERRNOS:
        where = f" {os.fsdecode(error.filename)}" if error.filename is not None else ""
        if retry is not None:
            fix = "make the folder writable" if error.errno == errno.EROFS else "free some space"
            return f"cannot write{where} ({error.strerror}): {fix}, then {retry}"
        fix = elsewhere if error.errno == errno.EROFS else f"free some space, or {elsewhere}"
        return f"cannot write{where} ({error.strerror}): {fix}"
    if isinstance(error, SafetensorError) and any(
        f"(os error {code})" in str(error) for code in _STORAGE_ERRNOS
    ):
        fix = f"free some space, then {retry}" if retry else f"free some space, or {elsewhere}"
        return f"cannot write the model weights ({str(error).rsplit(': ', 1)[-1]}): {fix}"
    return None


def _file_in_the_way(path: Path) -> Path | None:
    """``path`` or the first of its parents that exists and is not a folder."""
    for candidate in [*reversed(path.parents), path]:
        if candidate.exists() and not candidate.is_dir():
            return candidate
    return None


# ------------------------------------------------------------------------------ damaged runs
def _damaged_file(run: Path, error: Exception) -> tuple[Path, str] | None:
    """The run's file that ``error`` came from and what is wrong with it; None when ``error``
    is not about the run's files."""
    if isinstance(error, ValidationError):
        if error.title != RunConfig.__name__:  # model/config.json, if it fails the same way
            return _invalid_model_config(run)
        if not (run / "config.yaml").is_file():
            return None
        return run / "config.yaml", _problems(error)
    suffixes = _suffixes_read_by(error)
    return _first_unreadable(run, suffixes) if suffixes else None


def _suffixes_read_by(error: Exception) -> tuple[str, ...]:
    """The kinds of run files (by suffix) whose reading can raise ``error``."""
    from safetensors import SafetensorError

    if isinstance(error, yaml.YAMLError):
        return (".yaml",)
    if isinstance(error, json.JSONDecodeError):
        return (".json",)
    if isinstance(error, UnicodeDecodeError):
        return (".yaml", ".json")
    if isinstance(error, SafetensorError):
        return (".safetensors",)
    if isinstance(error, zipfile.BadZipFile | EOFError):  # EOFError: numpy on an empty file
        return (".npz",)
    return ()


def _problems(error: ValidationError) -> str:
    return "; ".join(f"{key}: {text}" if key else text for key, text in validation_problems(error))


def _invalid_model_config(run: Path) -> tuple[Path, str] | None:
    from recdiff.models.base import SavedModel

    try:
        SavedModel.load(run / "model")
    except ValidationError as problem:
        return run / "model" / "config.json", _problems(problem)
    except Exception:
        return None
    return None


def _yaml_reason(error: yaml.YAMLError) -> str:
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        return f"not valid YAML ({error.problem}, line {mark.line + 1} column {mark.column + 1})"
    return f"not valid YAML ({str(error).splitlines()[0] if str(error) else type(error).__name__})"


def _read_text(path: Path) -> str:
    return path.read_bytes().decode("utf-8")


def _read_yaml(path: Path) -> None:
    yaml.safe_load(_read_text(path))


def _read_json(path: Path) -> None:
    json.loads(_read_text(path))


def _read_safetensors(path: Path) -> None:
    from safetensors.torch import load_file

    load_file(str(path))


def _read_npz(path: Path) -> None:
    import numpy as np

    with np.load(path) as arrays:
        for name in arrays.files:
            arrays[name]


_READERS = {
    ".yaml": _read_yaml,
    ".json": _read_json,
    ".safetensors": _read_safetensors,
    ".npz": _read_npz,
}


def _first_unreadable(run: Path, suffixes: tuple[str, ...]) -> tuple[Path, str] | None:
    if not run.is_dir():
        return None
    for path in sorted(run.rglob("*")):
        if path.suffix not in suffixes or not path.is_file():
            continue
        try:
            _READERS[path.suffix](path)
        except UnicodeDecodeError as problem:
            return path, f"not UTF-8 text ({problem.reason} at byte {problem.start})"
        except json.JSONDecodeError as problem:
            where = f"line {problem.lineno} column {problem.colno}"
            return path, f"not valid JSON ({problem.msg}, {where})"
        except yaml.YAMLError as problem:
            return path, _yaml_reason(problem)
        except Exception as problem:  # safetensors' and zipfile's errors on a damaged file
            return path, f"cannot be read ({problem})"
    return None
