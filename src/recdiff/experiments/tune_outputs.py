"""What a search leaves in its output folder and returns: ``trials.csv`` (every trial: state,
validation metric, sampled settings, run directory), ``best.yaml`` (the best trial's full config
as a preset), the one-line report of each trial, and the :class:`TuneResult`.

A trial's state is Optuna's, except that a trial whose settings did not fit together is INVALID
and one whose loss turned non-finite before any validation is DIVERGED (Optuna holds both as
pruned); counts keep them apart. The best trial is chosen on the
validation metric alone; its test value is recorded in ``trials.csv``, never read for choosing.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from recdiff.atomic import atomic_write_text
from recdiff.experiments.space import SearchSpace
from recdiff.experiments.storage import import_optuna
from recdiff.experiments.trials import trial_config

__all__ = [
    "TuneResult",
    "best_config_yaml",
    "count_trials",
    "finished_trials",
    "search_result",
    "trial_line",
    "trials_table",
    "write_outputs",
]


@dataclass
class TuneResult:
    """What the search found; ``best_*`` are None while no trial has completed."""

    out: Path
    metric: str
    counts: dict[str, int]
    best_number: int | None = None
    best_value: float | None = None
    best_settings: dict[str, Any] | None = None
    best_path: Path | None = None
    trials_path: Path | None = None


def _state(trial: Any) -> str:
    """COMPLETE, PRUNED, FAIL, RUNNING, WAITING, INVALID (settings that do not fit) or DIVERGED
    (a non-finite loss before any validation)."""
    if trial.user_attrs.get("invalid"):
        return "INVALID"
    return "DIVERGED" if trial.user_attrs.get("diverged") else trial.state.name


def trial_line(trial: Any, metric: str) -> str:
    """The line the search reports once a trial has finished."""
    state = _state(trial)
    settings = ", ".join(f"{k}={v}" for k, v in trial.user_attrs.get("settings", {}).items())
    if state == "COMPLETE":
        what = f"valid/{metric} {trial.value:.4f} in {trial.user_attrs.get('seconds')} s"
    elif state == "PRUNED":
        what = f"pruned at epoch {trial.last_step}"
    elif state == "INVALID":
        what = f"invalid settings, skipped: {trial.user_attrs['error']}"
    elif state == "DIVERGED":
        what = f"diverged, skipped: {trial.user_attrs['error']}"
    else:
        what = "failed"
    return f"trial {trial.number}: {what} ({settings})"


def count_trials(study: Any, trials: list[Any] | None = None) -> dict[str, int]:
    """Trials by state; ``pruned`` excludes the invalid and diverged ones (counted apart).
    ``trials``: the study's, if read already."""
    counts = dict.fromkeys(
        ("complete", "pruned", "diverged", "invalid", "fail", "running", "waiting"), 0
    )
    for trial in study.get_trials(deepcopy=False) if trials is None else trials:
        counts[_state(trial).lower()] += 1
    return counts


def finished_trials(counts: dict[str, int]) -> int:
    """The trials that ``--trials`` counts: those that trained to an end of their own."""
    return counts["complete"] + counts["pruned"] + counts["diverged"]


def _best(study: Any) -> Any:
    optuna = import_optuna()
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        return None
    return max(complete, key=lambda t: (t.value, -t.number))  # ties: the earlier trial


def search_result(study, space, base, metric, out: Path) -> TuneResult:
    """The study's counts and best trial so far, pointing at the files written for them."""
    best = _best(study)
    result = TuneResult(out, metric, count_trials(study), trials_path=out / "trials.csv")
    if best is not None:
        result.best_number, result.best_value = best.number, best.value
        result.best_settings = best.user_attrs.get("settings")
        result.best_path = out / "best.yaml"
    return result


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


def trials_table(study: Any, space: SearchSpace, metric: str) -> str:
    """CSV text: one row per trial (number, state, valid metric, test metric, settings...)."""
    keys = list(space.params)
    columns = [
        "number",
        "state",
        f"valid/{metric}",
        f"test/{metric}",
        "pruned_at_epoch",
        *keys,
        "best_epoch",
        "seconds",
        "run_dir",
        "error",
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        settings = attrs.get("settings", {})
        state = _state(trial)
        row = [
            trial.number,
            state,
            trial.value if state == "COMPLETE" else None,
            attrs.get("test") if state == "COMPLETE" else None,
            trial.last_step if state == "PRUNED" else None,
            *(settings.get(k) for k in keys),
            attrs.get("best_epoch"),
            attrs.get("seconds"),
            attrs.get("run_dir"),
            attrs.get("error"),
        ]
        writer.writerow([_cell(v) for v in row])
    return buffer.getvalue()


def best_config_yaml(base: dict[str, Any], best: Any, metric: str, header: str | None) -> str:
    """The best trial's config as preset YAML, with a comment on how it was chosen."""
    name = f"{base['name']}-tuned"
    config = trial_config(base, best.user_attrs["settings"], name)
    data = config.model_dump(mode="json")
    data["train"]["progress"] = True
    lines = [
        f"# {base['name']} tuned on VALIDATION {metric} = {best.value:.4f} (trial {best.number});",
        "# not a paper setting. Test metrics were not used for choosing.",
    ]
    if header:
        lines.append(f"# search: {header}")
    return "\n".join(lines) + "\n" + yaml.safe_dump(data, sort_keys=False)


def write_outputs(study, space, base, metric: str, out: Path, header: str | None) -> None:
    """trials.csv always; best.yaml once a trial has completed."""
    atomic_write_text(out / "trials.csv", trials_table(study, space, metric))
    best = _best(study)
    if best is not None:
        atomic_write_text(out / "best.yaml", best_config_yaml(base, best, metric, header))
