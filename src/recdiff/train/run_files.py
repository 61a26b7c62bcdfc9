"""The files of a run folder that every kind of model writes the same way (the layout is in
:mod:`recdiff.train.run`): the event log, ``metrics.json`` with the versions it was made with,
the curves, and the per-user test metrics; and the fingerprints of the data that runs record
in ``metrics.json``.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

import recdiff
from recdiff.atomic import atomic_path, atomic_write_text
from recdiff.config.schema import RunConfig
from recdiff.eval.evaluator import EvalResult
from recdiff.train.checkpoint import active_checkpoints
from recdiff.train.trainer import OnEvent

if TYPE_CHECKING:
    from recdiff.data import DatasetSplits
    from recdiff.data.sequences import UserSequences

__all__ = [
    "PER_USER_FILE",
    "EventLog",
    "finish",
    "json_text",
    "save_per_user",
    "sequence_fingerprint",
    "split_fingerprint",
    "versions",
]

PER_USER_FILE = "test_per_user.npz"


def json_text(
    value: Any, indent: int | None = None, default: Callable[[Any], Any] | None = None
) -> str:
    """``value`` as strict JSON, a non-finite float (a diverged epoch's loss, a mean over no
    users) written as ``null``: Python reads ``NaN``, but JavaScript's ``JSON.parse`` and other
    strict readers refuse the whole file. ``default`` as for :func:`json.dumps`."""

    def finite(item: Any) -> Any:
        if isinstance(item, float) and not math.isfinite(item):
            return None
        if isinstance(item, dict):
            return {key: finite(inner) for key, inner in item.items()}
        if isinstance(item, list | tuple):
            return [finite(inner) for inner in item]
        return item

    return json.dumps(finite(value), indent=indent, allow_nan=False, default=default)


class EventLog:
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
            # What follows the last newline is a record whose write was cut short (a full disk,
            # SIGKILL): logged after the last checkpoint, it is one truncate() drops anyway.
            lines = path.read_text(encoding="utf-8").split("\n")[:-1]
            self.records = [
                _record(path, n, line) for n, line in enumerate(lines, 1) if line.strip()
            ]
        self.tensorboard = None
        if tensorboard:
            from recdiff.train.tensorboard import TensorBoardLog

            self.tensorboard = TensorBoardLog(path.parent / "tensorboard")

    def __call__(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json_text(record) + "\n")
        if self.tensorboard is not None:
            self.tensorboard(record)
        if self.listener is not None:
            self.listener(record)

    def truncate(self, count: int) -> None:
        """Keep the first ``count`` records, in memory and in the file: those logged before the
        checkpoint a run resumes from (the epochs after it run again)."""
        self.records = self.records[:count]
        atomic_write_text(self.path, "".join(json_text(r) + "\n" for r in self.records))
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


def _record(path: Path, number: int, line: str) -> dict[str, Any]:
    """Line ``number`` of an event log being resumed, which must hold one JSON record."""
    try:
        record = json.loads(line)
        problem = f"a {type(record).__name__}"
    except json.JSONDecodeError as error:
        record, problem = None, error.msg
    if not isinstance(record, dict):
        raise ValueError(
            f"{path}, line {number}, is not an event record ({problem}): the run folder was "
            "damaged since it was interrupted; put the line back as it was, or train the run again"
        )
    return record


def save_per_user(path: Path, result: EvalResult) -> None:
    """Per-user test metrics (NaN for users without test items), for paired tests."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **result.per_user)


def versions() -> dict[str, str]:
    return {
        "recdiff": recdiff.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def finish(work: Path, metrics: dict[str, Any], log: EventLog, config: RunConfig) -> None:
    """metrics.json and the curves, common to every kind of model."""
    log.close()
    # A resumed run's seconds count the resuming process only: say so beside them.
    checkpoints = active_checkpoints()
    metrics["resumed"] = checkpoints is not None and checkpoints.saved is not None
    atomic_write_text(work / "metrics.json", json_text(metrics, indent=2) + "\n")
    if log.records:
        from recdiff.train.curves import plot_curves

        # The epoch whose weights were kept, when validation chose it (else the last is kept).
        selected = metrics.get("best_epoch") if metrics.get("validated") else None
        stopped = bool(metrics.get("stopped_early"))
        plot_curves(log.records, work / "curves.png", config.train.metric, selected, stopped)


# ------------------------------------------------------------------------- data fingerprints
#: Names how a fingerprint is computed: fingerprints of two schemes are not compared.
FINGERPRINT_SCHEME = "v1"


def split_fingerprint(splits: DatasetSplits) -> str:
    """SHA-256 of what a run of users' rows is trained and tested on: the user and item ids and
    the (user, item) pairs of train, valid and test, in the vocabularies' sorted external-id
    order. Equal for the same interactions however they were stored (CSV, Parquet, JSON Lines,
    in any row order); ratings, times and the held-out pairs a split dropped are not in it."""
    arrays = [splits.users.ids, splits.items.ids]
    for part in (splits.train, splits.valid, splits.test):
        pairs = part.matrix.tocsr(copy=True)
        pairs.sum_duplicates()  # one entry per pair, each row's items in order
        arrays += [pairs.indptr, pairs.indices]
    return _fingerprint("rows", arrays)


def sequence_fingerprint(sequences: UserSequences) -> str:
    """SHA-256 of the users' whole item sequences (ids and order) a next-item run splits
    leave-one-out: its examples follow from them, histories cut to ``data.max_len`` or not."""
    arrays = [sequences.users.ids, sequences.items.ids, sequences.indptr, sequences.item_idx]
    return _fingerprint("sequences", arrays)


def _fingerprint(kind: str, arrays: list[np.ndarray]) -> str:
    digest = hashlib.sha256(kind.encode())
    for array in arrays:
        if array.dtype.kind == "U":  # external ids as text: JSON keeps their bounds
            data = json.dumps(array.tolist()).encode()
        else:  # indices and integer ids, in one width whatever the reader chose
            data = np.ascontiguousarray(array, dtype=np.int64).tobytes()
        digest.update(f"{array.dtype.kind}{len(data)}:".encode())
        digest.update(data)
    return f"{FINGERPRINT_SCHEME}:{digest.hexdigest()}"
