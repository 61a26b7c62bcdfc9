"""A training run, end to end: data -> model -> validation-selected fit -> test -> run directory.

Run directory (``runs/NAME-YYYYmmdd-HHMMSS/``), written under a hidden temporary name and renamed
only when complete, so an interrupted run leaves nothing half-written behind. (With
``train.checkpoint_every`` an interrupted run keeps its hidden folder and resume checkpoint, and
:func:`resume_training` completes it; see :mod:`recdiff.train.checkpoint`.)::

    config.yaml     the resolved config (re-run it with ``recdiff train config.yaml``)
    events.jsonl    one JSON line per epoch and per evaluation
    metrics.json    selected epoch, valid/test metrics under both averagings, timings, versions
    test_per_user.npz  per-user test metrics (per example for next-item models)
    model/          the fitted recommender (config.json + weights.safetensors)
    data/           vocabularies (users.json, items.json), model inputs and seen items (.npz)
    curves.png      training loss and validation/test metrics per epoch
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import yaml

import recdiff
from recdiff.atomic import atomic_path, atomic_write_text, sigterm_unwinds
from recdiff.config.loading import load_config
from recdiff.config.models import SEQUENTIAL_MODELS, build_model, train_keys_chosen
from recdiff.config.schema import RunConfig
from recdiff.data import DatasetSplits, time_weights
from recdiff.eval.evaluator import EvalResult
from recdiff.eval.multi import evaluate_many
from recdiff.eval.protocol import EvalTask
from recdiff.models.base import Recommender
from recdiff.train.checkpoint import (
    Checkpoints,
    active_checkpoints,
    resume_checkpoints,
    run_settings,
)
from recdiff.train.datasets import load_splits
from recdiff.train.distributed import (
    broadcast_object,
    failure_is_final,
    init_from_env,
    is_main_process,
)
from recdiff.train.folders import (
    CHECKPOINT_FILE,
    exclusive,
    remove_partial_files,
    remove_unfinished,
    reserve,
    resumable_run,
    unfinished,
)
from recdiff.train.trainer import OnEvent, selection_summary, stage_summaries

__all__ = [
    "RunResult",
    "discard_resumable",
    "resumable_from",
    "resume_training",
    "run_training",
]


@dataclass
class RunResult:
    """Where the run was written and what it measured."""

    directory: Path
    metrics: dict[str, Any]
    model: Recommender


def model_inputs(splits: DatasetSplits, config: RunConfig) -> sp.csr_matrix:
    """The rows the model sees: binary train rows, or T-DiffRec's time-weighted ones."""
    weights = config.data.time_weights
    if weights is None:
        return splits.train.binarize().matrix
    return time_weights(splits.train, w_min=weights.w_min, w_max=weights.w_max)


def _evaluate(model_score, inputs, tasks, config: RunConfig, averaging: str | None = None):
    ev = config.eval
    return evaluate_many(
        model_score,
        inputs,
        tasks,
        ks=ev.ks,
        metrics=ev.metrics,
        batch_size=ev.batch_size,
        averaging=averaging or ev.averaging,
        progress=config.train.progress,
    )


