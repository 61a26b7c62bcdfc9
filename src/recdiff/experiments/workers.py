"""Worker processes for runs trained side by side, that stop when the command stops.

A bare ``ProcessPoolExecutor`` outlives an interrupted command: on Ctrl-C its ``__exit__`` runs
every queued task before returning, and a parent ended by SIGTERM leaves its workers (re-parented
to PID 1) training the rest of the queue and writing results after the command has ended. Under
:func:`worker_pool` instead:

- an error, Ctrl-C or SIGTERM in the block (SIGTERM unwinds there as ``SystemExit(143)``, see
  :func:`recdiff.atomic.sigterm_unwinds`) cancels the queued tasks and sends SIGTERM to the
  workers; a worker still alive ``STOP_GRACE_SECONDS`` later is killed;
- in a worker, SIGTERM always unwinds as ``SystemExit(143)``: a run removes its unfinished
  folder, and the process exits through multiprocessing's own cleanup;
- workers ignore Ctrl-C, which a terminal sends to every process of the command, and SIGHUP,
  which a closed terminal sends to them all: the parent decides, and stops them as above. They
  and multiprocessing's resource tracker start with SIGHUP blocked (the tracker ignores only
  SIGINT and SIGTERM; killed by a hang-up, it was relaunched and printed a KeyError traceback
  for each semaphore the workers released);
- a worker whose parent is gone (even one killed by SIGKILL) sends itself SIGTERM within
  ``PARENT_CHECK_SECONDS``;
- a worker that has begun to exit (told to by the pool as it stops) ignores SIGTERM: raised in
  the exit handlers it would interrupt (torch's, say), ``SystemExit`` would end the command's
  output with an ``Exception ignored in atexit callback`` traceback;
- SIGTERM that lands where Python ignores exceptions (a weakref callback, a ``__del__``) is
  delivered again rather than lost with a printed traceback: the run unwinds once that code has
  returned.

Tasks go through :func:`stoppable`: the executor's worker loop catches every exception, including
the ``SystemExit`` of an unwound run, and would then start the next queued task.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.resource_tracker
import multiprocessing.util
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from recdiff.atomic import sigterm_unwinds

__all__ = [
    "PARENT_CHECK_SECONDS",
    "STOP_GRACE_SECONDS",
    "cpu_share",
    "stop_workers",
    "stoppable",
    "worker_pool",
]

STOP_GRACE_SECONDS = 5.0  # from SIGTERM to SIGKILL: time for a run to remove its folder
PARENT_CHECK_SECONDS = 1.0  # how often a worker checks that its parent is still there
REDELIVER_SECONDS = 0.01  # from a stop lost in a callback to the signal sent again


@contextlib.contextmanager
def worker_pool(jobs: int) -> Iterator[ProcessPoolExecutor]:
    """``jobs`` spawned worker processes; leaving the block by an exception stops them at once."""
    with _hang_ups_blocked():
        multiprocessing.resource_tracker.ensure_running()  # keeps the mask: SIGHUP never acts
    pool = _Pool(
        max_workers=jobs,
        mp_context=multiprocessing.get_context("spawn"),  # no forked torch thread pools
        initializer=_start_worker,
        # the parent's way of writing a warning (the CLI's one line), which spawn does not pass
        initargs=(os.getpid(), warnings.formatwarning),
    )
    try:
        with sigterm_unwinds():
            yield pool
            pool.shutdown()
    except BaseException:
        stop_workers(pool)
        raise


def cpu_share(jobs: int) -> int:
    """Torch threads for each of ``jobs`` processes: the CPUs this process may run on (its
    affinity, which a container's or a scheduler's limit sets), shared out, at least one."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cpus = os.cpu_count() or 1
    return max(1, cpus // jobs)


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel the queued tasks, send SIGTERM to the workers, and SIGKILL to those still alive
    after ``STOP_GRACE_SECONDS``; returns once all have ended."""
    workers = _processes(pool)  # before shutdown() drops them
    pool.shutdown(wait=False, cancel_futures=True)
    for worker in workers:
        worker.terminate()
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            worker.kill()
            worker.join()


def _processes(pool: ProcessPoolExecutor) -> list[Any]:
    """The pool's worker processes, with those a :class:`_Pool` started before it broke: a
    broken pool (a worker killed outright) forgets them while it terminates the others itself,
    without waiting for them to unwind."""
    # No public handle on the workers before Python 3.14 (terminate_workers()).
    now = {p.pid: p for p in (getattr(pool, "_processes", None) or {}).values()}
    return list({**getattr(pool, "seen", {}), **now}.values())


class _Pool(ProcessPoolExecutor):
    """Keeps every worker process it starts (they start as tasks are submitted), for
    :func:`stop_workers` to wait for even once the pool has broken."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: dict[int, Any] = {}

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        with _hang_ups_blocked():  # workers start here (spawn), until their initializer runs
            future = super().submit(*args, **kwargs)
        self.seen.update((p.pid, p) for p in (getattr(self, "_processes", None) or {}).values())
        return future


@contextlib.contextmanager
def _hang_ups_blocked() -> Iterator[None]:
    """SIGHUP blocked in this thread while it starts processes, which inherit the mask. This
    process gets a hang-up that came meanwhile once the block ends."""
    if not hasattr(signal, "SIGHUP") or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def stoppable(fn: Callable[[Any], Any], task: Any) -> Any:
    """``fn(task)`` in a worker; a ``SystemExit`` (SIGTERM unwound the task) ends the process
    instead of passing to the executor, which would go on with the next queued task."""
    try:
        return fn(task)
    except SystemExit as stop:
        # What a worker process runs on its way out (multiprocessing's BaseProcess._bootstrap):
        # finalizers remove the semaphores it made, or the resource tracker warns of leaks.
        multiprocessing.util._exit_function()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(stop.code if isinstance(stop.code, int) else 1)


def _start_worker(parent: int, formatwarning: Callable[..., str] = warnings.formatwarning) -> None:
    warnings.formatwarning = formatwarning
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGHUP"):  # a closed terminal hangs up the group: the parent decides
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _unwind)
    sys.unraisablehook = _redeliver_stop
    # The first thing a worker does once its loop has ended (multiprocessing runs finalizers of
    # the highest exit priority first): from then on it exits anyway, with nothing to unwind.
    multiprocessing.util.Finalize(
        None, signal.signal, args=(signal.SIGTERM, signal.SIG_IGN), exitpriority=100
    )
    threading.Thread(
        target=_stop_when_orphaned, args=(parent,), name="recdiff-parent-check", daemon=True
    ).start()


def _unwind(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _redeliver_stop(unraisable: Any) -> None:
    """``sys.unraisablehook`` of a worker: :func:`_unwind`'s ``SystemExit`` raised in code whose
    exceptions Python ignores (a weakref callback deep in torch, say) would be printed and lost,
    and the run go on until killed; send SIGTERM again, to unwind it once that code returns."""
    stop = unraisable.exc_value
    if isinstance(stop, SystemExit) and stop.code == 128 + signal.SIGTERM:
        # From another thread, a moment later: sent from here, the signal would be handled here,
        # in the hook, whose exceptions Python ignores too.
        again = threading.Timer(REDELIVER_SECONDS, os.kill, (os.getpid(), signal.SIGTERM))
        again.daemon = True
        again.start()
        return
    sys.__unraisablehook__(unraisable)


def _stop_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)  # unwinds a run as the parent's SIGTERM would
