"""DDPM / DDIM samplers, respacing, the noised start and classifier-free guidance."""

import numpy as np
import pytest
import torch

from recdiff.diffusion import (
    DDIMSampler,
    DDPMSampler,
    GaussianDiffusion,
    NoiseSchedule,
    drop_condition,
    guided,
    noise_to,
    randn_rows,
)

MEAN, STD = 0.5, 0.6  # data x0 ~ N(MEAN, STD^2), independently per dimension
# DDPM's own schedule: ancestral sampling with the fixed posterior variance is only exact as the
# steps get small (with T = 100 it under-disperses by ~6%), so the distribution tests use T = 1000.
FULL = NoiseSchedule.linear(1000)


def optimal_x0(process):
    """The Bayes-optimal x0 predictor E[x0 | x_t] for Gaussian data, on the model's steps."""
    full_abar = GaussianDiffusion(FULL).alpha_bar

    def model_fn(x_t, model_t):
        a = full_abar[model_t].to(x_t.dtype)[:, None]
        gain = a.sqrt() * STD**2 / (a * STD**2 + 1 - a)
        return MEAN + gain * (x_t - a.sqrt() * MEAN)

    return model_fn


def _process(spaced=None):
    return GaussianDiffusion(FULL if spaced is None else FULL.spaced(spaced), "x0")


def test_ddim_eta_one_step_equals_the_ddpm_step_exactly():
    process = _process()
    model = optimal_x0(process)
    x_t = torch.randn(50, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for t in (1, 200, 999):
        ddpm = DDPMSampler(process).step(model, x_t, t, torch.Generator().manual_seed(1))
        ddim = DDIMSampler(process, eta=1.0).step(model, x_t, t, torch.Generator().manual_seed(1))
        torch.testing.assert_close(ddim.sample, ddpm.sample)
        assert DDIMSampler(process, eta=1.0).sigma(t) ** 2 == pytest.approx(
            process.schedule.posterior_variance[t]
        )


@pytest.mark.parametrize(
    ("make", "tolerance"),
    [
        (lambda: DDPMSampler(_process()), 0.03),
        (lambda: DDIMSampler(_process(), eta=1.0), 0.03),
        (lambda: DDIMSampler(_process(), eta=0.0), 0.03),
        (lambda: DDIMSampler(_process(spaced=100), eta=0.0), 0.03),
        (lambda: DDPMSampler(_process(spaced=250)), 0.03),
    ],
)
def test_samplers_recover_the_data_distribution_with_the_optimal_denoiser(make, tolerance):
    sampler = make()
    generator = torch.Generator().manual_seed(2)
    x_T = torch.randn(5_000, 2, dtype=torch.float64, generator=generator)
    x0 = sampler.sample(optimal_x0(sampler.process), x_T, generator=generator)
    np.testing.assert_allclose(x0.mean(0).numpy(), [MEAN, MEAN], atol=tolerance)
    np.testing.assert_allclose(x0.std(0).numpy(), [STD, STD], atol=tolerance)


def test_ddpm_last_step_returns_the_x0_prediction_without_noise():
    process = _process()
    x_1 = torch.randn(4, 2, dtype=torch.float64)
    state = DDPMSampler(process).step(optimal_x0(process), x_1, 0)
    torch.testing.assert_close(state.sample, state.pred_x0)


def test_respaced_process_calls_the_model_with_original_steps():
    process = _process(spaced=5)
    seen = []

    def model(x_t, model_t):
        seen.append(int(model_t[0]))
        return torch.zeros_like(x_t)

    DDPMSampler(process, add_noise=False).sample(model, torch.zeros(2, 3))
    assert seen == [999, 749, 500, 250, 0]


def test_posterior_mean_sampling_is_deterministic():
    process = _process()
    x = torch.randn(3, 2, dtype=torch.float64)
    model = optimal_x0(process)
    a = DDPMSampler(process, add_noise=False).sample(model, x, start=10)
    b = DDPMSampler(process, add_noise=False).sample(model, x, start=10)
    torch.testing.assert_close(a, b)


def test_noise_to_starts_from_the_input_noised_to_t_prime():
    process = _process()
    x0 = torch.ones(4, 3, dtype=torch.float64)
    assert noise_to(process, x0, 0) is x0
    noised = noise_to(process, x0, 5, torch.Generator().manual_seed(3))
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(3), dtype=x0.dtype)
    torch.testing.assert_close(noised, process.q_sample(x0, torch.full((4,), 4), noise))
    with pytest.raises(ValueError, match="noise_steps"):
        noise_to(process, x0, 1001)


def test_guidance_combines_conditional_and_unconditional_passes():
    calls = []

    def model(x_t, t, cond):
        calls.append(x_t.shape[0])
        return x_t + cond

    x = torch.ones(3, 2)
    t = torch.zeros(3, dtype=torch.long)
    cond = torch.full((3, 2), 2.0)
    null = torch.full((2,), -1.0)
    out = guided(model, cond, null, scale=4.0)(x, t)
    # (1 + 4) (1 + 2) - 4 (1 - 1) = 15
    torch.testing.assert_close(out, torch.full((3, 2), 15.0))
    assert calls == [6]  # both passes in one batch
    calls.clear()
    torch.testing.assert_close(guided(model, cond, null, scale=0.0)(x, t), torch.full((3, 2), 3.0))
    assert calls == [3]  # w = 0 skips the unconditional pass
    with pytest.raises(ValueError, match="scale"):
        guided(model, cond, null, scale=-1.0)


