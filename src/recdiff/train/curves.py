"""Training curves of a run: loss per epoch and validation/test metrics per evaluation, or, for a
model chosen without epochs (EASE), the validation metric over the settings tried.

Figures are drawn on matplotlib's object API, never pyplot: training from a notebook must not
switch the caller's backend."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from recdiff.atomic import atomic_path

__all__ = ["plot_curves"]


def plot_curves(
    records: Sequence[dict[str, Any]],
    path: str | os.PathLike[str],
    metric: str,
    selected: int | None = None,
    stopped_early: bool = False,
) -> None:
    """Two panels: the training loss, and ``metric`` on every evaluated split, with the epoch
    validation ``selected`` (the model's, not a stage's) marked, and, when ``stopped_early``
    (``train.patience`` ran out), the model's last epoch, so that a short x axis is not taken
    for the epochs configured. A run without epochs but with a ``select`` record (EASE's lambda
    sweep) gets that sweep; a run with neither gets no file."""
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
    # A stage keeps one colour in both panels; the split is told by the line's style.
    stages = sorted({r["stage"] for r in epochs + evals if r.get("stage")})
    ax_stage = ax_loss.twinx() if stages else None
    for n, stage in enumerate([*stages, None]):
        prefix = f"{stage}: " if stage else ""
        axis, color = (ax_stage, f"C{n + 1}") if stage else (ax_loss, "C0")
        losses = [(r["epoch"], r["loss"]) for r in epochs if r.get("stage") == stage]
        if losses:
            label = prefix + "loss" if stages else None
            _line(axis, losses, color=color, label=label, dense=0)
        for r in records:  # where a non-finite loss ended the stage
            if r.get("event") == "diverged" and r.get("stage") == stage:
                axis.axvline(r["epoch"], color=color, linestyle=":", label=f"{prefix}diverged")
        stage_evals = [r for r in evals if r.get("stage") == stage]
        splits = sorted(
            {key.split("/")[0] for r in stage_evals for key in r if key.endswith(f"/{metric}")},
            key=lambda split: (split != "valid", split),  # valid, the selecting split, first
        )
        for split in splits:
            key = f"{split}/{metric}"
            points = [(r["epoch"], r[key]) for r in stage_evals if key in r]
            style = "-" if split == "valid" else "--"
            _line(ax_metric, points, color=color, label=prefix + split, linestyle=style)
    if selected is not None and ax_metric.lines:
        ax_metric.axvline(
            selected, color="grey", linestyle=":", label=f"selected: epoch {selected}"
        )
    last = max((r["epoch"] for r in epochs if not r.get("stage")), default=None)
    diverged = any(r.get("event") == "diverged" and not r.get("stage") for r in records)
    if stopped_early and last is not None and not diverged:  # a divergence is marked already
        axis = ax_metric if ax_metric.lines else ax_loss
        axis.axvline(last, color="black", linestyle="--", label=f"stopped early: epoch {last}")
    if ax_stage is not None:
        ax_stage.set_ylabel("stage loss")
        _log_scale_if_wide(ax_stage)
        lines = ax_loss.lines + ax_stage.lines
        _legend_above(ax_loss, lines)
    elif any(line.get_label().startswith(("diverged", "stopped")) for line in ax_loss.lines):
        _legend_above(ax_loss, ax_loss.lines)
    _log_scale_if_wide(ax_loss)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss")
    if ax_metric.lines:
        _legend_above(ax_metric, ax_metric.lines)
    else:  # said, so that an empty panel is not taken for a drawing that failed
        ax_metric.text(
            0.5, 0.5, f"no evaluation computed {metric}", ha="center", transform=ax_metric.transAxes
        )
    ax_metric.set_xlabel("epoch")
    ax_metric.set_ylabel(metric)
    for axis in (ax_loss, ax_metric):  # epochs are whole: no ticks at 1.5 or 0.98
        low, high = axis.get_xlim()
        if axis.lines and high - low < 2:  # one epoch: a range about it with whole numbers
            axis.set_xlim((low + high) / 2 - 1, (low + high) / 2 + 1)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    _save(fig, path)


def _legend_above(axis: Any, lines: Sequence[Any]) -> None:
    """The legend of ``lines`` above ``axis``, outside it: inside, even matplotlib's "best" place
    can hide points (a test value under the box), and no place is free when lines fill the
    panel. The panels have no titles for it; their y labels say what they show."""
    lines = [line for line in lines if not line.get_label().startswith("_")]  # unlabelled
    axis.legend(
        lines,
        [line.get_label() for line in lines],
        loc="lower left",
        bbox_to_anchor=(0.0, 1.01),
        ncols=3 if len(lines) > 4 else 2,  # columns of two: valid over test, marks beside
        frameon=False,
        fontsize="small",
        handlelength=3.0,  # long enough to tell a dashed test line from a solid one
        borderaxespad=0.0,
    )


def _log_scale_if_wide(axis: Any) -> None:
    """A log y axis when the axis's positive losses span two decades or more: on a linear one
    the first epochs' loss (an early 1e13, say) flattens every later epoch onto zero."""
    values = [
        float(y)
        for line in axis.lines
        if not _is_mark(line)
        for y in line.get_ydata()
        if y is not None and math.isfinite(y)
    ]
    if values and min(values) > 0 and max(values) >= 100 * min(values):
        axis.set_yscale("log")


def _is_mark(line: Any) -> bool:
    """A vertical mark (axvline: a selected or diverged epoch), not data."""
    return line.get_transform() is not line.axes.transData and len(line.get_xdata()) == 2


def _line(
    axis: Any,
    points: Sequence[tuple[float, float]],
    *,
    dense: int = 50,
    **style: Any,
) -> None:
    """``points`` joined by a line, with a marker on each when there are at most ``dense`` of
    them, and always on a point no line reaches: a run of one epoch, or the last finite loss
    before training diverged, would otherwise draw nothing."""
    xs, ys = zip(*points, strict=True)
    finite = [y is not None and math.isfinite(y) for y in ys]
    if len(points) <= dense:
        marked = [i for i, ok in enumerate(finite) if ok]
    else:
        marked = [
            i
            for i, ok in enumerate(finite)
            if ok and not (i > 0 and finite[i - 1]) and not (i + 1 < len(ys) and finite[i + 1])
        ]
    ys = [y if ok else math.nan for y, ok in zip(ys, finite, strict=True)]
    axis.plot(xs, ys, marker="o" if marked else None, markersize=4, markevery=marked, **style)


def read_sweep(record: dict[str, Any]) -> tuple[str, float, list[tuple[float, float]]] | None:
    """The setting a ``select`` record (EASE's lambda sweep) swept, the value chosen, and
    (value, validation score) in increasing value; None when it is not one such sweep."""
    if record.get("event") != "select" or not isinstance(record.get("valid"), dict):
        return None
    names = [key for key in record if key not in ("event", "valid")]
    if len(names) != 1:
        return None
    values = sorted((float(key), score) for key, score in record["valid"].items())
    return names[0], float(record[names[0]]), values


def _plot_sweep(record: dict[str, Any], path: str | os.PathLike[str], metric: str) -> None:
    """Validation ``metric`` against each value of the one setting a ``select`` record swept."""
    sweep = read_sweep(record)
    if sweep is None:
        return
    name, chosen, values = sweep
    fig = Figure(figsize=(5, 3.8))
    ax = fig.subplots()
    ax.plot(*zip(*values, strict=True), marker="o", label="valid")
    ax.axvline(chosen, color="tab:gray", linestyle="--", label="chosen")
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
