"""Diffusion-core paths no other test reached: x0 from each prediction type on a schedule with
round numbers, the refusals of invalid schedule, sampler and guidance arguments (each message
names the parameter and the fix), and the no-op edges (start = 0, an empty loss update)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recdiff.diffusion.gaussian import GaussianDiffusion
from recdiff.diffusion.guidance import drop_condition
from recdiff.diffusion.samplers import DDIMSampler, DDPMSampler, RowBlocks, noise_to
from recdiff.diffusion.schedules import NoiseSchedule, ScheduleError
from recdiff.diffusion.timesteps import LossAwareSampler, UniformSampler

# beta = 0.36, 0.5 -> abar = 0.64, 0.32; at step index 0 sqrt(abar) = 0.8, sqrt(1 - abar) = 0.6
ROUND = np.array([0.36, 0.5])


# --------------------------------------------------------------------------- the process
@pytest.mark.parametrize(
    ("prediction", "x0"),
    [
        ("eps", (1.0 - 0.6 * 0.25) / 0.8),  # (x_t - sqrt(1 - abar) eps) / sqrt(abar) = 1.0625
        ("x0", 0.25),  # the output is x0
        ("v", 0.8 * 1.0 - 0.6 * 0.25),  # sqrt(abar) x_t - sqrt(1 - abar) v = 0.65
    ],
)
def test_to_x0_reads_each_prediction_type(prediction, x0) -> None:
    process = GaussianDiffusion(NoiseSchedule(ROUND), prediction=prediction)
    out = process.to_x0(torch.tensor([[0.25]]), torch.tensor([[1.0]]), 0)
    torch.testing.assert_close(out, torch.tensor([[x0]]))


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_to_x0_recovers_x0_from_the_exact_target(prediction) -> None:
    process = GaussianDiffusion(NoiseSchedule(ROUND), prediction=prediction)
    x0 = torch.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=torch.float64)
    noise = torch.tensor([[0.3, 0.1], [-1.0, 2.0]], dtype=torch.float64)
    t = torch.tensor([0, 1])
    x_t = process.q_sample(x0, t, noise)
    torch.testing.assert_close(process.to_x0(process.target(x0, t, noise), x_t, t), x0)


def test_data_that_is_not_a_tensor_is_refused_by_name() -> None:
    process = GaussianDiffusion(NoiseSchedule(ROUND))
    with pytest.raises(TypeError, match="x0 must be a tensor, got list"):
        process.q_sample([[1.0]], 0)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ samplers
def test_ddim_sigma_accepts_a_0d_step_tensor_and_refuses_one_past_t() -> None:
    sampler = DDIMSampler(GaussianDiffusion(NoiseSchedule(ROUND)), eta=1.0)
    # eta sqrt((1 - abar_prev) / (1 - abar) (1 - abar / abar_prev)) = sqrt(0.36 / 0.68 * 0.5)
    expected = (0.36 / 0.68 * 0.5) ** 0.5
    assert sampler.sigma(torch.tensor(1)) == pytest.approx(expected)
    assert sampler.sigma(1) == pytest.approx(expected)
    assert sampler.sigma(0) == 0.0  # abar_prev = 1 at the first step: no noise to add
    with pytest.raises(ValueError, match=r"t must be integer step indices in 0\.\.1 .* \[2\]"):
        sampler.sigma(torch.tensor(2))


def test_sampling_from_step_zero_returns_the_input_and_a_step_past_t_is_refused() -> None:
    process = GaussianDiffusion(NoiseSchedule(ROUND))
    sampler = DDPMSampler(process)
    x = torch.tensor([[1.5, -0.5]])

    def model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        raise AssertionError("no reverse step runs from step 0")

    assert sampler.sample(model, x, start=0) is x
    with pytest.raises(ValueError, match=r"start must lie in 0\.\.2, got 3"):
        sampler.sample(model, x, start=3)
    with pytest.raises(
        TypeError, match=r"noise_steps must be an integer number of steps, got 1\.0"
    ):
        noise_to(process, x, 1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(("first", "block"), [(-1, 256), (0, 0)])
def test_row_blocks_refuse_a_negative_first_row_or_an_empty_block(first, block) -> None:
    with pytest.raises(ValueError, match=f"first must be >= 0 and block >= 1, got {first} and"):
        RowBlocks(seed=0, first=first, block=block)


# ----------------------------------------------------------------------------- schedules
@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: NoiseSchedule(np.array([])), r"non-empty 1-D sequence, got shape \(0,\)"),
        (lambda: NoiseSchedule(np.full((2, 2), 0.1)), r"1-D sequence, got shape \(2, 2\)"),
        (
            lambda: NoiseSchedule.from_alpha_bar(lambda tau: 1 - tau, 4, max_beta=1.0),
            r"max_beta must lie in \(0, 1\), got 1.0",
        ),
        (
            lambda: NoiseSchedule.diffrec(5, noise_scale=0.0, noise_min=1e-3, noise_max=1e-2),
            "noise_scale s = 0 adds no noise: use s > 0",
        ),
        (
            lambda: NoiseSchedule.diffrec(5, 0.1, 1e-3, 1e-2, first_beta=1.0),
            r"first_beta must lie in \(0, 1\) or be None, got 1.0",
        ),
        (
            lambda: NoiseSchedule.named("quadratic", 10),
            r"unknown schedule 'quadratic'; choose one of \['cosine', 'diffrec', 'exp', 'linear'\]",
        ),
        (
            lambda: NoiseSchedule(ROUND).respace([]),
            r"keep must be a non-empty sequence of step indices, got \[\]",
        ),
        (
            lambda: NoiseSchedule(ROUND).respace([0, 2]),
            r"keep must be step indices in 0\.\.1, got 0\.\.2",
        ),
        (
            lambda: NoiseSchedule(ROUND).respace([-1, 1]),
            r"keep must be step indices in 0\.\.1, got -1\.\.1",
        ),
    ],
)
def test_invalid_schedules_name_the_parameter(build, message) -> None:
    with pytest.raises(ScheduleError, match=message):
        build()


def test_a_schedule_built_by_name_is_the_named_constructors() -> None:
    by_name = NoiseSchedule.named("linear", 3, beta_start=0.1, beta_end=0.3)
    np.testing.assert_allclose(by_name.betas, [0.1, 0.2, 0.3])
    assert by_name == NoiseSchedule.linear(3, 0.1, 0.3) and by_name.name == "linear"
    exp = NoiseSchedule.named("exp", 4, beta_min=0.1, beta_max=10.0)
    assert exp.name == "exp" and exp == NoiseSchedule.exp(4, 0.1, 10.0)


def test_respacing_keeps_abar_at_the_kept_step_and_maps_to_its_model_step() -> None:
    short = NoiseSchedule(ROUND).respace([1])
    np.testing.assert_allclose(short.betas, [1 - 0.32])  # abar' = 0.32, as at the kept step
    np.testing.assert_array_equal(short.timesteps, [1])
    process = GaussianDiffusion(short)
    np.testing.assert_array_equal(process.model_t(0, batch=3).numpy(), [1, 1, 1])


def test_a_schedule_is_not_equal_to_what_is_not_a_schedule() -> None:
    schedule = NoiseSchedule(ROUND, name="mine")
    assert schedule != "linear" and schedule != ROUND.tolist()
    assert schedule == NoiseSchedule(ROUND.copy(), name="another label")  # the name is a label
    assert schedule != NoiseSchedule(ROUND, timesteps=np.array([0, 5]))


# ------------------------------------------------------------------ timestep samplers
@pytest.mark.parametrize(
    ("history", "error", "message"),
    [
        (2.0, TypeError, "history must be an integer number of losses, got 2.0"),
        (True, TypeError, "history must be an integer number of losses, got True"),
        (0, ValueError, "history must be >= 1, got 0"),
    ],
)
def test_loss_aware_sampler_refuses_a_bad_history(history, error, message) -> None:
    with pytest.raises(error, match=message):
        LossAwareSampler(3, history=history)


def test_an_empty_loss_update_changes_nothing() -> None:
    sampler = LossAwareSampler(2, history=1)
    sampler.update(torch.tensor([0, 1]), torch.tensor([3.0, 4.0]))
    before = {k: v.clone() for k, v in sampler.state_dict().items()}
    sampler.update(torch.empty(0, dtype=torch.long), torch.empty(0))
    for key, value in sampler.state_dict().items():
        torch.testing.assert_close(value, before[key])
    # p_t proportional to the RMS loss 3 : 4, mixed with 0.1% uniform
    expected = 0.999 * np.array([3 / 7, 4 / 7]) + 0.001 * 0.5
    np.testing.assert_allclose(sampler.probabilities().numpy(), expected)


def test_uniform_sampler_has_no_state() -> None:
    sampler = UniformSampler(4)
    assert sampler.state_dict() == {}
    sampler.load_state_dict({})
    np.testing.assert_allclose(sampler.probabilities().numpy(), [0.25] * 4)


# ------------------------------------------------------------------------------- guidance
def test_drop_condition_checks_its_probability_and_drops_all_or_nothing() -> None:
    cond = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    null = torch.tensor([9.0, 9.0])
    with pytest.raises(ValueError, match=r"drop probability must lie in \[0, 1\], got 1.5"):
        drop_condition(cond, null, 1.5)
    assert drop_condition(cond, null, 0.0) is cond
    torch.testing.assert_close(drop_condition(cond, null, 1.0), null.expand(2, 2))
