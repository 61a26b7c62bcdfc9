"""Atomic file writes: a reader sees the old file or the complete new one, never half of one.

The new file is written to a hidden temporary file beside the target (``.NAME.<random>.tmp``,
NAME cut short where the whole would pass the file system's 255-byte limit on a name) that
replaces the target only when complete. Whatever stops the write before that (an error, Ctrl-C,
``SystemExit``, or SIGTERM, which unwinds like Ctrl-C while a write is open) removes the
temporary file; only a signal that cannot be handled (SIGKILL) or a power cut can leave one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "UNWINDING",
    "atomic_path",
    "atomic_write_text",
    "sigterm_unwinds",
    "stop_signal",
    "stops_deferred",
]

#: The signals that :func:`sigterm_unwinds` turns into ``SystemExit(128 + N)``: SIGTERM (what
#: ``kill``, ``timeout``, schedulers and ``docker stop`` send) and SIGHUP (the terminal closed, an
#: SSH session dropped), where the platform has it.
UNWINDING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on any exception
    (``KeyboardInterrupt`` and ``SystemExit`` included) it is removed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp: Path | None = None
    with sigterm_unwinds():
        try:
            # The name is known before the file exists, so that an exception at any point after
            # its creation (even one that lands before the next statement) finds it to remove.
            while tmp is None:
                tmp = target.parent / f".{_stem_room(target.name)}.{secrets.token_hex(8)}.tmp"
                try:
                    # Mode 0o666 less the umask: the mode a plain open() gives a new file.
                    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                except FileExistsError:  # someone else's file: never ours to remove
                    tmp = None
            yield tmp
            os.replace(tmp, target)
        except BaseException as error:
            if tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            if isinstance(error, OSError) and _about_the_temporary(error, tmp):
                # the user knows the file they asked for, not its hidden temporary name
                raise OSError(error.errno, error.strerror, os.fspath(target)) from error
            raise


def _about_the_temporary(error: OSError, tmp: Path | None) -> bool:
    """Whether ``error`` is the temporary file's: it names it, or it is a full disk that names
    no file (a write or close through a handle names none)."""
    if error.filename is None:
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    return tmp is not None and os.fspath(error.filename) == os.fspath(tmp)


# Bytes of the target's name that fit in a temporary name: 255 less ".", ".<16 hex>" and ".tmp".
_NAME_ROOM = 255 - 1 - 17 - 4


def _stem_room(name: str) -> str:
    """``name``, cut at a character boundary to at most ``_NAME_ROOM`` bytes on disk, so that a
    target whose own name fits the limit also gets a temporary name that fits."""
    while len(os.fsencode(name)) > _NAME_ROOM:
        name = name[:-1]
    return name


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """Inside the block, SIGTERM (what ``kill``, ``timeout``, schedulers and ``docker stop``
    send) and SIGHUP (a closed terminal) raise ``SystemExit(128 + N)`` as Ctrl-C raises
    ``KeyboardInterrupt``, so that cleanup code runs; the process still exits with 128 + N, as
    the unhandled signal would make it (143, 129).

    A handler installed by someone else is left alone (an ignored SIGHUP, as ``nohup`` sets it,
    stays ignored), and so is any thread but the main one (Python delivers signals there only).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    ours = [signum for signum in UNWINDING if signal.getsignal(signum) is signal.SIG_DFL]

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    try:  # installed inside: a Ctrl-C right after installing still restores the default
        for signum in ours:
            signal.signal(signum, stop)
        yield
    finally:
        for signum in ours:
            signal.signal(signum, signal.SIG_DFL)


def stop_signal(stop: BaseException) -> str | None:
    """The name of the signal (``SIGTERM``, ``SIGHUP``) that :func:`sigterm_unwinds` raised
    ``stop`` for; None for anything else."""
    if isinstance(stop, SystemExit) and isinstance(stop.code, int):
        for signum in UNWINDING:
            if stop.code == 128 + signum:
                return signal.Signals(signum).name
    return None


_STOPS = (signal.SIGINT, *UNWINDING)
_deferring = False  # a stops_deferred block is open (in the main thread, the only one it acts in)


@contextlib.contextmanager
def stops_deferred() -> Iterator[None]:
    """Inside the block, Ctrl-C, SIGTERM and SIGHUP wait: the first to arrive acts as soon as the block
    ends, as it would have acted inside it (its handler runs, or its default action). For calls
    that must not be cut in the middle, such as a read of an SQLite file: cut there, it can leave
    the read's lock held (clearing the exception's frames does not release it), and this
    process's next write waits for its own lock until SQLite's timeout.

    A block inside another changes nothing; a thread but the main one (Python runs handlers there
    only) and a signal whose handler was not set from Python are left as they are.
    """
    global _deferring
    if threading.current_thread() is not threading.main_thread() or _deferring:
        yield
        return
    held: list[int] = []
    before: dict[int, Any] = {}
    try:
        _deferring = True
        for signum in _STOPS:
            handler = signal.getsignal(signum)
            if handler is not None:
                before[signum] = handler
                signal.signal(signum, lambda s, frame: held.append(s))
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
        _deferring = False
        if held:
            _act(held[0], before[held[0]])


def _act(signum: int, handler: Any) -> None:
    """What ``signum`` does under ``handler``, once it has been restored."""
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        signal.raise_signal(signum)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
