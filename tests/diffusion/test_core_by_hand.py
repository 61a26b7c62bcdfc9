"""Closed-form and hand-computed values for the DDPM core: tiny schedules worked out on paper.

The schedules used throughout: betas (0.1, 0.2) give abar (0.9, 0.72); betas (0.1, 0.2, 0.3) give
abar (0.9, 0.72, 0.504); a single beta 0.36 gives abar 0.64, so sqrt(abar) = 0.8 and
sqrt(1 - abar) = 0.6.
"""

import math

import numpy as np
import pytest
import torch

from recdiff.diffusion import (
    DDIMSampler,
    DDPMSampler,
    GaussianDiffusion,
    LossAwareSampler,
    NoiseSchedule,
    drop_condition,
    guided,
    nll_bound,
    noise_to,
    prior_kl,
    vb_term,
)

TWO = NoiseSchedule(np.array([0.1, 0.2]))
THREE = NoiseSchedule(np.array([0.1, 0.2, 0.3]))
ONE = NoiseSchedule(np.array([0.36]))
LOG_2PI = math.log(2 * math.pi)


def _f64(*values):
    return torch.tensor(values, dtype=torch.float64)


def _constant(value):
    """A model whose output is ``value`` whatever x_t and t."""

    def model_fn(x_t, model_t):
        return value.expand_as(x_t).to(x_t.dtype)

    return model_fn


