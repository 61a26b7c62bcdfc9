"""How a run's training went, as its report tells it: what chose the model kept, how the
training ended (every epoch, patience spent, a diverged loss), and the same for each
pre-training stage (L-DiffRec's autoencoder, DreamRec's SASRec item space), which a run's
overview alone would hide behind the model's own epochs. Read from ``metrics.json`` only."""

from __future__ import annotations

from typing import Any

from recdiff.serving.report_html import escape, html_table, number_cell

__all__ = ["selected_on", "stages_table", "training_end"]


def selected_on(metrics: dict[str, Any], metric: str) -> str:
    """What chose the run's model: validation, or nothing (a model without settings to choose,
    such as popularity, or a training loop that never validated and kept its last epoch)."""
    # Runs written before metrics.json recorded "validated" were validated runs.
    if metrics.get("selected"):  # a setting swept on validation (EASE's lambda)
        chosen = ", ".join(
            f"{key} {value:g}" if isinstance(value, float) else f"{key} {escape(value)}"
            for key, value in metrics["selected"].items()
        )
        return f"validation {metric} ({chosen})"
    if metrics.get("validated", True):
        return f"validation {metric}"
    if metrics.get("best_epoch") is not None:
        return "nothing: no validation ran, the last epoch's weights are kept"
    return "nothing: the model has no setting chosen on validation"


def training_end(summary: dict[str, Any], patience: Any = None) -> str | None:
    """How an epoch loop (the model's or a stage's ``summary``) ended; None without one."""
    epochs = summary.get("epochs_run")
    if epochs is None:
        return None
    if summary.get("diverged_epoch") is not None:
        return (
            f"diverged in epoch {summary['diverged_epoch']} (a non-finite loss or weights); "
            f"the best epoch validated before it is kept"
        )
    if summary.get("stopped_early"):
        after = f" for train.patience = {patience} epochs" if patience is not None else ""
        return f"stopped early after epoch {epochs}: no gain on validation{after}"
    return f"ran all {epochs} epochs"


def stages_table(metrics: dict[str, Any], metric: str) -> str:
    """One row per pre-training stage; empty for a run without one."""
    stages = metrics.get("stages") or {}
    if not stages:
        return ""
    rows = [
        [
            escape(name),
            number_cell(stage.get("best_epoch")),
            number_cell(stage.get("epochs_run")),
            escape(training_end(stage) or "-"),
            number_cell((stage.get("valid") or {}).get(metric)),
        ]
        for name, stage in stages.items()
    ]
    header = ["stage", "best epoch", "epochs run", "training", f"valid {escape(metric)}"]
    return (
        "<h2>Pre-training stages</h2><p>Trained before the model, each with its own epochs "
        "and selection (its lines in the curves restart at epoch 1).</p>" + html_table(header, rows)
    )
