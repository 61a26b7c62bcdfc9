"""A training run, end to end: data -> model -> validation-selected fit -> test -> run directory.

Run directory (``runs/NAME-YYYYmmdd-HHMMSS/``), written under a hidden temporary name and renamed
only when complete, so an interrupted run leaves nothing half-written behind. (With
``train.checkpoint_every`` an interrupted run keeps its hidden folder and resume checkpoint, and
:func:`resume_training` completes it; see :mod:`recdiff.train.checkpoint`.)::

    config.yaml     the resolved config (re-run it with ``recdiff train config.yaml``)
    events.jsonl    one JSON line per epoch and per evaluation (absent when there are none:
                    popularity fits without epochs)
    metrics.json    selected epoch, valid/test metrics under both averagings, timings, versions
    test_per_user.npz  per-user test metrics (per example for next-item models)
    model/          the fitted recommender (config.json + weights.safetensors)
    data/           vocabularies (users.json, items.json), model inputs and seen items (.npz)
    curves.png      training loss and validation/test metrics per epoch (beside events.jsonl)

Both JSON files are strict JSON: a non-finite number (a diverged epoch's loss) is ``null``.

This module is the folder's life: reserving it, the hidden folder, renaming, resuming. What runs
inside is :mod:`recdiff.train.run_rows` or :mod:`recdiff.train.run_sequential`, by the kind of
model; the files every kind writes alike are :mod:`recdiff.train.run_files`'s.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recdiff._warnings import warn
from recdiff.atomic import atomic_write_text, sigterm_unwinds
from recdiff.config.loading import load_config, resolved_yaml
from recdiff.config.models import (
    CLOSED_FORM_TRAIN_READS,
    SEQUENTIAL_MODELS,
    validate_model_params,
)
from recdiff.config.schema import DataConfig, RunConfig
from recdiff.models.base import Recommender
from recdiff.train.checkpoint import Checkpoints, resume_checkpoints, run_settings
from recdiff.train.config import chosen_keys
from recdiff.train.datasets import require_held_out as require_held_out
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
from recdiff.train.run_files import PER_USER_FILE as PER_USER_FILE
from recdiff.train.run_files import EventLog, finish, versions
from recdiff.train.run_files import save_per_user as save_per_user
from recdiff.train.run_rows import model_inputs as model_inputs
from recdiff.train.run_rows import run_rows_into
from recdiff.train.trainer import OnEvent

# The `x as x` imports above keep names that moved to run_files, run_rows and datasets
# importable from this module, where code written before the move imports them.

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


# The train.* settings a model without a training loop still reads (besides where it runs).


def _warn_ignored_train_settings(config: RunConfig) -> None:
    """EASE and the popularity counts have no epochs, learning rate or batches: a ``train.*``
    setting moved from its default is one the user expects to matter, so it is named rather than
    silently dropped. (A warning, not an error: ``recdiff experiment --set train.*`` applies
    one setting to every config of a comparison, EASE's included.)"""
    reads = CLOSED_FORM_TRAIN_READS.get(config.model.name)
    if reads is None:
        return
    ignored = sorted(chosen_keys(config.train) - reads)
    if ignored:
        what = "solved in closed form" if config.model.name == "ease" else "counted, not trained"
        names = ", ".join(f"train.{key}" for key in ignored)
        verb = "does" if len(ignored) == 1 else "do"
        warn(f"{names} {verb} not apply to {config.model.name} ({what}): ignored")


# Row models that binarise their input (every stored entry is one interaction): T-DiffRec's time
# weights reach them as ones. DiffRec and L-DiffRec read the weights.
_BINARY_INPUT_MODELS = {"ease", "popularity", "multvae"}


def _warn_unread_time_weights(config: RunConfig) -> None:
    """``data.time_weights`` weights the rows DiffRec and L-DiffRec read (T-DiffRec); EASE, the
    popularity counts and Mult-VAE binarise their input, so the weights change nothing there:
    named rather than silently dropped (a warning, as for train.*: an experiment may set it
    for all its configs)."""
    if config.data.time_weights is not None and config.model.name in _BINARY_INPUT_MODELS:
        warn(
            f"data.time_weights weights the rows DiffRec and L-DiffRec read (T-DiffRec); "
            f"{config.model.name} reads every interaction as 1: ignored"
        )


def _warn_uncapped_first_stage(config: RunConfig) -> None:
    """``train.epochs`` caps the model's own training, not the stage before it (L-DiffRec's
    autoencoders, DreamRec's SASRec item table), which has its own epochs: a cap set for a
    short run would leave that stage at its full length without a word."""
    name = config.model.name
    if name not in ("ldiffrec", "dreamrec"):
        return
    settings = validate_model_params(name, config.model.params())  # with the defaults
    if name == "ldiffrec":
        capped, first = "L-DiffRec's diffusion stage", "its autoencoders train"
        key, stage = "model.latent.epochs", settings.latent.epochs
    elif settings.item_space.source == "sasrec":
        capped, first = "DreamRec's own training", "its SASRec item stage trains"
        key, stage = "model.item_space.epochs", settings.item_space.epochs
    else:
        return
    if stage > config.train.epochs:
        warn(
            f"train.epochs ({config.train.epochs}) caps {capped}; {first} first, for up to "
            f"{key} ({stage}) epochs: set that too for a short run"
        )


def _warn_unread_diffusion_settings(config: RunConfig) -> None:
    """Diffusion settings moved from their defaults that the chosen schedule or sampler does
    not read (``noise_scale`` with DiffRec's cosine ablation, ``beta_min`` with a linear
    schedule, ``eta`` with DDPM sampling) are named rather than silently dropped."""
    if config.model.name not in ("diffrec", "ldiffrec", "dreamrec"):
        return
    diffusion = validate_model_params(config.model.name, config.model.params()).diffusion
    for key, why in diffusion.unread_settings().items():
        value = getattr(diffusion, key)
        warn(f"model.diffusion.{key} ({value}): {why}: ignored")


#: Data that holds its own users, items and split (what it is, for a message), and the keys of a
#: table's loading (column names, filters, the split) it reads all the same.
_HELD = {
    "demo": ("the demo data has its own", ()),
    "diffrec": ("a diffrec folder (data.format=diffrec) holds its own", ("duplicates",)),
    "dreamrec": ("a dreamrec folder (data.format=dreamrec) holds its own", ()),
}
_TABLE_KEYS = ("user_col", "item_col", "rating_col", "time_col", "min_rating", "k_core")
_TABLE_KEYS += ("duplicates", "split")


def _warn_unread_data_settings(config: RunConfig) -> None:
    """Data settings moved from their default where nothing reads them are named rather than
    silently dropped (a warning, as for train.*: an experiment may set them for all its
    configs). ``data.max_len`` cuts a next-item model's history, and a model of users' rows
    reads whole rows; ``data.ratios`` shares out the temporal and random splits only (the Yelp
    trial's ``--set data.ratios`` under leave-one-out trained as if unset); the demo data and
    the papers' folders hold their own users, items and split, so a table's column names,
    filters and split are not read there (``--set data.k_core=5`` on the demo trained as if
    unset)."""
    data, defaults = config.data, DataConfig.model_fields
    sequential = config.model.name in SEQUENTIAL_MODELS
    if not sequential and data.max_len != defaults["max_len"].default:
        warn(
            f"data.max_len ({data.max_len}) sets the history length of next-item "
            f"models; {config.model.name} reads each user's whole row: ignored"
        )
    if data.format in _HELD:
        held, read = _HELD[data.format]
        for key in _TABLE_KEYS:
            value = getattr(data, key)
            if key in read or value == defaults[key].default:
                continue
            if key == "split" and sequential and value == "leave_one_out":
                continue  # how a next-item model's demo sequences are split
            warn(f"data.{key} ({value!r}): {held} users, items and split: ignored")
        why = f"{held} split"
    elif data.split == "leave_one_out":
        why = "data.split=leave_one_out holds out each user's last two items"
    else:
        return
    if tuple(data.ratios) != tuple(defaults["ratios"].default):
        warn(f"data.ratios ({list(data.ratios)}): {why}: ignored")


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
        try:
            work.mkdir()
        except BaseException:  # no inode or quota left, say: the reserved name goes too
            remove_unfinished(final)
            raise
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
                resolved_yaml(config),
            )
        log = EventLog(
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
    _warn_unread_data_settings(config)
    _warn_unread_time_weights(config)
    _warn_uncapped_first_stage(config)
    _warn_unread_diffusion_settings(config)
    if config.model.name in SEQUENTIAL_MODELS:
        from recdiff.train.run_sequential import run_sequential_into

        metrics, model = run_sequential_into(config, work, log)
    else:
        metrics, model = run_rows_into(config, work, log, started)
    if work is None:
        return RunResult(work, {}, model)
    metrics["versions"] = versions()
    finish(work, metrics, log, config)
    return RunResult(work, metrics, model)
