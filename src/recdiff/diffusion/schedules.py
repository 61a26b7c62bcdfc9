"""Noise schedules as data (Ho et al. 2020; Nichol & Dhariwal 2021; Wang et al. 2023; Yang et al. 2023).

A schedule is the sequence beta_1..beta_T and everything derived from it, computed once in float64.
Named constructors never change meaning once released; invalid parameters raise
:class:`ScheduleError` naming the parameter and what to fix.

Notation (paper symbol -> code name). Code indices are 0-based: index ``i`` is the paper's step
``t = i + 1``, so ``alpha_bar[0]`` is abar_1 and ``alpha_bar_prev[0]`` is abar_0 = 1.

=====================  ===========================
beta_t                 ``betas``
alpha_t = 1 - beta_t   ``alphas``
abar_t                 ``alpha_bar``
abar_{t-1}             ``alpha_bar_prev``
beta~_t (posterior)    ``posterior_variance``
SNR(t) = abar/(1-abar) ``snr``
=====================  ===========================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["DREAMREC_COSINE_BETAS", "RELEASED_FIRST_BETA", "NoiseSchedule", "ScheduleError"]

#: beta_1 in DiffRec's released code, for its "linear-var" (Eq. 4) and "linear" schedules alike.
RELEASED_FIRST_BETA = 1e-5

#: (min_beta, max_beta) to which DreamRec's released code clips the betas of its cosine schedule.
DREAMREC_COSINE_BETAS = (1e-4, 0.9999)


class ScheduleError(ValueError):
    """An invalid noise-schedule parameter; the message names the parameter and the fix."""


def _integer_steps(timesteps: object) -> np.ndarray:
    """``timesteps`` as int64, refusing what a cast would misread (0.5 and 1.7 as steps 0, 1;
    booleans as 0 and 1)."""
    steps = np.asarray(timesteps)
    if steps.dtype == bool or (steps.size and steps.dtype.kind not in "iu"):
        raise ScheduleError(
            f"timesteps must be integer step indices (of the schedule respaced from), got "
            f"{np.ravel(steps)[:5].tolist()} (dtype {steps.dtype}): pass an integer array"
        )
    return steps.astype(np.int64)


def _check_steps(steps: int) -> None:
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 1:
        raise ScheduleError(f"steps must be a positive integer, got {steps!r}")


#: The smallest abar_T accepted: float32's smallest normal number. Below it abar_T itself, and
#: soon sqrt(abar_T), no longer fit a float32 tensor, so x0 = x_t / sqrt(abar_T) (eps and v
#: prediction at step T) and SNR(T) overflow or lose all precision there. The papers' schedules
#: stay far above (cosine and linear 1e-4..0.02 at T = 2000 end near 1e-9).
MIN_ALPHA_BAR = float(np.finfo(np.float32).tiny)

#: What to change, per constructor, when its betas reach 1 or its abar_T underflows (too much
#: noise), and when its betas are too small for 1 - beta to differ from 1 (too little).
_TOO_MUCH_NOISE = {
    "linear": "lower beta_end or use fewer steps",
    "exp": "lower beta_max (abar_T is about exp(-(beta_min + beta_max) / 2); betas reaching 1 "
    "also ease with more steps)",
    "cosine": "lower max_beta or use fewer steps",
    "alpha_bar": "lower max_beta, or make alpha_bar_fn decay more slowly",
    "diffrec": "lower noise_scale or noise_max",
}
_TOO_LITTLE_NOISE = {
    "linear": "raise beta_start",
    "exp": "raise beta_min",
    "cosine": "raise s, or use fewer steps",
    "alpha_bar": "make alpha_bar_fn decrease by more than 1e-16 relatively per step",
    "diffrec": "raise first_beta, noise_scale or the gap noise_max - noise_min",
}


def _fix(hints: dict[str, str], name: str) -> str:
    """The remedy for a schedule named ``name`` (a respaced one is named ``base[k]``)."""
    return hints.get(name.split("[")[0], "pass betas strictly inside (0, 1)")


@dataclass(frozen=True, eq=False)
class NoiseSchedule:
    """beta_1..beta_T and the quantities derived from them, in float64 numpy arrays.

    ``timesteps`` maps each step of this schedule to the step of the schedule it was respaced from
    (the identity for a schedule built directly); a denoiser is always called with these original
    step indices, so a network trained on T steps can sample on any subsequence of them.
    """

    betas: np.ndarray
    name: str = "custom"
    timesteps: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        betas = np.asarray(self.betas, dtype=np.float64)
        if betas.ndim != 1 or betas.size == 0:
            raise ScheduleError(f"betas must be a non-empty 1-D sequence, got shape {betas.shape}")
        if not np.all(np.isfinite(betas)) or np.any(betas <= 0) or np.any(betas >= 1):
            where = np.flatnonzero(~((betas > 0) & (betas < 1)))[:3]
            if np.any(betas >= 1):
                hint = _fix(_TOO_MUCH_NOISE, self.name)
            elif np.all(np.isfinite(betas)) and not np.any(betas < 0):
                # Betas of exactly 0: a named constructor's abar stopped decreasing in float64
                # (e.g. DiffRec's with a tiny noise_scale), the same remedy as a beta below it.
                hint = _fix(_TOO_LITTLE_NOISE, self.name)
            else:
                hint = "pass finite betas > 0"
            raise ScheduleError(
                f"every beta must lie in (0, 1); found {betas[where].tolist()} at step indices "
                f"{where.tolist()} of {self.name!r}: {hint}"
            )
        # A beta below float64's resolution at 1 leaves alpha = 1 - beta = 1 exactly: that step
        # adds no noise and 1 - abar is 0 (the posterior variance divides by it).
        if np.any(1.0 - betas >= 1.0):
            where = np.flatnonzero(1.0 - betas >= 1.0)[:3]
            raise ScheduleError(
                f"betas {betas[where].tolist()} at step indices {where.tolist()} of "
                f"{self.name!r} are too small: 1 - beta rounds to 1 in float64, so the step adds "
                f"no noise; {_fix(_TOO_LITTLE_NOISE, self.name)}"
            )
        alpha_bar = np.cumprod(1.0 - betas)
        if alpha_bar[-1] < MIN_ALPHA_BAR:
            first = int(np.argmax(alpha_bar < MIN_ALPHA_BAR))
            raise ScheduleError(
                f"abar_T = {alpha_bar[-1]:.3g} of {self.name!r} is below {MIN_ALPHA_BAR:.3g} "
                f"(float32's smallest normal number, crossed at step index {first}): the signal "
                "is destroyed so completely that x0 = x_t / sqrt(abar) overflows in float32 "
                f"and sampling gives NaN; {_fix(_TOO_MUCH_NOISE, self.name)}"
            )
        steps = (
            np.arange(betas.size, dtype=np.int64)
            if self.timesteps is None
            else _integer_steps(self.timesteps)
        )
        if steps.shape != betas.shape or np.any(np.diff(steps) <= 0) or np.any(steps < 0):
            raise ScheduleError(
                "timesteps must be strictly increasing step indices >= 0 (of the schedule "
                f"respaced from), one per beta; got {np.ravel(steps)[:5].tolist()} for "
                f"{betas.size} betas"
            )
        betas.setflags(write=False)
        steps.setflags(write=False)
        object.__setattr__(self, "betas", betas)
        object.__setattr__(self, "timesteps", steps)

    # ------------------------------------------------------------------- identity, saving
    def __eq__(self, other: object) -> bool:
        """Equal when the betas and the steps they map to are (the name is only a label)."""
        if not isinstance(other, NoiseSchedule):
            return NotImplemented
        return np.array_equal(self.betas, other.betas) and np.array_equal(
            self.timesteps, other.timesteps
        )

    def __hash__(self) -> int:
        return hash((self.betas.tobytes(), self.timesteps.tobytes()))

    def __reduce__(self) -> tuple:
        # Through the constructor, so an unpickled schedule is validated and read-only again.
        return (type(self), (self.betas, self.name, self.timesteps))

    def to_dict(self) -> dict[str, object]:
        """Plain lists and a string, for JSON or a checkpoint; float64 values survive exactly."""
        return {
            "betas": self.betas.tolist(),
            "name": self.name,
            "timesteps": self.timesteps.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> NoiseSchedule:
        """The schedule :meth:`to_dict` described (validated as any new schedule)."""
        return cls(
            np.asarray(data["betas"], dtype=np.float64),
            name=str(data.get("name", "custom")),
            timesteps=None if data.get("timesteps") is None else np.asarray(data["timesteps"]),
        )

    # ----------------------------------------------------------------------------- derived
    @property
    def num_steps(self) -> int:
        """T, the number of diffusion steps."""
        return int(self.betas.size)

    @property
    def alphas(self) -> np.ndarray:
        return 1.0 - self.betas

    @property
    def alpha_bar(self) -> np.ndarray:
        """abar_t = prod_{s<=t} alpha_s for t = 1..T."""
        return np.cumprod(self.alphas)

    @property
    def alpha_bar_prev(self) -> np.ndarray:
        """abar_{t-1} for t = 1..T, with abar_0 = 1."""
        return np.concatenate([[1.0], self.alpha_bar[:-1]])

    @property
    def snr(self) -> np.ndarray:
        """Signal-to-noise ratio SNR(t) = abar_t / (1 - abar_t)."""
        return self.alpha_bar / (1.0 - self.alpha_bar)

    @property
    def posterior_variance(self) -> np.ndarray:
        """beta~_t = beta_t (1 - abar_{t-1}) / (1 - abar_t); zero at t = 1."""
        return self.betas * (1.0 - self.alpha_bar_prev) / (1.0 - self.alpha_bar)

    # ------------------------------------------------------------------------ constructors
    @classmethod
    def linear(cls, steps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> NoiseSchedule:
        """DDPM's linear betas from ``beta_start`` to ``beta_end`` (Ho et al. use T = 1000)."""
        _check_steps(steps)
        if not 0 < beta_start <= beta_end < 1:
            raise ScheduleError(
                f"need 0 < beta_start <= beta_end < 1, got beta_start={beta_start}, beta_end={beta_end}"
            )
        return cls(np.linspace(beta_start, beta_end, steps, dtype=np.float64), name="linear")

    @classmethod
    def from_alpha_bar(
        cls,
        alpha_bar_fn: Callable[[float], float],
        steps: int,
        max_beta: float = 0.999,
        name: str = "alpha_bar",
        min_beta: float = 0.0,
    ) -> NoiseSchedule:
        """Discretise a continuous abar(tau), tau in [0, 1]: beta_t = 1 - abar(t/T) / abar((t-1)/T).

        ``max_beta`` clips the last betas, which approach 1 when abar(1) ~ 0; abar(1) = 0 itself
        is allowed (beta_T = 1 is clipped to ``max_beta``), the earlier values must be positive.
        ``min_beta`` raises the first, smallest betas to at least it (0: no floor).
        """
        _check_steps(steps)
        if not 0 < max_beta < 1:
            raise ScheduleError(f"max_beta must lie in (0, 1), got {max_beta}")
        if not 0 <= min_beta < max_beta:
            raise ScheduleError(f"min_beta must lie in [0, max_beta={max_beta}), got {min_beta}")
        tau = np.arange(steps + 1, dtype=np.float64) / steps
        abar = np.array([alpha_bar_fn(float(x)) for x in tau], dtype=np.float64)
        # Every abar but the last divides the next one, so only abar(1) may be 0.
        bad = ~np.isfinite(abar) | np.concatenate([abar[:-1] <= 0, abar[-1:] < 0])
        if np.any(bad):
            i = int(np.argmax(bad))
            raise ScheduleError(
                f"alpha_bar_fn({tau[i]:g}) = {float(abar[i])!r}: alpha_bar_fn must be finite, "
                "positive on [0, 1) and non-negative at 1"
            )
        if np.any(np.diff(abar) > 0):
            i = int(np.argmax(np.diff(abar) > 0))
            first, second = float(abar[i]), float(abar[i + 1])
            raise ScheduleError(
                f"alpha_bar_fn increases from alpha_bar_fn({tau[i]:g}) = {first!r} to "
                f"alpha_bar_fn({tau[i + 1]:g}) = {second!r}: it must be non-increasing on [0, 1]"
            )
        betas = np.clip(1.0 - abar[1:] / abar[:-1], min_beta, max_beta)
        return cls(betas, name=name)

    @classmethod
    def cosine(
        cls, steps: int, s: float = 0.008, max_beta: float = 0.999, min_beta: float = 0.0
    ) -> NoiseSchedule:
        """Nichol & Dhariwal's cosine schedule, abar(tau) proportional to cos^2((tau + s)/(1 + s) pi/2),
        its betas clipped to [``min_beta``, ``max_beta``] (theirs: [0, 0.999]; DreamRec's
        released code: [1e-4, 0.9999], :data:`DREAMREC_COSINE_BETAS`)."""
        if not 0 <= s < math.inf:  # NaN too: it would fail later as alpha_bar_fn(0) = nan
            raise ScheduleError(f"cosine offset s must be a finite number >= 0, got {s}")

        def f(tau: float) -> float:
            return math.cos((tau + s) / (1 + s) * math.pi / 2) ** 2

        return cls.from_alpha_bar(f, steps, max_beta=max_beta, name="cosine", min_beta=min_beta)

    @classmethod
    def diffrec(
        cls,
        steps: int,
        noise_scale: float,
        noise_min: float,
        noise_max: float,
        first_beta: float | None = RELEASED_FIRST_BETA,
    ) -> NoiseSchedule:
        """DiffRec's linear-variance schedule (Wang et al. 2023, Eq. 4).

        1 - abar_t = s [a_min + (t-1)/(T-1) (a_max - a_min)] for t = 1..T; betas follow from
        consecutive abar. The released code then fixes beta_1 to ``first_beta`` = 1e-5, which
        scales every abar_t by (1 - 1e-5) / (1 - s a_min); ``first_beta=None`` keeps Eq. 4 exact.
        """
        _check_steps(steps)
        if not 0 <= noise_scale <= 1:
            raise ScheduleError(f"noise_scale s must lie in [0, 1], got {noise_scale}")
        if noise_scale == 0:
            raise ScheduleError(
                "noise_scale s = 0 adds no noise: use s > 0 (DiffRec uses 1e-4..1e-2)"
            )
        if not 0 < noise_min < noise_max < 1:
            raise ScheduleError(
                f"need 0 < noise_min < noise_max < 1, got noise_min={noise_min}, noise_max={noise_max}"
            )
        if first_beta is not None and not 0 < first_beta < 1:
            raise ScheduleError(f"first_beta must lie in (0, 1) or be None, got {first_beta}")
        one_minus_abar = noise_scale * np.linspace(noise_min, noise_max, steps, dtype=np.float64)
        abar = 1.0 - one_minus_abar
        betas = np.empty(steps, dtype=np.float64)
        betas[0] = one_minus_abar[0] if first_beta is None else first_beta
        betas[1:] = 1.0 - abar[1:] / abar[:-1]
        return cls(betas, name="diffrec")

    @classmethod
    def exp(cls, steps: int, beta_min: float = 0.1, beta_max: float = 10.0) -> NoiseSchedule:
        """DreamRec's "exp" schedule: beta_i = 1 - exp(-b_min/T - x_i (b_max - b_min) / (2 T^2)),
        x = linspace(1, 2T + 1, T)."""
        _check_steps(steps)
        if not 0 < beta_min < beta_max:
            raise ScheduleError(f"need 0 < beta_min < beta_max, got {beta_min}, {beta_max}")
        x = np.linspace(1, 2 * steps + 1, steps, dtype=np.float64)
        betas = 1.0 - np.exp(-beta_min / steps - x * (beta_max - beta_min) / (2 * steps**2))
        return cls(betas, name="exp")

    @classmethod
    def named(cls, name: str, steps: int, **params: float) -> NoiseSchedule:
        """Build a schedule by name: ``linear``, ``cosine``, ``diffrec`` or ``exp``."""
        builders = {
            "linear": cls.linear,
            "cosine": cls.cosine,
            "diffrec": cls.diffrec,
            "exp": cls.exp,
        }
        if name not in builders:
            raise ScheduleError(f"unknown schedule {name!r}; choose one of {sorted(builders)}")
        return builders[name](steps, **params)

    # ---------------------------------------------------------------------------- respacing
    def respace(self, keep: Sequence[int]) -> NoiseSchedule:
        """The schedule over a subsequence of steps (0-based indices into this schedule).

        The new betas reproduce this schedule's abar exactly at the kept steps:
        beta'_k = 1 - abar[keep_k] / abar[keep_{k-1}] (Nichol & Dhariwal 2021, Sec. 4).
        ``keep`` must be strictly increasing integers: a repeated, unsorted or fractional step is
        refused rather than silently deduplicated, sorted or truncated, since it is most likely
        a mistake in how the subsequence was computed.
        """
        given = np.asarray(list(keep))
        if given.ndim != 1 or given.size == 0:
            raise ScheduleError(f"keep must be a non-empty sequence of step indices, got {keep!r}")
        if given.dtype.kind not in "iu":
            raise ScheduleError(
                f"keep must hold integer step indices, got {given.dtype} values "
                f"{given[:5].tolist()}: round them first (e.g. np.round(keep).astype(int))"
            )
        keep_arr = given.astype(np.int64)
        if np.any(np.diff(keep_arr) <= 0):
            i = int(np.argmax(np.diff(keep_arr) <= 0))
            raise ScheduleError(
                f"keep must be strictly increasing (sorted, no repeats), got {keep_arr[i]} "
                f"then {keep_arr[i + 1]} at positions {i}, {i + 1}: pass sorted(set(keep))"
            )
        if keep_arr[0] < 0 or keep_arr[-1] >= self.num_steps:
            raise ScheduleError(
                f"keep must be step indices in 0..{self.num_steps - 1}, got "
                f"{keep_arr[0]}..{keep_arr[-1]}"
            )
        abar = self.alpha_bar[keep_arr]
        prev = np.concatenate([[1.0], abar[:-1]])
        return NoiseSchedule(
            1.0 - abar / prev,
            name=f"{self.name}[{keep_arr.size}]",
            timesteps=self.timesteps[keep_arr],
        )

    def spaced(self, count: int) -> NoiseSchedule:
        """Respace to ``count`` evenly spaced steps; the last is always kept, the first if count > 1."""
        if not isinstance(count, (int, np.integer)) or isinstance(count, bool):
            raise TypeError(f"count must be an integer number of steps, got {count!r}")
        if not 1 <= count <= self.num_steps:
            raise ScheduleError(f"count must lie in 1..{self.num_steps}, got {count}")
        if count == 1:
            return self.respace([self.num_steps - 1])
        # The stride (T-1)/(count-1) >= 1, so rounding keeps the steps distinct; 0 and T-1 stay in.
        return self.respace(np.round(np.linspace(0, self.num_steps - 1, count)).astype(np.int64))
