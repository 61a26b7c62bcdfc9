"""A ``recdiff`` command signalled while it trains, for the tests of how it stops; the tables
of an experiment's results.md."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.fixture
def signal_while_training():
    """Start ``recdiff ARGS...``, send its process (alone) ``sig`` once ``training`` runs are
    being written under ``runs`` (their hidden folders exist), and return its exit status and
    stderr. The test fails if the output pipes are still open ``timeout`` seconds after the
    signal: every process of the command holds them, workers included. (Stopping takes 1-5 s;
    the margin is for a loaded CI machine. A worker left running would train for hours.)

    The command gets a process group of its own, killed if the test fails, so that a command
    that leaves workers running cannot leave them behind the test run as well."""

    def run(
        args: list[str], runs: Path, training: int, sig: int, timeout: float = 60
    ) -> tuple[int, str]:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
        command = [sys.executable, "-m", "recdiff", *args]
        job = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
            # A shell starts background jobs with SIGINT ignored, and so may a CI runner; the
            # command would inherit that (Python then installs no Ctrl-C handler) and rightly
            # ignore the test's SIGINT. Give it the default, as a terminal command has.
            preexec_fn=_default_sigint,
        )
        try:
            deadline = time.monotonic() + 90
            while len(list(runs.glob(".*.incomplete"))) < training:
                if job.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"{training} runs never trained at once (exit {job.poll()}): {args}"
                    )
                time.sleep(0.1)
            job.send_signal(sig)
            try:
                _, stderr = job.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                pytest.fail(
                    f"processes of the command still ran {timeout:.0f} s after {sig!r}; "
                    f"where they were:\n{_stacks(job)}"
                )
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job.pid, signal.SIGKILL)  # its group: the command and its workers
            job.communicate()
            raise
        return job.returncode, stderr

    return run


def _stacks(job: subprocess.Popen) -> str:
    """The Python stacks of a command's processes that did not stop: faulthandler (on through
    PYTHONFAULTHANDLER) prints every thread's on SIGABRT, before the process aborts."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(job.pid, signal.SIGABRT)  # its group: the command and its workers
    try:
        _, stderr = job.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        return "(none printed within 15 s of SIGABRT)"
    return stderr[-8000:]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _markdown_tables(text: str) -> list[list[list[str]]]:
    """Every markdown table in ``text`` as rows of cells (header first, separator dropped)."""
    tables, current = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= set("-:") for c in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


@pytest.fixture(scope="session")
def markdown_tables():
    """``markdown_tables(text)``: every markdown table in ``text`` as rows of cells."""
    return _markdown_tables
