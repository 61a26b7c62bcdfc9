"""What the DDPM core refuses, and the known answers of what it now accepts.

Each test pins one way of calling the core that used to give a silently wrong answer (integer
data, a column of steps, a negative step, a model output of the wrong shape, eta > 1, a schedule
whose abar underflows) or a message that did not say what to fix. Hand-computed values use the
one-step schedule beta = 0.36 (abar = 0.64: sqrt(abar) = 0.8, sqrt(1 - abar) = 0.6) and the
two-step one (0.1, 0.2) (abar = 0.9, 0.72).
"""

import math
import pickle

import numpy as np
import pytest
import torch
from pydantic import ValidationError

import recdiff.diffusion as diffusion
from recdiff.diffusion import (
    DDIMSampler,
    DDPMSampler,
    EachRowAlone,
    GaussianDiffusion,
    Generators,
    LossAwareSampler,
    NoiseSchedule,
    RowBlocks,
    ScheduleError,
    UniformSampler,
    guided,
    nll_bound,
    noise_to,
    prior_kl,
    vb_term,
)
from recdiff.diffusion.schedules import MIN_ALPHA_BAR
from recdiff.models.dreamrec_config import GuidedDiffusionConfig
from recdiff.nn import MLPDenoiser

ONE = NoiseSchedule(np.array([0.36]))
TWO = NoiseSchedule(np.array([0.1, 0.2]))
STEP_RULE = r"t must be integer step indices in 0\.\.9 \(0-based; the paper's t = index \+ 1\)"


def _zeros(x, t):
    return torch.zeros_like(x)


# ------------------------------------------------------------------- 1. non-floating data
@pytest.mark.parametrize("dtype", [torch.long, torch.int32, torch.bool])
def test_integer_or_bool_data_is_refused_everywhere_with_the_fix(dtype):
    p = GaussianDiffusion(ONE)
    x0 = torch.ones(2, 3, dtype=dtype)
    t = torch.zeros(2, dtype=torch.long)
    calls = [
        lambda: p.q_sample(x0, t),
        lambda: p.q_mean_variance(x0, t),
        lambda: p.q_posterior(x0, torch.ones(2, 3), t),
        lambda: p.training_losses(_zeros, x0, t),
        lambda: prior_kl(p, x0),
        lambda: vb_term(p, _zeros, x0, torch.ones(2, 3), t),
        lambda: nll_bound(p, _zeros, x0),
    ]
    for call in calls:
        with pytest.raises(TypeError, match=r"x0 must be a floating-point tensor.*x0\.float\(\)"):
            call()


def test_float_data_gets_the_closed_form_x_t():
    # sqrt(abar) x0 + sqrt(1 - abar) eps = 0.8 * 1 + 0.6 * 1; int x0 used to give 0.
    out = GaussianDiffusion(ONE).q_sample(torch.ones(2, 3), 0, torch.ones(2, 3))
    torch.testing.assert_close(out, torch.full((2, 3), 1.4))


# ------------------------------------------------------------ 3. shapes of t and outputs
def test_a_column_of_steps_is_refused_where_it_used_to_broadcast():
    p = GaussianDiffusion(NoiseSchedule.linear(10))
    x0, column = torch.randn(4, 2), torch.full((4, 1), 3)
    shape_rule = r"t must be 0-d .* or \[4\] \(the batch\), got shape \(4, 1\).*reshape\(-1\)"
    with pytest.raises(ValueError, match=shape_rule):
        p.training_losses(_zeros, x0, column)
    with pytest.raises(ValueError, match=shape_rule):
        p.p_mean_variance(_zeros, x0, column)
    with pytest.raises(ValueError, match=shape_rule):
        vb_term(p, _zeros, x0, x0, column)
    with pytest.raises(ValueError, match=r"\[4\] \(the batch\), got shape \(3,\)"):
        p.q_sample(x0, torch.full((3,), 3))


def test_one_step_for_the_batch_gives_the_same_losses_as_one_per_example():
    p = GaussianDiffusion(NoiseSchedule.linear(10), "v")
    x0, noise = torch.randn(4, 2), torch.randn(4, 2)
    seen = []

    def model(x, t):
        seen.append(t)
        return 0.5 * x

    for t in (3, torch.tensor(3), torch.full((4,), 3)):
        out = p.training_losses(model, x0, t, noise, weighting="snr_diff")
        expected = p.training_losses(model, x0, torch.full((4,), 3), noise, "snr_diff")
        torch.testing.assert_close(out["loss"], expected["loss"])
        assert out["loss"].shape == (4,)
    assert all(t.shape == (4,) for t in seen)  # the model always gets one step per row


