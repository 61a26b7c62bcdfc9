"""Resume checkpoints: an interrupted run continues where it stopped, to the same result.

With ``train.checkpoint_every: k`` a run writes ``resume.pt`` into its unfinished folder every k
epochs of each training stage, and when a stage ends. It holds everything the rest of the run
depends on:

- the stage's module weights, optimizer moments, weight average and the model's extra state
  (DiffRec's loss history for importance sampling);
- the selection so far: the best validated weights, their epoch and metrics, the evaluations;
- every random number generator the run draws from (torch, numpy, Python, the shuffling
  generator; under torchrun each process's own);
- how many records ``events.jsonl`` held, so that the epochs run after the checkpoint are
  dropped from the log and run again;
- a digest of the data the run trains and is evaluated on (:func:`data_digest`): a resume on
  data changed since is refused, where it would fail to load weights of another shape, or
  silently finish a run trained on two datasets.

A stage that finished before the interruption (L-DiffRec's autoencoders, DreamRec's SASRec item
stage) is not trained again: its weights, result and generator states are restored as they were
when it ended. So a resumed run draws the same numbers as one that was never stopped, and ends
with the same weights and metrics (a test checks it for every kind of model).

:func:`resume_checkpoints` installs the checkpoints of one run for the trainers that run inside
it; :class:`~recdiff.train.trainer.Trainer` saves into and restores from them, in the form that
:func:`progress_state` and :func:`weights_state` give a stage's state (and the ``restore_*``
functions take back), so that what a checkpoint holds is written and read in this one module.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import dataclasses
import hashlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch

from recdiff.atomic import atomic_path
from recdiff.train.config import TrainResult
from recdiff.train.distributed import gather_object, is_main_process, rank, world_size
from recdiff.train.folders import CHECKPOINT_FILE

if TYPE_CHECKING:  # the trainer imports this module
    from recdiff.train.averaging import WeightAverage
    from recdiff.train.trainer import Trainable

__all__ = [
    "CHECKPOINT_FILE",
    "Checkpoints",
    "active_checkpoints",
    "check_run_data",
    "data_digest",
    "resume_checkpoints",
    "run_settings",
]

_FORMAT = 1

_ACTIVE: contextvars.ContextVar[Checkpoints | None] = contextvars.ContextVar(
    "recdiff_checkpoints", default=None
)


def active_checkpoints() -> Checkpoints | None:
    """The checkpoints of the run being trained, if it keeps any."""
    return _ACTIVE.get()


@contextlib.contextmanager
def resume_checkpoints(checkpoints: Checkpoints) -> Iterator[Checkpoints]:
    """Trainers inside the block save into (and, when resuming, restore from) ``checkpoints``."""
    token = _ACTIVE.set(checkpoints)
    try:
        yield checkpoints
    finally:
        _ACTIVE.reset(token)


class Checkpoints:
    """The resume checkpoints of one run.

    Args:
        path: the checkpoint file (``resume.pt`` in the unfinished run folder). Only the main
            process writes it (the others may pass None); under torchrun every process reads it
            to resume.
        every: save every this many epochs of each stage.
        events: the run's event log (it has ``records`` and ``truncate(n)``), or None where this
            process logs nothing.
        resume: restore from ``path``, which must exist.
        settings: the run's resolved config as plain values (see :func:`run_settings`). Saved
            with every checkpoint, and on resuming compared with the config the run resumes
            with: weights of another shape would not load, and another seed, learning rate or
            epoch count would end in a run that no config describes.
    """

    def __init__(
        self,
        path: Path | None,
        every: int,
        events: Any = None,
        resume: bool = False,
        settings: dict[str, Any] | None = None,
    ) -> None:
        if every < 1:
            raise ValueError(f"train.checkpoint_every must be at least 1, got {every}")
        if path is None and (resume or is_main_process()):
            raise ValueError("the main process needs a checkpoint path, and so does a resume")
        self.path, self.every, self.events, self.settings = path, every, events, settings
        self.finished: list[dict[str, Any]] = []  # stages ended in this run, in order
        self.saved: dict[str, Any] | None = None
        self.data: str | None = None  # the digest of the run's data (check_data)
        self._stages = 0
        if resume:
            self.saved = load_checkpoint(path)
            if self.saved["world_size"] != world_size():
                raise ValueError(
                    f"{self.path} was written by {self.saved['world_size']} process(es) and this "
                    f"resume runs {world_size()}: resume with the same number of processes "
                    "(torchrun --nproc-per-node)"
                )
            _check_settings(path, self.saved.get("settings"), settings)
            self.finished = list(self.saved["finished"])
            if events is not None:
                events.truncate(self.saved["events"])

    def check_data(self, digest: str, source: str | None) -> None:
        """Keep the digest of the data the run loaded; resuming, refuse data other than the
        data the checkpoint was written on (``source``: where it was read from)."""
        saved = self.saved.get("data") if self.saved else None
        if saved is not None and saved != digest:
            where = f" ({source})" if source else ""
            raise ValueError(
                f"the run's data{where} changed since its checkpoint {self.path} was written: a "
                "resumed run continues on the data it began with, so put the data back as it "
                "was, or train the run again"
            )
        self.data = digest

    def begin_stage(self) -> int:
        """The index of a trainer starting in this run (0, 1, ... in the order they start)."""
        index, self._stages = self._stages, self._stages + 1
        return index

    def finished_stage(self, index: int) -> dict[str, Any] | None:
        """What stage ``index`` ended with, when it ended before the run was resumed."""
        return self.finished[index] if index < len(self.finished) else None

    def progress(self, index: int) -> dict[str, Any] | None:
        """Stage ``index``'s state at its last checkpoint, when the run stopped inside it."""
        progress = self.saved.get("progress") if self.saved else None
        if progress is None or progress["stage"] != index:
            return None
        return progress

    def save_progress(self, index: int, state: dict[str, Any]) -> None:
        """Checkpoint stage ``index`` after an epoch (every process calls it at the same epoch)."""
        self._write({**state, "stage": index, "rng": gather_object(random_states())})

    def finish_stage(self, index: int, state: dict[str, Any]) -> None:
        """Record that stage ``index`` ended with ``state`` and checkpoint it. The state is
        copied: a later stage may train the same weights on, and the record must keep them as
        they were when this stage ended."""
        state = {**copy.deepcopy(state), "stage": index, "rng": gather_object(random_states())}
        del self.finished[index:]
        self.finished.append(state)
        self._write(None)

    def _write(self, progress: dict[str, Any] | None) -> None:
        if not is_main_process():
            return
        checkpoint = {
            "format": _FORMAT,
            "world_size": world_size(),
            "settings": self.settings,
            "data": self.data,
            "events": len(self.events.records) if self.events is not None else 0,
            "finished": self.finished,
            "progress": progress,
        }
        assert self.path is not None
        with atomic_path(self.path) as tmp, open(tmp, "wb") as fh:
            try:
                torch.save(checkpoint, fh)
            except RuntimeError as error:
                # torch words a failed write (a full disk) as its own RuntimeError, the file's
                # OSError only its context (given a path, not even that): raise the OSError,
                # which says what went wrong and where.
                cause = error.__context__
                if not isinstance(cause, OSError):
                    raise
                raise OSError(cause.errno, cause.strerror, str(self.path)) from error


