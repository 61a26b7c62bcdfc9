"""Edge cases of the DDPM core and of the diffusion models' configs that used to pass silently or
fail late: schedules with zero or negative entries, NaN/inf settings, reversed clip ranges, a
one-step-for-the-batch t under guidance, empty timestep draws."""

import math
import re

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from recdiff.config.models import validate_model_params
from recdiff.config.problems import ModelSettingsError
from recdiff.diffusion import (
    DDIMSampler,
    DDPMSampler,
    GaussianDiffusion,
    LossAwareSampler,
    NoiseSchedule,
    ScheduleError,
    UniformSampler,
    guided,
)
from recdiff.models.diffrec import DiffRecConfig, DiffusionConfig
from recdiff.models.ldiffrec import LatentConfig, LDiffRecConfig
from recdiff.models.multvae import MultVAEConfig
from recdiff.models.sasrec import SASRecConfig

NAN, INF = math.nan, math.inf


# ----------------------------------------------------------------------------- schedules
def test_betas_of_zero_from_diffrec_name_the_constructors_fix():
    # noise_scale 1e-15: 1 - abar <= 1e-17 rounds to 0, so abar_t = 1 for every t and
    # beta_t = 1 - abar_t / abar_{t-1} = 0 after the released first beta 1e-5.
    with pytest.raises(ScheduleError) as info:
        NoiseSchedule.diffrec(3, 1e-15, 5e-3, 1e-2)
    message = str(info.value)
    assert "found [0.0, 0.0] at step indices [1, 2] of 'diffrec'" in message
    assert message.endswith("raise first_beta, noise_scale or the gap noise_max - noise_min")


def test_zero_and_negative_custom_betas_get_their_own_hints():
    with pytest.raises(ScheduleError, match=r"\[0\.0\] at step indices \[1\].*strictly inside"):
        NoiseSchedule(np.array([0.1, 0.0]))
    with pytest.raises(ScheduleError, match=r"\[-0\.1\] at .*pass finite betas > 0"):
        NoiseSchedule(np.array([0.1, -0.1]))
    with pytest.raises(ScheduleError, match=r"\[nan\] at .*pass finite betas > 0"):
        NoiseSchedule(np.array([NAN, 0.1]))


@pytest.mark.parametrize("s", [NAN, INF, -0.1])
def test_cosine_offset_must_be_finite_and_non_negative(s):
    with pytest.raises(ScheduleError, match="cosine offset s must be a finite number >= 0"):
        NoiseSchedule.cosine(5, s=s)


def test_negative_timesteps_are_refused():
    with pytest.raises(ScheduleError, match=r"step indices >= 0.*got \[-5, -1\] for 2 betas"):
        NoiseSchedule(np.array([0.1, 0.2]), timesteps=np.array([-5, -1]))
    saved = {"betas": [0.1, 0.2], "name": "linear[2]", "timesteps": [-1, 3]}
    with pytest.raises(ScheduleError, match=">= 0"):
        NoiseSchedule.from_dict(saved)
    kept = NoiseSchedule(np.array([0.1, 0.2]), timesteps=np.array([0, 7]))
    assert kept.timesteps.tolist() == [0, 7]


# ------------------------------------------------------------------------------ guidance
@pytest.mark.parametrize("scale", [NAN, INF, -1.0])
def test_guidance_scale_must_be_finite_and_non_negative(scale):
    with pytest.raises(ValueError, match="guidance scale w must be a finite number >= 0"):
        guided(lambda x, t, c: x, torch.zeros(1, 2), torch.zeros(2), scale)


def test_guidance_with_one_step_for_the_batch():
    def model(x, t, c):
        return x + c + t[:, None].to(x.dtype)

    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    cond, null = torch.tensor([[1.0, 1.0], [2.0, 2.0]]), torch.tensor([0.5, 0.5])
    # (1 + w) f(c) - w f(null) with w = 1: x + 2c - null + t
    expected = torch.tensor([[5.5, 6.5], [9.5, 10.5]])
    fn = guided(model, cond, null, 1.0)
    assert torch.equal(fn(x, torch.tensor(3)), expected)
    assert torch.equal(fn(x, torch.tensor([3, 3])), expected)


# ----------------------------------------------------------------------------- clipping
def _process():
    return GaussianDiffusion(NoiseSchedule(np.array([0.1, 0.2])), prediction="x0")


@pytest.mark.parametrize("make", [DDPMSampler, DDIMSampler])
def test_reversed_clip_range_is_refused(make):
    # torch.clamp(min=1, max=-1) used to set every x0 prediction to -1.
    with pytest.raises(ValueError, match=r"clip_x0 must be \(low, high\) with low <= high"):
        make(_process(), clip_x0=(1.0, -1.0))
    with pytest.raises(ValueError, match="clip_x0 must be a pair"):
        make(_process(), clip_x0=(1.0,))


def test_p_mean_variance_refuses_a_reversed_clip_and_keeps_a_valid_one():
    process, x = _process(), torch.zeros(1, 2)

    def model(x_t, t):
        return torch.full_like(x_t, 3.0)

    with pytest.raises(ValueError, match="low <= high"):
        process.p_mean_variance(model, x, 1, clip_x0=(1.0, -1.0))
    out = process.p_mean_variance(model, x, 1, clip_x0=(-1.0, 1.0))
    assert out.pred_x0.tolist() == [[1.0, 1.0]]
    # posterior mean at t = 2 with x_t = 0: beta_2 sqrt(abar_1) / (1 - abar_2) x0 = 0.2 sqrt(0.9)/0.28
    assert out.mean[0, 0].item() == pytest.approx(0.2 * math.sqrt(0.9) / 0.28)


