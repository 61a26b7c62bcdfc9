"""Runs trained side by side (``recdiff experiment --jobs N``) stop when the command stops.

Before, SIGTERM ended the parent alone (exit -15) and its workers, re-parented, trained the queued
seeds and wrote runs after the command had ended; Ctrl-C waited for every queued run.
"""

import os
import signal
import time
from pathlib import Path

import pytest

from recdiff.experiments.experiment import _remove_unfinished_runs
from recdiff.experiments.workers import stoppable, worker_pool

AGAIN = "run the same command again to continue where it stopped"


def _mark_and_wait(marker: Path) -> None:
    """A task that says it runs (its pid in ``marker``), then runs long."""
    marker.write_text(str(os.getpid()))
    time.sleep(120)


def test_leaving_the_pool_by_an_error_ends_the_running_tasks_and_starts_no_queued_one(tmp_path):
    """An exception in the block (as Ctrl-C or SIGTERM would raise) ends the two running tasks
    at once and starts none of the two queued (one of which already waits in the workers'
    queue): the executor's own exit would wait for all four."""
    markers = [tmp_path / f"task-{n}" for n in range(4)]
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="stop here"), worker_pool(2) as pool:
        for marker in markers:
            pool.submit(stoppable, _mark_and_wait, marker)
        while not (markers[0].exists() and markers[1].exists()):
            assert time.monotonic() - started < 60, "the workers never started"
            time.sleep(0.05)
        raise RuntimeError("stop here")
    assert time.monotonic() - started < 60
    assert [m.exists() for m in markers] == [True, True, False, False]
    for marker in markers[:2]:  # the workers have ended (and been waited for)
        with pytest.raises(ProcessLookupError):
            os.kill(int(marker.read_text()), 0)


COMMAND = ["experiment", "demo-diffrec", "--seeds", "3", "--jobs", "2", "--quiet"]
COMMAND += ["--set", "train.epochs=100000", "--set", "train.patience=100000"]


@pytest.mark.parametrize(
    ("sig", "status", "message"),
    [
        (signal.SIGTERM, 143, f"error: stopped by SIGTERM; {AGAIN}"),
        (signal.SIGINT, 130, f"error: interrupted; {AGAIN}"),
        # The parent cannot clean up: its workers notice it is gone and stop themselves.
        (signal.SIGKILL, -signal.SIGKILL, None),
    ],
    ids=["sigterm", "ctrl-c", "sigkill"],
)
def test_a_signal_to_the_command_stops_its_workers_and_leaves_no_run(
    tmp_path, signal_while_training, sig, status, message
):
    """Two seeds training, one queued: the signal to the parent ends the command and its workers
    within seconds (the output pipes close), with the signal's exit status and one line, and
    leaves neither a record nor a run folder, hidden or not."""
    out = tmp_path / "out"
    code, stderr = signal_while_training(
        [*COMMAND, "--out", str(out)], out / "runs", training=2, sig=sig
    )
    assert code == status, stderr[-2000:]
    if message is not None:
        assert stderr.splitlines()[-1] == message
    assert [p.relative_to(out) for p in out.rglob("*")] == [Path("runs")]


def test_a_killed_workers_leftovers_of_unfinished_runs_are_removed(tmp_path):
    """What a worker killed mid-run leaves (its hidden folder and the empty one reserved beside
    it) goes; finished runs, runs of recorded seeds and other names stay."""
    runs = tmp_path / "runs"
    leftovers = [".a-seed1-20260101-120000.incomplete", "a-seed1-20260101-120000"]
    leftovers += [".a-seed1-20260101-120000-2.incomplete", "a-seed1-20260101-120000-2"]
    kept = [".a-seed2-20260101-120000.incomplete", ".a-seed1x-20260101-120000.incomplete"]
    kept += [".b-seed1-20260101-120000.incomplete", "a-seed1-20260101-110000"]
    for name in leftovers + kept:
        (runs / name).mkdir(parents=True)
    (runs / leftovers[0] / "events.jsonl").write_text("{}\n")
    (runs / "a-seed1-20260101-110000" / "metrics.json").write_text("{}")
    # Beside a finished run (a state no run leaves): the hidden folder goes, the run stays.
    (runs / ".a-seed1-20260101-110000.incomplete").mkdir()
    tasks = [
        {"label": label, "config": {"name": f"{label}-seed{seed}", "train": {"seed": seed}}}
        for label in ("a", "b")
        for seed in (1, 2)
    ]
    records = {("a", 2): None, ("b", 1): None}  # finished: their folders are not touched
    _remove_unfinished_runs(runs, tasks, records)
    assert sorted(p.name for p in runs.iterdir()) == sorted(kept)
