"""Where a run's data is read from: ``data.source`` as a path, or ``datasets:REL`` looked up
under the dataset roots, so that a config names a shared dataset portably between machines.

A relative path is made absolute when the config is read (:func:`absolute_source`); a
``datasets:`` source stays as written and is looked up when the data is read
(:func:`resolve_source`), or beforehand by a command that checks every config first
(:func:`check_sources`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from recdiff._warnings import warn

if TYPE_CHECKING:
    from recdiff.config.schema import DataConfig, RunConfig

__all__ = [
    "DATASETS_PREFIX",
    "absolute_source",
    "check_source",
    "check_sources",
    "resolve_source",
]

DATASETS_PREFIX = "datasets:"


def absolute_source(source: str | None) -> str | None:
    """A relative path made absolute where the config is read: the run's saved config must find
    the file again from any folder (``recdiff evaluate`` elsewhere). A ``datasets:`` source
    stays as written, portable between machines."""
    if not source or source.startswith(DATASETS_PREFIX):
        return source
    return str(Path(source).expanduser().absolute())


def resolve_source(source: str, key: str = "data.source", otherwise: str = "") -> Path:
    """A data path; ``datasets:REL`` is looked up under $RECDIFF_DATASETS, then ./shared/datasets
    and ../shared/datasets (with a warning when $RECDIFF_DATASETS is set but lacks it). ``key``
    is the setting that holds ``source``, named when it is not found, with ``otherwise``: what
    else that setting may be ("KEY=null derives ...")."""
    if not source.startswith(DATASETS_PREFIX):
        return Path(source).expanduser()
    relative = source[len(DATASETS_PREFIX) :]
    given = os.environ.get("RECDIFF_DATASETS")
    tried = []
    for root in [given, "shared/datasets", "../shared/datasets"]:
        if root and (Path(root) / relative).exists():
            if given and root != given:  # the folder the user named lacks it: say which is read
                warn(
                    f"dataset {relative!r} is not under $RECDIFF_DATASETS ({given}); reading "
                    f"{os.path.abspath(Path(root) / relative)} instead"
                )
            return Path(root) / relative
        if root:  # named in full: the relative roots depend on the working folder
            tried.append(os.path.abspath(Path(root) / relative))
    unset = "" if given else " ($RECDIFF_DATASETS is not set)"
    raise FileNotFoundError(
        f"dataset {relative!r} not found: no {' or '.join(tried)}{unset}; put it there, set "
        f"RECDIFF_DATASETS to the folder that holds it, or pass --set {key}=PATH"
        + (f"; {otherwise}" if otherwise else "")
    )


def check_source(data: DataConfig) -> None:
    """FileNotFoundError, naming the path, when ``data.source`` names nothing: a search or an
    experiment checks every config before it trains any, rather than fail when a run's turn
    comes."""
    if data.source is None:  # the built-in demo data
        return
    path = resolve_source(data.source)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found")


def check_sources(config: RunConfig) -> None:
    """:func:`check_source`, and L-DiffRec's ``model.latent.item_embeddings`` file likewise: a
    missing one would otherwise be found only once the data is read and the model built (in
    an experiment, when that config's turn comes, after the others have trained)."""
    check_source(config.data)
    if config.model.name != "ldiffrec":
        return
    latent = getattr(config.model, "latent", None)  # the model's settings, validated as a dict
    embeddings = latent.get("item_embeddings") if isinstance(latent, dict) else None
    if not embeddings:
        return
    from recdiff.models.item_clusters import EMBEDDINGS_FROM_DATA

    key = "model.latent.item_embeddings"
    path = resolve_source(embeddings, key=key, otherwise=EMBEDDINGS_FROM_DATA)
    if not path.exists():
        raise FileNotFoundError(f"{key} ({path}): no such file; {EMBEDDINGS_FROM_DATA}")