class _EventLog:
    """Appends each event to ``events.jsonl`` and hands it to an optional listener (which may
    raise to stop training, e.g. a hyper-parameter search pruning a hopeless trial)."""

    def __init__(
        self,
        path: Path,
        listener: OnEvent | None = None,
        tensorboard: bool = False,
        resume: bool = False,
    ) -> None:
        self.path = path
        self.listener = listener
        self.records: list[dict[str, Any]] = []
        if resume and path.exists():  # the records of the run being resumed
            lines = path.read_text(encoding="utf-8").splitlines()
            self.records = [json.loads(line) for line in lines if line.strip()]
        self.tensorboard = None
        if tensorboard:
            from recdiff.train.tensorboard import TensorBoardLog

            self.tensorboard = TensorBoardLog(path.parent / "tensorboard")

    def __call__(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.tensorboard is not None:
            self.tensorboard(record)
        if self.listener is not None:
            self.listener(record)

    def truncate(self, count: int) -> None:
        """Keep the first ``count`` records, in memory and in the file: those logged before the
        checkpoint a run resumes from (the epochs after it run again)."""
        self.records = self.records[:count]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in self.records))
        if self.tensorboard is not None:
            # The interrupted process's event file holds the dropped epochs too, which would show
            # twice beside their rerun: write the scalars again from the records kept.
            from recdiff.train.tensorboard import TensorBoardLog

            self.tensorboard.close()
            shutil.rmtree(self.path.parent / "tensorboard", ignore_errors=True)
            self.tensorboard = TensorBoardLog(self.path.parent / "tensorboard")
            for record in self.records:
                self.tensorboard(record)

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def _fit(
    model: Recommender, inputs, splits: DatasetSplits, tasks, config: RunConfig, log
) -> Recommender:
    """Fit as the model needs (selection always on validation); returns the fitted model."""
    name = config.model.name
    valid = splits.valid.matrix if splits.valid.nnz else None
    if name in ("diffrec", "ldiffrec"):
        selection_tasks = tasks if valid is not None else {}
        if name == "ldiffrec":  # an embedding table keyed by item id is matched through them
            model.item_ids = splits.items.ids

        def evaluate(score_fn):
            results = _evaluate(score_fn, inputs, selection_tasks, config)
            return {split: result.means for split, result in results.items()}

        return model.fit(
            inputs, valid, evaluate=evaluate if valid is not None else None, on_event=log
        )
    if valid is not None and _selects_lambda(config):
        from recdiff.models.ease import DEFAULT_LAMBDA_GRID, select_ease_lambda

        grid = config.model.params().get("l2_lambda_grid") or DEFAULT_LAMBDA_GRID
        selection = select_ease_lambda(inputs, valid, grid, metric=config.train.metric)
        log(
            {
                "event": "select",
                "l2_lambda": selection.best_lambda,
                "valid": {str(k): v for k, v in selection.valid_scores.items()},
            }
        )
        return selection.model
    if name == "multvae":
        return model.fit(inputs, valid, on_event=log)
    return model.fit(inputs, valid)


def _selects_lambda(config: RunConfig) -> bool:
    """Whether the run chooses EASE's lambda on validation (no ``model.l2_lambda`` set)."""
    return config.model.name == "ease" and not config.model.params().get("l2_lambda")


# The train.* settings a model without a training loop still reads (besides where it runs).
_CLOSED_FORM_READS = {
    "ease": {"seed", "progress", "tensorboard", "device", "metric"},  # metric selects lambda
    "popularity": {"seed", "progress", "tensorboard", "device"},
    # Next-item presets name hit_rate@20, the metric `recdiff experiment` compares them by.
    "mostpop": {"seed", "progress", "tensorboard", "device", "metric"},
}


def _warn_ignored_train_settings(config: RunConfig) -> None:
    """EASE and the popularity counts have no epochs, learning rate or batches: a ``train.*``
    setting moved from its default is one the user expects to matter, so it is named rather than
    silently dropped. (A warning, not an error: ``recdiff experiment --set train.*`` applies
    one setting to every config of a comparison, EASE's included.)"""
    reads = _CLOSED_FORM_READS.get(config.model.name)
    if reads is None:
        return
    ignored = sorted(train_keys_chosen(config.train) - reads)
    if ignored:
        what = "solved in closed form" if config.model.name == "ease" else "counted, not trained"
        names = ", ".join(f"train.{key}" for key in ignored)
        verb = "does" if len(ignored) == 1 else "do"
        warnings.warn(
            f"{names} {verb} not apply to {config.model.name} ({what}): ignored", stacklevel=3
        )