def data_digest(*parts: Any) -> str:
    """A SHA-256 fingerprint of a run's data: numpy arrays (vocabulary ids, example arrays)
    and sparse matrices (interaction rows), each with its dtype and shape."""
    digest = hashlib.sha256()
    for part in parts:
        if sp.issparse(part):
            csr = sp.csr_matrix(part)
            arrays = (csr.indptr, csr.indices, csr.data)
        else:
            arrays = (part,)
        for array in arrays:
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()


def check_run_data(*parts: Any, source: str | None = None) -> None:
    """:meth:`Checkpoints.check_data` of the run being trained, if it keeps checkpoints."""
    checkpoints = active_checkpoints()
    if checkpoints is not None:
        checkpoints.check_data(data_digest(*parts), source)


def run_settings(config: Any) -> dict[str, Any]:
    """A run's config as a checkpoint keeps it: everything but whether progress bars show (which
    ``recdiff resume --quiet`` may change)."""
    settings = config.model_dump(mode="json")
    settings["train"].pop("progress", None)
    return settings


def _check_settings(
    path: Path | None, saved: dict[str, Any] | None, settings: dict[str, Any] | None
) -> None:
    """Refuse to resume with a config other than the one the checkpoint was written under."""
    if saved is None or settings is None or saved == settings:
        return
    shown = describe_differences(saved, settings, "then", "now")
    raise ValueError(
        f"the run's config.yaml differs from the config its checkpoint {path} was written "
        f"under ({shown}): a resumed run continues the run it was, so put config.yaml back as "
        "it was, or train the changed config as a new run"
    )


