"""The Gaussian process against Monte-Carlo, Bayes' rule and torch.distributions."""

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from recdiff.diffusion import (
    GaussianDiffusion,
    LossWeighting,
    NoiseSchedule,
    Prediction,
    nll_bound,
    normal_kl,
    prior_kl,
    vb_term,
)


def _process(prediction="eps", steps=50):
    return GaussianDiffusion(NoiseSchedule.linear(steps, 1e-3, 0.2), prediction)


def test_q_sample_moments_match_closed_form():
    process = _process()
    x0 = torch.tensor([[1.5, -2.0, 0.0]], dtype=torch.float64).expand(200_000, 3)
    torch.manual_seed(0)
    for index in (0, 10, 49):
        t = torch.full((x0.shape[0],), index)
        x_t = process.q_sample(x0, t)
        abar = process.schedule.alpha_bar[index]
        np.testing.assert_allclose(x_t.mean(0), np.sqrt(abar) * x0[0].numpy(), atol=0.01)
        np.testing.assert_allclose(x_t.var(0), np.full(3, 1 - abar), rtol=0.02)


@pytest.mark.parametrize("index", [1, 5, 30, 49])
def test_posterior_agrees_with_bayes_rule_on_a_grid(index):
    """q(x_{t-1} | x_t, x_0) prop. to q(x_t | x_{t-1}) q(x_{t-1} | x_0), integrated numerically."""
    process = _process()
    s = process.schedule
    x0, x_t = 0.7, -0.4
    beta, abar_prev = s.betas[index], s.alpha_bar_prev[index]
    grid = np.linspace(-8, 8, 400_001)
    log_density = -((x_t - np.sqrt(1 - beta) * grid) ** 2) / (2 * beta) - (
        (grid - np.sqrt(abar_prev) * x0) ** 2
    ) / (2 * (1 - abar_prev))
    weights = np.exp(log_density - log_density.max())
    weights /= weights.sum()
    mean = (weights * grid).sum()
    var = (weights * (grid - mean) ** 2).sum()
    t = torch.tensor([index])
    post = process.q_posterior(
        torch.tensor([[x0]], dtype=torch.float64), torch.tensor([[x_t]], dtype=torch.float64), t
    )
    assert float(post.mean) == pytest.approx(mean, abs=1e-6)
    assert float(post.variance) == pytest.approx(var, rel=1e-4)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_prediction_conversions_round_trip(prediction):
    process = _process(prediction)
    torch.manual_seed(1)
    x0 = torch.randn(64, 5, dtype=torch.float64)
    noise = torch.randn_like(x0)
    t = torch.randint(0, 50, (64,))
    x_t = process.q_sample(x0, t, noise)
    target = process.target(x0, t, noise)
    pred_x0, pred_eps = process.to_x0_eps(target, x_t, t)
    torch.testing.assert_close(pred_x0, x0)
    torch.testing.assert_close(pred_eps, noise)


def test_normal_kl_agrees_with_torch_distributions():
    torch.manual_seed(2)
    m1, m2 = torch.randn(100), torch.randn(100)
    lv1, lv2 = torch.randn(100), torch.randn(100)
    expected = kl_divergence(Normal(m1, (0.5 * lv1).exp()), Normal(m2, (0.5 * lv2).exp()))
    torch.testing.assert_close(normal_kl(m1, lv1, m2, lv2), expected, rtol=1e-5, atol=1e-6)


def test_prior_kl_is_small_for_a_schedule_that_reaches_noise():
    process = GaussianDiffusion(NoiseSchedule.linear(1000))
    x0 = torch.ones(3, 4, dtype=torch.float64)
    abar = process.schedule.alpha_bar[-1]
    # KL(N(sqrt(abar) x0, 1-abar) || N(0,1)) per dim, by hand.
    per_dim = 0.5 * (-np.log(1 - abar) + (1 - abar) + abar - 1)
    torch.testing.assert_close(
        prior_kl(process, x0), torch.full((3,), 4 * per_dim, dtype=torch.float64)
    )


def test_exact_x0_model_has_zero_kl_terms_and_reverse_mean_is_posterior_mean():
    process = _process("x0")
    torch.manual_seed(3)
    x0 = torch.randn(16, 4, dtype=torch.float64)
    t = torch.randint(1, 50, (16,))
    x_t = process.q_sample(x0, t)

    def oracle(x, model_t):
        return x0

    out = process.p_mean_variance(oracle, x_t, t)
    torch.testing.assert_close(out.mean, process.q_posterior(x0, x_t, t).mean)
    torch.testing.assert_close(
        vb_term(process, oracle, x0, x_t, t), torch.zeros(16, dtype=torch.float64)
    )


