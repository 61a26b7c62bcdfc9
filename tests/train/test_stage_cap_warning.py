"""A cap on train.epochs, set for a short run, says when a stage before the model's own training
(L-DiffRec's autoencoders, DreamRec's SASRec item table) keeps its own, longer length."""

from __future__ import annotations

import warnings

import pytest

from recdiff.config import load_config
from recdiff.train.run import _warn_uncapped_first_stage


def _said(preset: str, settings: list[str]) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _warn_uncapped_first_stage(load_config(preset, settings))
    return [str(w.message) for w in caught]


@pytest.mark.parametrize(
    ("preset", "message"),
    [
        ("ldiffrec-ml1m-tuned", "caps L-DiffRec's diffusion stage; its autoencoders train first, "
         "for up to model.latent.epochs (200) epochs"),
        ("dreamrec-zhihu-sasrec-items", "caps DreamRec's own training; its SASRec item stage "
         "trains first, for up to model.item_space.epochs (200) epochs"),
    ],
)  # fmt: skip
def test_a_short_cap_names_the_longer_first_stage(preset: str, message: str) -> None:
    (said,) = _said(preset, ["train.epochs=3"])
    assert said.startswith("train.epochs (3) ") and message in said
    assert _said(preset, []) == []  # the presets' own lengths: the first stage is the shorter
    key = "model.latent.epochs" if preset.startswith("ldiffrec") else "model.item_space.epochs"
    assert _said(preset, ["train.epochs=3", f"{key}=3"]) == []


def test_models_without_a_first_stage_say_nothing() -> None:
    for preset in ("diffrec-ml1m", "dreamrec-zhihu", "demo-sasrec"):
        assert _said(preset, ["train.epochs=3"]) == []
