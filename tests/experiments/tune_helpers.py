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
    its workers together (``os.killpg``)."""
    return subprocess.Popen(
        [sys.executable, "-m", "recdiff", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        start_new_session=True,
    )


@contextlib.contextmanager
def killed_on_failure(job: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """Kill ``job`` and its workers (its process group) should the block fail."""
    try:
        yield job
    except BaseException:
        os.killpg(job.pid, signal.SIGKILL)
        job.communicate()
        raise


def wait_for_runs(job: subprocess.Popen, runs: Path, count: int, seconds: float = 90) -> None:
    """Wait until ``count`` runs train at once under ``runs`` (their hidden folders exist)."""
    deadline = time.monotonic() + seconds
    while len(list(runs.glob(".*.incomplete"))) < count:
        assert job.poll() is None, f"the command ended (exit {job.returncode}) before {count} runs"
        assert time.monotonic() < deadline, f"{count} runs never trained at once"
        time.sleep(0.1)