def test_a_model_output_of_another_shape_is_refused():
    p = GaussianDiffusion(NoiseSchedule.linear(10))

    def column(x, t):
        return x.mean(dim=1, keepdim=True)

    rule = r"model_fn returned shape \(4, 1\) for x_t of shape \(4, 3\)"
    with pytest.raises(ValueError, match=rule):
        p.training_losses(column, torch.randn(4, 3), torch.full((4,), 3))
    with pytest.raises(ValueError, match=rule):
        p.p_mean_variance(column, torch.randn(4, 3), 3)
    for sampler in (DDPMSampler(p), DDIMSampler(p)):
        with pytest.raises(ValueError, match=rule):
            sampler.sample(column, torch.randn(4, 3))


def test_noise_and_posterior_arguments_of_another_shape_are_refused():
    p = GaussianDiffusion(ONE)
    with pytest.raises(ValueError, match=r"noise must have x0's shape \(4, 3\), got \(4, 1\)"):
        p.q_sample(torch.zeros(4, 3), 0, torch.zeros(4, 1))
    with pytest.raises(ValueError, match="same shape"):
        p.q_posterior(torch.zeros(4, 1), torch.zeros(4, 3), 0)


# ------------------------------------------------------------------------- 5. DDIM eta
@pytest.mark.parametrize("eta", [-0.1, 1.2, 5.0])
def test_ddim_refuses_eta_outside_zero_one(eta):
    p = GaussianDiffusion(NoiseSchedule.linear(100, 1e-2, 0.2).spaced(10))
    with pytest.raises(ValueError, match=r"eta must lie in \[0, 1\]"):
        DDIMSampler(p, eta=eta)
    with pytest.raises(ValidationError, match="eta"):
        GuidedDiffusionConfig(eta=eta)


def test_ddim_eta_one_sigma_is_the_posterior_standard_deviation():
    # TWO at index 1: sigma^2 = (1 - 0.9) / (1 - 0.72) * (1 - 0.72 / 0.9) = beta~_2.
    sampler = DDIMSampler(GaussianDiffusion(TWO), eta=1.0)
    assert sampler.sigma(1) ** 2 == pytest.approx(0.1 / 0.28 * 0.2)
    assert GuidedDiffusionConfig(eta=1.0).eta == 1.0
    with pytest.raises(ValueError, match=r"0\.\.1"):
        sampler.sigma(-1)  # used to wrap to the last step


# ---------------------------------------------------------------- 6. degenerate schedules
def test_schedules_whose_alpha_bar_underflows_are_refused_naming_the_parameter():
    with pytest.raises(ScheduleError, match=r"abar_T = 0 of 'exp'.*beta_max"):
        NoiseSchedule.exp(1000, 0.1, 2000.0)
    with pytest.raises(ScheduleError, match=r"abar_T = .* of 'linear'.*beta_end"):
        NoiseSchedule.linear(20000)  # abar_T = exp(-200) ~ 1e-87
    with pytest.raises(ScheduleError, match=r"1 - beta rounds to 1.*beta_start"):
        NoiseSchedule.linear(10, 1e-17, 1e-17)


@pytest.mark.parametrize(
    "build",
    [
        lambda: NoiseSchedule.diffrec(5, 1e-4, 5e-4, 5e-3),
        lambda: NoiseSchedule.diffrec(1000, 1e-2, 5e-3, 1e-2),
        lambda: NoiseSchedule.exp(500),
        lambda: NoiseSchedule.exp(2000),
        lambda: NoiseSchedule.linear(500),
        lambda: NoiseSchedule.linear(1000),
        lambda: NoiseSchedule.linear(2000),
        lambda: NoiseSchedule.cosine(1000),
    ],
)
def test_the_papers_schedules_stay_accepted_and_finite_in_float32(build):
    schedule = build()
    assert schedule.alpha_bar[-1] > MIN_ALPHA_BAR
    p = GaussianDiffusion(schedule)
    x = torch.randn(3, 2)
    assert p.x0_from_eps(x, schedule.num_steps - 1, x).isfinite().all()


