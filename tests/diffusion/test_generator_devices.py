"""Generators on another device than the tensors they seed (a CPU generator for CUDA sampling, a
CUDA one for the CPU-side timestep draw): torch refuses both ("Expected a 'cuda' device type for
generator"); the diffusion core draws where the generator lives and moves the draws.

This machine has no GPU: the "meta" device stands in for the other device. A draw made there
ignores any generator, so a generator whose state advanced is one the draws really came from.
"""

from __future__ import annotations

from unittest import mock

import pytest
import torch

from recdiff.diffusion import (
    GaussianDiffusion,
    LossAwareSampler,
    NoiseSchedule,
    UniformSampler,
    drop_condition,
    nll_bound,
    noise_to,
    randn_rows,
)

META = torch.device("meta")


def _advanced(generator: torch.Generator, seed: int) -> bool:
    return not torch.equal(generator.get_state(), torch.Generator().manual_seed(seed).get_state())


def test_a_cpu_generator_seeds_draws_for_another_device():
    generator = torch.Generator().manual_seed(3)
    out = randn_rows((4, 5), generator, META)
    assert out.device == META and out.shape == (4, 5)
    assert _advanced(generator, 3)  # drawn from it on the CPU, then moved


def test_per_row_cpu_generators_seed_draws_for_another_device():
    generators = [torch.Generator().manual_seed(s) for s in (1, 2)]
    out = randn_rows((2, 3), generators, META, torch.float32)
    assert out.device == META and out.dtype == torch.float32
    assert all(_advanced(g, s) for g, s in zip(generators, (1, 2), strict=True))


def test_draws_on_the_generators_own_device_are_torchs_own():
    """Same device type: exactly torch's draw (every seeded CPU number stays as it was)."""
    expected = torch.randn((3, 4), generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    got = randn_rows((3, 4), torch.Generator().manual_seed(5), "cpu", torch.float64)
    assert torch.equal(got, expected)
    rows = randn_rows((2, 4), [torch.Generator().manual_seed(s) for s in (5, 6)], None)
    assert torch.equal(rows[0], torch.randn(1, 4, generator=torch.Generator().manual_seed(5))[0])
    from recdiff.diffusion.samplers import draw_on_generator_device

    uniform = draw_on_generator_device(torch.rand, (6,), torch.Generator().manual_seed(2), "cpu")
    assert torch.equal(uniform, torch.rand(6, generator=torch.Generator().manual_seed(2)))


def test_noise_to_drop_condition_and_the_bound_take_a_generator_of_another_device():
    process = GaussianDiffusion(NoiseSchedule.linear(3, 0.1, 0.3), "x0")
    x0 = torch.zeros(2, 4)
    generator = torch.Generator().manual_seed(0)
    assert noise_to(process.to(META), x0.to(META), 2, generator).device == META
    assert _advanced(generator, 0)
    generator = torch.Generator().manual_seed(0)
    dropped = drop_condition(x0.to(META), torch.zeros(4, device=META), 0.5, generator)
    assert dropped.device == META and _advanced(generator, 0)
    generator = torch.Generator().manual_seed(0)
    bound = nll_bound(process, lambda x, t: x, x0.to(META), generator)
    assert bound["total"].device == META and _advanced(generator, 0)


@pytest.mark.parametrize("make", [lambda: UniformSampler(4), lambda: LossAwareSampler(4)])
def test_timesteps_are_drawn_on_the_generators_device(make):
    """A CUDA generator must draw from probabilities on the GPU: torch.multinomial refuses a
    generator of another device type. Spied, as no such generator exists on a CPU-only torch."""
    seen = []

    def multinomial(p, n, replacement, generator):
        seen.append(p.device)
        return torch.zeros(n, dtype=torch.long, device=p.device)

    elsewhere = mock.Mock(spec=torch.Generator, device=META)
    with mock.patch("torch.multinomial", side_effect=multinomial):
        t, weights = make().sample(5, device=META, generator=elsewhere)
    assert seen == [META]
    assert t.device == META and weights.device == META and weights.dtype == torch.float32


def test_timesteps_without_or_with_a_cpu_generator_draw_as_before():
    sampler = LossAwareSampler(4)
    t, weights = sampler.sample(6, device=META, generator=torch.Generator().manual_seed(1))
    assert t.device == META and weights.device == META
    expected = torch.multinomial(
        torch.full((4,), 0.25, dtype=torch.float64),
        6,
        replacement=True,
        generator=torch.Generator().manual_seed(1),
    )
    assert torch.equal(sampler.sample(6, generator=torch.Generator().manual_seed(1))[0], expected)