def _randn(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ------------------------------------------------------------------------------- schedules
def test_diffrec_two_step_schedule_by_hand():
    # s = 0.1, a_min = 0.1, a_max = 0.3: 1 - abar = (0.01, 0.03), beta_2 = 1 - 0.97 / 0.99.
    exact = NoiseSchedule.diffrec(2, 0.1, 0.1, 0.3, first_beta=None)
    np.testing.assert_allclose(exact.betas, [0.01, 0.02 / 0.99], rtol=1e-12)
    released = NoiseSchedule.diffrec(2, 0.1, 0.1, 0.3)
    np.testing.assert_allclose(released.betas, [1e-5, 0.02 / 0.99], rtol=1e-12)
    # T = 1: Eq. 4 has only its first term, s a_min.
    np.testing.assert_allclose(NoiseSchedule.diffrec(1, 0.1, 0.1, 0.3, None).betas, [0.01])


def test_single_step_linear_and_cosine():
    assert NoiseSchedule.linear(1, 1e-3, 0.5).betas.tolist() == [1e-3]
    # abar(1) = cos^2(pi / 2) ~ 0, so beta_1 = 1 - abar(1) / abar(0) is clipped to max_beta.
    assert NoiseSchedule.cosine(1).betas.tolist() == [0.999]


def test_respace_betas_by_hand():
    halved = THREE.respace([0, 2])  # kept abar (0.9, 0.504): beta'_2 = 1 - 0.504 / 0.9
    np.testing.assert_allclose(halved.betas, [0.1, 0.44], rtol=1e-12)
    np.testing.assert_array_equal(halved.timesteps, [0, 2])
    np.testing.assert_allclose(halved.alpha_bar, [0.9, 0.504], rtol=1e-12)
    last = THREE.respace([2])
    np.testing.assert_allclose(last.betas, [0.496], rtol=1e-12)
    assert THREE.spaced(1).timesteps.tolist() == [2]
    np.testing.assert_array_equal(THREE.spaced(3).timesteps, [0, 1, 2])


# -------------------------------------------------------------------------- the process
def test_two_step_process_buffers_by_hand():
    post_2 = 0.2 * 0.1 / 0.28  # beta~_2 = beta_2 (1 - abar_1) / (1 - abar_2)
    small = GaussianDiffusion(TWO, "x0", "posterior")
    torch.testing.assert_close(small.posterior_variance, _f64(0.0, post_2))
    # beta~_1 = 0 has no log: it is clipped to beta~_2.
    torch.testing.assert_close(
        small.posterior_log_variance, _f64(math.log(post_2), math.log(post_2))
    )
    torch.testing.assert_close(small.posterior_coef_x0, _f64(1.0, 0.2 * math.sqrt(0.9) / 0.28))
    torch.testing.assert_close(small.posterior_coef_xt, _f64(0.0, 0.1 * math.sqrt(0.8) / 0.28))
    torch.testing.assert_close(small.reverse_variance, _f64(post_2, post_2))
    large = GaussianDiffusion(TWO, "x0", "beta")
    # "Fixed large" is beta_t throughout, the decoder of L_0 too (DDPM's sigma_1^2 = beta_1).
    torch.testing.assert_close(large.reverse_variance, _f64(0.1, 0.2))
    torch.testing.assert_close(large.reverse_log_variance, _f64(math.log(0.1), math.log(0.2)))
    # At t = 1 the posterior is x_0 itself (coefficients 1 and 0).
    x0, x_t = _f64(0.3, -1.2)[None], _f64(2.0, 0.5)[None]
    torch.testing.assert_close(small.q_posterior(x0, x_t, torch.tensor([0])).mean, x0)


def test_single_step_process_uses_beta_1_where_nothing_can_be_clipped_to():
    process = GaussianDiffusion(ONE, "x0")
    torch.testing.assert_close(process.posterior_variance, _f64(0.0))
    torch.testing.assert_close(process.posterior_log_variance, _f64(math.log(0.36)))
    torch.testing.assert_close(process.reverse_variance, _f64(0.36))
    assert process.mean_chain == [(0, 0.0, pytest.approx(1.0))]


def test_v_prediction_hand_values():
    process = GaussianDiffusion(ONE, "v")  # sqrt(abar) = 0.8, sqrt(1 - abar) = 0.6
    t = torch.tensor([0])
    x0, eps = _f64(1.0, -2.0)[None], _f64(0.5, 3.0)[None]
    x_t = process.q_sample(x0, t, eps)
    torch.testing.assert_close(x_t, 0.8 * x0 + 0.6 * eps)
    v = process.v_target(x0, t, eps)
    torch.testing.assert_close(v, 0.8 * eps - 0.6 * x0)
    torch.testing.assert_close(process.x0_from_v(x_t, t, v), x0)
    torch.testing.assert_close(process.to_x0_eps(v, x_t, t), (x0, eps))
    torch.testing.assert_close(process.x0_from_eps(x_t, t, eps), x0)
    torch.testing.assert_close(process.eps_from_x0(x_t, t, x0), eps)


# ------------------------------------------------------------------------------------ ELBO
def test_single_step_bound_is_prior_kl_plus_gaussian_decoder_nll():
    """T = 1, x0 prediction c: L_0 = -log N(x0; c, beta_1), L_T = KL(N(0.8 x0, 0.36) || N(0, 1))."""
    process = GaussianDiffusion(ONE, "x0")
    x0 = _f64(1.0, -0.5, 2.0)[None]
    c = _f64(0.4, 0.0, 1.0)
    l0 = 0.5 * (LOG_2PI + math.log(0.36) + (x0 - c) ** 2 / 0.36)
    lt = 0.5 * (-math.log(0.36) + 0.36 + 0.64 * x0**2 - 1)
    bound = nll_bound(process, _constant(c), x0, torch.Generator().manual_seed(0))
    torch.testing.assert_close(bound["terms"], l0.sum(1, keepdim=True))
    torch.testing.assert_close(bound["prior"], lt.sum(1))
    torch.testing.assert_close(bound["total"], (l0 + lt).sum(1))


def test_bound_of_the_exact_x0_oracle_is_prior_plus_decoder_entropy():
    """Predicting x0 exactly zeroes every KL, leaving L_T and L_0 = d/2 (log 2 pi + log beta~_2)."""
    process = GaussianDiffusion(THREE, "x0")
    x0 = _f64(0.5, -1.0, 1.5, 0.0)[None].repeat(2, 1)

    def oracle(x_t, model_t):
        return x0

    post_2 = 0.2 * 0.1 / 0.28
    bound = nll_bound(process, oracle, x0, torch.Generator().manual_seed(1))
    l0 = 4 * 0.5 * (LOG_2PI + math.log(post_2))
    torch.testing.assert_close(bound["terms"], _f64(l0, 0.0, 0.0).repeat(2, 1))
    lt = 0.5 * (-math.log(0.496) + 0.496 + 0.504 * x0**2 - 1)
    torch.testing.assert_close(prior_kl(process, x0), lt.sum(1))
    torch.testing.assert_close(bound["total"], lt.sum(1) + l0)


def test_kl_term_with_fixed_large_variance_by_formula():
    """t = 2 with sigma^2 = beta_2 = 0.2: KL of N(mu~, beta~_2) to N(mu_theta, 0.2) per dimension."""
    process = GaussianDiffusion(TWO, "x0", "beta")
    x0, x0_hat = _f64(1.0, -1.0)[None], _f64(0.5, 0.0)
    x_t = _f64(0.3, 0.7)[None]
    post_2, coef_x0 = 0.2 * 0.1 / 0.28, 0.2 * math.sqrt(0.9) / 0.28
    per_dim = 0.5 * (
        math.log(0.2 / post_2) + post_2 / 0.2 + coef_x0**2 * (x0 - x0_hat) ** 2 / 0.2 - 1
    )
    term = vb_term(process, _constant(x0_hat), x0, x_t, torch.tensor([1]))
    torch.testing.assert_close(term, per_dim.sum(1))


@pytest.mark.parametrize(("prediction", "variance"), [("eps", "posterior"), ("v", "beta")])
def test_kl_term_of_an_eps_or_v_output_by_formula(prediction, variance):
    """t = 2 (abar 0.72) again, the network giving eps or v: its x0 follows as in the DDIM step
    above, and the KL of N(mu~, beta~_2) to N(mu_theta, sigma^2) is the x0 case's with it."""
    process = GaussianDiffusion(TWO, prediction, variance)
    x0, x_t, out = _f64(1.0, -1.0)[None], _f64(0.3, 0.7)[None], _f64(0.4, -0.2)
    if prediction == "eps":
        x0_hat = (x_t - math.sqrt(0.28) * out) / math.sqrt(0.72)
    else:
        x0_hat = math.sqrt(0.72) * x_t - math.sqrt(0.28) * out
    post_2, coef_x0 = 0.2 * 0.1 / 0.28, 0.2 * math.sqrt(0.9) / 0.28
    sigma2 = post_2 if variance == "posterior" else 0.2
    per_dim = 0.5 * (
        math.log(sigma2 / post_2) + post_2 / sigma2 + coef_x0**2 * (x0 - x0_hat) ** 2 / sigma2 - 1
    )
    term = vb_term(process, _constant(out), x0, x_t, torch.tensor([1]))
    torch.testing.assert_close(term, per_dim.sum(1))


# -------------------------------------------------------------------------------- samplers
@pytest.mark.parametrize(("variance", "sigma2"), [("posterior", 0.2 * 0.1 / 0.28), ("beta", 0.2)])
def test_ddpm_step_is_algorithm_2(variance, sigma2):
    """x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) + sigma_t z at t = 2."""
    process = GaussianDiffusion(TWO, "eps", variance)
    x_t, eps = _f64(0.3, -1.1, 2.0)[None], _f64(0.9, 0.2, -0.4)
    state = DDPMSampler(process).step(_constant(eps), x_t, 1, torch.Generator().manual_seed(7))
    z = _randn(x_t.shape, 7)
    expected = (x_t - 0.2 / math.sqrt(0.28) * eps) / math.sqrt(0.8) + math.sqrt(sigma2) * z
    torch.testing.assert_close(state.sample, expected)
    torch.testing.assert_close(state.pred_x0, (x_t - math.sqrt(0.28) * eps) / math.sqrt(0.72))


@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_ddim_step_by_hand(eta):
    """From t = 2 (abar 0.72) to t = 1 (abar 0.9), Song et al. Eq. 12 with Eq. 16's sigma."""
    process = GaussianDiffusion(TWO, "x0")
    x_t, x0_hat = _f64(0.3, -1.1)[None], _f64(0.5, 0.25)
    sigma = eta * math.sqrt(0.1 / 0.28) * math.sqrt(1 - 0.72 / 0.9)
    sampler = DDIMSampler(process, eta=eta)
    assert sampler.sigma(1) == pytest.approx(sigma, rel=1e-12)
    state = sampler.step(_constant(x0_hat), x_t, 1, torch.Generator().manual_seed(3))
    eps_hat = (x_t - math.sqrt(0.72) * x0_hat) / math.sqrt(0.28)
    expected = math.sqrt(0.9) * x0_hat + math.sqrt(0.1 - sigma**2) * eps_hat
    if eta > 0:
        expected = expected + sigma * _randn(x_t.shape, 3)
    torch.testing.assert_close(state.sample, expected)
    # The last step returns the x0 prediction, noise-free, whatever eta.
    torch.testing.assert_close(sampler.step(_constant(x0_hat), x_t, 0).sample, x0_hat.expand(1, 2))


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_ddim_step_by_hand_from_an_eps_or_v_output(prediction):
    """The same step at eta 0.5 when the network gives eps or v (Salimans & Ho: v = sqrt(abar)
    eps - sqrt(1 - abar) x0), at t = 2: abar 0.72, so x0 = sqrt(.72) x_t - sqrt(.28) v and
    eps = sqrt(.28) x_t + sqrt(.72) v; from eps, x0 = (x_t - sqrt(.28) eps) / sqrt(.72)."""
    process = GaussianDiffusion(TWO, prediction)
    x_t, out = _f64(0.3, -1.1)[None], _f64(0.5, 0.25)
    if prediction == "eps":
        eps_hat = out
        x0_hat = (x_t - math.sqrt(0.28) * out) / math.sqrt(0.72)
    else:
        x0_hat = math.sqrt(0.72) * x_t - math.sqrt(0.28) * out
        eps_hat = math.sqrt(0.28) * x_t + math.sqrt(0.72) * out
    sigma = 0.5 * math.sqrt(0.1 / 0.28) * math.sqrt(1 - 0.72 / 0.9)
    state = DDIMSampler(process, eta=0.5).step(
        _constant(out), x_t, 1, torch.Generator().manual_seed(5)
    )
    expected = math.sqrt(0.9) * x0_hat + math.sqrt(0.1 - sigma**2) * eps_hat
    torch.testing.assert_close(state.sample, expected + sigma * _randn(x_t.shape, 5))
    torch.testing.assert_close(state.pred_x0, x0_hat)


def test_ddim_on_a_respaced_schedule_uses_the_kept_alpha_bars_and_original_steps():
    process = GaussianDiffusion(THREE.respace([0, 2]), "x0")  # abar (0.9, 0.504)
    x_t, x0_hat = _f64(0.3, -1.1)[None], _f64(0.5, 0.25)
    seen = []

    def model_fn(x, model_t):
        seen.append(model_t.tolist())
        return x0_hat.expand_as(x)

    state = DDIMSampler(process).step(model_fn, x_t, 1)
    eps_hat = (x_t - math.sqrt(0.504) * x0_hat) / math.sqrt(0.496)
    torch.testing.assert_close(state.sample, math.sqrt(0.9) * x0_hat + math.sqrt(0.1) * eps_hat)
    assert seen == [[2]]


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_ddim_eta_one_over_all_steps_is_the_ddpm_trajectory(prediction):
    process = GaussianDiffusion(THREE, prediction)

    def model_fn(x, model_t):
        return 0.3 * x + 0.1 * model_t[:, None].to(x.dtype)

    x_T = _randn((4, 2), 0)
    ddpm = DDPMSampler(process).sample(model_fn, x_T, generator=torch.Generator().manual_seed(1))
    ddim = DDIMSampler(process, 1.0).sample(
        model_fn, x_T, generator=torch.Generator().manual_seed(1)
    )
    torch.testing.assert_close(ddim, ddpm)


@pytest.mark.parametrize("kind", ["ddpm", "ddim"])
def test_respacing_to_all_steps_reproduces_the_process_and_its_samples(kind):
    schedule = NoiseSchedule.linear(20, 1e-3, 0.2)
    original, respaced = GaussianDiffusion(schedule, "eps"), GaussianDiffusion(schedule.spaced(20))
    for name in ("betas", "alpha_bar", "posterior_variance", "posterior_log_variance"):
        torch.testing.assert_close(getattr(respaced, name), getattr(original, name))
    torch.testing.assert_close(respaced.model_timesteps, original.model_timesteps)

    def model_fn(x, model_t):
        return torch.tanh(x) + 0.01 * model_t[:, None].to(x.dtype)

    def run(process):
        sampler = DDPMSampler(process) if kind == "ddpm" else DDIMSampler(process, eta=0.7)
        return sampler.sample(
            model_fn, _randn((3, 2), 0), generator=torch.Generator().manual_seed(1)
        )

    torch.testing.assert_close(run(respaced), run(original))


def test_respacing_to_one_step_jumps_from_x_T_to_the_x0_prediction():
    process = GaussianDiffusion(THREE.spaced(1), "eps")
    torch.testing.assert_close(process.betas, _f64(0.496))  # 1 - abar_3
    x_T, eps = _randn((2, 3), 0), _f64(0.1, -0.2, 0.3)
    seen = []

    def model_fn(x, model_t):
        seen.append(model_t.tolist())
        return eps.expand_as(x)

    expected = (x_T - math.sqrt(0.496) * eps) / math.sqrt(0.504)
    for sampler in (DDPMSampler(process), DDIMSampler(process, eta=1.0)):
        generator = torch.Generator().manual_seed(2)
        torch.testing.assert_close(sampler.sample(model_fn, x_T, generator=generator), expected)
    assert seen == [[2, 2], [2, 2]]


def test_mean_chain_is_the_posterior_mean_reverse_process():
    process = GaussianDiffusion(THREE, "eps")

    def model_fn(x, model_t):
        return 0.5 * x - 0.2 * model_t[:, None].to(x.dtype)

    x = _randn((3, 2), 4)
    chained = x
    for model_step, a, b in process.mean_chain:
        chained = a * chained + b * model_fn(chained, torch.full((3,), model_step))
    torch.testing.assert_close(chained, DDPMSampler(process, add_noise=False).sample(model_fn, x))
    # Step T of eps prediction: a = 1 / sqrt(alpha_3), b = -beta_3 / (sqrt(alpha_3) sqrt(1 - abar_3)).
    a, b = process.mean_coefficients(2)
    assert (a, b) == pytest.approx((1 / math.sqrt(0.7), -0.3 / math.sqrt(0.7 * 0.496)), rel=1e-12)


def test_same_generator_gives_the_same_draws():
    process = GaussianDiffusion(THREE, "x0")

    def model_fn(x, model_t):
        return 0.5 * x

    x = _randn((4, 3), 0)

    def draws(seed):
        gen = torch.Generator().manual_seed
        return [
            DDPMSampler(process).sample(model_fn, x, generator=gen(seed)),
            DDIMSampler(process, eta=0.5).sample(model_fn, x, generator=gen(seed)),
            noise_to(process, x, 2, gen(seed)),
            nll_bound(process, model_fn, x, gen(seed))["total"],
            drop_condition(x, torch.zeros(3), 0.5, gen(seed)),
            LossAwareSampler(3).sample(8, generator=gen(seed))[0],
        ]

    first, again, other = draws(5), draws(5), draws(6)
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a, b)
    assert not any(torch.equal(a, c) for a, c in zip(first[:4], other[:4], strict=True))


