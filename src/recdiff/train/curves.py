"""Training curves of a run: loss per epoch and validation/test metrics per evaluation."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from recdiff.atomic import atomic_path

__all__ = ["plot_curves"]


def plot_curves(
    records: Sequence[dict[str, Any]], path: str | os.PathLike[str], metric: str
) -> None:
    """Two panels: the training loss, and ``metric`` on every evaluated split."""
    epochs = [r for r in records if r.get("event") == "epoch"]
    evals = [r for r in records if r.get("event") == "eval"]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 3.8))
    if epochs:
        ax_loss.plot([r["epoch"] for r in epochs], [r["loss"] for r in epochs], color="tab:blue")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss")
    ax_loss.set_title("loss")
    splits = sorted({key.split("/")[0] for r in evals for key in r if key.endswith(f"/{metric}")})
    for split in splits:
        points = [(r["epoch"], r[f"{split}/{metric}"]) for r in evals if f"{split}/{metric}" in r]
        ax_metric.plot(*zip(*points, strict=True), marker="o", label=split)
    if splits:
        ax_metric.legend()
    ax_metric.set_xlabel("epoch")
    ax_metric.set_ylabel(metric)
    ax_metric.set_title(f"{metric} (selection on valid)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
