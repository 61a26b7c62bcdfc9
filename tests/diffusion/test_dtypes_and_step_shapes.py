"""The DDPM core as a library: the chained reverse pass in float64, float16 and bfloat16, a
sampler step given one step per row, and step embeddings too small for a sinusoid, each checked
against an independent computation."""

from __future__ import annotations

import math

import pytest
import torch

from recdiff.diffusion import DDIMSampler, DDPMSampler, GaussianDiffusion, NoiseSchedule
from recdiff.nn import MLPDenoiser, timestep_embedding


def _diffrec_process(prediction: str = "x0") -> GaussianDiffusion:
    return GaussianDiffusion(NoiseSchedule.diffrec(40, 5e-3, 5e-3, 1e-2), prediction=prediction)


@pytest.mark.parametrize("prediction", ["x0", "eps", "v"])
def test_reverse_mean_chain_of_a_float64_network_is_the_float64_posterior_mean_pass(prediction):
    # It carried the chain in float32 and crashed on a network cast with .double().
    process = _diffrec_process(prediction)
    torch.manual_seed(0)
    net = MLPDenoiser(7, [16, 8], cond_dim=2).double().eval()
    x = torch.randn(3, 7, dtype=torch.float64)
    cond = torch.randn(3, 2, dtype=torch.float64)
    expected = DDPMSampler(process, add_noise=False).sample(lambda x_t, t: net(x_t, t, cond), x)
    got = net.reverse_mean_chain(x, process.mean_chain, cond)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reverse_mean_chain_of_a_half_precision_network_runs_and_stays_near_the_pass(dtype):
    process = _diffrec_process()
    torch.manual_seed(0)
    net = MLPDenoiser(7, [16], cond_dim=2).eval()
    x, cond = torch.randn(3, 7), torch.randn(3, 2)
    reference = DDPMSampler(process, add_noise=False).sample(lambda x_t, t: net(x_t, t, cond), x)
    low = net.to(dtype)
    got = low.reverse_mean_chain(x.to(dtype), process.mean_chain, cond.to(dtype))
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, reference, rtol=0.0, atol=0.05)


@pytest.mark.parametrize("make", [lambda p: DDPMSampler(p), lambda p: DDIMSampler(p, eta=0.5)])
def test_a_sampler_step_given_one_step_per_row_is_refused_naming_the_shape(make):
    # DDPM's step failed with "Boolean value of Tensor with more than one value is ambiguous",
    # DDIM's with "only one element tensors can be converted to Python scalars".
    process = _diffrec_process()
    sampler = make(process)
    x_t = torch.randn(2, 3)
    with pytest.raises(ValueError, match=r"one step index for the whole batch.*\(2,\)"):
        sampler.step(lambda x, t: x, x_t, torch.tensor([3, 3]))
    # One step, as an int, a 0-d tensor or a [1] tensor for a batch of one, still works.
    one = sampler.step(lambda x, t: x, x_t[:1], torch.tensor([3]), torch.Generator().manual_seed(0))
    alone = sampler.step(lambda x, t: x, x_t[:1], 3, torch.Generator().manual_seed(0))
    torch.testing.assert_close(one.sample, alone.sample)


@pytest.mark.parametrize("time_dim", [0, 1])
def test_a_step_embedding_without_a_sinusoid_is_refused_when_the_denoiser_is_built(time_dim):
    # time_dim=1 gave an empty [b, 0] embedding and "mat1 and mat2 shapes cannot be multiplied
    # (1x0 and 1x1)" at the first call; time_dim=0 built and failed at the first call too.
    with pytest.raises(ValueError, match=rf"step embedding dim must be >= 2.*got {time_dim}"):
        MLPDenoiser(5, [8], time_dim=time_dim)
    with pytest.raises(ValueError, match="step embedding dim must be >= 2"):
        timestep_embedding(torch.tensor([3]), time_dim)
    # The smallest valid size is [cos t, sin t] (one frequency, w_0 = 1), by hand.
    torch.testing.assert_close(
        timestep_embedding(torch.tensor([2]), 2), torch.tensor([[math.cos(2.0), math.sin(2.0)]])
    )
    odd = timestep_embedding(torch.tensor([2]), 3)
    torch.testing.assert_close(odd, torch.tensor([[math.cos(2.0), math.sin(2.0), 0.0]]))


def test_a_bfloat16_ddpm_step_draws_noise_of_the_schedules_spread():
    """x_t in bfloat16: sigma_t came from the log-variance rounded to bfloat16, 1.36% off at
    step 28 of this schedule (log-variance -8.21, where bfloat16's spacing is 1/16). With x_t
    = 0 and an x0 model predicting 0 the step is sigma_t z alone, which must now be within
    bfloat16's rounding (2^-8) of the float64 sigma_t times the same z."""
    from recdiff.diffusion import DDPMSampler, GaussianDiffusion, NoiseSchedule
    from recdiff.diffusion.samplers import randn_rows

    process = GaussianDiffusion(NoiseSchedule.linear(100, 1e-5, 1e-3), prediction="x0")
    x_t = torch.zeros(64, 32, dtype=torch.bfloat16)
    state = DDPMSampler(process).step(
        lambda x, t: torch.zeros_like(x), x_t, 28, torch.Generator().manual_seed(0)
    )
    z = randn_rows((64, 32), torch.Generator().manual_seed(0), dtype=torch.bfloat16)
    sigma = math.exp(0.5 * float(process.reverse_log_variance[28]))
    assert state.sample.dtype == torch.bfloat16
    error = (state.sample.double() / (sigma * z.double()) - 1).abs()
    assert float(error.max()) <= 2.0**-8
