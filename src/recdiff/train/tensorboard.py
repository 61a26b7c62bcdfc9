"""TensorBoard scalars of a run, beside its ``events.jsonl`` (``train.tensorboard: true``).

Every number of an epoch or evaluation record becomes a scalar at step = epoch: ``epoch/loss``,
``epoch/seconds``, ``valid/recall@20``... A staged model (L-DiffRec) prefixes its stage, e.g.
``autoencoder/epoch/loss``. View with ``tensorboard --logdir runs``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["TensorBoardLog"]

_NOT_SCALARS = ("event", "epoch", "stage")


class TensorBoardLog:
    """An event listener that writes scalars with torch's ``SummaryWriter``."""

    def __init__(self, folder: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # torch imports it lazily; the package is the optional extra
            raise ImportError(
                "train.tensorboard needs the tensorboard package: pip install 'recdiff[tensorboard]'"
                " (or set train.tensorboard=false)"
            ) from exc
        self.writer = SummaryWriter(log_dir=str(folder))

    def __call__(self, record: dict[str, Any]) -> None:
        step = record.get("epoch")
        if step is None:
            return
        prefix = f"{record['stage']}/" if record.get("stage") else ""
        event = record.get("event", "event")
        for key, value in record.items():
            if key in _NOT_SCALARS or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            tag = key if "/" in key else f"{event}/{key}"
            self.writer.add_scalar(prefix + tag, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