def test_bf16_inputs_keep_their_dtype_and_agree_with_float64():
    process = GaussianDiffusion(NoiseSchedule.linear(10, 1e-2, 0.2), "eps")
    x0, noise = _randn((4, 3), 0), _randn((4, 3), 1)
    t = torch.tensor([0, 3, 6, 9])

    def model_fn(x, model_t):
        return 0.5 * x

    results = {}
    for dtype in (torch.float64, torch.bfloat16):
        x_t = process.q_sample(x0.to(dtype), t, noise.to(dtype))
        step = process.p_mean_variance(model_fn, x_t, t)
        ddim = DDIMSampler(process, eta=0.0).step(model_fn, x_t, 5)
        results[dtype] = (x_t, step.mean, step.pred_x0, ddim.sample)
    for exact, low in zip(results[torch.float64], results[torch.bfloat16], strict=True):
        assert low.dtype == torch.bfloat16
        torch.testing.assert_close(low.double(), exact, rtol=0.03, atol=0.03)


def test_guided_model_at_a_respaced_step():
    """Both guidance passes see the same original step; (1 + 2) 1.0 - 2 (-0.5) = 4."""
    process = GaussianDiffusion(THREE.respace([0, 2]), "x0")
    steps = []

    def model(x_t, model_t, cond):
        steps.append(model_t.tolist())
        return cond.sum(dim=1, keepdim=True).expand_as(x_t)

    cond, null = torch.ones(2, 1, dtype=torch.float64), torch.full((1,), -0.5, dtype=torch.float64)
    x_t = _randn((2, 3), 0)
    out = process.p_mean_variance(guided(model, cond, null, 2.0), x_t, torch.tensor(1))
    torch.testing.assert_close(out.pred_x0, torch.full((2, 3), 4.0, dtype=torch.float64))
    assert steps == [[2, 2, 2, 2]]


