"""How the CLI prints a run's results: the metrics table, what validation selected, and a note
when the DiffRec paper's all-users averaging counts users without test items as zeros."""

from __future__ import annotations

import typer

from recdiff.config import load_config

__all__ = ["averaging_note", "metric_names", "metrics_table", "report_run", "selection_line"]


#: Metric columns a table block holds: 14 + 5 x 13 characters fit an 80-column terminal.
TABLE_COLUMNS = 5


def metrics_table(rows: dict[str, dict[str, float]], metrics: list[str]) -> str:
    """Rows of metric values under their names; more than :data:`TABLE_COLUMNS` metrics
    continue in further blocks of the same rows, a blank line apart."""
    width = max([14, *(len(label) + 1 for label in rows)])  # labels whole ("recdiff (n=100)")
    blocks = []
    for start in range(0, max(len(metrics), 1), TABLE_COLUMNS):
        block = metrics[start : start + TABLE_COLUMNS]
        lines = [f"{'':<{width}}" + "".join(f"{m:>13}" for m in block)]
        for label, values in rows.items():
            cells = "".join(f"{values[m]:>13.4f}" if m in values else f"{'-':>13}" for m in block)
            lines.append(f"{label:<{width}}{cells}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def metric_names(eval_config) -> list[str]:
    """``metric@k`` for each of a run's ``eval.metrics`` at each of its ``eval.ks``, in that
    order: the columns its tables show."""
    return [f"{m}@{k}" for m in eval_config.metrics for k in eval_config.ks]


def report_run(result, run_config=None) -> None:
    """The table of a finished run's metrics, what was selected, and where it was written."""
    from recdiff.train.distributed import is_main_process

    if not is_main_process():  # under torchrun every rank returns; rank 0 reports
        return
    if run_config is None:
        run_config = load_config(str(result.directory / "config.yaml"))
    metrics = result.metrics
    shown = metric_names(run_config.eval)
    typer.echo(metrics_table({"valid": metrics["valid"], "test": metrics["test"]}, shown))
    typer.echo(f"{selection_line(metrics)}, {metrics['seconds']['total']:.1f} s")
    typer.echo(f"run: {result.directory}")
    note = averaging_note(metrics, run_config.train.metric)
    if note:
        typer.echo(f"note: {note}", err=True)


def selection_line(metrics: dict) -> str:
    """What validation chose: the epoch, or a setting for models without epochs (EASE); for a
    training loop that never validated, which weights it kept instead."""
    if metrics.get("best_epoch") is not None and metrics.get("validated") is False:
        last = metrics.get("epochs_run", metrics["best_epoch"])
        kept = "moving average of the weights" if metrics.get("weight_average") else "weights"
        return f"no validation ran: kept the {kept} of the last epoch ({last})"
    if metrics.get("best_epoch") is not None:
        return f"best epoch {metrics['best_epoch']}"
    chosen = ", ".join(f"{key} {value:g}" for key, value in metrics.get("selected", {}).items())
    return f"chosen on validation: {chosen}" if chosen else "no training loop"


def averaging_note(metrics: dict, metric: str) -> str | None:
    """When all-users averaging counts users without test items as 0, say how many and what
    the users with test items score."""
    data = metrics.get("data", {})
    users, tested = data.get("n_users"), data.get("test_users")
    if metrics.get("averaging") != "all_users" or users is None or tested is None:
        return None
    if tested == users:
        return None
    value = metrics["by_averaging"]["test_users"]["test"].get(metric)
    over = f": test {metric} {value:.4f}" if value is not None else ""
    return (
        f"only {tested} of {users} users have test items; eval.averaging=all_users (the DiffRec "
        f"paper's protocol) counts the others as 0. Over the users with test items{over} "
        "(eval.averaging=test_users)"
    )
