"""Runs trained side by side (``recdiff experiment --jobs N``) stop when the command stops.

Before, SIGTERM ended the parent alone (exit -15) and its workers, re-parented, trained the queued
seeds and wrote runs after the command had ended; Ctrl-C waited for every queued run.
"""

import os
import signal
import time
import weakref
from pathlib import Path

import pytest

from recdiff.experiments.experiment import _remove_unfinished_runs
from recdiff.experiments.workers import stoppable, worker_pool

AGAIN = "run the same command again to continue where it stopped"


def _mark_and_wait(marker: Path) -> None:
    """A task that says it runs (its pid in ``marker``, renamed into place so that the test
    never reads the file between its creation and its write), then runs long."""
    written = marker.with_name(marker.name + ".tmp")
    written.write_text(str(os.getpid()))
    written.replace(marker)
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


def _exit_slowly(marker: Path) -> int:
    """A task after which its worker's exit takes a while (as torch's finalizers make it): the
    worker writes ``marker`` once it runs its exit handlers."""
    import atexit

    def slow_exit() -> None:
        marker.write_text("exiting")
        time.sleep(2)

    atexit.register(slow_exit)
    return os.getpid()


def test_a_worker_signalled_while_it_exits_prints_no_traceback(tmp_path, capfd):
    """A pool left by an error sends SIGTERM to its workers just as idle ones are told to exit:
    one may get it while it runs its exit handlers. It exits as it was doing; before, SIGTERM
    unwound the handler it interrupted and the command's output ended with a worker's
    ``Exception ignored in atexit callback`` and a ``SystemExit: 143`` traceback."""
    marker = tmp_path / "exiting"
    with worker_pool(1) as pool:
        pid = pool.submit(stoppable, _exit_slowly, marker).result(timeout=60)
        worker = next(iter(pool._processes.values()))
        pool.shutdown(wait=False)  # the idle worker is told to exit
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert time.monotonic() < deadline, "the worker never ran its exit handlers"
            time.sleep(0.01)
        os.kill(pid, signal.SIGTERM)
        worker.join(60)
        # The pool's own thread reaps its workers too: when it wins the race, join returns
        # with the exit code not yet recorded on the shared process object. It is set next.
        deadline = time.monotonic() + 60
        while worker.exitcode is None and time.monotonic() < deadline:
            time.sleep(0.01)
    assert worker.exitcode == 0
    stderr = capfd.readouterr().err
    assert "Traceback" not in stderr and "SystemExit" not in stderr, stderr


def _in_a_callback_when_stopped(folder: Path) -> None:
    """A task inside a weakref callback (whose exceptions Python ignores) when SIGTERM comes, as
    one deep in torch may be; then it runs long. It writes ``unwound`` if it unwinds."""

    class Thing:
        pass

    def callback(_: object) -> None:
        # Renamed into place: the test reads the pid as soon as the file exists, and a
        # write_text seen between its create and its write read as "" (a flaky failure).
        (folder / "in-callback.tmp").write_text(str(os.getpid()))
        os.replace(folder / "in-callback.tmp", folder / "in-callback")
        time.sleep(5)

    thing = Thing()
    ref = weakref.ref(thing, callback)  # noqa: F841 - the callback needs its weakref alive
    try:
        del thing  # the callback runs now
        time.sleep(120)
    finally:
        (folder / "unwound").write_text("yes")


def test_a_stop_that_lands_in_a_callback_still_unwinds_the_task(tmp_path, capfd):
    """SIGTERM's SystemExit raised in a weakref callback is swallowed by Python, which prints
    its traceback: the task went on (until killed after the grace time, its run folder left to
    the parent) and the command's output ended with ``Exception ignored in`` and
    ``SystemExit: 143``. The stop is delivered again, and unwinds the task once it has
    returned."""
    with pytest.raises(RuntimeError, match="stop here"), worker_pool(1) as pool:
        pool.submit(stoppable, _in_a_callback_when_stopped, tmp_path)
        deadline = time.monotonic() + 60
        while not (tmp_path / "in-callback").exists():
            assert time.monotonic() < deadline, "the task never ran its callback"
            time.sleep(0.01)
        os.kill(int((tmp_path / "in-callback").read_text()), signal.SIGTERM)
        deadline = time.monotonic() + 20  # the callback sleeps 5 s, the task 120 s
        while not (tmp_path / "unwound").exists():
            assert time.monotonic() < deadline, "the task did not unwind"
            time.sleep(0.01)
        raise RuntimeError("stop here")
    stderr = capfd.readouterr().err
    assert "Traceback" not in stderr and "SystemExit" not in stderr, stderr


def test_workers_write_warnings_as_the_command_does(monkeypatch):
    """A spawned worker starts with Python's warning format (file:line and source); it gets the
    parent's instead, so `--jobs 2` prints the CLI's one `warning:` line as `--jobs 1` does."""
    import warnings

    from recdiff.cli.main import _warning_line

    monkeypatch.setattr(warnings, "formatwarning", _warning_line)
    # the worker's own warnings.formatwarning, looked up there
    looked_up = "__import__('warnings').formatwarning('ignored', UserWarning, 'x.py', 1)"
    with worker_pool(1) as pool:
        shown = pool.submit(eval, looked_up).result()
    assert shown == "warning: ignored\n"
