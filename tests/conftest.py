"""Shared fixtures: the location of the papers' datasets, and seeding."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[1]


def _datasets_root() -> Path:
    env = os.environ.get("RECDIFF_DATASETS")
    return Path(env) if env else _REPO.parent / "shared" / "datasets"


def pytest_collection_modifyitems(config, items):
    """Skip ``data`` tests cleanly when the shared datasets are not on this machine."""
    if _datasets_root().is_dir():
        return
    skip = pytest.mark.skip(
        reason=f"datasets folder {_datasets_root()} not found (set RECDIFF_DATASETS)"
    )
    for item in items:
        if item.get_closest_marker("data") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def datasets_root() -> Path:
    """Root of the read-only real datasets (``../shared/datasets`` or ``$RECDIFF_DATASETS``)."""
    return _datasets_root()