def test_linear_2000_keeps_its_alpha_bar():
    # abar_T = prod(1 - linspace(1e-4, 0.02, 2000)), about 1.63e-9: well above the floor.
    betas = np.linspace(1e-4, 0.02, 2000)
    assert NoiseSchedule.linear(2000).alpha_bar[-1] == pytest.approx(np.prod(1 - betas))
    assert NoiseSchedule.linear(2000).alpha_bar[-1] == pytest.approx(1.6288e-9, rel=1e-4)


# ------------------------------------------------------------------------- 7. step range
@pytest.mark.parametrize(
    ("t", "error", "got"),
    [
        (torch.full((4,), -1), ValueError, r"got \[-1, -1, -1, -1\]"),
        (torch.full((4,), 10), ValueError, r"got \[10, 10, 10, 10\]"),
        (-1, ValueError, "got -1"),
        (torch.full((4,), 2.0), TypeError, "torch.float32 tensor"),
        (torch.ones(4, dtype=torch.bool), TypeError, "torch.bool tensor"),
        (2.0, TypeError, "float"),
    ],
)
def test_steps_out_of_range_or_not_integers_are_refused(t, error, got):
    p = GaussianDiffusion(NoiseSchedule.linear(10))
    x0 = torch.randn(4, 2)
    for call in (
        lambda: p.q_sample(x0, t),
        lambda: p.training_losses(_zeros, x0, t),
        lambda: p.p_mean_variance(_zeros, x0, t),
        lambda: vb_term(p, _zeros, x0, x0, t),
    ):
        with pytest.raises(error, match=STEP_RULE):
            call()
    with pytest.raises(error, match=got):
        p.q_sample(x0, t)


def test_sampler_steps_and_model_t_check_the_step():
    p = GaussianDiffusion(NoiseSchedule.linear(10))
    x = torch.randn(4, 2)
    for sampler in (DDPMSampler(p), DDIMSampler(p)):
        for bad in (-1, 10):
            with pytest.raises(ValueError, match=STEP_RULE):
                sampler.step(_zeros, x, bad)
    with pytest.raises(ValueError, match=STEP_RULE):
        p.model_t(torch.tensor([-1]))
    # A Python int and a 0-d tensor are taken wherever a [batch] tensor is.
    torch.testing.assert_close(p.model_t(3, 4), torch.full((4,), 3))
    torch.testing.assert_close(p.model_t(torch.tensor(3), 4), torch.full((4,), 3))


def test_loss_aware_update_checks_the_steps_and_keeps_its_history():
    sampler = LossAwareSampler(5, history=2)
    with pytest.raises(TypeError, match=r"0\.\.4 .*torch.float32 tensor"):
        sampler.update(torch.tensor([0.7]), torch.tensor([1.0]))  # used to record step 0
    with pytest.raises(ValueError, match=r"0\.\.4 .*got \[-1\]"):
        sampler.update(torch.tensor([-1, 1]), torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"one loss per step of t.*\(2, 1\)"):
        sampler.update(torch.tensor([0, 1]), torch.tensor([[1.0], [2.0]]))
    assert sampler.counts.tolist() == [0, 0, 0, 0, 0]
    sampler.update(3, torch.tensor(4.0))  # one step, as a Python int
    sampler.update(torch.tensor([3, 0]), torch.tensor([5.0, 6.0]))
    assert sampler.counts.tolist() == [1, 0, 0, 2, 0]
    assert sampler.loss_history[3].tolist() == [4.0, 5.0]
    assert sampler.loss_history[0].tolist() == [6.0, 0.0]


# ---------------------------------------------------------------------------- 8. 1-D data
def test_one_dimensional_data_is_refused_with_the_fix():
    p = GaussianDiffusion(NoiseSchedule.linear(10))
    flat = torch.randn(8)
    rule = r"x0 must be \[batch, \.\.\.\] .*got shape \(8,\).*x0\[:, None\]"
    with pytest.raises(ValueError, match=rule):
        p.training_losses(_zeros, flat, torch.zeros(8, dtype=torch.long))
    with pytest.raises(ValueError, match=rule):
        prior_kl(p, flat)
    with pytest.raises(ValueError, match=rule):
        noise_to(p, flat, 3)
    with pytest.raises(ValueError, match=r"x must be \[batch, \.\.\.\].*x\[:, None\]"):
        DDPMSampler(p).sample(_zeros, torch.randn(2))


