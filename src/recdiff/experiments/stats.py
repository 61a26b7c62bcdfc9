"""Summaries over seeds and paired significance tests over users.

Standard deviations are sample standard deviations (``ddof=1``) over seeds, as in
``recdiff reproduce``. Paired tests compare two models on the same users (each user's metric,
averaged over seeds first); users missing in either model (NaN: no test items) are left out.
The tests are two-sided and not corrected for multiple comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["PairedTest", "format_mean_std", "mean_std", "paired_test"]

TestMethod = Literal["wilcoxon", "ttest"]
METHOD_NAMES = {"wilcoxon": "Wilcoxon signed-rank test", "ttest": "paired t-test"}


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; NaN for a single value)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return math.nan, math.nan
    std = float(np.std(array, ddof=1)) if array.size > 1 else math.nan
    return float(np.mean(array)), std


def format_mean_std(values: Sequence[float], digits: int = 4) -> str:
    """``"0.1709 ± 0.0005"`` (the mean alone for one value)."""
    mean, std = mean_std(values)
    if math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


@dataclass(frozen=True)
class PairedTest:
    """Outcome of a paired test of ``a`` against ``b`` on the users both have."""

    method: str
    n: int
    mean_a: float
    mean_b: float
    statistic: float
    p_value: float

    @property
    def mean_diff(self) -> float:
        return self.mean_a - self.mean_b


def paired_test(a: np.ndarray, b: np.ndarray, method: TestMethod = "wilcoxon") -> PairedTest:
    """Two-sided paired test of per-user values ``a`` vs ``b`` (aligned by user).

    Identical values give p = 1 (no evidence of a difference); a constant non-zero difference
    gives p = 0 under the t-test. Fewer than two usable pairs give p = NaN.
    """
    from scipy import stats

    if method not in METHOD_NAMES:
        raise ValueError(f"method must be one of {sorted(METHOD_NAMES)}, got {method!r}")
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(
            f"paired values must be two 1-D arrays over the same users, got {a.shape} and "
            f"{b.shape}: were the models run on the same data?"
        )
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    n = int(a.size)
    mean_a = float(a.mean()) if n else math.nan
    mean_b = float(b.mean()) if n else math.nan
    diff = _without_rounding_noise(a - b, a, b)
    if n < 2:
        return PairedTest(method, n, mean_a, mean_b, math.nan, math.nan)
    if not diff.any():
        return PairedTest(method, n, mean_a, mean_b, 0.0, 1.0)
    if method == "ttest":
        if np.ptp(diff) <= 1e-12:  # no variance (up to rounding): scipy would divide by ~0
            return PairedTest(method, n, mean_a, mean_b, math.copysign(math.inf, diff[0]), 0.0)
        result = stats.ttest_rel(a, b)
    else:  # on the differences, so that those only rounding made non-zero count as ties
        result = stats.wilcoxon(diff, zero_method="wilcox", alternative="two-sided")
    return PairedTest(method, n, mean_a, mean_b, float(result.statistic), float(result.pvalue))


def _without_rounding_noise(diff: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``diff`` rounded to 12 significant digits of the values' scale. A user's metric averaged
    over seeds differs from an equal one by ~1e-16 when the sums were added in another order
    (mean(0.4, 0.8, 0.6) is 0.6000000000000001): the signed-rank test would rank such a pair
    as a difference with an arbitrary sign, and tie-break equal differences by float noise."""
    scale = float(max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0)))
    if scale == 0.0 or not math.isfinite(scale):
        return diff
    digits = 12 - math.floor(math.log10(scale))
    return np.round(diff, digits) + 0.0  # + 0.0: no negative zeros
