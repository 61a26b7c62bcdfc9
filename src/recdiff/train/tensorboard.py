"""TensorBoard scalars of a run, beside its ``events.jsonl`` (``train.tensorboard: true``).

Every number of an epoch or evaluation record becomes a scalar at step = epoch: ``epoch/loss``,
``epoch/seconds``, ``valid/recall@20``... A staged model (L-DiffRec) prefixes its stage, e.g.
``autoencoder/epoch/loss``. A run that sweeps a setting instead of training epochs (EASE's
lambda on validation) logs the sweep: ``select/valid_by_l2_lambda`` at step = each value tried
(its rank in the sweep where a value is not a whole number) and the chosen value as
``select/l2_lambda``. View with ``tensorboard --logdir runs``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recdiff.train.curves import read_sweep

__all__ = ["TensorBoardLog", "summary_writer"]

_NOT_SCALARS = ("event", "epoch", "stage")


def summary_writer() -> type:
    """torch's ``SummaryWriter`` class; an ImportError naming the extra when it cannot load
    (the command line checks this before training, so a run fails before it starts)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:  # torch imports it lazily; the package is the optional extra
        raise ImportError(
            "train.tensorboard needs the tensorboard package: pip install 'recdiff[tensorboard]'"
            " (or set train.tensorboard=false)"
        ) from exc
    return SummaryWriter


class TensorBoardLog:
    """An event listener that writes scalars with torch's ``SummaryWriter``."""

    def __init__(self, folder: str | Path) -> None:
        self.writer = summary_writer()(log_dir=str(folder))

    def __call__(self, record: dict[str, Any]) -> None:
        if record.get("event") == "select":
            self._sweep(record)
            return
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

    def _sweep(self, record: dict[str, Any]) -> None:
        """The validation metric over a swept setting's values, and the value chosen."""
        sweep = read_sweep(record)
        if sweep is None:
            return
        name, chosen, values = sweep
        whole = all(value.is_integer() for value, _ in values)
        for rank, (value, score) in enumerate(values):
            self.writer.add_scalar(f"select/valid_by_{name}", score, int(value) if whole else rank)
        self.writer.add_scalar(f"select/{name}", chosen, 0)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
