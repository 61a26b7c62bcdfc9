"""Uniform and DiffRec's loss-aware timestep sampling (Eq. 14)."""

import numpy as np
import pytest
import torch

from recdiff.diffusion import LossAwareSampler, UniformSampler


def test_uniform_sampler_has_unit_weights_and_covers_all_steps():
    sampler = UniformSampler(5)
    t, weights = sampler.sample(10_000, generator=torch.Generator().manual_seed(0))
    assert torch.all(weights == 1.0)
    counts = torch.bincount(t, minlength=5).double() / 10_000
    torch.testing.assert_close(
        counts, torch.full((5,), 0.2, dtype=torch.float64), atol=0.02, rtol=0
    )


def test_loss_aware_is_uniform_until_every_step_has_a_full_history():
    sampler = LossAwareSampler(3, history=2)
    sampler.update(torch.tensor([0, 0, 1, 1, 2]), torch.tensor([5.0, 5.0, 1.0, 1.0, 1.0]))
    assert not sampler.warmed_up
    torch.testing.assert_close(
        sampler.probabilities(), torch.full((3,), 1 / 3, dtype=torch.float64)
    )
    sampler.update(torch.tensor([2]), torch.tensor([1.0]))
    assert sampler.warmed_up


def test_loss_aware_probabilities_and_weights_hand_computed():
    sampler = LossAwareSampler(2, history=2, uniform_prob=0.1)
    sampler.update(torch.tensor([0, 0, 1, 1]), torch.tensor([3.0, 4.0, 1.0, 1.0]))
    rms = np.array([np.sqrt((9 + 16) / 2), 1.0])
    expected = 0.9 * rms / rms.sum() + 0.1 * 0.5
    np.testing.assert_allclose(sampler.probabilities().numpy(), expected)
    t, weights = sampler.sample(1000, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(weights.numpy(), 1.0 / (2 * expected[t.numpy()]), rtol=1e-6)
    # The weights the sampler returns keep the expected loss unbiased: E_p[w L] = mean_t L_t.
    weight_of = dict(zip(t.tolist(), weights.tolist(), strict=True))
    assert sorted(weight_of) == [0, 1]
    losses = {0: 2.0, 1: 7.0}
    unbiased = sum(expected[step] * weight_of[step] * losses[step] for step in (0, 1))
    assert unbiased == pytest.approx(4.5, rel=1e-6)


def test_loss_aware_sample_draws_steps_with_probability_p():
    # One loss kept per step and no uniform share: p = (1, 2, 3, 4) / 10.
    sampler = LossAwareSampler(4, history=1, uniform_prob=0.0)
    sampler.update(torch.arange(4), torch.tensor([1.0, 2.0, 3.0, 4.0]))
    p = np.array([0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(sampler.probabilities().numpy(), p, rtol=1e-12)
    n = 100_000
    t, weights = sampler.sample(n, generator=torch.Generator().manual_seed(0))
    frequency = np.bincount(t.numpy(), minlength=4) / n
    # A frequency's standard deviation is at most sqrt(0.25 / n) = 0.0016: 0.01 is over 6 of
    # them, and drawing uniformly (0.25 each) misses p by 0.05 at least.
    np.testing.assert_allclose(frequency, p, atol=0.01, rtol=0)
    np.testing.assert_allclose(weights.numpy(), 1 / (4 * p[t.numpy()]), rtol=1e-6)


def test_history_keeps_only_the_last_losses_per_step():
    sampler = LossAwareSampler(1, history=3)
    sampler.update(torch.zeros(5, dtype=torch.long), torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert sorted(sampler.loss_history[0].tolist()) == [3.0, 4.0, 5.0]
    sampler.update(torch.zeros(1, dtype=torch.long), torch.tensor([6.0]))
    assert sorted(sampler.loss_history[0].tolist()) == [4.0, 5.0, 6.0]
    assert int(sampler.counts[0]) == 6


def _reference_history(num_steps, history, batches):
    """A plain per-example loop: each step keeps a list of its last ``history`` losses."""
    kept = [[] for _ in range(num_steps)]
    for t, losses in batches:
        for step, loss in zip(t.tolist(), losses.tolist(), strict=True):
            kept[step] = ([*kept[step], loss])[-history:]
    return kept


def test_vectorised_update_matches_a_sequential_reference():
    generator = torch.Generator().manual_seed(1)
    sampler = LossAwareSampler(7, history=4)
    batches = []
    for _ in range(20):
        t = torch.randint(0, 7, (13,), generator=generator)
        losses = torch.rand(13, generator=generator, dtype=torch.float64)
        batches.append((t, losses))
        sampler.update(t, losses)
    reference = _reference_history(7, 4, batches)
    for step in range(7):
        assert sorted(sampler.loss_history[step].tolist()) == pytest.approx(sorted(reference[step]))


def test_state_dict_round_trip():
    sampler = LossAwareSampler(4, history=2)
    sampler.update(torch.tensor([0, 1, 2, 3, 0, 1, 2, 3]), torch.arange(8.0))
    clone = LossAwareSampler(4, history=2)
    clone.load_state_dict(sampler.state_dict())
    torch.testing.assert_close(clone.probabilities(), sampler.probabilities())
    with pytest.raises(ValueError, match="history"):
        LossAwareSampler(5, history=2).load_state_dict(sampler.state_dict())
    damaged = {**sampler.state_dict(), "counts": torch.zeros(3, dtype=torch.long)}
    with pytest.raises(ValueError, match=r"loss counts shape \(3,\) does not match T=4"):
        clone.load_state_dict(damaged)  # counts of another T would skew p_t silently


def test_invalid_sampler_parameters():
    with pytest.raises(ValueError, match="num_steps"):
        UniformSampler(0)
    with pytest.raises(ValueError, match="uniform_prob"):
        LossAwareSampler(3, uniform_prob=1.5)
