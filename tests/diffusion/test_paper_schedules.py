"""Known answers pinning the DDPM core to ../shared/docs/PAPERS.md, worked out by hand on the
papers' released settings: DreamRec's "exp" schedule inside its step range, DiffRec's Eq. 4
schedule on the yelp_clean settings (where s a_min equals the released first beta), and the
SNR-difference weights there, 1 at t = 1."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recdiff.diffusion import GaussianDiffusion, NoiseSchedule, ScheduleError


def test_exp_schedule_by_hand_at_every_step_of_t_3():
    # x = linspace(1, 2T + 1, T) = (1, 4, 7); beta_i = 1 - exp(-b_min/T - x_i (b_max - b_min)/(2T^2))
    # with b_min 0.1, b_max 10: exponents 0.1/3 + x_i * 9.9/18 = 0.1/3 + 0.55 x_i.
    schedule = NoiseSchedule.exp(3)
    exponents = [0.1 / 3 + 0.55, 0.1 / 3 + 2.2, 0.1 / 3 + 3.85]
    np.testing.assert_allclose(schedule.betas, [1 - math.exp(-e) for e in exponents], rtol=1e-12)
    np.testing.assert_allclose(schedule.betas, [0.441965, 0.892829, 0.979418], atol=1e-6)
    # abar_T = exp(-(b_min + (b_max - b_min)(T + 1)/(2T))) since sum(x) = T (T + 1):
    # 0.1 + 9.9 * 4/6 = 6.7.
    assert math.isclose(schedule.alpha_bar[-1], math.exp(-6.7), rel_tol=1e-12)


def test_diffrec_yelp_schedule_is_eq4_because_s_a_min_is_the_released_first_beta():
    # yelp_clean: T 5, s 1e-2, a_min 1e-3, a_max 1e-2. Eq. 4:
    # 1 - abar_t = 1e-2 (1e-3 + (t - 1)/4 * 9e-3) = 1e-5, 3.25e-5, 5.5e-5, 7.75e-5, 1e-4;
    # beta_1 = 1 - abar_1 = 1e-5 is what the released code fixes it to, so nothing is rescaled.
    released = NoiseSchedule.diffrec(5, 1e-2, 1e-3, 1e-2)
    exact = NoiseSchedule.diffrec(5, 1e-2, 1e-3, 1e-2, first_beta=None)
    expected = [1e-5, 3.25e-5, 5.5e-5, 7.75e-5, 1e-4]
    np.testing.assert_allclose(1 - released.alpha_bar, expected, rtol=1e-9)
    np.testing.assert_allclose(released.betas, exact.betas, rtol=1e-9)
    # beta_2 = 1 - abar_2 / abar_1 = 1 - (1 - 3.25e-5) / (1 - 1e-5) = 2.25e-5 / (1 - 1e-5).
    assert math.isclose(released.betas[1], 2.25e-5 / (1 - 1e-5), rel_tol=1e-9)


def test_snr_difference_weights_on_the_yelp_schedule_are_one_at_t_1():
    process = GaussianDiffusion(NoiseSchedule.diffrec(5, 1e-2, 1e-3, 1e-2), "x0")
    weights = process.loss_weights(torch.arange(5), torch.zeros(5, dtype=torch.float64))
    # SNR(t) = abar / (1 - abar) = 1 / (1 - abar) - 1, so SNR(t-1) - SNR(t) is the difference of
    # 1 / (1 - abar): t = 2: 1/2 (1e5 - 1/3.25e-5) = 1/2 (100000 - 30769.2308) = 34615.3846;
    # t = 1: 1 (the ||x0_hat - x0||^2 term), not 1/2 (SNR(0) - SNR(1)), which is infinite.
    inverse = [1 / v for v in (1e-5, 3.25e-5, 5.5e-5, 7.75e-5, 1e-4)]
    expected = [1.0] + [0.5 * (inverse[i - 1] - inverse[i]) for i in range(1, 5)]
    np.testing.assert_allclose(weights.numpy(), expected, rtol=1e-7)
    assert math.isclose(float(weights[1]), 34615.3846, rel_tol=1e-8)


def test_dreamrec_cosine_clips_its_betas_to_the_released_range():
    """DreamRec's released cosine schedule clips betas to [1e-4, 0.9999] (Nichol & Dhariwal's
    caps them at 0.999 only). At T 2000 (its KuaiRec setting) the first betas fall below 1e-4:
    beta_1 = 1 - f(1/T)/f(0), f(tau) = cos^2((tau + 0.008)/1.008 pi/2), about 2.0e-5."""
    from recdiff.models.dreamrec_config import GuidedDiffusionConfig

    T = 2000

    def f(tau):
        return math.cos((tau + 0.008) / 1.008 * math.pi / 2) ** 2

    first = 1 - f(1 / T) / f(0)
    assert 1.9e-5 < first < 2.1e-5
    plain = NoiseSchedule.cosine(T)
    assert math.isclose(plain.betas[0], first, rel_tol=1e-9)
    assert plain.betas[-1] == 0.999

    released = GuidedDiffusionConfig(steps=T, schedule="cosine").noise_schedule()
    assert released.betas[0] == 1e-4 and released.betas.min() == 1e-4
    assert released.betas[-1] == 0.9999  # beta_T = 1 - f(1)/f(1 - 1/T) ~ 1, clipped
    inside = (plain.betas > 1e-4) & (plain.betas < 0.999)
    np.testing.assert_array_equal(released.betas[inside], plain.betas[inside])
    assert int((plain.betas < 1e-4).sum()) > 0


def test_a_beta_floor_at_or_above_the_cap_is_refused():
    with pytest.raises(
        ScheduleError, match=r"min_beta must lie in \[0, max_beta=0.999\), got 0.999"
    ):
        NoiseSchedule.cosine(10, min_beta=0.999)
    with pytest.raises(ScheduleError, match="min_beta must lie in"):
        NoiseSchedule.cosine(10, min_beta=-1e-4)
