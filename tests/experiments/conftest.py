"""A ``recdiff`` command signalled while it trains, for the tests of how it stops; the tables
of an experiment's results.md."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from tune_helpers import killed_on_failure, stacks, start, wait_for_runs


@pytest.fixture
def signal_while_training():
    """Start ``recdiff ARGS...``, send its process (alone, or with ``group`` its whole process
    group) ``sig`` once ``training`` runs are
    being written under ``runs`` (their hidden folders exist), and return its exit status and
    stderr. The test fails if the output pipes are still open ``timeout`` seconds after the
    signal: every process of the command holds them, workers included. (Stopping takes 1-5 s;
    the margin is for a loaded CI machine. A worker left running would train for hours.)

    The command gets a process group of its own, killed if the test fails, so that a command
    that leaves workers running cannot leave them behind the test run as well."""

    def run(
        args: list[str],
        runs: Path,
        training: int,
        sig: int,
        timeout: float = 60,
        group: bool = False,
    ) -> tuple[int, str]:
        with killed_on_failure(start(args)) as job:
            wait_for_runs(job, runs, training)
            if group:  # as a closed terminal hangs up the command and its workers at once
                os.killpg(job.pid, sig)
            else:
                job.send_signal(sig)
            try:
                _, stderr = job.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                pytest.fail(
                    f"processes of the command still ran {timeout:.0f} s after {sig!r}; "
                    f"where they were:\n{stacks(job)}"
                )
        return job.returncode, stderr

    return run


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