def run_training(
    config: RunConfig,
    runs_dir: str | Path = "runs",
    progress: bool | None = None,
    on_event: OnEvent | None = None,
) -> RunResult:
    """Train, select on validation, evaluate on test, and write the run directory.

    ``on_event`` receives every epoch and evaluation record as it is logged; an exception it
    raises stops the run, and the partial run directory is removed.
    """
    config = _with_progress(config, progress)
    if init_from_env(config.train.device) and not is_main_process():
        return _train_beside_rank_0(config, on_event)
    with failure_is_final():  # under torchrun, a failed rank 0 exits and stops the others
        final = reserve(Path(runs_dir), config.name)
        work = unfinished(final)
        work.mkdir()
        return _train_into(config, final, work, on_event, resume=False)


def resume_training(
    run: str | Path, progress: bool | None = None, on_event: OnEvent | None = None
) -> RunResult:
    """Continue a run that was interrupted after writing a resume checkpoint
    (``train.checkpoint_every``), with the config it was started with. It ends with the weights
    and metrics the run would have had without the interruption.

    ``run`` is the run's folder as ``run_training`` reserved it (``runs/NAME-STAMP``, empty
    until the run completes) or its hidden unfinished folder (``runs/.NAME-STAMP.incomplete``).
    """
    final, work = resumable_run(Path(run))
    config = _with_progress(load_config(str(work / "config.yaml")), progress)
    if not config.train.checkpoint_every:
        raise ValueError(f"{work} has a checkpoint but its config sets no train.checkpoint_every")
    if init_from_env(config.train.device) and not is_main_process():
        return _train_beside_rank_0(config, on_event, resume_from=work)
    with failure_is_final():
        final.mkdir(exist_ok=True)  # the reserved name, should it have been removed
        return _train_into(config, final, work, on_event, resume=True)


def resumable_from(error: BaseException) -> Path | None:
    """The run folder to resume, when ``error`` stopped a run that left a resume checkpoint."""
    return getattr(error, "recdiff_resumable", None)


def discard_resumable(error: BaseException) -> None:
    """Remove the run that ``error`` stopped and left resumable (:func:`resumable_from`), for a
    caller that will never resume it: a search's trial, which it marks failed and replaces."""
    run = resumable_from(error)
    if run is None:
        return
    remove_unfinished(run)
    del error.recdiff_resumable  # type: ignore[attr-defined]


def _with_progress(config: RunConfig, progress: bool | None) -> RunConfig:
    if progress is None:
        return config
    return config.model_copy(
        update={"train": config.train.model_copy(update={"progress": progress})}
    )


def _train_beside_rank_0(
    config: RunConfig, on_event: OnEvent | None, resume_from: Path | None = None
) -> RunResult:
    """Another torchrun process: it trains beside rank 0, which evaluates and writes the run."""
    with failure_is_final():
        result = _run_into(config, None, on_event, resume_from)
        result.directory, result.metrics = broadcast_object(None)
    return result


def _train_into(
    config: RunConfig, final: Path, work: Path, on_event: OnEvent | None, resume: bool
) -> RunResult:
    """Run into ``work`` and rename it to the reserved ``final`` once complete. Failed, the run
    is removed; interrupted (Ctrl-C, SIGTERM) too, unless it left a resume checkpoint: then both
    folders stay and the exception names the run to resume (:func:`resumable_from`), as they
    do when a resume fails."""
    try:
        with exclusive(work), sigterm_unwinds():
            if resume:
                remove_partial_files(work)
            result = _run_into(config, work, on_event, work if resume else None)
    except BaseException as error:
        # Ctrl-C and SIGTERM (SystemExit) interrupt; another error in a new run would recur on
        # resuming it. A failed resume keeps what it resumed (its checkpoint may be fine: a
        # wrong number of processes, say).
        interrupted = resume or isinstance(error, (KeyboardInterrupt, SystemExit))
        if interrupted and config.train.checkpoint_every and (work / CHECKPOINT_FILE).is_file():
            error.recdiff_resumable = final  # type: ignore[attr-defined]
        else:
            remove_unfinished(final)
        raise
    os.replace(work, final)  # onto the empty reserved directory: the run appears complete
    # A complete run needs no checkpoint. Removed only now: killed in between, the run is
    # complete with a stray checkpoint rather than unfinished without one (and so lost).
    (final / CHECKPOINT_FILE).unlink(missing_ok=True)
    result.directory = final
    broadcast_object((final, result.metrics))  # releases the other torchrun processes
    return result