def test_drop_condition_replaces_rows_with_the_null_embedding():
    cond = torch.ones(10_000, 4)
    null = torch.zeros(4)
    assert drop_condition(cond, null, 0.0) is cond
    assert torch.all(drop_condition(cond, null, 1.0) == 0)
    dropped = drop_condition(cond, null, 0.1, torch.Generator().manual_seed(0))
    rows = (dropped == 0).all(dim=1)
    assert ((dropped == 0).any(dim=1) == rows).all()  # whole rows, never parts
    assert float(rows.double().mean()) == pytest.approx(0.1, abs=0.01)


def test_one_generator_per_row_draws_each_row_as_a_batch_of_one():
    seeds = [5, 7, 5]
    rows = randn_rows((3, 4), [torch.Generator().manual_seed(s) for s in seeds])
    for row, seed in zip(rows, seeds, strict=True):
        alone = torch.randn((1, 4), generator=torch.Generator().manual_seed(seed))[0]
        torch.testing.assert_close(row, alone, rtol=0, atol=0)
    with pytest.raises(ValueError, match="one per row"):
        randn_rows((3, 4), [torch.Generator()] * 2)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_per_row_generators_make_a_row_sample_independent_of_its_batch(sampler):
    process = GaussianDiffusion(NoiseSchedule.linear(20), prediction="eps")
    chosen = DDPMSampler(process) if sampler == "ddpm" else DDIMSampler(process, eta=0.7)

    def model_fn(x, t):  # any row-wise function of (x_t, t)
        return 0.3 * x + 0.01 * t[:, None].float()

    def generators(n):
        return [torch.Generator().manual_seed(11) for _ in range(n)]

    x = randn_rows((5, 3), generators(5))
    batch = chosen.sample(model_fn, x, generator=generators(5))
    alone = chosen.sample(model_fn, x[2:3], generator=generators(1))
    torch.testing.assert_close(batch[2:3], alone, rtol=0, atol=1e-6)
    # One shared generator gives each row a different draw (the batched default).
    shared = chosen.sample(model_fn, x, generator=torch.Generator().manual_seed(11))
    assert not torch.allclose(shared[0], shared[1])


@pytest.mark.parametrize("prediction", ["x0", "eps"])
def test_ddim_recomputes_eps_from_the_clipped_x0(prediction):
    """Betas (0.1, 0.2), from t = 2 (abar 0.72) to t = 1 (abar 0.9) with eta = 0:
    x_1 = sqrt(0.9) x0_c + sqrt(0.1) (x_t - sqrt(0.72) x0_c) / sqrt(0.28), x0_c the clipped x0."""
    process = GaussianDiffusion(NoiseSchedule(np.array([0.1, 0.2])), prediction)
    x_t = torch.tensor([[3.0, -2.0, 0.2]], dtype=torch.float64)
    output = torch.tensor([0.1, 0.5, -0.3], dtype=torch.float64)
    if prediction == "x0":
        x0_hat = output
    else:
        x0_hat = (x_t - np.sqrt(0.28) * output) / np.sqrt(0.72)
    x0_clipped = x0_hat.clamp(-0.25, 0.25)
    assert not torch.equal(x0_clipped, x0_hat)  # the clip binds on some entries
    eps = (x_t - np.sqrt(0.72) * x0_clipped) / np.sqrt(0.28)
    state = DDIMSampler(process, clip_x0=(-0.25, 0.25)).step(
        lambda x, model_t: output.expand_as(x), x_t, 1
    )
    torch.testing.assert_close(state.pred_x0, x0_clipped.expand(1, 3))
    torch.testing.assert_close(state.sample, np.sqrt(0.9) * x0_clipped + np.sqrt(0.1) * eps)


def test_row_blocks_give_each_row_its_draws_however_the_rows_are_batched():
    from recdiff.diffusion.samplers import RowBlocks, randn_rows

    def draws(first, n, steps=3):  # one sampling run over rows first..first+n-1
        blocks = RowBlocks(seed=5, first=first, block=4)
        return torch.stack([randn_rows((n, 2), blocks) for _ in range(steps)])

    whole = draws(0, 10)
    batched = torch.cat([draws(0, 3), draws(3, 6), draws(9, 1)], dim=1)  # straddles blocks
    assert torch.equal(whole, batched)
    rows = whole.permute(1, 0, 2).reshape(10, -1)
    assert len({tuple(r.tolist()) for r in rows}) == 10  # no two rows share draws
    assert not torch.equal(draws(0, 4), draws(4, 4))  # blocks draw apart
    other_seed = torch.stack([randn_rows((10, 2), RowBlocks(seed=6, first=0, block=4))])
    assert not torch.equal(whole[:1], other_seed)
