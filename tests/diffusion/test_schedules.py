"""Known answers for the noise schedules, and their validation errors."""

import math

import numpy as np
import pytest

from recdiff.diffusion import NoiseSchedule, ScheduleError


def test_linear_alpha_bar_matches_hand_computed_product():
    schedule = NoiseSchedule.linear(1000)
    betas = [1e-4 + (0.02 - 1e-4) * i / 999 for i in range(1000)]
    for t in (1, 2, 10, 500, 1000):  # paper steps
        expected = math.prod(1 - b for b in betas[:t])
        assert schedule.alpha_bar[t - 1] == pytest.approx(expected, rel=1e-12)
    assert schedule.alpha_bar[0] == pytest.approx(0.9999, rel=1e-15)
    # abar_T of DDPM's schedule is ~4e-5: x_T is almost pure noise.
    assert schedule.alpha_bar[-1] == pytest.approx(4.0358e-5, rel=1e-3)
    assert schedule.betas.dtype == np.float64


def test_derived_quantities():
    s = NoiseSchedule(np.array([0.1, 0.2, 0.3]))
    np.testing.assert_allclose(s.alpha_bar, [0.9, 0.72, 0.504])
    np.testing.assert_allclose(s.alpha_bar_prev, [1.0, 0.9, 0.72])
    # beta~_2 = 0.2 * (1 - 0.9) / (1 - 0.72); beta~_1 = 0.
    np.testing.assert_allclose(s.posterior_variance, [0.0, 0.02 / 0.28, 0.3 * 0.28 / 0.496])
    np.testing.assert_allclose(s.snr, [9.0, 0.72 / 0.28, 0.504 / 0.496])


def test_cosine_follows_its_alpha_bar_function():
    T, offset = 50, 0.008
    schedule = NoiseSchedule.cosine(T, s=offset)

    def f(tau):
        return math.cos((tau + offset) / (1 + offset) * math.pi / 2) ** 2

    for t in (1, 10, 25, 40):  # far from the clipped last betas
        assert schedule.alpha_bar[t - 1] == pytest.approx(f(t / T) / f(0), rel=1e-12)
    assert schedule.betas.max() <= 0.999


def test_diffrec_schedule_reproduces_eq4_exactly():
    T, s, a_min, a_max = 40, 5e-3, 5e-3, 1e-2
    schedule = NoiseSchedule.diffrec(T, s, a_min, a_max, first_beta=None)
    t = np.arange(1, T + 1)
    eq4 = s * (a_min + (t - 1) / (T - 1) * (a_max - a_min))
    np.testing.assert_allclose(1 - schedule.alpha_bar, eq4, rtol=1e-10, atol=0)


def test_diffrec_released_first_beta_scales_eq4():
    T, s, a_min, a_max = 40, 5e-3, 5e-3, 1e-2
    schedule = NoiseSchedule.diffrec(T, s, a_min, a_max)  # released code: beta_1 = 1e-5
    assert schedule.betas[0] == 1e-5
    t = np.arange(1, T + 1)
    eq4_abar = 1 - s * (a_min + (t - 1) / (T - 1) * (a_max - a_min))
    np.testing.assert_allclose(
        schedule.alpha_bar, eq4_abar * (1 - 1e-5) / (1 - s * a_min), rtol=1e-12
    )


def test_exp_schedule_first_and_last_beta():
    T = 500
    schedule = NoiseSchedule.exp(T)
    assert schedule.betas[0] == pytest.approx(1 - math.exp(-0.1 / T - 1 * 9.9 / (2 * T**2)))
    last_x = 2 * T + 1
    assert schedule.betas[-1] == pytest.approx(1 - math.exp(-0.1 / T - last_x * 9.9 / (2 * T**2)))
    assert np.all(np.diff(schedule.betas) > 0)


@pytest.mark.parametrize(
    ("build", "names"),
    [
        (lambda: NoiseSchedule.diffrec(10, 0.1, 0.02, 0.01), ["noise_min", "noise_max"]),
        (lambda: NoiseSchedule.diffrec(10, 0.1, 0.01, 0.01), ["noise_min", "noise_max"]),
        (lambda: NoiseSchedule.diffrec(10, 1.5, 0.01, 0.02), ["noise_scale"]),
        (lambda: NoiseSchedule.diffrec(10, -0.1, 0.01, 0.02), ["noise_scale"]),
        (lambda: NoiseSchedule.linear(0), ["steps"]),
        (lambda: NoiseSchedule.linear(10, 0.02, 0.01), ["beta_start", "beta_end"]),
        (lambda: NoiseSchedule(np.array([0.1, 1.0])), ["beta"]),
        (lambda: NoiseSchedule(np.array([0.0, 0.1])), ["beta"]),
        (lambda: NoiseSchedule.cosine(10, s=-1), ["s"]),
        (lambda: NoiseSchedule.exp(10, 10.0, 0.1), ["beta_min", "beta_max"]),
        (lambda: NoiseSchedule.named("quadratic", 10), ["quadratic"]),
    ],
)
def test_invalid_parameters_raise_naming_the_parameter(build, names):
    with pytest.raises(ScheduleError) as info:
        build()
    for name in names:
        assert name in str(info.value)


def test_schedule_is_immutable():
    schedule = NoiseSchedule.linear(10)
    with pytest.raises(ValueError, match="read-only"):
        schedule.betas[0] = 0.5


def test_respace_keeps_alpha_bar_at_kept_steps():
    schedule = NoiseSchedule.linear(100, 1e-3, 0.2)
    keep = [0, 9, 49, 99]
    spaced = schedule.respace(keep)
    np.testing.assert_allclose(spaced.alpha_bar, schedule.alpha_bar[keep], rtol=1e-12)
    np.testing.assert_array_equal(spaced.timesteps, keep)
    # Respacing a respaced schedule composes the maps to the original steps.
    np.testing.assert_array_equal(spaced.respace([1, 3]).timesteps, [9, 99])


def test_spaced_counts_and_identity():
    schedule = NoiseSchedule.cosine(100)
    np.testing.assert_allclose(schedule.spaced(100).betas, schedule.betas, rtol=1e-9)
    ten = schedule.spaced(10)
    assert ten.num_steps == 10 and ten.timesteps[0] == 0 and ten.timesteps[-1] == 99
    assert schedule.spaced(1).timesteps.tolist() == [99]
    with pytest.raises(ScheduleError, match="count"):
        schedule.spaced(101)
