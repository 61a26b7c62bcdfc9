"""results.md of a multi-seed experiment: mean ± std per config, paired tests against the best
baseline (chosen on validation; the tests run on per-user test values averaged over seeds)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from recdiff.config.schema import RunConfig
from recdiff.experiments.comparable import difference
from recdiff.experiments.stats import METHOD_NAMES, PairedTest, format_mean_std, paired_test

__all__ = ["per_user_over_seeds", "render_markdown"]

#: Above this gap between re-scored per-user means and a run's stored means, results.md says so.
GAP_TOLERANCE = 1e-6


def per_user_over_seeds(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Each user's mean over seeds, NaN where no seed has a value (no test items)."""
    stacked = np.vstack([np.asarray(a, dtype=np.float64) for a in arrays])
    finite = np.isfinite(stacked)
    counts = finite.sum(axis=0)
    sums = np.where(finite, stacked, 0.0).sum(axis=0)
    means = np.full(stacked.shape[1], np.nan)
    np.divide(sums, counts, out=means, where=counts > 0)
    return means


def _p(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.2e}" if value < 1e-3 else f"{value:.4f}"


def _shown_metrics(configs: Sequence[RunConfig], records, metric: str) -> list[str]:
    """Test columns: recall and NDCG at each cutoff, and the selection metric's family (e.g.
    hit rate for next-item runs, where recall is not computed)."""
    families = ["recall", "ndcg"]
    selected = metric.split("@")[0]
    if selected not in families:
        families.insert(0, selected)
    wanted = [f"{m}@{k}" for m in families for k in configs[0].eval.ks]
    available = set.intersection(*(set(r.test) for r in records))
    return [m for m in wanted if m in available]


def _best_baseline(groups: dict[str, list], models: dict[str, str], metric: str):
    from recdiff.experiments.experiment import BASELINE_MODELS

    baselines = {
        label: float(np.mean([r.valid[metric] for r in records]))
        for label, records in groups.items()
        if models[label] in BASELINE_MODELS
    }
    if not baselines:
        return None, baselines
    return max(baselines, key=lambda label: baselines[label]), baselines


def _statistics(records) -> dict[str, Any] | None:
    """The data statistics a config's runs recorded (the same for every seed: the data seed is
    not the training seed); None for records written before records held them."""
    return next((r.data for r in records if r.data is not None), None)


def _tests(
    groups, configs: dict[str, RunConfig], best: str, metric: str, method: str
) -> dict[str, PairedTest | str]:
    """Paired tests of each config against ``best``, or why there is none. Only configs tested
    on the same targets under the same protocol are paired: per-user arrays of equal length can
    still belong to other data (two demo datasets; next-item examples beside users' rows)."""
    dumped = {label: config.model_dump(mode="json") for label, config in configs.items()}

    def values(label: str) -> np.ndarray | str:
        arrays = []
        for record in groups[label]:
            per_user = record.per_user()
            if per_user is None:
                return f"no per-user values: {record.per_user_error}"
            arrays.append(per_user[metric])
        return per_user_over_seeds(arrays)

    reference = values(best)
    tests: dict[str, PairedTest | str] = {}
    for label in groups:
        if label == best:
            continue
        apart = difference(
            dumped[label],
            _statistics(groups[label]),
            dumped[best],
            _statistics(groups[best]),
        )
        if apart is not None:
            tests[label] = f"not comparable: {apart.describe(best)}"
            continue
        mine = values(label)
        if isinstance(reference, str) or isinstance(mine, str):
            tests[label] = reference if isinstance(reference, str) else mine
        elif mine.shape != reference.shape:
            tests[label] = "not comparable: the configs use different data (user counts differ)"
        else:
            tests[label] = paired_test(mine, reference, method)
    return tests


def render_markdown(
    labelled: Sequence[tuple[str, RunConfig]], records, metric: str, method: str
) -> tuple[str, str | None, dict[str, Any]]:
    """The results.md text, the best baseline's label (None without baselines), and the tests."""
    if method not in METHOD_NAMES:
        raise ValueError(f"test must be one of {sorted(METHOD_NAMES)}, got {method!r}")
    configs = [config for _, config in labelled]
    groups = {label: [r for r in records if r.label == label] for label, _ in labelled}
    models = {label: config.model.name for label, config in labelled}
    seeds = sorted({r.seed for r in records})
    shown = _shown_metrics(configs, records, metric)
    averaging = sorted({c.eval.averaging for c in configs})
    lines = [
        "# Multi-seed experiment",
        "",
        f"Seeds {', '.join(map(str, seeds))} (`train.seed`) per config. Cells are the mean ± "
        "sample standard deviation (ddof = 1) over seeds; test metrics averaged over "
        f"{' / '.join(averaging)}. Selection metric: validation {metric}.",
        "",
        "| config | model | seeds | "
        + " | ".join([f"valid {metric}", *(f"test {m}" for m in shown)])
        + " |",
        "|---|---|---:|" + "---:|" * (len(shown) + 1),
    ]
    for label, group in groups.items():
        cells = [format_mean_std([r.valid[metric] for r in group])]
        cells += [format_mean_std([r.test[m] for r in group]) for m in shown]
        lines.append(f"| {label} | {models[label]} | {len(group)} | " + " | ".join(cells) + " |")
    best, baselines = _best_baseline(groups, models, metric)
    lines += ["", "## Against the best baseline", ""]
    if best is None:
        from recdiff.experiments.experiment import BASELINE_MODELS

        lines.append(
            "No baseline among the configs (models "
            + ", ".join(sorted(BASELINE_MODELS))
            + "): no significance test."
        )
        return "\n".join(lines) + "\n", None, {}
    tests = _tests(groups, dict(labelled), best, metric, method)
    lines += [
        f"Best baseline: **{best}** (highest mean validation {metric} among "
        + ", ".join(f"{label} {value:.4f}" for label, value in baselines.items())
        + ").",
        "",
        f"Two-sided {METHOD_NAMES[method]} on per-user test {metric}, each user's value averaged "
        "over seeds, over the users with test items; p-values are not corrected for multiple "
        "comparisons.",
        "",
        f"| config | users | per-user test {metric} | {best} | difference | p-value |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, outcome in tests.items():
        if isinstance(outcome, str):
            lines.append(f"| {label} | | | | | {outcome} |")
            continue
        lines.append(
            f"| {label} | {outcome.n} | {outcome.mean_a:.4f} | {outcome.mean_b:.4f} | "
            f"{outcome.mean_diff:+.4f} | {_p(outcome.p_value)} |"
        )
    gaps: dict[str, float] = {}
    for r in records:
        if r.per_user_gap > GAP_TOLERANCE:
            gaps[r.label] = max(gaps.get(r.label, 0.0), r.per_user_gap)
    if gaps:
        lines += [
            "",
            "Note: per-user values come from scoring the test split again; for "
            + ", ".join(f"{label} (up to {gap:.2g})" for label, gap in gaps.items())
            + " they differ from the runs' stored means because the model's scoring draws noise.",
        ]
    return "\n".join(lines) + "\n", best, tests
