"""``tune(jobs=N)``: trials side by side, in worker processes, on one study.

The command opens the study (refusing another search's, failing stale trials) as a search of one
does, then starts ``min(N, trials still to run)`` workers (:mod:`recdiff.experiments.workers`).
Each opens the study again with a sampler seed of its own and runs trials as the single process
would; the command reports each trial as the study records it. The search's guarantees hold:

- a worker starts no trial once the study's finished trials and this command's running ones
  reach ``trials`` (a trial left RUNNING by a killed process does not count);
- a trial that fails stops every worker (its error is the command's);
- Ctrl-C or SIGTERM stops the workers, each marking its trial FAIL as a single search does
  (a stop that comes while Optuna creates the trial waits until the trial is tagged as this
  command's, :meth:`~recdiff.experiments.tune._Search.optimize`);
- once the workers have ended, however they ended (a worker killed by SIGKILL or the kernel's
  out-of-memory killer, one that did not finish within the stop's grace), a trial of this
  command still RUNNING is marked FAIL with the reason and its run folder removed, rather than
  left for the stale-heartbeat check of the next command.

Each worker holds its own disk reserve (``OUT/.study-reserve-C-I``, C naming the command; the
command removes those of workers that could not). Workers decide to start a trial one at a
time (:class:`TrialSlots`, ``OUT/.trial-slots``): two deciding at once would both count the
same free place.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from recdiff.atomic import atomic_write_text
from recdiff.experiments import storage
from recdiff.experiments.storage import TuneError, import_optuna
from recdiff.experiments.tune import _Search, stop_reason
from recdiff.experiments.tune_outputs import count_trials, finished_trials, trial_line
from recdiff.experiments.workers import cpu_share, stoppable, worker_pool

__all__ = ["POLL_SECONDS", "SLOTS_FILE", "TrialSlots", "optimize_in_workers"]

#: How often the command looks for trials its workers finished, to report them.
POLL_SECONDS = 2.0
#: The lock file of :class:`TrialSlots`, in the search's folder.
SLOTS_FILE = ".trial-slots"

_KILLED = "its worker process ended while it ran (killed, or out of memory?)"


def optimize_in_workers(
    search: _Search,
    study: Any,
    fingerprint: dict[str, Any],
    seed: int,
    prune: bool,
    warmup: int,
    timeout: float | None,
    jobs: int,
) -> None:
    """Run the search's trials in ``jobs`` workers (fewer when fewer trials are left), reporting
    each trial as it ends; a worker's error is raised here once every worker has stopped."""
    from concurrent.futures import FIRST_EXCEPTION, wait
    from concurrent.futures.process import BrokenProcessPool

    reported = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}

    def report_new() -> None:  # this command's trials: another's on the study report there
        for trial in search.ours(study.get_trials(deepcopy=False)):
            if trial.state.is_finished() and trial.number not in reported:
                reported.add(trial.number)
                search.report(trial_line(trial, search.metric))

    workers = max(1, min(jobs, search.trials - finished_trials(count_trials(study))))
    task = {
        "search": search.quiet(),
        "fingerprint": fingerprint,
        "seed": seed,
        "prune": prune,
        "warmup": warmup,
        "timeout": timeout,
        "threads": cpu_share(workers),
    }
    reason = _KILLED
    try:
        with worker_pool(workers) as pool:
            futures = [
                pool.submit(stoppable, _work, {**task, "worker": worker})
                for worker in range(workers)
            ]
            pending = set(futures)
            try:
                while pending:
                    done, pending = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_EXCEPTION)
                    report_new()
                    for future in done:
                        future.result()  # a worker's error: leaving the block stops the others
            except (KeyboardInterrupt, SystemExit) as stop:
                # for the workers' trials: SIGTERM stops them, whatever stopped the command
                with contextlib.suppress(OSError):
                    atomic_write_text(search.stop_note(), stop_reason(stop))
                raise
    except BrokenProcessPool:
        raise TuneError(
            "a worker process of the search ended while it trained (killed, or out of "
            "memory?); its trial is marked FAIL: run the same command again to continue"
        ) from None
    except BaseException as stop:
        reason = (
            stop_reason(stop)
            if isinstance(stop, KeyboardInterrupt | SystemExit)
            else ("stopped when another trial of the search failed")
        )
        raise
    finally:
        # Every worker has ended (worker_pool waits, a broken pool too): what is still RUNNING
        # of theirs was cut off.
        with contextlib.suppress(Exception):  # never in the way of the error itself
            _fail_left_running(search, study, reason)
            report_new()
        for worker in range(workers):
            (search.out / _reserve_name(search, worker)).unlink(missing_ok=True)
        search.stop_note().unlink(missing_ok=True)


def _reserve_name(search: _Search, worker: int) -> str:
    """A worker's disk reserve, named for its command too: two commands on one folder must not
    free each other's."""
    return f".study-reserve-{search.command_id[:12]}-{worker}"


def _fail_left_running(search: _Search, study: Any, reason: str) -> None:
    """Mark FAIL, with ``reason`` unless it has an error, each trial of this command left
    RUNNING, and remove what any of its trials' runs left unfinished (a worker stopped after it
    marked its trial FAIL, or killed before, may have left its run's folders)."""
    from recdiff.train.folders import remove_unfinished_runs

    optuna = import_optuna()
    for frozen in search.ours(study.get_trials(deepcopy=False)):
        if frozen.state == optuna.trial.TrialState.RUNNING:
            with contextlib.suppress(Exception):  # the next trial's cleanup must still run
                if "error" not in frozen.user_attrs:
                    # Optuna's own way to a stored trial by id (as its fail_stale_trials does)
                    trial = optuna.trial.Trial(study, frozen._trial_id)
                    trial.set_user_attr("error", reason)
                study.tell(frozen.number, state=optuna.trial.TrialState.FAIL)
        # a finished run is never touched, only hidden unfinished folders and empty reserves
        remove_unfinished_runs(search.out / "runs", f"{search.config.name}-trial{frozen.number}")


def _work(task: dict[str, Any]) -> None:
    """One worker: trials on the shared study until it holds enough (a process-pool job)."""
    import torch

    torch.set_num_threads(task["threads"])
    optuna = import_optuna()
    optuna.logging.set_verbosity(logging.ERROR)
    search: _Search = task["search"]
    study = storage.open_study(
        search.out,
        task["fingerprint"],
        task["seed"],
        task["prune"],
        task["warmup"],
        worker=task["worker"],
    )
    reserve = storage.SpaceReserve(search.out, _reserve_name(search, task["worker"]))
    search.slots = TrialSlots(search.out / SLOTS_FILE)
    try:
        search.slots.take()  # a worker that starts late may find the trials all taken
        if search.enough(study, study.get_trials(deepcopy=False)):
            return
        search.optimize(study, task["timeout"])
    except BaseException as stop:
        search.fail_unfinished(study, stop, reserve.free)
        raise
    finally:
        search.slots.give()
        reserve.free()


class TrialSlots:
    """An exclusive lock (``flock``) that a worker holds from its decision to start a trial
    until that trial is RUNNING in the study, so that two workers deciding at once do not both
    count the same free place. The kernel releases it if the worker dies. Without ``fcntl``
    (Windows) it does nothing, and the workers may overshoot ``trials`` by a few."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def take(self) -> None:
        if self.fd is not None or fcntl is None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # a file system without locks (ENOLCK on some NFS mounts)
            os.close(fd)
            return  # go on without: at worst a few trials too many
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def give(self) -> None:
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        os.close(fd)  # closing the descriptor releases its lock
