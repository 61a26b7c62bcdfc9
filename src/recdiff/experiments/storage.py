"""The Optuna study of a search on disk (``OUT/study.db``): opening it (refused when it holds
another search, naming the settings that differ) and failing the trials of killed processes.

A running trial beats a heartbeat into the study every ``HEARTBEAT_SECONDS``; one silent for
``STALE_AFTER_SECONDS`` was killed (SIGKILL, a crash) and is marked FAIL when the study is next
opened.

While a search runs, ``OUT/.study-reserve`` holds ``RESERVE_BYTES`` of the study's disk: when
the disk fills up during a trial, every write to the study fails too, Optuna's own "FAIL" among
them, and the trial would stay RUNNING until its heartbeat went stale. Freeing the reserve
leaves room to record it FAIL with its error (:class:`SpaceReserve`).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from recdiff.atomic import stops_deferred
from recdiff.config.loading import ConfigError
from recdiff.config.schema import RunConfig

__all__ = [
    "HEARTBEAT_SECONDS",
    "RESERVE_BYTES",
    "STALE_AFTER_SECONDS",
    "STUDY_NAME",
    "SpaceReserve",
    "TuneError",
    "fail_stale_trials",
    "import_optuna",
    "open_study",
    "study_write_error",
]

STUDY_NAME = "recdiff-tune"
HEARTBEAT_SECONDS = 60  # a running trial's sign of life in the study
STALE_AFTER_SECONDS = 180  # a RUNNING trial silent this long was killed: FAIL
RESERVE_BYTES = 1 << 20  # room kept to record a trial that failed on a full disk
SQLITE_LOCK_SECONDS = 60  # how long a write waits for another process's lock on the study
WORKER_SEED_STRIDE = 1000  # sampler seeds of one search's workers lie this far apart


class TuneError(ConfigError):
    """A search that cannot run as asked; the message says what to change."""


def import_optuna() -> Any:
    """Optuna is an optional dependency (the ``tune`` extra)."""
    try:
        import optuna
    except ImportError:
        raise TuneError(
            "hyper-parameter search needs optuna: pip install 'recdiff[tune]'"
        ) from None
    return optuna


@functools.cache
def _uncut_storage(optuna: Any) -> type:
    """Optuna's RDBStorage, with Ctrl-C and SIGTERM held until each of its calls returns
    (:func:`recdiff.atomic.stops_deferred`). Cut inside a read, a call can leave SQLite's read
    lock held, and the FAIL that the stop then writes (this process's own write, under the lock it
    holds itself) waits for SQLite's timeout, 60 s, then fails: a stopped search hung for a
    minute, or two with two trials, and left its trials RUNNING. Every method of
    the class is held (the private ones too: Optuna's cache calls them), nested calls once."""
    base = optuna.storages.RDBStorage

    def uncut(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            with stops_deferred():
                return method(*args, **kwargs)

        return call

    methods = {
        name: uncut(member)
        for name, member in vars(base).items()
        if inspect.isfunction(member) and (name == "__init__" or not name.startswith("__"))
    }
    return type("UncutRDBStorage", (base,), methods)


def _sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


@contextlib.contextmanager
def _experimental_is_fine(optuna: Any) -> Iterator[None]:
    """Silences Optuna's ExperimentalWarning for heartbeats (experimental since 2.9) and the
    sampler's ``constant_liar`` (experimental before 5.0)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def _current_form(config: Any) -> Any:
    """A stored search's config as this version writes it: settings added since (at their
    defaults) must not make an unchanged search look different. Unreadable configs stay as they
    are, and then differ."""
    try:
        current = RunConfig.model_validate(config).model_dump(mode="json")
    except (ValidationError, TypeError, ValueError):
        return config
    current["train"]["progress"] = False  # as _Search's base
    return json.loads(json.dumps(current))


def open_study(
    out: Path,
    fingerprint: dict[str, Any],
    seed: int,
    prune: bool,
    warmup: int,
    worker: int = 0,
):
    """The search's study in ``out``, created or continued (refused when its fingerprint, the
    search's config, space and metric, differs). Its TPE sampler is seeded with ``seed`` plus the
    trials already run, so a resumed search does not replay the first samples, plus
    ``WORKER_SEED_STRIDE`` times ``worker``, so that the workers of one search sample apart. It
    takes the running trials' settings to score badly (``constant_liar``, Optuna's default from
    5.0 on), so that workers do not propose settings near each other's."""
    optuna = import_optuna()  # first: without the tune extra, sqlalchemy is missing too
    from sqlalchemy.exc import DatabaseError  # optuna's storage layer

    path = out / "study.db"
    try:
        with _experimental_is_fine(optuna):
            storage = _uncut_storage(optuna)(
                _sqlite_url(path),
                heartbeat_interval=HEARTBEAT_SECONDS,
                grace_period=STALE_AFTER_SECONDS,
                # The workers of one search write to the file at once: wait for the lock
                # rather than fail on SQLite's default 5 s.
                engine_kwargs={"connect_args": {"timeout": SQLITE_LOCK_SECONDS}},
            )
        study = optuna.create_study(
            study_name=STUDY_NAME,
            storage=storage,
            direction="maximize",
            load_if_exists=True,
        )
    except DatabaseError as error:  # e.g. another file saved as study.db
        unwritable = study_write_error(path, error)
        if unwritable is not None:
            raise unwritable from None
        raise TuneError(
            f"{path}: cannot be opened as the search's study ({getattr(error, 'orig', error)}); "
            "if it is not the study.db of a `recdiff tune` run, move it away or pass another "
            "--out"
        ) from None
    fingerprint = json.loads(json.dumps(fingerprint))  # as it reads back from the database
    stored = study.user_attrs.get("fingerprint")
    if stored is not None:
        stored = {**stored, "config": _current_form(stored.get("config"))}
    if stored is None:
        study.set_user_attr("fingerprint", fingerprint)
    elif stored != fingerprint:
        differ = [k for k in fingerprint if stored.get(k) != fingerprint[k]]
        changes = [c for k in differ for c in _changes(stored.get(k), fingerprint[k], k)]
        raise TuneError(
            f"{out / 'study.db'} holds a search with another {' and '.join(differ)} "
            f"({'; '.join(changes[:5])}{'; ...' if len(changes) > 5 else ''}); "
            "continue it with the same command, or pass a new --out"
        )
    n_before = len(study.get_trials(deepcopy=False))
    with _experimental_is_fine(optuna):
        study.sampler = optuna.samplers.TPESampler(
            seed=seed + n_before + WORKER_SEED_STRIDE * worker,
            n_startup_trials=5,
            constant_liar=True,
        )
    study.pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup)
        if prune
        else optuna.pruners.NopPruner()
    )
    return study