def _run_into(
    config: RunConfig,
    work: Path | None,
    on_event: OnEvent | None = None,
    resume_from: Path | None = None,
) -> RunResult:
    """The run, written into ``work``; ``None``: a torchrun process other than rank 0, which only
    trains (the trainer evaluates on rank 0 alone) and writes nothing. ``resume_from``: the
    unfinished folder whose checkpoint the run continues from."""
    started = time.perf_counter()
    if work is None:
        log = on_event or (lambda record: None)
    else:
        if resume_from is None:
            atomic_write_text(
                work / "config.yaml",
                yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False),
            )
        log = _EventLog(
            work / "events.jsonl", on_event, config.train.tensorboard, resume_from is not None
        )
    every = config.train.checkpoint_every
    if not every:
        return _run_body(config, work, log, started)
    folder = work if work is not None else resume_from
    checkpoints = Checkpoints(
        folder / CHECKPOINT_FILE if folder is not None else None,
        every,
        events=log if work is not None else None,
        resume=resume_from is not None,
        settings=run_settings(config),
    )
    with resume_checkpoints(checkpoints):
        return _run_body(config, work, log, started)


def _run_body(config: RunConfig, work: Path | None, log, started: float) -> RunResult:
    _warn_ignored_train_settings(config)
    if config.model.name in SEQUENTIAL_MODELS:
        from recdiff.train.run_sequential import run_sequential_into

        metrics, model = run_sequential_into(config, work, log)
        if work is None:
            return RunResult(work, {}, model)
        metrics["versions"] = _versions()
        _finish(work, metrics, log, config)
        return RunResult(work, metrics, model)
    splits = load_splits(config.data)
    require_held_out(splits.valid.nnz, splits.test.nnz, "interactions", _held_out_left_out(splits))
    inputs = model_inputs(splits, config)
    tasks = {"valid": EvalTask.validation(inputs, splits.valid.matrix)}
    tasks["test"] = EvalTask.test(inputs, splits.valid.matrix, splits.test.matrix)
    model = build_model(config.model.name, config.model.params(), config.train)
    fit_start = time.perf_counter()
    model = _fit(model, inputs, splits, tasks, config, log)
    fit_seconds = time.perf_counter() - fit_start
    if work is None:
        return RunResult(work, {}, model)
    eval_start = time.perf_counter()
    # One scoring pass, averaged both ways: a model whose scoring draws noise (DiffRec with
    # T' > 0) then reports both averagings of the same draws.
    results = _evaluate(model.score, inputs, tasks, config)
    final = {
        averaging: {
            split: result.with_averaging(averaging).means for split, result in results.items()
        }
        for averaging in ("all_users", "test_users")
    }
    save_per_user(work / PER_USER_FILE, results["test"])
    trained = getattr(model, "result", None)
    metrics = {
        "name": config.name,
        "model": config.model.name,
        "averaging": config.eval.averaging,
        "valid": final[config.eval.averaging]["valid"],
        "test": final[config.eval.averaging]["test"],
        "by_averaging": final,
        **selection_summary(trained),
        "stages": stage_summaries(model),  # pre-training stages, each selected on its own
        # settings chosen on validation without epochs (EASE's lambda, unless the config set it)
        "selected": {"l2_lambda": model.config.l2_lambda} if _selects_lambda(config) else {},
        "seconds": {
            "fit": fit_seconds,
            "final_eval": time.perf_counter() - eval_start,
            "total": time.perf_counter() - started,
        },
        "data": {
            "n_users": splits.n_users,
            "n_items": splits.n_items,
            "train": splits.train.nnz,
            "valid": splits.valid.nnz,
            "test": splits.test.nnz,
            # users with held-out items: the others count as 0 under all_users averaging
            "valid_users": int((splits.valid.user_counts() > 0).sum()),
            "test_users": int((splits.test.user_counts() > 0).sum()),
        },
        "versions": _versions(),
    }
    model.save(work / "model")
    _save_data(work / "data", splits, inputs)
    _finish(work, metrics, log, config)
    return RunResult(work, metrics, model)