def test_one_feature_per_example_as_a_column_gets_per_example_terms():
    # L_T of one feature: KL(N(0.8 x, 0.36) || N(0, 1)) = (-log 0.36 + 0.36 + 0.64 x^2 - 1) / 2.
    p = GaussianDiffusion(ONE)
    x = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    expected = 0.5 * (-math.log(0.36) + 0.36 + 0.64 * x**2 - 1)
    torch.testing.assert_close(prior_kl(p, x[:, None]), expected)
    losses = p.training_losses(_zeros, x[:, None], 0, torch.ones(3, 1, dtype=torch.float64))
    torch.testing.assert_close(losses["loss"], torch.ones(3, dtype=torch.float64))  # (0 - 1)^2


# -------------------------------------------------------------------- 9. abar(1) = 0
def test_alpha_bar_reaching_zero_at_the_end_is_clipped_by_max_beta():
    # abar(tau) = 1 - tau: beta_t = 1 - (1 - t/10) / (1 - (t-1)/10) = 1 / (11 - t), the last
    # (1 - 0 / 0.1 = 1) clipped to max_beta.
    schedule = NoiseSchedule.from_alpha_bar(lambda u: 1 - u, 10, max_beta=0.999)
    np.testing.assert_allclose(schedule.betas[:-1], [1 / (11 - t) for t in range(1, 10)])
    assert schedule.betas[-1] == 0.999


def test_alpha_bar_refusals_name_the_value_that_failed():
    with pytest.raises(ScheduleError, match=r"alpha_bar_fn\(0\.5\) = 0\.0"):
        NoiseSchedule.from_alpha_bar(lambda u: max(0.0, 1 - 2 * u), 10)
    with pytest.raises(ScheduleError, match=r"increases from alpha_bar_fn\(0\.4\)"):
        NoiseSchedule.from_alpha_bar(lambda u: 1 - u + (0.3 if u > 0.4 else 0.0), 10)
    with pytest.raises(ScheduleError, match=r"alpha_bar_fn\(1\) = -0\.5"):
        NoiseSchedule.from_alpha_bar(lambda u: 1 - 0.5 * u if u < 1 else -0.5, 10)


# ------------------------------------------------------------------------ 10. messages
def test_messages_name_the_argument_and_the_choices():
    s = NoiseSchedule.linear(10)
    with pytest.raises(ScheduleError, match=r"\[1\.0\] at step indices \[0\] of 'exp'.*beta_max"):
        NoiseSchedule.exp(1, 0.1, 100)
    with pytest.raises(ValueError, match=r"prediction='epsilon' is not one of 'eps', 'x0', 'v'"):
        GaussianDiffusion(s, "epsilon")
    with pytest.raises(ValueError, match=r"variance='fixed_small' .*'posterior', 'beta'"):
        GaussianDiffusion(s, "eps", "fixed_small")
    with pytest.raises(ValueError, match=r"weighting='snr' is not one of 'none', 'snr_diff'"):
        GaussianDiffusion(s).training_losses(_zeros, torch.randn(2, 2), 1, weighting="snr")
    with pytest.raises(TypeError, match="count must be an integer"):  # as every count's type
        s.spaced(5.0)
    with pytest.raises(ScheduleError, match=r"strictly increasing.*5 then 5"):
        s.respace([5, 5, 3])
    with pytest.raises(ScheduleError, match=r"strictly increasing.*5 then 3"):
        s.respace([5, 3])
    with pytest.raises(ScheduleError, match="integer step indices"):
        s.respace([2.7, 9.2])
    with pytest.raises(TypeError, match=r"num_steps \(T\) must be an integer, got 40\.0"):
        LossAwareSampler(40.0)
    with pytest.raises(TypeError, match="num_steps"):
        UniformSampler(4.0)


def test_respace_of_sorted_integer_steps_is_unchanged():
    s = NoiseSchedule.linear(10)
    kept = s.respace(np.array([0, 4, 9]))
    np.testing.assert_allclose(kept.alpha_bar, s.alpha_bar[[0, 4, 9]], rtol=1e-14)
    assert kept.timesteps.tolist() == [0, 4, 9]


