"""Reading a run folder for inference: its config, vocabularies and arrays, with errors that
name the damaged file and say what to do (re-train, or restore the folder)."""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import scipy.sparse as sp
import yaml

from recdiff.config.schema import SAVED_RUN, RunConfig
from recdiff.data import Vocabulary
from recdiff.train.folders import CHECKPOINT_FILE, final_and_unfinished

__all__ = [
    "DAMAGED",
    "check_items",
    "check_model_name",
    "damaged",
    "read_metrics",
    "read_npz",
    "read_run_config",
    "read_user_rows",
    "read_vocabulary",
    "unfinished_run",
    "with_name",
]

#: What a user can do about a run folder whose files are unreadable or disagree.
DAMAGED = "looks damaged: re-train the run or restore the folder from a backup"


def with_name(run: Path) -> Path:
    """``run`` as a path that ends in the folder's name: ``.`` and ``..`` (a run given from inside
    it) have none, and their parent is not the folder that holds the run."""
    return Path(os.path.abspath(run)) if run.name in ("", "..") else run


def read_npz(path: Path, load: Callable[[Path], Any]) -> Any:
    """``load(path)`` for an ``.npz`` or ``.npy`` of a run, with an error naming the file when it
    is damaged (numpy says only "pickled data", advising to load it unsafely, or "not a zip
    file")."""
    try:
        return load(path)
    except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile) as error:
        # KeyError: no such array; EOFError: an empty file (a full disk, say)
        reason = str(error)
        if isinstance(error, EOFError | zipfile.BadZipFile) or "pickle" in reason:
            reason = (
                "not a numpy .npy file" if path.suffix == ".npy" else "not a numpy .npz archive"
            )
        raise ValueError(
            f"{path}: cannot be read ({reason}); the run folder {path.parent.parent} {DAMAGED}"
        ) from None


def read_vocabulary(path: Path) -> Vocabulary:
    """A run's id vocabulary, with an error naming the file when it is not one.

    Text that is not JSON is left to the caller's damaged-file handling (the CLI names the line).
    """
    data = json.loads(path.read_text())
    try:
        return Vocabulary.from_json(data)
    except ValueError as error:
        raise damaged(path.parent.parent, str(error), path) from None


def read_metrics(run: Path) -> dict[str, Any]:
    """The run's ``metrics.json``, with an error naming it when it holds no JSON object (the
    service describes the run from it). Text that is not JSON is left to the caller's
    damaged-file handling (the CLI names the line)."""
    path = run / "metrics.json"
    metrics = json.loads(path.read_text())
    if not isinstance(metrics, dict):
        raise damaged(
            run, f"holds a {type(metrics).__name__}, not the mapping `recdiff train` writes", path
        )
    return metrics


def damaged(run: Path, reason: str, *files: Path) -> ValueError:
    """The error for a run folder whose ``files`` are wrong in the way ``reason`` says."""
    where = " and ".join(str(f) for f in files)
    return ValueError(f"{where}: {reason}; the run folder {run} {DAMAGED}")


def check_run_files(run: Path, needed: Sequence[str]) -> None:
    """Refuse, saying why, a path that is no folder, or a folder without the ``needed`` files:
    an unfinished run, the output folder of ``experiment`` or ``tune``, anything else."""
    if not run.is_dir():
        state = "is a file, not a folder" if run.exists() else "does not exist"
        raise FileNotFoundError(f"{run} {state}: pass a run folder written by `recdiff train`")
    missing = [name for name in needed if not (run / name).is_file()]
    if missing:
        runs = run / "runs"
        hint = (
            f"; its runs are in {runs}: pass one of them"
            if runs.is_dir() and any(p.is_dir() for p in runs.iterdir())
            else ""
        )
        raise FileNotFoundError(
            unfinished_run(run)
            or f"{run} is not a complete run directory (missing {missing}); "
            f"pass a folder written by `recdiff train`{hint}"
        )


def read_run_config(run: Path, needed: Sequence[str]) -> RunConfig:
    """The run's config, after checking that the files inference needs are all there."""
    check_run_files(run, needed)
    return RunConfig.model_validate(
        yaml.safe_load((run / "config.yaml").read_text()), context=SAVED_RUN
    )


def unfinished_run(run: Path) -> str | None:
    """Why ``run`` holds no run yet, when it is the folder `recdiff train` reserved for a run not
    yet complete (or that run's hidden ``.NAME.incomplete`` folder); None otherwise.

    Such a folder is no damaged run: its run is still training, or was interrupted or killed,
    and "missing config.yaml, metrics.json, ..." would send the user looking for lost files.
    The names are :mod:`recdiff.train.folders`' (``runs/NAME`` and ``runs/.NAME.incomplete``).
    """
    final, hidden = final_and_unfinished(with_name(run))
    if not hidden.is_dir():
        return None
    state = f"{final} is a run that is not complete yet: its files are in {hidden} until it is"
    if (hidden / CHECKPOINT_FILE).is_file():
        return (
            f"{state}. It is still training, or it was interrupted: wait for it to finish, or "
            f"complete it with: recdiff resume {final}"
        )
    return (
        f"{state}. It is still training, or its process was killed before a resume checkpoint: "
        f"wait for it to finish, or delete {hidden} and {final} and train again"
    )


def check_items(run: Path, n_items: int, n_ids: int) -> None:
    """Fail when the run's item vocabulary and its model disagree on the catalogue size (every
    answer would then name the wrong items, or none)."""
    if n_ids != n_items:
        raise damaged(
            run,
            f"holds {n_ids} item ids, but the model (model/config.json) scores {n_items} items",
            run / "data/items.json",
        )


def check_model_name(run: Path, model_name: str, config_name: str) -> None:
    """Fail when the run's model folder holds another model than its config trains (another
    run's ``model/`` copied over it): it would be evaluated and served under this run's name
    and settings, with no error. Registered names may differ in case (``EASE``, ``ease``)."""
    if model_name.lower() != config_name.lower():
        raise damaged(
            run,
            f"holds a {model_name} model, but config.yaml trains a {config_name} (model.name)",
            run / "model/config.json",
        )


def read_user_rows(run: Path, name: str, n_users: int, n_items: int) -> sp.csr_matrix:
    """The users x items matrix ``data/NAME.npz`` of ``run``, checked against its vocabularies
    (the items were checked against the model: a row count off names users.json too)."""
    path = run / f"data/{name}.npz"
    rows = read_npz(path, sp.load_npz).tocsr()
    if rows.shape != (n_users, n_items):
        files = [path] if rows.shape[1] != n_items else [run / "data/users.json", path]
        raise damaged(
            run,
            f"holds a {rows.shape[0]} x {rows.shape[1]} matrix, but the run has {n_users} users "
            f"(data/users.json) and {n_items} items",
            *files,
        )
    return rows