PER_USER_FILE = "test_per_user.npz"


def require_held_out(valid: int, test: int, unit: str, left_out: str = "") -> None:
    """A run selects on validation and reports test: refuse data that leaves either empty.
    ``left_out`` says what the split left out of them (:func:`_held_out_left_out`), if anything."""
    empty = [name for name, size in (("validation", valid), ("test", test)) if not size]
    if empty:
        raise ValueError(
            f"the {' and '.join(empty)} split{'s are' if len(empty) > 1 else ' is'} empty (0 "
            f"{unit}; validation {valid}, test {test}): check data.ratios and data.split, and "
            "for a time split that users of the later periods also occur in training (only "
            f"they can be evaluated){left_out}"
        )


def _held_out_left_out(splits: DatasetSplits) -> str:
    """What a split left out of validation and test because its user or item has no train
    interaction (an item seen only in users' last interactions, say), for an error message;
    "" when nothing was."""
    dropped = splits.dropped
    if dropped is None or not dropped.nnz:
        return ""
    cold_user = (splits.train.user_counts() == 0)[dropped.user_indices()]
    cold_item = (splits.train.item_counts() == 0)[dropped.item_indices()] & ~cold_user
    items = np.unique(dropped.item_indices()[cold_item])
    shown = ", ".join(repr(x) for x in splits.items.ids[items[:5]].tolist())
    more = f" and {items.size - 5} more" if items.size > 5 else ""
    example = f": {shown}{more}" if items.size else ""
    return (
        f". {dropped.nnz} held-out interaction(s) were left out because their user "
        f"({int(cold_user.sum())} of them) or their item ({int(cold_item.sum())}, of "
        f"{items.size} item(s){example}) has no train interaction"
    )


def save_per_user(path: Path, result: EvalResult) -> None:
    """Per-user test metrics (NaN for users without test items), for paired tests."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **result.per_user)


def _versions() -> dict[str, str]:
    return {
        "recdiff": recdiff.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def _finish(work: Path, metrics: dict[str, Any], log: _EventLog, config: RunConfig) -> None:
    """metrics.json and the curves, common to every kind of model."""
    log.close()
    # A resumed run's seconds count the resuming process only: say so beside them.
    checkpoints = active_checkpoints()
    metrics["resumed"] = checkpoints is not None and checkpoints.saved is not None
    atomic_write_text(work / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    if log.records:
        from recdiff.train.curves import plot_curves

        plot_curves(log.records, work / "curves.png", config.train.metric)


def _save_data(folder: Path, splits: DatasetSplits, inputs: sp.csr_matrix) -> None:
    """What inference needs besides the weights: id vocabularies, input rows and seen items."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "users.json", splits.users.to_json())
    atomic_write_text(folder / "items.json", splits.items.to_json())
    # Every interaction the user had, held-out ones a split dropped included (their user or
    # item is not in train). Binary first: a rating of 0 is still one, and sums could cancel.
    parts = (splits.train, splits.valid, splits.test, splits.dropped)
    seen = sum(part.binarize().matrix for part in parts if part is not None)
    seen = sp.csr_matrix(seen)
    seen.data[:] = 1.0
    sp.save_npz(folder / "inputs.npz", inputs.astype(np.float32))
    sp.save_npz(folder / "seen.npz", seen.astype(np.float32))
