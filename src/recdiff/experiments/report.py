"""results.md of a multi-seed experiment: mean ± std per config, paired tests against the best
baseline on the same data.

Configs fall into groups of comparable runs (:mod:`recdiff.experiments.comparable`: the same
test targets, ranked the same way). Each config is tested against the best baseline of its own
group, the one with the highest mean *validation* metric among the baselines comparable with it;
test values never choose. The tests run on per-user test values averaged over seeds. A config
with no comparable baseline is named with what sets it apart from each baseline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recdiff.config.schema import RunConfig
from recdiff.experiments.comparable import difference
from recdiff.experiments.stats import METHOD_NAMES, PairedTest, format_mean_std, paired_test

__all__ = ["BaselineChoice", "choose_baselines", "per_user_over_seeds", "render_markdown"]

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


def _statistics(records) -> dict[str, Any] | None:
    """The data statistics a config's runs recorded (the same for every seed: the data seed is
    not the training seed); None for records written before records held them."""
    return next((r.data for r in records if r.data is not None), None)


@dataclass(frozen=True)
class BaselineChoice:
    """Which baseline each config is tested against.

    ``against``: every config that is not the best baseline of its group -> that best baseline,
    or None when no baseline is comparable with it (``missing`` then says why, per baseline).
    ``references``: each best baseline -> the mean validation values of the baselines it was
    chosen among (itself included); the group of the config given first comes first."""

    against: dict[str, str | None]
    references: dict[str, dict[str, float]]
    missing: dict[str, str]


def choose_baselines(
    labelled: Sequence[tuple[str, RunConfig]], records, metric: str
) -> BaselineChoice:
    """For each config, the baseline with the highest mean validation ``metric`` among the
    baselines comparable with it (ties: the one given first). A baseline that is the best of
    those comparable with it is a group's reference and is not tested itself."""
    from recdiff.experiments.experiment import BASELINE_MODELS

    groups = {label: [r for r in records if r.label == label] for label, _ in labelled}
    dumped = {label: config.model_dump(mode="json") for label, config in labelled}
    statistics = {label: _statistics(group) for label, group in groups.items()}
    valid = {
        label: float(np.mean([r.valid[metric] for r in groups[label]]))
        for label, config in labelled
        if config.model.name in BASELINE_MODELS
    }
    if not valid:
        return BaselineChoice({}, {}, {})

    def apart(label: str, other: str):
        return difference(dumped[label], statistics[label], dumped[other], statistics[other])

    candidates = {  # per config, the baselines comparable with it and their validation means
        label: {
            other: value
            for other, value in valid.items()
            if other == label or apart(label, other) is None
        }
        for label in groups
    }
    against: dict[str, str | None] = {}
    missing: dict[str, str] = {}
    for label in groups:
        mine = candidates[label]
        if not mine:
            against[label] = None
            reasons = "; ".join(apart(label, other).describe(other) for other in valid)
            missing[label] = f"no baseline on the same data and protocol: {reasons}"
            continue
        best = max(mine, key=lambda other: mine[other])
        if best != label:
            against[label] = best
    # The groups in the order of their first config: the first config's group comes first.
    order = [against.get(label) or label for label in groups]
    references = {label: candidates[label] for label in order if label in valid}
    return BaselineChoice(against, references, missing)


def _tests(groups, choice: BaselineChoice, metric: str, method: str) -> dict[str, PairedTest | str]:
    """Paired tests of each config against its group's best baseline, or why there is none.
    Per-user arrays are paired only within a group: arrays of equal length can still belong to
    other data (two demo datasets; next-item examples beside users' rows)."""
    cache: dict[str, np.ndarray | str] = {}

    def values(label: str) -> np.ndarray | str:
        if label not in cache:
            arrays = []
            for record in groups[label]:
                per_user = record.per_user()
                if per_user is None:
                    cache[label] = f"no per-user values: {record.per_user_error}"
                    return cache[label]
                arrays.append(per_user[metric])
            cache[label] = per_user_over_seeds(arrays)
        return cache[label]

    tests: dict[str, PairedTest | str] = {}
    for label, best in choice.against.items():
        if best is None:
            tests[label] = choice.missing[label]
            continue
        mine, reference = values(label), values(best)
        if isinstance(reference, str) or isinstance(mine, str):
            tests[label] = reference if isinstance(reference, str) else mine
        elif mine.shape != reference.shape:
            tests[label] = "not comparable: the configs use different data (user counts differ)"
        else:
            tests[label] = paired_test(mine, reference, method)
    return tests


