"""One run for every seed of a deterministic config.

A model whose class says ``seed_independent`` (:class:`~recdiff.models.base.SavedModel`: the
popularity counts, EASE) fits the same model whatever ``train.seed`` is. If the data does not
depend on the seed either, an experiment's seeds of that config would train the same run N
times (minutes each for EASE on a large catalogue): it is trained once, and the other seeds get
a record of their own that repeats it (``same_as_seed``; the run, the means and a copy of the
per-user values), so that the tables keep one row per (config, seed) and the statistics stay
what N identical runs would give (a std of 0).

Whether the data depends on a seed is :mod:`recdiff.experiments.comparable`'s knowledge:
``data.seed`` counts only where the data reads it (a random split, the demo data). An
experiment varies ``train.seed`` alone, so today the data never does; the rule keeps an
experiment that let the seed draw the data too from reusing one split's run for another.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recdiff.atomic import atomic_path, atomic_write_text
from recdiff.experiments.comparable import data_section
from recdiff.experiments.records import SeedRecord, record_in, record_paths

__all__ = ["reuse_record", "seed_independent", "shared_run_key"]


def seed_independent(model: str) -> bool:
    """Whether the model a run config names (``ease``) fits the same model for every seed."""
    from recdiff.models.base import registered_models

    # Configs name a model as its saved config.json does, in lower case (ease: EASE).
    classes = {cls.model_name.lower(): cls for cls in registered_models().values()}
    found = classes.get(model)
    return found is not None and found.seed_independent


def shared_run_key(config: Mapping[str, Any]) -> str | None:
    """For a seeded config (a record's ``config``), what decides its run when the seed cannot:
    the config without its name, ``train.seed`` and, where the data does not read it,
    ``data.seed``. Seeds of one config with the same key share one run. None when the model
    draws random numbers: each seed is a run of its own."""
    if not seed_independent((config.get("model") or {}).get("name", "")):
        return None
    settings = json.loads(json.dumps(config))
    settings.pop("name", None)
    settings.get("train", {}).pop("seed", None)
    if "seed" not in data_section(config):
        settings.get("data", {}).pop("seed", None)
    return json.dumps(settings, sort_keys=True)


def reuse_record(out: Path, source: SeedRecord, seed: int, config: dict[str, Any]) -> SeedRecord:
    """Write the record of ``seed`` (seeded ``config``) as a repeat of ``source``'s run, and
    return it. It names the seed that trained the run, also when ``source`` repeats one itself."""
    origin = source.same_as_seed or source.seed
    json_path, npz_path = record_paths(out, source.label, seed)
    record: dict[str, Any] = {
        "label": source.label,
        "model": source.model,
        "seed": seed,
        "run_dir": f"runs/{Path(source.run_dir).name}",
        "valid": source.valid,
        "test": source.test,
        "data": source.data,
    }
    if origin != seed:  # (the seed's own run, found through a record that repeats it)
        record["same_as_seed"] = origin
    if source.per_user_path is None:
        record["per_user_error"] = source.per_user_error
    else:
        # A copy, not a reference: each record stands alone (deleting one retrains that seed).
        with atomic_path(npz_path) as tmp:
            shutil.copyfile(source.per_user_path, tmp)
        record["per_user_path"] = npz_path.relative_to(out).as_posix()
        record["per_user_gap"] = source.per_user_gap
    atomic_write_text(json_path, json.dumps({**record, "config": config}, indent=2))
    return record_in(out, record)
