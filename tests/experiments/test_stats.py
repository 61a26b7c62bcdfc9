"""Mean ± std over seeds and paired tests over users, on hand-made cases."""

import math

import numpy as np
import pytest

from recdiff.experiments.report import per_user_over_seeds
from recdiff.experiments.stats import format_mean_std, mean_std, paired_test


def test_mean_and_sample_std_by_hand():
    mean, std = mean_std([0.1, 0.2, 0.3])
    assert mean == pytest.approx(0.2) and std == pytest.approx(0.1)  # sqrt(0.02 / 2)
    assert format_mean_std([0.1, 0.2, 0.3]) == "0.2000 ± 0.1000"
    assert format_mean_std([0.5]) == "0.5000"  # one seed: no spread to report
    assert math.isnan(mean_std([])[0])


@pytest.mark.parametrize("method", ["wilcoxon", "ttest"])
def test_identical_models_give_p_one(method):
    values = np.array([0.1, 0.5, 0.0, 1.0, 0.25])
    result = paired_test(values, values.copy(), method)
    assert result.p_value == 1.0 and result.n == 5 and result.mean_diff == 0.0


@pytest.mark.parametrize("method", ["wilcoxon", "ttest"])
def test_clearly_different_models_give_small_p(method):
    rng = np.random.default_rng(0)
    b = rng.uniform(0, 0.5, size=300)
    a = b + 0.2 + rng.normal(0, 0.05, size=300)
    result = paired_test(a, b, method)
    assert result.p_value < 1e-10
    assert result.mean_diff == pytest.approx(float(np.mean(a - b)))


def test_wilcoxon_exact_p_by_hand():
    # Six positive differences, no ties: the exact two-sided p is 2 / 2**6.
    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    result = paired_test(a, np.zeros(6), "wilcoxon")
    assert result.p_value == pytest.approx(2 / 64)


def test_constant_shift_under_t_test_and_small_samples():
    a, b = np.array([0.3, 0.4, 0.5]), np.array([0.2, 0.3, 0.4])
    result = paired_test(a, b, "ttest")
    assert result.p_value == 0.0 and result.statistic == math.inf
    assert math.isnan(paired_test(np.array([0.1]), np.array([0.2])).p_value)


def test_users_without_values_are_left_out_and_shapes_must_match():
    a = np.array([0.2, np.nan, 0.4, 0.6])
    b = np.array([0.1, 0.3, np.nan, 0.6])
    result = paired_test(a, b, "ttest")
    assert result.n == 2 and result.mean_a == pytest.approx(0.4)
    with pytest.raises(ValueError, match="same users"):
        paired_test(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="method"):
        paired_test(np.zeros(3), np.zeros(3), "sign")


def test_per_user_values_are_averaged_over_seeds_ignoring_missing():
    seeds = [np.array([1.0, np.nan, 3.0]), np.array([3.0, np.nan, np.nan])]
    np.testing.assert_array_equal(per_user_over_seeds(seeds), [2.0, np.nan, 3.0])


def test_differences_made_only_by_rounding_count_as_ties():
    """Averaged over seeds, a user's (0.4, 0.8, 0.6) is 0.6000000000000001, not the 0.6 another
    model scored: the signed-rank test ranked that pair as a difference with an arbitrary sign
    (a walkthrough's p moved 190-fold from such pairs). It now matches exact arithmetic."""
    from scipy import stats

    noisy = float(np.mean([0.4, 0.8, 0.6]))
    assert noisy != 0.6  # the float noise the test is about
    real = np.array([0.1, 0.2, 0.3, 0.4, 0.5, -0.15])
    a = np.concatenate([0.6 + real, [noisy] * 10])
    b = np.concatenate([np.full(6, 0.6), [0.6] * 10])
    exact = paired_test(np.concatenate([real, np.zeros(10)]), np.zeros(16), "wilcoxon")
    result = paired_test(a, b, "wilcoxon")
    # zero_method="wilcox": the ten tied users drop out; ranks 1..6 with the -0.15 at rank 2
    assert result.statistic == exact.statistic == 2.0
    assert result.p_value == exact.p_value
    before = stats.wilcoxon(a, b, zero_method="wilcox")  # what the test computed until now
    assert before.pvalue < exact.p_value / 20  # 0.0029 against 0.075