# ------------------------------------------------------------ 11. a shared condition
def test_guidance_expands_a_condition_shared_by_the_batch():
    def model(x, t, c):  # broadcasts a [1, 1] condition as a denoiser does
        return x * c.sum(-1, keepdim=True)

    x, t = torch.ones(4, 2), torch.full((4,), 1)
    # (1 + w) f(x, c) - w f(x, null) = 4 * 2 - 3 * 0.5
    out = guided(model, torch.tensor([[2.0]]), torch.tensor([0.5]), 3.0)(x, t)
    torch.testing.assert_close(out, torch.full((4, 2), 6.5))
    with pytest.raises(ValueError, match=r"batch 4 \(x_t's\) or 1, got shape \(3, 1\)"):
        guided(model, torch.ones(3, 1), torch.tensor([0.5]), 3.0)(x, t)


def test_guided_denoiser_with_a_shared_condition_equals_the_expanded_one():
    torch.manual_seed(0)
    net = MLPDenoiser(2, [16], cond_dim=3).eval()
    x, t, cond, null = torch.randn(4, 2), torch.arange(4), torch.randn(1, 3), torch.zeros(3)
    shared = guided(net, cond, null, 2.0)(x, t)
    torch.testing.assert_close(shared, guided(net, cond.expand(4, 3), null, 2.0)(x, t))


# --------------------------------------------------------------------- 12. iterate
def test_iterate_runs_without_autograd_unless_asked_and_leaves_the_callers_mode():
    torch.manual_seed(0)
    net = MLPDenoiser(2, [16]).eval()
    p = GaussianDiffusion(NoiseSchedule.linear(5))
    x = torch.randn(3, 2)
    states = []
    for state in DDIMSampler(p).iterate(net, x):
        assert torch.is_grad_enabled()  # the caller's code between steps keeps its mode
        states.append(state)
    assert not states[-1].sample.requires_grad
    torch.testing.assert_close(states[-1].sample, DDIMSampler(p).sample(net, x))
    last = list(DDIMSampler(p).iterate(net, x, grad=True))[-1]
    assert last.sample.grad_fn is not None
    torch.testing.assert_close(last.sample.detach(), states[-1].sample)


# ----------------------------------------------------------------- 13. posterior dtype
@pytest.mark.parametrize("t", [torch.tensor(1), torch.full((3,), 1)])
def test_posterior_comes_in_x_t_dtype_whatever_the_step_shape(t):
    # TWO at index 1: mu~ = beta_2 sqrt(abar_1) / (1 - abar_2) x0 + (1 - abar_1) sqrt(alpha_2)
    # / (1 - abar_2) x_t, with 1 - abar_2 = 0.28.
    p = GaussianDiffusion(TWO)
    x0 = torch.full((3, 2), 1.0, dtype=torch.float64)
    x_t = torch.full((3, 2), 2.0)
    post = p.q_posterior(x0, x_t, t)
    assert post.mean.dtype == post.variance.dtype == post.log_variance.dtype == torch.float32
    expected = 0.2 * math.sqrt(0.9) / 0.28 * 1.0 + 0.1 * math.sqrt(0.8) / 0.28 * 2.0
    torch.testing.assert_close(post.mean, torch.full((3, 2), expected))


# ----------------------------------------------------------- 14. saving a schedule
def test_schedules_compare_by_their_arrays_and_round_trip():
    s = NoiseSchedule.cosine(100).spaced(10)
    assert s == NoiseSchedule.cosine(100).spaced(10)
    assert hash(s) == hash(NoiseSchedule.cosine(100).spaced(10))
    assert s != NoiseSchedule.cosine(100).spaced(11) and s != NoiseSchedule.cosine(100)
    again = NoiseSchedule.from_dict(s.to_dict())
    assert again == s and again.name == s.name
    assert again.timesteps.tolist() == s.timesteps.tolist()
    unpickled = pickle.loads(pickle.dumps(s))
    assert unpickled == s and not unpickled.betas.flags.writeable


# ------------------------------------------------------------------------ 15. exports
def test_per_row_generators_are_exported():
    for name in ("EachRowAlone", "RowBlocks", "Generators"):
        assert name in diffusion.__all__
    assert EachRowAlone.__name__ == "EachRowAlone" and RowBlocks.__name__ == "RowBlocks"
    assert Generators is diffusion.samplers.Generators
