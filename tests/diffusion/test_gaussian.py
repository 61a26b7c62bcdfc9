"""The Gaussian process against Monte-Carlo, Bayes' rule and torch.distributions."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Normal, kl_divergence

from recdiff.diffusion import (
    DDIMSampler,
    GaussianDiffusion,
    LossWeighting,
    NoiseSchedule,
    Prediction,
    nll_bound,
    normal_kl,
    prior_kl,
    vb_term,
)

# Two steps with betas (0.1, 0.2): abar = (0.9, 0.72), SNR = (9, 18/7).
TWO = NoiseSchedule(np.array([0.1, 0.2]))


def _process(prediction="eps", steps=50):
    return GaussianDiffusion(NoiseSchedule.linear(steps, 1e-3, 0.2), prediction)


def _f64(*values):
    return torch.tensor(values, dtype=torch.float64)


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


@pytest.mark.parametrize(
    ("schedule", "variance", "slack"),
    [
        (NoiseSchedule.linear(200, 5e-4, 0.1), "beta", 0.1),
        (NoiseSchedule.linear(200, 5e-4, 0.1), "posterior", 1.2),
        # Measured 0.009 nat above. With beta~_2 as L_0's decoder variance (improved-diffusion's
        # choice, about beta_1 / 2) it was 0.119: the bound did not close as T grew.
        (NoiseSchedule.linear(1000), "beta", 0.05),
    ],
)
def test_nll_bound_of_gaussian_data_with_the_optimal_denoiser(schedule, variance, slack):
    """For x0 ~ N(m, s^2) the Bayes-optimal x0 predictor is linear; the bound must lie above the true
    NLL. With sigma_t^2 = beta_t (the decoder's sigma_1^2 = beta_1 too) it closes as T grows; the
    smaller posterior variance under-covers the true reverse spread at small t, so its bound is
    looser (measured 0.97 nat above at T = 200, against 0.02 with beta_t)."""
    process = GaussianDiffusion(schedule, "x0", variance)
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
    assert bound["terms"].shape == (4000, schedule.num_steps)
    mean_bound = float(bound["total"].mean())
    assert true_nll - 0.01 < mean_bound < true_nll + slack


def test_prediction_enum_accepts_strings():
    assert GaussianDiffusion(NoiseSchedule.linear(5), "v").prediction is Prediction.V
    with pytest.raises(ValueError, match=r"prediction='score' is not one of 'eps', 'x0', 'v'"):
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


class _Holder(nn.Module):
    """A model that owns a process beside its weights, as DreamRec's does."""

    def __init__(self, schedule):
        super().__init__()
        self.linear = nn.Linear(2, 2)
        self.process = GaussianDiffusion(schedule, "x0")


@pytest.mark.parametrize(
    ("cast", "dtype"),
    [
        (lambda m: m.float(), torch.float32),
        (lambda m: m.half(), torch.float16),
        (lambda m: m.bfloat16(), torch.bfloat16),
        (lambda m: m.to(torch.bfloat16), torch.bfloat16),
        (lambda m: m.to("cpu", torch.float32), torch.float32),
    ],
    ids=["float", "half", "bfloat16", "to-bfloat16", "to-cpu-float32"],
)
def test_dtype_casts_leave_the_schedule_in_float64(cast, dtype):
    # DiffRec's schedule: 1 - abar_1 = 1e-5 would read 0 from a bfloat16 or float16 table (an
    # infinite prior KL, a DDIM sigma dividing by 0) and be 0.14% off from a float32 one.
    schedule = NoiseSchedule.diffrec(40, 5e-3, 5e-3, 1e-2)
    reference = dict(GaussianDiffusion(schedule, "x0").named_buffers())
    process, holder = GaussianDiffusion(schedule, "x0"), _Holder(schedule)
    assert cast(process) is process
    cast(holder)
    assert holder.linear.weight.dtype == dtype  # the cast still reaches everything else
    for cast_process in (process, holder.process):
        buffers = dict(cast_process.named_buffers())
        assert buffers.keys() == reference.keys()
        for name, expected in reference.items():
            assert buffers[name].dtype == torch.float64, name
            assert torch.equal(buffers[name], expected), name
        x0 = torch.ones(1, 3, dtype=dtype)
        assert float(cast_process.q_mean_variance(x0, torch.tensor([0]))[1]) > 0
        assert torch.isfinite(prior_kl(cast_process, x0)).all()
        assert DDIMSampler(cast_process, eta=1.0).sigma(5) > 0


def test_a_cast_with_a_device_move_moves_the_float64_tables():
    process = GaussianDiffusion(TWO).to("meta", torch.bfloat16)
    for name, buffer in process.named_buffers():
        assert (buffer.device.type, buffer.dtype) == ("meta", torch.float64), name


def test_schedule_tables_stay_out_of_checkpoints():
    """Rebuilt from the config, never stored: a cast model saves and loads as before."""
    holder = _Holder(TWO).to(torch.bfloat16)
    state = holder.state_dict()
    assert sorted(state) == ["linear.bias", "linear.weight"]
    fresh = _Holder(TWO)
    fresh.load_state_dict(state)
    assert fresh.linear.weight.dtype == torch.float32
    torch.testing.assert_close(fresh.process.alpha_bar, _f64(0.9, 0.72))


def _constant(values):
    def model_fn(x_t, model_t):
        return values.expand_as(x_t).to(x_t.dtype)

    return model_fn


def test_p_mean_variance_clamps_the_x0_prediction_before_the_posterior_mean():
    """At t = 2: mu = c0 clamp(x0_hat) + ct x_t, c0 = 0.2 sqrt(0.9) / 0.28, ct = 0.1 sqrt(0.8) / 0.28."""
    process = GaussianDiffusion(TWO, "x0")
    x_t, x0_hat = _f64(0.3, -1.1, 2.0)[None], _f64(2.0, -3.0, 0.5)
    clipped = _f64(1.0, -1.0, 0.5)[None]
    c0, ct = 0.2 * np.sqrt(0.9) / 0.28, 0.1 * np.sqrt(0.8) / 0.28
    for t in (torch.tensor([1]), torch.tensor(1)):  # per example, and one step for all
        out = process.p_mean_variance(_constant(x0_hat), x_t, t, clip_x0=(-1.0, 1.0))
        torch.testing.assert_close(out.pred_x0, clipped)
        torch.testing.assert_close(out.mean, c0 * clipped + ct * x_t)
    unclipped = process.p_mean_variance(_constant(x0_hat), x_t, torch.tensor([1]))
    torch.testing.assert_close(unclipped.mean, c0 * x0_hat[None] + ct * x_t)


@pytest.mark.parametrize(
    ("prediction", "expected"),
    # Output = target + delta with mean(delta^2) = 0.125 on both rows. The x0 error is
    # delta / sqrt(SNR_t) for eps and sqrt(1 - abar_t) delta for v. Row 0 (t = 1) has weight 1,
    # row 1 (t = 2) has 1/2 (9 - 18/7) = 45/14: eps gives 0.125 / 9 and 45/14 * 7/18 * 0.125,
    # v gives 0.1 * 0.125 and 45/14 * 0.28 * 0.125.
    [("eps", (0.125 / 9, 0.15625)), ("v", (0.0125, 0.1125))],
)
def test_snr_difference_weights_apply_to_the_x0_error_by_hand(prediction, expected):
    process = GaussianDiffusion(TWO, prediction)
    x0 = _f64(1.0, -2.0, 0.5, 0.0).reshape(2, 2)
    noise = _f64(0.5, 3.0, -1.0, 0.25).reshape(2, 2)
    t = torch.tensor([0, 1])
    abar = _f64(0.9, 0.72)[:, None]
    if prediction == "eps":
        target = noise
    else:
        target = abar.sqrt() * noise - (1 - abar).sqrt() * x0
    delta = _f64(0.3, -0.4, -0.4, 0.3).reshape(2, 2)

    def model_fn(x_t, model_t):
        return target + delta

    out = process.training_losses(model_fn, x0, t, noise, weighting="snr_diff")
    torch.testing.assert_close(out["mse"], _f64(0.125, 0.125))
    torch.testing.assert_close(out["loss"], _f64(*expected))


def test_training_on_a_respaced_process_calls_the_model_with_original_steps():
    # Keeping steps 1 and 3 of (0.1, 0.2, 0.3): the kept abar are (0.9, 0.504).
    process = GaussianDiffusion(NoiseSchedule(np.array([0.1, 0.2, 0.3])).respace([0, 2]), "x0")
    seen = []

    def model_fn(x_t, model_t):
        seen.append(model_t.tolist())
        return torch.zeros_like(x_t)

    x0, noise = _f64(1.0, 2.0)[:, None], _f64(0.5, -0.5)[:, None]
    out = process.training_losses(model_fn, x0, torch.tensor([0, 1]), noise)
    assert seen == [[0, 2]]
    torch.testing.assert_close(out["pred_x0"], torch.zeros(2, 1, dtype=torch.float64))
    torch.testing.assert_close(out["mse"], _f64(1.0, 4.0))