def describe_differences(before: Any, after: Any, then: str, now: str, limit: int = 5) -> str:
    """``train.epochs: 3 then, 4 now; ...`` for the dotted keys whose values differ between two
    nested dicts (a config as it was and as it is), at most ``limit`` of them named."""
    changed = [
        f"{key}: {_shown(a)} {then}, {_shown(b)} {now}" for key, a, b in _differences(before, after)
    ]
    more = len(changed) - limit
    return "; ".join(changed[:limit]) + (f"; and {more} more" if more > 0 else "")


def _differences(before: Any, after: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """The dotted keys whose values differ between two nested dicts, with both values."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return [] if before == after else [(prefix, before, after)]
    found = []
    for key in [*before, *(key for key in after if key not in before)]:
        name = f"{prefix}.{key}" if prefix else str(key)
        found += _differences(before.get(key, _UNSET), after.get(key, _UNSET), name)
    return found


_UNSET = object()  # a key one of the configs lacks


def _shown(value: Any) -> str:
    return "unset" if value is _UNSET else repr(value)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint file's contents (tensors and plain values only: nothing is unpickled)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:
        raise ValueError(
            f"{path} is not a readable resume checkpoint ({type(error).__name__}): it was "
            "damaged; the run cannot be resumed, train it again"
        ) from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != _FORMAT:
        raise ValueError(
            f"{path} is not a resume checkpoint of this recdiff version: train the run again"
        )
    return checkpoint


def random_states() -> dict[str, Any]:
    """Every generator state a training step may draw from, in this process."""
    keys, position, has_gauss, gauss = np.random.get_state(legacy=True)[1:]  # noqa: NPY002
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": random.getstate(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
    }


def restore_random_states(states: list[dict[str, Any]]) -> None:
    """Set this process's generators to the states saved for its rank."""
    state = states[rank()]
    torch.set_rng_state(state["torch"])
    numpy = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            "MT19937",
            numpy["keys"].numpy().astype(np.uint32),
            numpy["position"],
            numpy["has_gauss"],
            numpy["gauss"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])


def result_state(result: Any) -> dict[str, Any]:
    """A :class:`~recdiff.train.config.TrainResult` as plain values."""
    return plain(dataclasses.asdict(result))


def plain(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers, which a weights-only load reads."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(item) for item in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def model_extra_state(model: Trainable) -> dict[str, torch.Tensor] | None:
    """The model's state outside its module that belongs with its weights, if it keeps any."""
    return model.extra_state() if hasattr(model, "extra_state") else None


def weights_state(model: Trainable) -> dict[str, Any]:
    """The module's weights and the model's state outside it, as a checkpoint keeps them
    (:func:`restore_weights` puts them back)."""
    training = plain(model.training_state()) if hasattr(model, "training_state") else None
    return {
        "module": model.module.state_dict(),
        "extra": model_extra_state(model),
        "training": training,
    }


def progress_state(
    model: Trainable,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    average: WeightAverage | None,
    result: TrainResult,
    best: dict[str, Any] | None,
) -> dict[str, Any]:
    """A stage's state after an epoch, for :meth:`Checkpoints.save_progress`
    (:func:`restore_progress` and :func:`restore_weights` put it back)."""
    return {
        **weights_state(model),
        "optimizer": optimizer.state_dict(),
        "shuffle": generator.get_state(),
        "average": average.state() if average is not None else None,
        "result": result_state(result),
        "best": best,
    }


def restore_weights(model: Trainable, state: dict[str, Any], device: str) -> None:
    model.module.load_state_dict(state["module"])
    model.module.to(device)
    if state["extra"] is not None:
        model.load_extra_state(state["extra"])
    if state["training"] is not None:
        model.load_training_state(state["training"])


def restore_progress(
    saved: dict[str, Any],
    model: Trainable,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    average: WeightAverage | None,
) -> tuple[TrainResult, dict[str, Any] | None]:
    """Put a stage's training state back as its last checkpoint left it (the weights are
    :func:`restore_weights`'s); return its result so far and its best validated state. (The
    checkpoint's config, EMA included, was checked against the run's when it was loaded.)"""
    optimizer.load_state_dict(saved["optimizer"])
    generator.set_state(saved["shuffle"])
    if average is not None:
        average.load_state(saved["average"])
    restore_random_states(saved["rng"])
    return TrainResult(**saved["result"]), saved["best"]


def restore_ended(model: Trainable, ended: dict[str, Any], device: str) -> TrainResult:
    """A stage that ended before the run was resumed: its final weights, result and the
    generators' states as they were when it ended."""
    restore_weights(model, ended, device)
    model.module.eval()
    restore_random_states(ended["rng"])
    return TrainResult(**ended["result"])