# ---------------------------------------------------------------------- timestep draws
@pytest.mark.parametrize("sampler", [UniformSampler(4), LossAwareSampler(4)])
def test_drawing_no_timesteps_gives_empty_tensors(sampler):
    t, weights = sampler.sample(0)
    assert t.shape == (0,) and t.dtype == torch.long
    assert weights.shape == (0,) and weights.dtype == torch.float32
    with pytest.raises(ValueError, match="batch must be a whole number"):
        sampler.sample(-1)
    with pytest.raises(ValueError, match="batch must be a whole number"):
        sampler.sample(2.5)


# ------------------------------------------------------------------------ model configs
def test_diffusion_config_refuses_settings_whose_schedule_is_invalid():
    with pytest.raises(ValidationError) as info:
        DiffusionConfig(steps=3, noise_scale=1e-15)
    message = str(info.value)
    assert "steps=3, noise_scale=1e-15, noise_min=0.005, noise_max=0.01" in message
    assert (
        "invalid diffrec noise schedule" in message and "raise first_beta, noise_scale" in message
    )
    # DiffRec's "linear" betas noise_scale * noise_min .. noise_scale * noise_max: 0.5 .. 0.9
    # over 1000 steps leave abar_T far below float32's smallest normal number.
    with pytest.raises(ValidationError, match=r"beta_start = noise_scale \* noise_min.*abar_T"):
        DiffusionConfig(
            noise_schedule="linear", steps=1000, noise_scale=1.0, noise_min=0.5, noise_max=0.9
        )
    assert DiffusionConfig(noise_scale=1e-4).schedule().num_steps == 40  # DiffRec's smallest s


def test_run_config_names_the_diffusion_key_of_an_invalid_schedule():
    for model in ("diffrec", "ldiffrec"):
        with pytest.raises(ModelSettingsError) as info:
            validate_model_params(model, {"diffusion": {"noise_scale": 1e-15}})
        ((key, message),) = info.value.problems
        assert key == "model.diffusion" and "noise_scale=1e-15" in message


@pytest.mark.parametrize(
    ("make", "key"),
    [
        (DiffusionConfig, "noise_scale"),
        (DiffusionConfig, "noise_min"),
        (DiffRecConfig, "dropout"),
        (LatentConfig, "lr"),
        (LatentConfig, "beta_max"),
        (LatentConfig, "diffusion_weight"),
        (LatentConfig, "recon_weight"),
        (LDiffRecConfig, "dropout"),
        (SASRecConfig, "dropout"),
    ],
)
@pytest.mark.parametrize("value", [NAN, INF])
def test_config_floats_must_be_finite(make, key, value):
    # inf passed the one-sided bounds (L-DiffRec's lr=inf trained to a NaN loss) and NaN was
    # reported as out of range ("less than or equal to 1").
    with pytest.raises(ValidationError) as info:
        make(**{key: value})
    ((error,),) = [info.value.errors()]
    assert error["loc"] == (key,) and error["msg"] == "Input should be a finite number"


def test_run_config_reports_an_infinite_latent_rate_by_its_key():
    with pytest.raises(ModelSettingsError) as info:
        validate_model_params("ldiffrec", {"latent": {"lr": INF}})
    assert info.value.problems == [("model.latent.lr", "Input should be a finite number")]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"lr": -1.0}, "lr must be a finite number > 0, got -1.0"),
        ({"lr": NAN}, "lr must be a finite number > 0, got nan"),
        ({"lr": INF}, "lr must be a finite number > 0, got inf"),
        ({"weight_decay": -1.0}, "weight_decay must be a finite number >= 0, got -1.0"),
        ({"beta_max": NAN}, "beta_max must be a finite number >= 0"),
        ({"valid_metric": "recall@0"}, "valid_metric must look like 'recall@20'"),
        ({"valid_metric": "bogus@20"}, "valid_metric 'bogus@20' names no metric"),
    ],
)
def test_multvae_config_refuses_what_training_refused_late(settings, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        MultVAEConfig(**settings)
    with pytest.raises(ModelSettingsError) as info:
        validate_model_params("multvae", settings)
    assert info.value.problems[0][0] == "model" and message in info.value.problems[0][1]


def test_multvae_config_defaults_and_coverage_selection_stay_valid():
    assert MultVAEConfig().valid_metric == "recall@20"
    assert MultVAEConfig(valid_metric="coverage@10", weight_decay=0.0).lr == 1e-3


def test_loss_weights_of_one_step_for_the_batch_are_one_per_example():
    # abar (0.9, 0.72): SNR = (9, 18/7); weight at index 1 = (9 - 18/7) / 2 = 45/14; 1 at index 0
    process = GaussianDiffusion(NoiseSchedule(np.array([0.1, 0.2])))
    shared = process.loss_weights(1, torch.zeros(3, 2))
    assert shared.shape == (3,)
    assert shared.tolist() == pytest.approx([45 / 14] * 3)
    per_example = process.loss_weights(torch.tensor([0, 1, 1]), torch.zeros(3))
    assert per_example.tolist() == pytest.approx([1.0, 45 / 14, 45 / 14])
