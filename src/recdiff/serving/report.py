"""A self-contained HTML report of a run, with a comparison to other runs on the same data.

The report reads the run directory's text files, ``curves.png`` (embedded as a base64 data URI)
and, for next-item runs, the length of the saved sequences, so it opens anywhere, offline, as a
single file. Runs are compared when they have the same test targets and rank them the same way
(:mod:`recdiff.experiments.comparable`: equal data sections, time weights aside; the same kind
of model, next-item or interaction rows, which read different data from one section; equal data
statistics in ``metrics.json``; for next-item runs the same ``eval.exclude_history``). Every
run's numbers are shown under this run's user averaging (runs record both); a next-item run has
one target per example, so its two averagings agree and its metrics are shown once, averaged over
examples. The comparison is sorted by the *validation* value of the run's selection metric; test
numbers are shown beside it, never used to rank; a run that did not compute that metric is left
out.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from recdiff.atomic import atomic_write_text
from recdiff.experiments.comparable import difference, is_next_item
from recdiff.serving.report_html import PAGE as _PAGE
from recdiff.serving.report_html import escape as _e
from recdiff.serving.report_html import html_table as _table
from recdiff.serving.report_html import key_values as _key_values
from recdiff.serving.report_html import number_cell as _number
from recdiff.serving.report_html import seconds_cell as _seconds
from recdiff.serving.report_training import selected_on, stages_table, training_end
from recdiff.serving.run_files import check_run_files, with_name

__all__ = ["Comparison", "RunSummary", "build_report", "comparable_runs", "write_report"]

#: How a next-item run's means are averaged (the report, ``recdiff evaluate``, GET /model).
OVER_EXAMPLES = "over examples, one target each"


@dataclass(frozen=True)
class RunSummary:
    """The parts of a run directory a report shows."""

    directory: Path
    config_text: str
    config: dict[str, Any]
    metrics: dict[str, Any]

    @classmethod
    def read(cls, directory: str | Path) -> RunSummary:
        directory = with_name(Path(directory))  # "." has no name, and the wrong neighbours
        check_run_files(directory, ("config.yaml", "metrics.json"))
        text = (directory / "config.yaml").read_text(encoding="utf-8")
        metrics = json.loads((directory / "metrics.json").read_text(encoding="utf-8"))
        config = yaml.safe_load(text) or {}
        for name, value in (("config.yaml", config), ("metrics.json", metrics)):
            if not isinstance(value, dict):
                raise ValueError(
                    f"{directory / name} holds a {type(value).__name__}, not the mapping "
                    "`recdiff train` writes; re-train the run or restore the folder from a backup"
                )
        return cls(directory, text, config, metrics)

    @property
    def name(self) -> str:
        return self.directory.name

    @property
    def selection_metric(self) -> str:
        return self.config.get("train", {}).get("metric", "recall@20")

    @property
    def averaging(self) -> str:
        return self.metrics.get("averaging", "all_users")

    def splits(self, averaging: str) -> dict[str, dict[str, float]] | None:
        """``{"valid": {...}, "test": {...}}`` means under ``averaging``; None when the run
        did not record them (a run written before runs recorded both averagings)."""
        recorded = (self.metrics.get("by_averaging") or {}).get(averaging)
        if recorded is not None:
            return recorded
        if self.averaging == averaging:
            return {split: self.metrics.get(split, {}) for split in ("valid", "test")}
        return None


@dataclass(frozen=True)
class Comparison:
    """The runs beside this one: ``runs`` (this one included, best on validation first) with
    the means each shows (``splits``, under this run's averaging, by directory); the number of
    other complete runs left out because their data differ; and the ones left out although
    their data agree, each as a sentence naming the run and the reason."""

    runs: list[RunSummary]
    splits: dict[Path, dict[str, dict[str, float]]]
    other_data: int
    other_protocol: list[str]


def comparable_runs(run: RunSummary, folder: str | Path) -> Comparison:
    """The runs in ``folder`` comparable with ``run`` (see the module's docstring)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder of run directories")
    metric, averaging = run.selection_metric, run.averaging
    same, other_data, other_protocol = [run], 0, []
    splits = {run.directory: run.splits(averaging) or {}}
    for directory in sorted(folder.iterdir()):
        if directory.name.startswith(".") or not directory.is_dir():
            continue  # hidden: a run still being written
        if directory.resolve() == run.directory.resolve():
            continue
        try:
            candidate = RunSummary.read(directory)
        except (FileNotFoundError, ValueError, yaml.YAMLError):
            continue
        apart = difference(
            run.config, run.metrics.get("data"), candidate.config, candidate.metrics.get("data")
        )
        values = candidate.splits(averaging)
        if apart is not None and apart.kind == "data":
            other_data += 1
        elif apart is not None:
            other_protocol.append(apart.describe(candidate.name))
        elif values is None:
            other_protocol.append(
                f"{candidate.name} recorded only {candidate.averaging} averaging, not {averaging}"
            )
        elif metric not in values.get("valid", {}):
            other_protocol.append(
                f"{candidate.name} did not compute validation {metric} (its eval.ks and "
                "eval.metrics)"
            )
        else:
            same.append(candidate)
            splits[candidate.directory] = values
    same.sort(key=lambda r: -_sortable(splits[r.directory].get("valid", {}).get(metric)))
    return Comparison(same, splits, other_data, other_protocol)


def _sortable(value: Any) -> float:
    """A validation figure to sort by, best first; a missing or null one (strict JSON's NaN)
    sorts last."""
    return float("-inf") if value is None or value != value else float(value)


def build_report(run: str | Path, compare: str | Path | None = None) -> str:
    """The HTML text of the report of ``run`` (compared with runs in ``compare``, default: the
    run's parent folder)."""
    summary = RunSummary.read(run)
    folder = Path(compare) if compare is not None else summary.directory.parent
    comparison = comparable_runs(summary, folder)
    metrics = summary.metrics
    title = f"{summary.name}: {metrics.get('model', '?')}"
    sections = [
        f"<h1>{_e(title)}</h1>",
        _overview(summary),
        "<h2>Metrics</h2>",
        _metric_tables(summary),
        stages_table(metrics, summary.selection_metric),
        _curves(summary.directory / "curves.png"),
        "<h2>Data</h2>",
        _data_table(summary),
        "<h2>Timings</h2>",
        _key_values({k: f"{v:.2f} s" for k, v in metrics.get("seconds", {}).items()}),
        f"<h2>Runs on the same data ({len(comparison.runs)})</h2>",
        _comparison(summary, comparison, folder),
        "<h2>Config</h2>",
        *_config_note(summary.config),
        f"<pre>{_e(summary.config_text)}</pre>",
    ]
    return _PAGE.format(title=_e(title), body="\n".join(sections))


def _config_note(config: dict[str, Any]) -> list[str]:
    """What the config shown does not say by itself: Mult-VAE trains from its ``model.*``
    settings, with Adam and a validation every epoch, and the resolved ``train`` section it
    lists beside them (``eval_every: 5``, ``optimizer: adamw``) is not what it read."""
    if (config.get("model") or {}).get("name") != "multvae":
        return []
    return [
        "<p>Mult-VAE trains from its <code>model</code> settings (max_epochs, lr, batch_size, "
        "patience, weight_decay), with Adam, validating every epoch: the <code>train</code> "
        "section lists the trainer's defaults, which it does not read (a <code>train</code> "
        "key set in the command or config file is copied into <code>model</code>).</p>"
    ]


def write_report(
    run: str | Path, out: str | Path | None = None, compare: str | Path | None = None
) -> Path:
    """Write the report of ``run`` to ``out`` (default ``RUN/report.html``), atomically."""
    out = Path(out) if out is not None else Path(run) / "report.html"
    atomic_write_text(out, build_report(run, compare))
    return out


# ------------------------------------------------------------------------------------ sections
def _overview(run: RunSummary) -> str:
    metrics = run.metrics
    ended = training_end(metrics, run.config.get("train", {}).get("patience"))
    return _key_values(
        {
            "run directory": run.directory,
            "model": metrics.get("model"),
            "selected on": selected_on(metrics, run.selection_metric),
            "best epoch": _number(metrics.get("best_epoch")),  # None: fitted without epochs
            "epochs run": _number(metrics.get("epochs_run")),
            **({"training": ended} if ended is not None else {}),
            **(
                {"averaging": OVER_EXAMPLES}
                if is_next_item(run.config)
                else {"user averaging": metrics.get("averaging")}
            ),
            "versions": ", ".join(f"{k} {v}" for k, v in metrics.get("versions", {}).items()),
        }
    )


def _metric_tables(run: RunSummary) -> str:
    """One table per user averaging the run recorded, or, for a next-item run, one table: it
    has one target per example, so its all_users and test_users means are the same numbers."""
    metrics = run.metrics
    reported = {s: metrics.get(s, {}) for s in ("valid", "test")}
    if is_next_item(run.config):
        by_averaging = {OVER_EXAMPLES: reported}
    else:
        by_averaging = metrics.get("by_averaging") or {metrics.get("averaging", "?"): reported}
    parts = []
    for averaging, splits in by_averaging.items():
        names = list(dict.fromkeys(n for values in splits.values() for n in values))
        rows = [
            [_e(split), *(_number(values.get(n)) for n in names)]
            for split, values in splits.items()
        ]
        if averaging == OVER_EXAMPLES:
            parts.append(f"<h3>averaged {OVER_EXAMPLES}</h3>")
        else:
            chosen = " (reported)" if averaging == metrics.get("averaging") else ""
            parts.append(f"<h3>{_e(averaging)} averaging{chosen}</h3>")
        parts.append(_table(["split", *map(_e, names)], rows))
    return "\n".join(parts)


def _curves(path: Path) -> str:
    if not path.is_file():
        return "<p>(no curves.png in the run directory)</p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<h2>Curves</h2><img alt="training curves" src="data:image/png;base64,{data}">'


def _data_table(run: RunSummary) -> str:
    data = run.metrics.get("data") or {}
    if not data:
        return "<p>(not recorded)</p>"
    if is_next_item(run.config):
        return _sequence_data_table(run, data)
    users, items = data.get("n_users", 0), data.get("n_items", 0)
    total = sum(data.get(split, 0) for split in ("train", "valid", "test"))
    shown = {
        "users": _number(users),
        "items": _number(items),
        **{
            f"{split} interactions": _number(data.get(split))
            for split in ("train", "valid", "test")
        },
    }
    if users and items:
        shown["density"] = f"{total / (users * items):.4%}"
        shown["interactions per user"] = f"{total / users:.1f}"
    return _key_values(shown)


def _sequence_data_table(run: RunSummary, data: dict[str, Any]) -> str:
    """A next-item run records (history, next item) examples, not interactions: a sequence of n
    items gives n - 1 examples (its first item is never a target), split between train, valid
    and test. Interactions come from the users' saved sequences, where the run has them (data
    given as examples, e.g. DreamRec's files, has no users)."""
    users, items = data.get("n_users"), data.get("n_items")
    shown = {
        "users": _number(users),
        "items": _number(items),
        "history length (data.max_len)": _number(data.get("max_len")),
        **{
            f"{split} examples (history, next item)": _number(data.get(split))
            for split in ("train", "valid", "test")
        },
    }
    total = _sequence_items(run.directory / "data" / "sequences.npz")
    if total is not None:
        shown["interactions (items in the users' sequences)"] = _number(total)
        if users and items:
            shown["density"] = f"{total / (users * items):.4%}"
            shown["interactions per user"] = f"{total / users:.1f}"
    return _key_values(shown)


def _sequence_items(path: Path) -> int | None:
    """How many items the saved sequences hold; None without (readable) sequences."""
    import numpy as np

    try:
        with np.load(path) as saved:
            return int(saved["indptr"][-1])
    except (OSError, ValueError, KeyError, IndexError):
        return None


def _comparison(run: RunSummary, comparison: Comparison, folder: Path) -> str:
    metric, averaging = run.selection_metric, run.averaging
    families = {metric.split("@")[0], "recall", "ndcg"}  # hit_rate: next-item runs' metric
    mine = comparison.splits[run.directory].get("test", {})
    tested = [n for n in mine if n.split("@")[0] in families]
    rows = []
    for candidate in comparison.runs:
        m = candidate.metrics
        values = comparison.splits[candidate.directory]
        rows.append(
            [
                _e(candidate.name),
                _e(m.get("model", "?")),
                _number(m.get("best_epoch")),
                _number(values.get("valid", {}).get(metric)),
                *(_number(values.get("test", {}).get(n)) for n in tested),
                _seconds(m.get("seconds", {}).get("fit")),
            ]
        )
    header = ["run", "model", "best epoch", f"valid {metric}", *(f"test {n}" for n in tested)]
    # A next-item run has one target per example, so both averagings are the same number.
    under = "" if is_next_item(run.config) else f" under {_e(averaging)} averaging"
    note = (
        f"<p>Sorted by validation {_e(metric)}; every run's metrics{under}, as this run "
        f"reports them; the highlighted row is this run. "
        f"{comparison.other_data} other run(s) in {_e(folder)} used different data and are "
        "left out.</p>"
    )
    if comparison.other_protocol:
        note += (
            "<p>Left out as well, on the same data but not comparable:</p><ul>"
            + "".join(f"<li>{_e(reason)}</li>" for reason in comparison.other_protocol)
            + "</ul>"
        )
    marked = comparison.runs.index(run)
    return _table([*map(_e, header), "fit s"], rows, marked=marked) + note
