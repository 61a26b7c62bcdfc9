"""The Recommender base class: on-disk format and its error messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from recommender_contract import checkerboard

from recdiff.models import EASE, Popularity, Recommender, registered_models


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return Popularity().fit(checkerboard()).save(tmp_path / "pop")


def test_config_json_is_plain_and_versioned(saved: Path) -> None:
    meta = json.loads((saved / "config.json").read_text())
    assert meta["model"] == "Popularity" and meta["format_version"] == 1
    assert meta["config"] == {"n_items": 20}
    assert "recdiff_version" in meta


def test_load_checks_class_folder_and_version(saved: Path, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"EASE\.load cannot"):
        EASE.load(saved)
    with pytest.raises(FileNotFoundError, match="saved model folder"):
        Recommender.load(tmp_path / "nowhere")
    meta = json.loads((saved / "config.json").read_text())
    (saved / "config.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(ValueError, match="format_version"):
        Recommender.load(saved)
    (saved / "config.json").write_text(json.dumps({**meta, "model": "Nope"}))
    with pytest.raises(ValueError, match="unknown model 'Nope'"):
        Recommender.load(saved)


def test_registry_lists_the_baselines() -> None:
    assert {"Popularity", "EASE", "MultVAE"} <= set(registered_models())