def test_snr_difference_loss_equals_the_elbo_term_per_dimension():
    """With x0 prediction and posterior variance, 1/2 (SNR(t-1) - SNR(t)) ||x0_hat - x0||^2 is L_{t-1}."""
    process = _process("x0")
    torch.manual_seed(4)
    x0 = torch.randn(32, 6, dtype=torch.float64)
    noise = torch.randn_like(x0)
    t = torch.randint(1, 50, (32,))  # t > 1 in paper steps
    x_t = process.q_sample(x0, t, noise)
    wrong = x0 + 0.3 * torch.randn_like(x0)

    def model(x, model_t):
        return wrong

    losses = process.training_losses(model, x0, t, noise, weighting=LossWeighting.SNR_DIFF)
    kl = vb_term(process, model, x0, x_t, t)
    torch.testing.assert_close(losses["loss"] * 6, kl)


def test_loss_weights_hand_computed():
    process = GaussianDiffusion(NoiseSchedule(np.array([0.1, 0.2, 0.3])), "x0")
    weights = process.loss_weights(torch.tensor([0, 1, 2]), torch.zeros(3, dtype=torch.float64))
    snr = [9.0, 0.72 / 0.28, 0.504 / 0.496]
    torch.testing.assert_close(
        weights,
        torch.tensor([1.0, 0.5 * (snr[0] - snr[1]), 0.5 * (snr[1] - snr[2])], dtype=torch.float64),
    )


def test_training_loss_targets_per_prediction():
    torch.manual_seed(5)
    x0 = torch.randn(8, 3)
    noise = torch.randn_like(x0)
    t = torch.randint(0, 50, (8,))
    for prediction, target in [("eps", noise), ("x0", x0)]:
        process = _process(prediction)
        out = process.training_losses(lambda x, s, target=target: target, x0, t, noise)
        torch.testing.assert_close(out["mse"], torch.zeros(8))
    process = _process("v")
    v = process.v_target(x0, t, noise)
    torch.testing.assert_close(
        process.training_losses(lambda x, s: v, x0, t, noise)["loss"], torch.zeros(8)
    )


@pytest.mark.parametrize(("variance", "slack"), [("beta", 0.1), ("posterior", 1.2)])
def test_nll_bound_of_gaussian_data_with_the_optimal_denoiser(variance, slack):
    """For x0 ~ N(m, s^2) the Bayes-optimal x0 predictor is linear; the bound must lie above the true
    NLL. With sigma_t^2 = beta_t it is within 0.1 nat; the smaller posterior variance under-covers the
    true reverse spread at small t, so its bound is looser (measured 2.17 vs 1.20 nats)."""
    process = GaussianDiffusion(NoiseSchedule.linear(200, 5e-4, 0.1), "x0", variance)
    m, s = 0.5, 0.8
    abar = process.alpha_bar

    def optimal(x_t, model_t):
        a = abar[model_t].to(x_t.dtype)[:, None]
        gain = a.sqrt() * s**2 / (a * s**2 + 1 - a)
        return m + gain * (x_t - a.sqrt() * m)

    torch.manual_seed(6)
    x0 = m + s * torch.randn(4000, 1, dtype=torch.float64)
    bound = nll_bound(process, optimal, x0, torch.Generator().manual_seed(0))
    true_nll = float(-Normal(m, s).log_prob(x0).mean())
    assert bound["terms"].shape == (4000, 200)
    mean_bound = float(bound["total"].mean())
    assert true_nll - 0.01 < mean_bound < true_nll + slack


def test_prediction_enum_accepts_strings():
    assert GaussianDiffusion(NoiseSchedule.linear(5), "v").prediction is Prediction.V
    with pytest.raises(ValueError):
        GaussianDiffusion(NoiseSchedule.linear(5), "score")


@pytest.mark.parametrize("prediction", ["x0", "eps", "v"])
def test_mean_coefficients_hand_computed(prediction):
    # T = 2 with betas (0.1, 0.2): abar = (0.9, 0.72). At t index 1 the posterior mean is
    # c0 x0_hat + ct x_t with c0 = 0.2 sqrt(0.9) / 0.28 and ct = 0.1 sqrt(0.8) / 0.28.
    process = GaussianDiffusion(NoiseSchedule(np.array([0.1, 0.2])), prediction)
    c0, ct = 0.2 * np.sqrt(0.9) / 0.28, 0.1 * np.sqrt(0.8) / 0.28
    sab, s1m = np.sqrt(0.72), np.sqrt(0.28)
    expected = {  # x0_hat = p x_t + q f, so the mean is (ct + c0 p) x_t + c0 q f
        "x0": (ct, c0),
        "eps": (ct + c0 / sab, -c0 * s1m / sab),
        "v": (ct + c0 * sab, -c0 * s1m),
    }[prediction]
    np.testing.assert_allclose(process.mean_coefficients(1), expected, rtol=1e-12)
    # At t index 0 the mean is x0_hat itself (abar_prev = 1): x0_hat's own two weights.
    sab0, s1m0 = np.sqrt(0.9), np.sqrt(0.1)
    expected_0 = {"x0": (0.0, 1.0), "eps": (1 / sab0, -s1m0 / sab0), "v": (sab0, -s1m0)}
    np.testing.assert_allclose(
        process.mean_coefficients(0), expected_0[prediction], rtol=1e-12, atol=1e-15
    )
    with pytest.raises(ValueError, match=r"0\.\.1"):
        process.mean_coefficients(2)
