"""Hyper-parameter search with Optuna, selected on a validation metric only.

Each trial samples settings from a :class:`~recdiff.experiments.space.SearchSpace`, applies them
to the base config (re-validated: a combination such as ``noise_min >= noise_max`` is skipped
as INVALID with the reason, and the search goes on; so is a setting that only the data refuses,
:class:`~recdiff.config.problems.SettingsDoNotFitData`), and trains with
:func:`recdiff.train.run.run_training`. Every validation evaluation during training is reported to
the trial, and a median pruner stops trials that fall below the median of earlier trials at the
same epoch. The trial's value is the run's validation metric at its selected epoch; test metrics
are recorded for the report but never read for choosing.

A trial whose sampled settings stop the config from computing the search's metric (an
``eval.ks`` without its cut-off) is INVALID as well, before it trains. A trial whose loss turns
NaN or infinite before any validation (a learning rate too high, say) is DIVERGED: a property of
its settings, like a pruned trial's, so the search goes on (Optuna holds it as pruned, and TPE
learns to avoid it).

``trials`` counts completed, pruned and diverged trials. A trial that raises otherwise (e.g.
out of memory) stops the search, marked FAIL with its error; so does one stopped by Ctrl-C or
SIGTERM, and one that filled the disk (room to record it is held in reserve, see
:mod:`~recdiff.experiments.storage`). A running trial beats a heartbeat into the study; one
whose process was killed (SIGKILL, a crash) stops beating, and the next command that opens the
study marks it FAIL, says so and removes what the process left of the trial's run. (Reopened within
``STALE_AFTER_SECONDS`` of the kill, the trial is still fresh; Optuna fails it later in the
search without a line of its own, and ``trials.csv`` shows it.) Neither counts, and the same
command continues the search.

Output folder (re-running the same command continues the study)::

    study.db     the Optuna study (SQLite, study name "recdiff-tune")
    runs/        one run directory per completed trial (other trials leave none)
    trials.csv   every trial: state, validation metric, sampled settings, run directory
                 (relative to the output folder)
    best.yaml    the best trial's full config as a preset: ``recdiff train OUT/best.yaml``

A trial's config is built in :mod:`~recdiff.experiments.trials`, the files above are written by
:mod:`~recdiff.experiments.tune_outputs`, and the study is opened by
:mod:`~recdiff.experiments.storage`; this module runs the search.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recdiff.atomic import sigterm_unwinds, stop_signal, stops_deferred
from recdiff.config.problems import SettingsDoNotFitData
from recdiff.config.schema import RunConfig
from recdiff.config.sources import check_sources
from recdiff.eval.metrics import canonical_metric, metric_cutoff
from recdiff.experiments import storage
from recdiff.experiments.space import SearchSpace
from recdiff.experiments.storage import STUDY_NAME, TuneError, import_optuna
from recdiff.experiments.trials import TrialConfigError, lookup_view, trial_config
from recdiff.experiments.tune_outputs import (
    TuneResult,
    count_trials,
    finished_trials,
    search_result,
    trial_line,
    write_outputs,
)

# Re-exported: their home was this module.
from recdiff.experiments.tune_outputs import best_config_yaml as best_config_yaml
from recdiff.experiments.tune_outputs import trials_table as trials_table

__all__ = [
    "STUDY_NAME",
    "PruningReporter",
    "TrialConfigError",
    "TuneError",
    "TuneResult",
    "import_optuna",
    "selection_metric",
    "trial_config",
    "tune",
]

#: Invalid trials in a row after which the search gives up (the space hardly fits together).
MAX_INVALID_STREAK = 25


def selection_metric(metric: str, config: RunConfig) -> str:
    """``valid/recall@20`` -> ``recall@20``; anything but a computed validation metric fails."""
    split, sep, name = metric.partition("/")
    if not sep:
        split, name = "valid", metric
    if split != "valid":
        raise TuneError(
            f"metric {metric!r}: the search selects on validation only; use valid/{name}"
        )
    if not _computes(config, name):
        raise TuneError(
            f"metric {metric!r} is not computed by this config: it evaluates "
            f"{config.eval.metrics} at {config.eval.ks}; use e.g. "
            f"valid/{config.eval.metrics[0]}@{config.eval.ks[-1]}"
        )
    return canonical_metric(name)  # as the evaluator names it: recall@020 is recall@20


def _computes(config: RunConfig, name: str) -> bool:
    """Whether runs of ``config`` evaluate ``name`` (e.g. ``recall@20``)."""
    parsed = metric_cutoff(name)
    return parsed is not None and parsed[0] in config.eval.metrics and parsed[1] in config.eval.ks


class PruningReporter:
    """An ``on_event`` listener: reports each validation evaluation of a run to an Optuna trial
    and raises ``optuna.TrialPruned`` (which stops the run) when the pruner gives up on it.

    Evaluations of a pre-training stage (records with a ``stage``, e.g. L-DiffRec's autoencoders)
    are not reported: their epochs restart the count that the final model's use, and a step
    reported twice is ignored by Optuna, so pruning would judge the autoencoders instead.
    """

    def __init__(self, trial: Any, metric: str) -> None:
        self.trial = trial
        self.key = f"valid/{metric}"
        self.diverged = False  # the run logged a non-finite loss (it fails if none was validated)

    def __call__(self, record: dict[str, Any]) -> None:
        if record.get("event") == "diverged":
            self.diverged = True
        if record.get("event") != "eval" or self.key not in record or "stage" in record:
            return
        epoch, value = int(record["epoch"]), float(record[self.key])
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            optuna = import_optuna()
            raise optuna.TrialPruned(f"pruned at epoch {epoch} ({self.key} {value:.4f})")


class _Search:
    """The objective and the after-trial bookkeeping of one ``tune`` call."""

    def __init__(self, config, space, trials, out, metric, report, header) -> None:
        self.config, self.space, self.trials, self.out = config, space, trials, out
        self.metric = metric
        self.report = report or (lambda line: None)
        self.header = header
        self.base = config.model_dump(mode="json")
        self.base["train"]["progress"] = False
        self.view = lookup_view(config)
        # Tags this command's trials in the study: the running ones of its workers count
        # towards ``trials``; a killed process's, left RUNNING, do not.
        self.command_id = uuid.uuid4().hex
        # A worker's hold on the right to start a trial (tune_jobs.TrialSlots): taken where it
        # decides to start one, given back once that trial is RUNNING in the study.
        self.slots: Any = None
        self.current: Any = None  # the trial last started by this call
        self.reason: str | None = None  # why it failed, kept should the study refuse the text
        self.held: contextlib.ExitStack | None = None  # see optimize()

    def optimize(self, study: Any, timeout: float | None) -> None:
        """``study.optimize`` with this search's objective and bookkeeping. Optuna writes a
        trial RUNNING before it calls the objective, which tags it as this command's: a stop in
        between (a worker's SIGTERM when another trial failed) left it RUNNING, untagged, for no
        one to mark FAIL. So Ctrl-C and SIGTERM wait from before each trial is created until it
        is tagged (:func:`~recdiff.atomic.stops_deferred`; an SQLite write or two)."""
        self.hold_stops()
        try:
            study.optimize(self.objective, timeout=timeout, callbacks=[self.after_trial])
        finally:
            self.release_stops()

    def hold_stops(self) -> None:
        if self.held is None:
            held = contextlib.ExitStack()
            held.enter_context(stops_deferred())
            self.held = held

    def release_stops(self) -> None:
        """A stop that came while held acts here."""
        held, self.held = self.held, None
        if held is not None:
            held.close()

    def objective(self, trial: Any) -> float:
        self.current, self.reason = trial, None
        trial.set_user_attr("command", self.command_id)
        if self.slots is not None:
            self.slots.give()  # this trial now counts as running for the other workers
        try:
            self.release_stops()  # and it is this command's, for whoever stops it
            return self._train(trial)
        except (KeyboardInterrupt, SystemExit) as stop:
            from recdiff.train.run import discard_resumable

            self.reason = self.stopped_by() or stop_reason(stop)
            trial.set_user_attr("error", self.reason)  # Optuna fails it on Ctrl-C, without why
            # A failed trial is never resumed (the search samples new ones), so the folders
            # that train.checkpoint_every keeps for `recdiff resume` would only pile up.
            discard_resumable(stop)
            raise

    def _train(self, trial: Any) -> float:
        """The trial's settings sampled, its run trained; its validation metric."""
        settings = self.space.settings(self.space.suggest(trial), self.view)
        trial.set_user_attr("settings", settings)
        try:
            # sampled eval settings that leave out train.metric (the search's) are refused too
            config = trial_config(self.base, settings, f"{self.config.name}-trial{trial.number}")
        except TrialConfigError as error:
            # Pruned, not failed: TPE ranks pruned trials below completed ones, so it learns to
            # avoid the combination (failed trials it would ignore, and propose again).
            trial.set_user_attr("invalid", True)
            trial.set_user_attr("error", str(error))
            raise import_optuna().TrialPruned(str(error)) from None
        from recdiff.train.run import run_training

        reporter = PruningReporter(trial, self.metric)
        try:
            result = run_training(config, self.out / "runs", progress=False, on_event=reporter)
        except SettingsDoNotFitData as error:
            # Sampled settings the data cannot take (more clusters than items): skipped as
            # INVALID, as a combination the config refuses is, so that TPE learns to avoid it
            # rather than the search ending on it, and again on each rerun.
            trial.set_user_attr("invalid", True)
            trial.set_user_attr("error", str(error))
            raise import_optuna().TrialPruned(str(error)) from None
        except Exception as error:  # it ends the search; trials.csv keeps why
            optuna = import_optuna()
            if isinstance(error, optuna.TrialPruned):
                raise
            if reporter.diverged and isinstance(error, ValueError):
                # The sampled settings train to NaN: the next trial's may not. Pruned, as an
                # invalid trial is, so that TPE learns to avoid them.
                trial.set_user_attr("diverged", True)
                trial.set_user_attr("error", str(error))
                raise optuna.TrialPruned(str(error)) from None
            self.reason = f"{type(error).__name__}: {error}"
            trial.set_user_attr("error", self.reason)  # on a full disk: fail_unfinished's
            raise
        metrics = result.metrics
        # Relative to the tune folder, which may move or be read from another working folder.
        trial.set_user_attr("run_dir", os.path.relpath(result.directory, self.out))
        trial.set_user_attr("best_epoch", metrics.get("best_epoch"))
        trial.set_user_attr("seconds", round(metrics["seconds"]["total"], 1))
        trial.set_user_attr("test", metrics["test"].get(self.metric))  # recorded, not selected on
        return float(metrics["valid"][self.metric])

    def after_trial(self, study: Any, trial: Any) -> None:
        self.report(trial_line(trial, self.metric))
        write_outputs(study, self.space, self.base, self.metric, self.out, self.header)
        if self.slots is not None:
            self.slots.take()
        trials = study.get_trials(deepcopy=False)  # read once: a large study reads slowly
        if self.enough(study, trials) or len(invalid_run(self.ours(trials))) >= MAX_INVALID_STREAK:
            if self.slots is not None:
                self.slots.give()
            study.stop()
        self.hold_stops()  # until the next trial, if any, is tagged

    def enough(self, study: Any, trials: list[Any]) -> bool:
        """Whether the study's finished trials and this command's running ones reach
        ``self.trials``: those running will finish too, and one more would overshoot. (Should
        one of them end invalid, its worker goes on.) ``trials``: the study's."""
        running = import_optuna().trial.TrialState.RUNNING
        ours = sum(1 for t in self.ours(trials) if t.state == running)
        return finished_trials(count_trials(study, trials)) + ours >= self.trials

    def stop_note(self) -> Path:
        """Where the command of a search with several workers writes why it stops them: they
        are stopped by SIGTERM whatever stopped the command (Ctrl-C, say)."""
        return self.out / f".stopped-{self.command_id[:12]}"

    def stopped_by(self) -> str | None:
        """The reason the command wrote for its workers' trials, if it did."""
        try:
            return self.stop_note().read_text(encoding="utf-8") or None
        except OSError:
            return None

    def ours(self, trials: list[Any]) -> list[Any]:
        """Those of a study's ``trials`` started by this command (any of its workers)."""
        return [t for t in trials if t.user_attrs.get("command") == self.command_id]

    def quiet(self) -> _Search:
        """A copy for a worker process: the command reports trials as the study records them
        (:func:`~recdiff.experiments.tune_jobs.optimize_in_workers`), so the worker's own lines
        would print them twice."""
        copy = object.__new__(_Search)
        copy.__dict__.update(self.__dict__, report=_no_report, current=None)
        return copy

    def fail_unfinished(
        self, study: Any, stop: BaseException, free_space: Callable[[], bool]
    ) -> None:
        """Mark FAIL, with its error, the trial that ``stop`` left RUNNING: left so, it would
        count as running until its heartbeat went stale. Optuna finishes a trial that raises an
        error or KeyboardInterrupt, but lets ``SystemExit`` (SIGTERM unwinding, see
        :func:`recdiff.atomic.sigterm_unwinds`) pass with the trial still RUNNING; and on a full
        disk it cannot write FAIL, nor the objective the error. Then ``free_space`` frees the
        reserve (:class:`~recdiff.experiments.storage.SpaceReserve`) for one more try; should
        that fail too, ``stop`` (which says the disk is full) goes on alone."""
        if self.current is None:  # stopped before a trial started
            return
        try:
            self._fail_running(study, stop)
        except Exception as error:
            if storage.study_write_error(self.out / "study.db", error) is None:
                raise
            if free_space():
                with contextlib.suppress(Exception):
                    self._fail_running(study, stop)

    def _fail_running(self, study: Any, stop: BaseException) -> None:
        optuna = import_optuna()
        trial = self.current
        running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        stored = next((t for t in running if t.number == trial.number), None)
        if stored is None:
            return
        if "error" not in stored.user_attrs:  # stopped outside its training, or unwritten
            trial.set_user_attr("error", self.reason or stop_reason(stop))
        study.tell(trial, state=optuna.trial.TrialState.FAIL)


def _no_report(line: str) -> None:
    pass


def invalid_run(trials: list[Any]) -> list[str]:
    """The errors of the invalid trials among ``trials`` that ended last, in a row (by the time
    they ended: with several workers, trial numbers are not that order)."""
    import datetime

    ended = sorted(
        (t for t in trials if t.state.is_finished()),
        key=lambda t: (t.datetime_complete or datetime.datetime.min, t.number),
    )
    errors: list[str] = []
    for trial in reversed(ended):
        if not trial.user_attrs.get("invalid"):
            break
        errors.append(trial.user_attrs.get("error", ""))
    return errors[::-1]


def stop_reason(stop: BaseException) -> str:
    if isinstance(stop, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    name = stop_signal(stop)
    return f"stopped by {name or type(stop).__name__}"


def tune(
    config: RunConfig,
    space: SearchSpace,
    trials: int,
    out: str | Path,
    metric: str = "valid/recall@20",
    seed: int = 0,
    timeout: float | None = None,
    prune: bool = True,
    warmup_epochs: int = 0,
    report: Callable[[str], None] | None = None,
    command: str | None = None,
    jobs: int = 1,
) -> TuneResult:
    """Search ``space`` around ``config`` until the study in ``out`` holds ``trials`` finished
    (completed, pruned or diverged) trials, or ``timeout`` seconds pass; returns the best so
    far. Each trial's run selects its epoch on ``metric`` too (it replaces the config's
    ``train.metric``), so a trial is ranked by the number its run maximised.

    Re-running with the same config, space and metric continues the study (a larger ``trials``
    extends it). ``report`` receives one line per trial. Pruning starts after 5 trials and,
    within a trial, after ``warmup_epochs`` epochs.

    ``jobs > 1`` runs that many trials at once, each worker process with its share of the CPU
    threads and its own sampler seed (TPE then assumes the running trials' settings score badly,
    Optuna's ``constant_liar``, so that the workers do not propose the same settings). A worker
    starts no new trial once the study's finished trials and this command's running ones reach
    ``trials``; a trial that fails stops every worker, as it stops a search of one
    (:mod:`~recdiff.experiments.tune_jobs`).
    """
    optuna = import_optuna()
    if trials < 1:
        raise TuneError(f"trials must be at least 1, got {trials}")
    if jobs < 1:
        raise TuneError(f"jobs must be at least 1, got {jobs}")
    from recdiff.train.distributed import env_world_size
    from recdiff.train.folders import remove_unfinished_runs

    world = env_world_size()
    if world > 1:
        # Every process would run its own search against the same study, and DDP would then
        # join processes that train different settings.
        raise TuneError(
            f"a search runs in one process, but WORLD_SIZE={world} (torchrun): start "
            "recdiff tune without torchrun"
        )
    name = selection_metric(metric, config)
    check_sources(config)  # before the study is opened: every trial would fail
    if config.train.metric != name:
        # A trial's value is its validation `name` at the epoch its run selects: selected on
        # another metric, the trials would be ranked by a number their runs did not maximise.
        report = report or (lambda line: None)
        report(
            f"trials select their epochs on valid/{name}, the search's metric (the config's "
            f"train.metric is {config.train.metric})"
        )
        train = config.train.model_copy(update={"metric": name})
        config = config.model_copy(update={"train": train})
    out = Path(out)
    search = _Search(config, space, trials, out, name, report, command)
    space.check_against(
        search.base,
        search.view,
        lambda raw: trial_config(raw, {}, config.name),
        warn=lambda line: search.report(f"warning: {line}"),
    )
    out.mkdir(parents=True, exist_ok=True)
    fingerprint = {"config": search.base, "space": space.to_dict(), "metric": name}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.ERROR)  # one line per trial comes from `report`
    try:
        study = storage.open_study(out, fingerprint, seed, prune, warmup_epochs)
        reserve = storage.SpaceReserve(out)
        try:
            with sigterm_unwinds():
                for number in storage.fail_stale_trials(study):
                    # A trial is never resumed: what its killed process left of its run goes.
                    remove_unfinished_runs(out / "runs", f"{config.name}-trial{number}")
                    search.report(
                        f"trial {number}: its process stopped while it ran (no heartbeat for "
                        f"{storage.STALE_AFTER_SECONDS} s); marked FAIL, not counted"
                    )
                if finished_trials(count_trials(study)) < trials:
                    if jobs == 1:
                        search.optimize(study, timeout)
                    else:
                        from recdiff.experiments.tune_jobs import optimize_in_workers

                        optimize_in_workers(
                            search, study, fingerprint, seed, prune, warmup_epochs, timeout, jobs
                        )
        except BaseException as stop:
            search.fail_unfinished(study, stop, reserve.free)
            raise
        finally:  # also when a trial raised (no after_trial then): trials.csv shows it FAIL
            reserve.free()
            write_outputs(study, space, search.base, name, out, command)
    except Exception as error:
        unwritable = storage.study_write_error(out / "study.db", error)
        if unwritable is None:
            raise
        raise unwritable from None
    finally:
        optuna.logging.set_verbosity(verbosity)
    result = search_result(study, space, search.base, name, out)
    invalid = invalid_run(search.ours(study.get_trials(deepcopy=False)))
    if len(invalid) >= MAX_INVALID_STREAK and finished_trials(result.counts) < trials:
        raise TuneError(
            f"{len(invalid)} trials in a row had invalid settings; the last: "
            f"{invalid[-1]}. Narrow the space so that its values fit together"
        )
    return result
