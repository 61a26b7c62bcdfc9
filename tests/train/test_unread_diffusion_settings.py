"""Diffusion settings that the chosen schedule or sampler does not read are named: DiffRec's
cosine ablation reads none of noise_scale, noise_min, noise_max; DreamRec's linear schedule reads
beta_start and beta_end, its exp schedule beta_min and beta_max, its cosine neither; eta is
DDIM's. Warnings, not refusals: saved runs hold such values, and must still load."""

from __future__ import annotations

import warnings

import pytest

from recdiff.config.loading import load_config
from recdiff.models.diffrec import DiffusionConfig
from recdiff.models.dreamrec_config import GuidedDiffusionConfig
from recdiff.train.run import _warn_unread_diffusion_settings


@pytest.mark.parametrize(
    ("preset", "sets", "named"),
    [
        (
            "demo-diffrec",
            ["model.diffusion.noise_schedule=cosine", "model.diffusion.noise_scale=0.1"],
            ["model.diffusion.noise_scale (0.1): the cosine schedule does not read it: ignored"],
        ),
        (
            "ldiffrec-ml1m",
            ["model.diffusion.noise_schedule=cosine", "model.diffusion.noise_max=0.05"],
            ["model.diffusion.noise_max (0.05): the cosine schedule does not read it: ignored"],
        ),
        (
            "demo-dreamrec",
            ["model.diffusion.schedule=exp", "model.diffusion.beta_end=0.05"],
            ["model.diffusion.beta_end (0.05): the exp schedule does not read it: ignored"],
        ),
        (
            "dreamrec-yoochoose",  # exp; its beta_min and beta_max are the defaults
            ["model.diffusion.schedule=linear", "model.diffusion.beta_max=20"],
            ["model.diffusion.beta_max (20.0): the linear schedule does not read it: ignored"],
        ),
        (
            "dreamrec-kuairec",  # cosine
            ["model.diffusion.beta_start=0.001", "model.diffusion.eta=0.5"],
            [
                "model.diffusion.beta_start (0.001): the cosine schedule does not read it: ignored",
                "model.diffusion.eta (0.5): DDPM sampling does not read it (eta is DDIM's): "
                "ignored",
            ],
        ),
    ],
)
def test_settings_the_process_does_not_read_are_named(preset, sets, named):
    config = load_config(preset, sets)
    with pytest.warns(UserWarning) as caught:
        _warn_unread_diffusion_settings(config)
    assert [str(w.message) for w in caught] == named


@pytest.mark.parametrize(
    ("preset", "sets"),
    [
        ("diffrec-ml1m", ["model.diffusion.noise_scale=0.1"]),  # read by Eq. 4's schedule
        ("diffrec-ml1m", ["model.diffusion.noise_schedule=linear"]),  # linear reads all three
        ("demo-diffrec", ["model.diffusion.noise_schedule=cosine"]),  # the rest at defaults
        ("dreamrec-zhihu", ["model.diffusion.sampler=ddim", "model.diffusion.eta=0.5"]),
        ("dreamrec-yoochoose", []),
        ("dreamrec-kuairec", []),
        ("dreamrec-zhihu-search", []),
        ("demo-sasrec", []),  # no diffusion at all
        ("demo-ease", []),
    ],
)
def test_settings_read_or_at_their_defaults_are_not_named(preset, sets):
    config = load_config(preset, sets)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_unread_diffusion_settings(config)


def test_a_value_set_to_its_default_is_no_choice():
    """A saved run's resolved config writes every key, the unread ones too, at their defaults."""
    assert DiffusionConfig(noise_schedule="cosine", noise_scale=5e-3).unread_settings() == {}
    every = GuidedDiffusionConfig.model_fields
    written = GuidedDiffusionConfig(
        schedule="exp", **{k: f.default for k, f in every.items() if k != "schedule"}
    )
    assert written.unread_settings() == {}
    assert set(GuidedDiffusionConfig(schedule="exp", beta_start=0.001).unread_settings()) == {
        "beta_start"
    }


def test_a_run_prints_the_warning(tmp_path):
    """Through ``run_training``: the warning reaches a run, before it trains."""
    from recdiff.train.run import run_training

    short = ["train.epochs=1", "model.hidden_dims=[8]", "train.progress=false"]
    config = load_config(
        "demo-diffrec",
        ["model.diffusion.noise_schedule=cosine", "model.diffusion.noise_min=0.001", *short],
    )
    with pytest.warns(UserWarning, match=r"model\.diffusion\.noise_min \(0\.001\): the cosine"):
        run_training(config, tmp_path, progress=False)
