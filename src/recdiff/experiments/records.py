"""The records of a multi-seed experiment (``records/LABEL/seed-S.json`` and ``.npz``): what
each finished (config, seed) left, read back so that a re-run skips it, and results.csv."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recdiff.config.loading import ConfigError
from recdiff.train.checkpoint import describe_differences

__all__ = [
    "ExperimentError",
    "SeedRecord",
    "existing_record",
    "record_in",
    "record_paths",
    "results_table",
]


class ExperimentError(ConfigError):
    """An experiment that cannot run as asked; the message says what to change."""


@dataclass(frozen=True)
class SeedRecord:
    """One trained (config, seed): its means, where it lives, and its per-user test values.
    ``data``: the run's data statistics (``metrics.json``), which tell runs on other data apart;
    None when not recorded. ``same_as_seed``: the seed whose run this one repeats, for a
    deterministic config trained once (:mod:`recdiff.experiments.reuse`); None when the seed
    trained a run of its own."""

    label: str
    model: str
    seed: int
    run_dir: str
    valid: dict[str, float]
    test: dict[str, float]
    per_user_path: str | None = None
    per_user_error: str | None = None
    per_user_gap: float = 0.0
    data: dict[str, Any] | None = None
    same_as_seed: int | None = None

    def per_user(self) -> dict[str, np.ndarray] | None:
        """Per-user test metrics, or None when they could not be computed for this model."""
        if self.per_user_path is None:
            return None
        with np.load(self.per_user_path) as data:
            return {name: data[name] for name in data.files}


def record_paths(out: Path, label: str, seed: int) -> tuple[Path, Path]:
    folder = out / "records" / label
    return folder / f"seed-{seed}.json", folder / f"seed-{seed}.npz"


def record_in(out: Path, data: dict[str, Any]) -> SeedRecord:
    """The record ``data`` (as a record file or a finished task holds it) with its paths under
    ``out`` as given now. The run is ``runs/NAME`` and the per-user values are the record's own
    ``.npz``: found by name, also in records that stored paths from another working folder."""
    data = dict(data)
    data.pop("config", None)
    data["run_dir"] = str(out / "runs" / Path(data["run_dir"]).name)
    if data.get("per_user_path") is not None:
        data["per_user_path"] = str(record_paths(out, data["label"], data["seed"])[1])
    if data.get("data") is None:  # a record written before records held the data statistics
        data["data"] = _data_statistics(Path(data["run_dir"]))
    return SeedRecord(**data)


def _data_statistics(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / "metrics.json").read_text(encoding="utf-8")).get("data")
    except (OSError, ValueError, AttributeError):
        return None  # the run was moved or damaged: the configs alone tell data apart


def existing_record(
    out: Path,
    json_path: Path,
    config: dict[str, Any],
    label: str,
    metric: str,
    report: Callable[[str], None] | None = None,
) -> SeedRecord | None:
    """The record of a run done before with ``config``; None when there is none (or only one of
    another config, which ``report`` is told: the run is trained again, and its record
    replaced). A record that cannot be read fails, naming its file."""
    if not json_path.is_file():
        return None

    def damaged(path: Path, reason: str) -> ExperimentError:
        return ExperimentError(
            f"{path}: {reason}; the record of {label} seed {config['train']['seed']} looks "
            "damaged: delete it, and the same command trains that run again"
        )

    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        raise damaged(json_path, f"not JSON ({error})") from None
    if not isinstance(data, dict):
        raise damaged(json_path, f"holds a {type(data).__name__}, not a record")
    if data.get("config") != config:
        if report is not None and isinstance(data.get("config"), dict):
            changed = describe_differences(data["config"], config, "there", "here")
            report(
                f"{label} seed {config['train']['seed']}: {json_path.name} in {json_path.parent} "
                f"was made with other settings ({changed}); trained again with these (the run it "
                f"named stays in {out / 'runs'})"
            )
        return None
    missing = [key for key in ("label", "seed", "run_dir", "valid", "test") if key not in data]
    if missing:
        raise damaged(json_path, f"lacks {', '.join(map(repr, missing))}")
    try:
        record = record_in(out, data)
    except (TypeError, ValueError) as error:
        raise damaged(json_path, f"not a record ({error})") from None
    for split in ("valid", "test"):
        values = getattr(record, split)
        if not isinstance(values, dict) or not isinstance(values.get(metric), (int, float)):
            raise damaged(json_path, f"its {split!r} holds no {metric}")
    if record.per_user_path is None:
        return record
    if not Path(record.per_user_path).is_file():
        return None
    try:
        per_user = record.per_user()
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise damaged(Path(record.per_user_path), f"cannot be read ({error})") from None
    if metric not in per_user:
        raise damaged(Path(record.per_user_path), f"holds no per-user {metric}")
    return record


def results_table(records: Sequence[SeedRecord]) -> str:
    """CSV text: label, model, seed, run_dir (``runs/NAME``, relative to the output folder so
    that the table stays true when the folder moves), then valid/* and test/* metrics."""
    names: list[str] = []
    for record in records:
        for split in ("valid", "test"):
            for name in getattr(record, split):
                if f"{split}/{name}" not in names:
                    names.append(f"{split}/{name}")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["label", "model", "seed", "run_dir", *names])
    for record in records:
        values = {f"valid/{k}": v for k, v in record.valid.items()}
        values.update({f"test/{k}": v for k, v in record.test.items()})
        writer.writerow(
            [
                record.label,
                record.model,
                record.seed,
                f"runs/{Path(record.run_dir).name}",
                *(repr(float(values[n])) if n in values else "" for n in names),
            ]
        )
    return buffer.getvalue()