# ------------------------------------------------------------------------ loss-aware steps
def test_loss_aware_with_diffrec_defaults_by_hand():
    """History 10, 0.1% uniform: p_t = 0.999 rms_t / sum(rms) + 0.001 / T."""
    sampler = LossAwareSampler(2)
    sampler.update(torch.zeros(10, dtype=torch.long), torch.full((10,), 3.0))
    sampler.update(torch.ones(9, dtype=torch.long), torch.tensor([1.0] * 5 + [7.0] * 4))
    assert not sampler.warmed_up  # step 2 has 9 of its 10 losses
    torch.testing.assert_close(sampler.probabilities(), _f64(0.5, 0.5))
    sampler.update(torch.tensor([1]), torch.tensor([7.0]))
    # rms = (3, sqrt((5 * 1 + 5 * 49) / 10)) = (3, 5)
    expected = 0.999 * np.array([3 / 8, 5 / 8]) + 0.0005
    np.testing.assert_allclose(sampler.probabilities().numpy(), expected, rtol=1e-12)
    t, weights = sampler.sample(64, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(weights.numpy(), 1 / (2 * expected[t.numpy()]), rtol=1e-6)
    # Ten new losses of 1.0 at step 2 push out all the old ones: rms = (3, 1).
    sampler.update(torch.ones(10, dtype=torch.long), torch.ones(10))
    expected = 0.999 * np.array([0.75, 0.25]) + 0.0005
    np.testing.assert_allclose(sampler.probabilities().numpy(), expected, rtol=1e-12)
    # A non-finite history falls back to uniform rather than sampling from NaN.
    sampler.update(torch.tensor([0]), torch.tensor([float("nan")]))
    torch.testing.assert_close(sampler.probabilities(), _f64(0.5, 0.5))


def test_ddim_rejects_negative_eta():
    with pytest.raises(ValueError, match="eta"):
        DDIMSampler(GaussianDiffusion(TWO), eta=-0.1)
