"""Training curves of a run: loss per epoch and validation/test metrics per evaluation, or, for a
model chosen without epochs (EASE), the validation metric over the settings tried.

Figures are drawn on matplotlib's object API, never pyplot: training from a notebook must not
switch the caller's backend."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure

from recdiff.atomic import atomic_path

__all__ = ["plot_curves"]


def plot_curves(
    records: Sequence[dict[str, Any]], path: str | os.PathLike[str], metric: str
) -> None:
    """Two panels: the training loss, and ``metric`` on every evaluated split. A run without
    epochs but with a ``select`` record (EASE's lambda sweep) gets that sweep; a run with neither
    gets no file."""
    epochs = [r for r in records if r.get("event") == "epoch"]
    evals = [r for r in records if r.get("event") == "eval"]
    if not epochs and not evals:
        sweep = next((r for r in records if r.get("event") == "select"), None)
        if sweep is not None:
            _plot_sweep(sweep, path, metric)
        return
    fig = Figure(figsize=(10, 3.8))
    ax_loss, ax_metric = fig.subplots(1, 2)
    # A pre-training stage (L-DiffRec's autoencoders, DreamRec's SASRec items) restarts the
    # epoch count: each stage gets its own lines, the model's own last and unlabelled. A stage's
    # loss is another loss (SASRec's cross-entropy against DreamRec's MSE): its own y axis.
    stages = sorted({r["stage"] for r in epochs + evals if r.get("stage")})
    ax_stage = ax_loss.twinx() if stages else None
    for n, stage in enumerate([*stages, None]):
        prefix = f"{stage}: " if stage else ""
        losses = [(r["epoch"], r["loss"]) for r in epochs if r.get("stage") == stage]
        if losses:
            axis, color = (ax_stage, f"C{n + 1}") if stage else (ax_loss, "C0")
            label = prefix + "loss" if stages else None
            axis.plot(*zip(*losses, strict=True), color=color, label=label)
        stage_evals = [r for r in evals if r.get("stage") == stage]
        splits = sorted(
            {key.split("/")[0] for r in stage_evals for key in r if key.endswith(f"/{metric}")}
        )
        for split in splits:
            key = f"{split}/{metric}"
            points = [(r["epoch"], r[key]) for r in stage_evals if key in r]
            ax_metric.plot(*zip(*points, strict=True), marker="o", label=prefix + split)
    if ax_stage is not None:
        ax_stage.set_ylabel("stage loss")
        lines = ax_loss.lines + ax_stage.lines
        ax_loss.legend(lines, [line.get_label() for line in lines])
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss")
    ax_loss.set_title("loss")
    if ax_metric.lines:
        ax_metric.legend()
    ax_metric.set_xlabel("epoch")
    ax_metric.set_ylabel(metric)
    ax_metric.set_title(f"{metric} (selection on valid)")
    _save(fig, path)


def _plot_sweep(record: dict[str, Any], path: str | os.PathLike[str], metric: str) -> None:
    """Validation ``metric`` against each value of the one setting a ``select`` record swept."""
    (name,) = [key for key in record if key not in ("event", "valid")]
    values = sorted((float(key), score) for key, score in record["valid"].items())
    fig = Figure(figsize=(5, 3.8))
    ax = fig.subplots()
    ax.plot(*zip(*values, strict=True), marker="o", label="valid")
    ax.axvline(float(record[name]), color="tab:gray", linestyle="--", label="chosen")
    ax.set_xscale("log")
    ax.set_xlabel(name)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} on valid over {name}")
    ax.legend()
    _save(fig, path)


def _save(fig: Figure, path: str | os.PathLike[str]) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
