"""A run folder's life: reserved, written hidden, renamed when complete, resumed or removed.

``recdiff train`` reserves ``runs/NAME`` (empty until the run completes) and writes into the
hidden ``runs/.NAME.incomplete``, renamed to ``NAME`` once complete; a resume checkpoint
(:data:`CHECKPOINT_FILE`) in it lets ``recdiff resume`` complete an interrupted run.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from recdiff.config.schema import RunConfig

__all__ = [
    "CHECKPOINT_FILE",
    "MAX_NAME_BYTES",
    "exclusive",
    "final_and_unfinished",
    "find_resumable_run",
    "remove_partial_files",
    "remove_unfinished",
    "remove_unfinished_runs",
    "reserve",
    "reserved",
    "resumable_run",
    "unfinished",
]

#: The longest run name (bytes on disk) whose hidden folder ".NAME-YYYYmmdd-HHMMSS-NNNN.incomplete"
#: keeps to the 255-byte limit on a file name.
MAX_NAME_BYTES = 255 - len(".-20261130-001040-9999.incomplete")

#: The resume checkpoint's file name in an unfinished run folder.
CHECKPOINT_FILE = "resume.pt"
_SUFFIX = ".incomplete"


def unfinished(final: Path) -> Path:
    """Where the run that will become ``final`` is written until it is complete."""
    return final.parent / f".{final.name}{_SUFFIX}"


def reserved(unfinished_folder: Path) -> Path:
    """The reserved name of the run being written into ``unfinished_folder``
    (:func:`unfinished`'s inverse)."""
    return unfinished_folder.parent / unfinished_folder.name[1:].removesuffix(_SUFFIX)


def final_and_unfinished(run: Path) -> tuple[Path, Path]:
    """The reserved and the unfinished folder of a run given by either of them."""
    if run.name.startswith(".") and run.name.endswith(_SUFFIX):
        return reserved(run), run
    return run, unfinished(run)


def resumable_run(run: Path) -> tuple[Path, Path]:
    """The reserved and the unfinished folder of an interrupted run that can be resumed."""
    final, work = final_and_unfinished(run)
    if (final / "metrics.json").exists():
        raise ValueError(f"{final} is a complete run: there is nothing to resume")
    if not work.is_dir():
        raise ValueError(
            f"{run} is not an interrupted run (no unfinished folder {work.name} beside it): "
            "give the folder that `recdiff train` named when it was interrupted"
        )
    if not (work / CHECKPOINT_FILE).is_file():
        raise ValueError(
            f"{run} stopped before its first resume checkpoint (or its config sets no "
            "train.checkpoint_every): there is nothing to resume from; train it again"
        )
    return final, work


def find_resumable_run(runs_dir: Path, config: RunConfig) -> Path | None:
    """The newest interrupted run of ``config`` in ``runs_dir`` that can be resumed: its hidden
    folder holds a checkpoint and the same resolved config (progress bars aside)."""
    from recdiff.config import load_config
    from recdiff.train.checkpoint import run_settings

    wanted = run_settings(config)
    found = []
    # A name may hold glob's own characters ("ml[1m]"): matched as written.
    for hidden in Path(runs_dir).glob(f".{glob.escape(config.name)}-*.incomplete"):
        final = reserved(hidden)
        if not (hidden / CHECKPOINT_FILE).is_file() or unfinished(final) != hidden:
            continue
        try:
            same = run_settings(load_config(str(hidden / "config.yaml"))) == wanted
        except (OSError, ValueError):  # unreadable: not this config's run
            continue
        if same:
            found.append(final)
    return max(found, key=lambda final: final.name) if found else None


# The temporary files atomic_path writes beside their target (".NAME.<16 hex>.tmp").
PARTIAL_FILE = re.compile(r"\..+\.[0-9a-f]{16}\.tmp")


def remove_partial_files(work: Path) -> None:
    """Remove what a process killed outright (SIGKILL) in the middle of writing a file left of
    it: a half-written checkpoint, say, which would otherwise end up in the completed run. Only
    the process holding the folder's lock calls it, so no such file is still being written."""
    for path in work.rglob(".*.tmp"):
        if path.is_file() and PARTIAL_FILE.fullmatch(path.name):
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def exclusive(work: Path):
    """Hold a lock on the unfinished folder: a second process resuming the same run (or
    resuming it while it still trains) is refused instead of writing over it."""
    try:
        import fcntl
    except ImportError:  # not on this platform: unguarded
        yield
        return
    handle = os.open(work, os.O_RDONLY)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(
                f"{work} is being written by another process (a run in progress, or another "
                "resume of it): wait for it, or stop it first"
            ) from None
        yield
    finally:
        os.close(handle)


def remove_unfinished(final: Path) -> None:
    """Remove the unfinished folder of ``final`` and the reserved folder itself, which is only
    removed while empty: a finished run is never touched."""
    shutil.rmtree(unfinished(final), ignore_errors=True)
    with contextlib.suppress(OSError):
        final.rmdir()


def remove_unfinished_runs(runs_dir: Path, name: str) -> None:
    """Remove what a killed process left of runs named ``name``: their hidden unfinished
    folders and the empty folders reserved beside them (a finished run is never touched: its
    reserved folder is not empty), except those holding a resume checkpoint, which
    :func:`resume_training` can complete. A run stopped by an exception or a signal removes both
    itself (:func:`run_training`) unless it has such a checkpoint."""
    stamped = re.compile(rf"{re.escape(name)}-\d{{8}}-\d{{6}}(?:-\d+)?")  # as reserve names
    if not runs_dir.is_dir():
        return
    for hidden in runs_dir.glob(".*.incomplete"):
        final = reserved(hidden)
        if unfinished(final) != hidden or stamped.fullmatch(final.name) is None:
            continue
        if (hidden / CHECKPOINT_FILE).is_file():
            continue
        remove_unfinished(final)


def reserve(runs_dir: Path, name: str) -> Path:
    """Create an empty, uniquely named run directory (exclusive mkdir: safe between processes)."""
    # A leading dot would hide the run: listed by nothing, and taken for an unfinished run.
    if not name or name.startswith(".") or any(sep in name for sep in ("/", "\\")):
        raise ValueError(
            f"the run name {name!r} must be a plain folder name (no '/' or '\\', not starting "
            "with '.'): set name to something like my-run"
        )
    if len(os.fsencode(name)) > MAX_NAME_BYTES:
        raise ValueError(
            f"the run name {name[:40]!r}... is {len(os.fsencode(name))} bytes long: its folder "
            f"names would pass the file system's 255-byte limit; set a name of at most "
            f"{MAX_NAME_BYTES} bytes"
        )
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise  # a file in the way: the CLI names it
    except OSError as error:
        raise ValueError(
            f"cannot create the runs folder {runs_dir} ({error.strerror}): choose another "
            "--runs-dir"
        ) from None
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for suffix in range(1, 10_000):
        final = runs_dir / (f"{name}-{stamp}" if suffix == 1 else f"{name}-{stamp}-{suffix}")
        try:
            final.mkdir()
            return final
        except FileExistsError:
            continue
    raise RuntimeError(f"no free run directory name for {name} in {runs_dir}")