def _chosen_among(metric: str, among: dict[str, float]) -> str:
    return f"highest mean validation {metric} among " + ", ".join(
        f"{label} {value:.4f}" for label, value in among.items()
    )


def _choice_lines(choice: BaselineChoice, metric: str) -> list[str]:
    """How the baselines were chosen: one line when every config shares one best baseline, else
    a list of the groups and the configs that have none."""
    if len(choice.references) == 1 and not choice.missing:
        best, among = next(iter(choice.references.items()))
        return [f"Best baseline: **{best}** ({_chosen_among(metric, among)}).", ""]
    lines = [
        "The configs are not all on the same data under the same protocol: each is tested "
        "against the best baseline of its own group of comparable runs.",
        "",
    ]
    for best, among in choice.references.items():
        tested = [label for label, other in choice.against.items() if other == best]
        lines.append(
            f"- Best baseline: **{best}** ({_chosen_among(metric, among)})"
            + (
                f", for {', '.join(tested)}."
                if tested
                else "; no other config is comparable with it."
            )
        )
    if choice.missing:
        lines.append(
            "- No baseline on the same data and protocol for " + ", ".join(choice.missing) + "."
        )
    return [*lines, ""]


def render_markdown(
    labelled: Sequence[tuple[str, RunConfig]],
    records,
    metric: str,
    method: str,
    choice: BaselineChoice | None = None,
) -> tuple[str, str | None, dict[str, Any]]:
    """The results.md text, the best baseline's label (None without baselines; with configs on
    several data, the best baseline of the first config's group, or of the first group after it
    that has one) and the tests, by config. ``choice``: :func:`choose_baselines`' answer for
    these configs, when the caller has it already."""
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
        f"{' / '.join(averaging)}. The best baseline is chosen on validation {metric}; each "
        "run chose its epoch on its config's `train.metric` "
        f"({', '.join(sorted({c.train.metric for c in configs}))}).",
        "",
    ]
    repeated = [label for label, group in groups.items() if any(r.same_as_seed for r in group)]
    if repeated:
        lines += [
            f"Trained once: {', '.join(repeated)} (deterministic: the model draws no random "
            "numbers and the seed does not change the data); each seed repeats that run, so "
            "their standard deviations are 0.",
            "",
        ]
    lines += [
        "| config | model | seeds | "
        + " | ".join([f"valid {metric}", *(f"test {m}" for m in shown)])
        + " |",
        "|---|---|---:|" + "---:|" * (len(shown) + 1),
    ]
    for label, group in groups.items():
        cells = [format_mean_std([r.valid[metric] for r in group])]
        cells += [format_mean_std([r.test[m] for r in group]) for m in shown]
        lines.append(f"| {label} | {models[label]} | {len(group)} | " + " | ".join(cells) + " |")
    choice = choice or choose_baselines(labelled, records, metric)
    lines += ["", "## Against the best baseline", ""]
    if not choice.references:
        from recdiff.experiments.experiment import BASELINE_MODELS

        lines.append(
            "No baseline among the configs (models "
            + ", ".join(sorted(BASELINE_MODELS))
            + "): no significance test."
        )
        return "\n".join(lines) + "\n", None, {}
    tests = _tests(groups, choice, metric, method)
    best = next(iter(choice.references))
    # one best baseline: its name heads its column, as before groups existed
    column = best if len(choice.references) == 1 else "baseline"
    lines += _choice_lines(choice, metric)
    if not tests:  # every config is its group's best baseline: nothing to test against it
        lines.append("No other config to test: each config is the best baseline of its group.")
        return "\n".join(lines) + "\n", best, tests
    lines += [
        f"Two-sided {METHOD_NAMES[method]} on per-user test {metric}, each user's value averaged "
        "over seeds, over the users with test items; p-values are not corrected for multiple "
        "comparisons.",
        "",
        f"| config | users | per-user test {metric} | {column} | difference | p-value "
        "| tested against |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for label, outcome in tests.items():
        against = choice.against[label] or ""
        if isinstance(outcome, str):
            lines.append(f"| {label} | | | | | {outcome} | {against} |")
            continue
        lines.append(
            f"| {label} | {outcome.n} | {outcome.mean_a:.4f} | {outcome.mean_b:.4f} | "
            f"{outcome.mean_diff:+.4f} | {_p(outcome.p_value)} | {against} |"
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
