"""What the tests of `recdiff tune` share: command-line settings, trials.csv, the study, and a
command started in a process group of its own."""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path


def sets(overrides: list[str]) -> list[str]:
    """``key=value`` settings as ``--set`` options."""
    return [part for item in overrides for part in ("--set", item)]


def rows(path: Path) -> list[dict[str, str]]:
    """A CSV file's rows (trials.csv)."""
    with path.open() as fh:
        return list(csv.DictReader(fh))


def study_of(out: Path):
    """The study a search keeps in ``out``."""
    import optuna

    return optuna.load_study(study_name="recdiff-tune", storage=f"sqlite:///{out / 'study.db'}")


def start(args: list[str]) -> subprocess.Popen:
    """``recdiff ARGS`` in a session of its own (one thread), so that a test can kill it and
    its workers together (``os.killpg``). As from a terminal, Ctrl-C and SIGHUP have their
    default actions: a shell starts background jobs with SIGINT ignored, a CI runner may ignore
    SIGHUP (nohup), and the command would inherit that (Python then installs no handler).
    Faulthandler is on, for :func:`stacks`."""
    return subprocess.Popen(
        [sys.executable, "-m", "recdiff", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"},
        start_new_session=True,
        preexec_fn=_terminal_defaults,
    )


def _terminal_defaults() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)  # a runner may start the tests under nohup


@contextlib.contextmanager
def killed_on_failure(job: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """Kill ``job`` and its workers (its process group) should the block fail."""
    try:
        yield job
    except BaseException:
        with contextlib.suppress(ProcessLookupError):  # the group may have ended already
            os.killpg(job.pid, signal.SIGKILL)
        job.communicate()
        raise


def stacks(job: subprocess.Popen) -> str:
    """The Python stacks of a command's processes that did not stop: faulthandler (on through
    PYTHONFAULTHANDLER, see :func:`start`) prints every thread's on SIGABRT, before the process
    aborts."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(job.pid, signal.SIGABRT)  # its group: the command and its workers
    try:
        _, stderr = job.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        return "(none printed within 15 s of SIGABRT)"
    return stderr[-8000:]


def wait_for_runs(job: subprocess.Popen, runs: Path, count: int, seconds: float = 90) -> None:
    """Wait until ``count`` runs train at once under ``runs`` (their hidden folders exist)."""
    deadline = time.monotonic() + seconds
    while len(list(runs.glob(".*.incomplete"))) < count:
        assert job.poll() is None, f"the command ended (exit {job.returncode}) before {count} runs"
        assert time.monotonic() < deadline, f"{count} runs never trained at once"
        time.sleep(0.1)