# SQLite's result codes (sqlite3 names them from Python 3.11 on): what a full disk and a
# read-only study (or file system) return, and what each asks of the user.
_SQLITE_FULL, _SQLITE_READONLY = 13, 8
_WRITE_FIXES = {
    _SQLITE_FULL: "free some space, or pass another --out",
    _SQLITE_READONLY: "make it writable, or pass another --out",
}


def study_write_error(path: Path, error: BaseException) -> TuneError | None:
    """The error to raise when ``error`` is SQLite failing to write the study at ``path`` for
    want of space or permission, which Optuna words as "invalid data in the commit" (the
    SQLite error is in its chain); None for any other error."""
    import sqlite3

    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        code = getattr(cause, "sqlite_errorcode", None)
        if isinstance(cause, sqlite3.Error) and code in _WRITE_FIXES:
            return TuneError(f"cannot write the study {path} ({cause}): {_WRITE_FIXES[code]}")
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


class SpaceReserve:
    """``RESERVE_BYTES`` held in ``OUT/.study-reserve`` until :meth:`free`; none when the disk is
    too full for them already. Random bytes, so that a compressing file system stores them."""

    def __init__(self, out: Path, name: str = ".study-reserve") -> None:
        self.path = out / name
        try:
            self.path.write_bytes(os.urandom(RESERVE_BYTES))
        except OSError:
            self.path.unlink(missing_ok=True)

    def free(self) -> bool:
        """Give the bytes back; whether there were any to give."""
        try:
            self.path.unlink()
        except OSError:
            return False
        return True


def _changes(stored: Any, given: Any, key: str) -> list[str]:
    """What differs between a study's fingerprint and this call's: one ``KEY: A in the study,
    B here`` per setting (``train.epochs``, ``space.train.lr``, ``metric``)."""
    if isinstance(stored, dict) and isinstance(given, dict):
        keys = dict.fromkeys([*stored, *given])
        return [c for k in keys for c in _changes(stored.get(k), given.get(k), f"{key}.{k}")]
    if stored == given:
        return []
    key = key.removeprefix("config.")  # a run setting, as --set names it
    return [f"{key}: {json.dumps(stored)} in the study, {json.dumps(given)} here"]


def fail_stale_trials(study: Any) -> list[int]:
    """Mark FAIL the RUNNING trials whose heartbeat stopped; returns their numbers."""
    optuna = import_optuna()
    running = (optuna.trial.TrialState.RUNNING,)
    before = {t.number for t in study.get_trials(deepcopy=False, states=running)}
    with _experimental_is_fine(optuna):
        optuna.storages.fail_stale_trials(study)
    after = {t.number for t in study.get_trials(deepcopy=False, states=running)}
    return sorted(before - after)
