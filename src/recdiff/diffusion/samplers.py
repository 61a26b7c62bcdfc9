"""Reverse-process samplers, kept apart from the process and from the network.

A sampler is a ``step`` from x_t to x_{t-1} (or to the previous kept step of a respaced schedule)
plus one loop that calls the model. Respacing is a property of the process
(``GaussianDiffusion(schedule.spaced(k))``), so either sampler runs on any subsequence of steps.

- :class:`DDPMSampler`: Algorithm 2 of Ho et al. (2020); ``add_noise=False`` follows the posterior
  mean only, as DiffRec does at inference.
- :class:`DDIMSampler`: Song et al. (2021), Eq. 12:
  x_{t'} = sqrt(abar_{t'}) x0_hat + sqrt(1 - abar_{t'} - sigma^2) eps_hat + sigma z, with
  sigma = eta sqrt((1-abar_{t'})/(1-abar_t)) sqrt(1 - abar_t/abar_{t'}); eta = 0 is deterministic.
- :func:`noise_to`: start the reverse process from the input noised to step T' (DiffRec's
  acceleration) instead of from pure noise.

Few steps cost spread, even with a perfect denoiser: with the exact denoiser of Gaussian data, a
respaced DDPM's or a DDIM's samples have less variance than the data, the less the fewer the
steps, as the exact law of the shortened chain says. A narrower sample from a fast sampler is not
by itself a sign of an undertrained model.

Every ``generator`` may also be a sequence of generators, one per row (:func:`randn_rows`): each
row's draws then come from its own generator alone, so a row gets the same sample whatever batch
it is scored in (a service answering concurrent requests in one call needs that). When every row
would be seeded alike, :class:`EachRowAlone` gives the same draws at the cost of one row. For an
evaluation set, :class:`RowBlocks` gives every row its own draws, independent of the other rows
and of how the set is batched, at the cost of a few generators a batch. A generator
may live on another device than the tensors (a CPU one for CUDA sampling): its draws are then
made where it lives and moved, so they are the numbers it gives on its own device.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import numpy as np
import torch

from recdiff.progress import progress_bar

from .arguments import check_clip, check_data, step_index
from .gaussian import GaussianDiffusion
from .parametrization import ModelFn, _model_output

__all__ = [
    "DDIMSampler",
    "DDPMSampler",
    "EachRowAlone",
    "Generators",
    "RowBlocks",
    "Sampler",
    "SamplerState",
    "draw_on_generator_device",
    "noise_to",
    "randn_rows",
    "row_block_pass",
]


class EachRowAlone(NamedTuple):
    """Every row draws what it would draw alone from ``generator`` (fresh, seeded): one row is
    drawn and repeated. The same numbers as ``[copy of generator] * n``, at the cost of one,
    and a row's sample no longer depends on its batch (its size, its neighbours)."""

    generator: torch.Generator


class RowBlocks:
    """Draws for rows ``first .. first + n - 1`` of a fixed sequence of rows (an evaluation set)
    that do not depend on how the sequence is batched: each block of ``block`` consecutive rows
    draws whole blocks from a generator of its own, seeded from ``seed`` and the block's index,
    and a batch keeps its rows of the blocks it overlaps. Every row gets its own draws, unlike
    :class:`EachRowAlone`, so a metric over the set averages over independent samples.

    Make one per sampling run (a batch): it holds the blocks' generators between steps.
    """

    def __init__(
        self, seed: int, first: int, device: torch.device | str = "cpu", block: int = 256
    ) -> None:
        if first < 0 or block < 1:
            raise ValueError(f"first must be >= 0 and block >= 1, got {first} and {block}")
        self.seed, self.first, self.device, self.block = seed, first, torch.device(device), block
        self._generators: dict[int, torch.Generator] = {}

    def _generator(self, index: int) -> torch.Generator:
        if index not in self._generators:
            # SeedSequence mixes (seed, block) into an unrelated stream for every pair
            state = np.random.SeedSequence([self.seed, index]).generate_state(2, np.uint32)
            seed = int(state[0]) << 32 | int(state[1])
            self._generators[index] = torch.Generator(self.device).manual_seed(seed)
        return self._generators[index]

    def draw(
        self, shape: Sequence[int], device: torch.device | str | None, dtype: torch.dtype | None
    ) -> torch.Tensor:
        first, last, size = self.first, self.first + shape[0], self.block
        parts = []
        for index in range(first // size, -(-last // size)):
            whole = draw_on_generator_device(
                torch.randn, (size, *shape[1:]), self._generator(index), device, dtype
            )
            start = index * size
            parts.append(whole[max(first, start) - start : min(last, start + size) - start])
        return torch.cat(parts) if parts else torch.empty(tuple(shape), device=device, dtype=dtype)


Generators = torch.Generator | Sequence[torch.Generator] | EachRowAlone | RowBlocks | None


def row_block_pass(score: Callable[..., torch.Tensor], seed: int, device: torch.device | str):
    """``score`` for one pass over a fixed sequence of rows (an evaluation set), batch after
    batch in order: each call is given ``generator=RowBlocks(seed, rows scored before it,
    device)``, so every row draws its own noise, whatever the batching. Make one per pass.
    Other positional and keyword arguments go to ``score`` as given."""
    scored = 0

    def scored_in_order(rows, *args, **kwargs):
        nonlocal scored
        generator = RowBlocks(seed, scored, device)
        scored += rows.shape[0]
        return score(rows, *args, generator=generator, **kwargs)

    return scored_in_order


def randn_rows(
    shape: Sequence[int],
    generator: Generators,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Standard normal draws of ``shape``; with a sequence of generators, row ``i`` (along the
    first axis) is drawn from generator ``i`` alone, exactly as it would be in a batch of one.

    ``device`` is where the result lives (None: torch's default device); a generator on another
    device type draws there and the draws are moved (torch itself refuses, e.g. "Expected a
    'cuda' device type for generator"), so a CPU generator also seeds CUDA sampling.
    """
    if generator is None or isinstance(generator, torch.Generator):
        return draw_on_generator_device(torch.randn, tuple(shape), generator, device, dtype)
    if isinstance(generator, RowBlocks):
        return generator.draw(shape, device, dtype)
    if isinstance(generator, EachRowAlone):
        row = draw_on_generator_device(
            torch.randn, (1, *shape[1:]), generator.generator, device, dtype
        )
        return row.expand(tuple(shape))
    if not _is_sequence(generator):
        raise _not_a_generator(generator)
    if len(generator) != shape[0]:
        raise ValueError(f"{len(generator)} generators for {shape[0]} rows: give one per row")
    if not generator:  # no rows, no generators: nothing to draw (torch.stack needs one)
        return torch.empty(tuple(shape), device=device, dtype=dtype)
    return torch.stack(
        [
            draw_on_generator_device(torch.randn, (1, *shape[1:]), g, device, dtype)[0]
            for g in generator
        ]
    )


def _check_generators(generator: Generators) -> None:
    """Refuse what :func:`randn_rows` cannot draw from, naming the fix: an int seed, or a
    sequence holding something other than generators. Once per call: O(number of rows)."""
    if generator is None or isinstance(generator, (torch.Generator, RowBlocks, EachRowAlone)):
        return
    if not _is_sequence(generator):
        raise _not_a_generator(generator)
    for i, g in enumerate(generator):
        if not isinstance(g, torch.Generator):
            raise TypeError(
                f"generator must hold one torch.Generator per row, got {type(g).__name__} "
                f"{g!r} at row {i}: pass torch.Generator().manual_seed(seed) for each row"
            )


def _is_sequence(generator: object) -> bool:
    return isinstance(generator, Sequence) and not isinstance(generator, (str, bytes))


def _not_a_generator(generator: object) -> TypeError:
    seed = generator if isinstance(generator, (int, np.integer)) else "seed"
    return TypeError(
        "generator must be a torch.Generator, a sequence of them (one per row), EachRowAlone, "
        f"RowBlocks or None, got {type(generator).__name__} {generator!r}: for a seed pass "
        f"generator=torch.Generator().manual_seed({seed})"
    )


def draw_on_generator_device(
    draw: Callable[..., torch.Tensor],
    shape: tuple[int, ...],
    generator: torch.Generator | None,
    device: torch.device | str | None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """``draw(shape, generator=..., device=..., dtype=...)`` (``torch.randn``, ``torch.rand``)
    with the result on ``device`` (None: torch's default device). torch only draws from a
    generator of the result's device type; one of another type draws where it lives, and the
    draws are moved."""
    target = torch.get_default_device() if device is None else torch.device(device)
    if generator is None or generator.device.type == target.type:
        return draw(shape, generator=generator, device=device, dtype=dtype)
    return draw(shape, generator=generator, device=generator.device, dtype=dtype).to(target)


class SamplerState(NamedTuple):
    """After a reverse step: the step index reached from, the new sample and the x0 prediction."""

    t: int
    sample: torch.Tensor
    pred_x0: torch.Tensor


def noise_to(
    process: GaussianDiffusion,
    x0: torch.Tensor,
    noise_steps: int,
    generator: Generators = None,
) -> torch.Tensor:
    """x0 corrupted by ``noise_steps`` forward steps (T'); T' = 0 returns x0 unchanged."""
    check_data(x0, "x0")
    _check_count(noise_steps, "noise_steps")
    _check_generators(generator)
    if not 0 <= noise_steps <= process.num_steps:
        raise ValueError(f"noise_steps must lie in 0..{process.num_steps}, got {noise_steps}")
    if noise_steps == 0:
        return x0
    t = torch.full((x0.shape[0],), noise_steps - 1, dtype=torch.long, device=x0.device)
    noise = randn_rows(x0.shape, generator, x0.device, x0.dtype)
    return process.q_sample(x0, t, noise)


def _check_count(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer number of steps, got {value!r}")


class Sampler(abc.ABC):
    """The reverse loop over a process; subclasses define one ``step``."""

    def __init__(self, process: GaussianDiffusion, clip_x0: tuple[float, float] | None = None):
        self.process = process
        self.clip_x0 = check_clip(clip_x0)

    @abc.abstractmethod
    def step(
        self,
        model_fn: ModelFn,
        x_t: torch.Tensor,
        t: int,
        generator: Generators = None,
    ) -> SamplerState:
        """One reverse step from step index ``t`` (0-based) to ``t - 1``."""

    def _noise(self, like: torch.Tensor, generator: Generators) -> torch.Tensor:
        return randn_rows(like.shape, generator, like.device, like.dtype)

    def iterate(
        self,
        model_fn: ModelFn,
        x: torch.Tensor,
        start: int | None = None,
        generator: Generators = None,
        progress: bool = False,
        grad: bool = False,
    ) -> Iterator[SamplerState]:
        """Yield the state after each step, from step ``start`` (default T) down to step 1.

        Like :meth:`sample`, the steps run without autograd: a graph through every step would
        hold all intermediate activations. ``grad=True`` records it (to backpropagate through
        sampling); the caller's own grad mode is never changed between the yields.
        """
        check_data(x, "x")
        _check_generators(generator)
        start = self.process.num_steps if start is None else start
        _check_count(start, "start")
        if not 0 <= start <= self.process.num_steps:
            raise ValueError(f"start must lie in 0..{self.process.num_steps}, got {start}")
        steps = range(start - 1, -1, -1)
        for t in progress_bar(steps, show=progress, desc="sampling", leave=False):
            # Entered per step, not around the loop: a context open across a ``yield`` would
            # switch autograd off in the caller's code too.
            with contextlib.nullcontext() if grad else torch.no_grad():
                state = self.step(model_fn, x, t, generator)
            x = state.sample
            yield state

    @torch.no_grad()
    def sample(
        self,
        model_fn: ModelFn,
        x: torch.Tensor,
        start: int | None = None,
        generator: Generators = None,
        progress: bool = False,
    ) -> torch.Tensor:
        """Run the reverse process from ``x`` at step ``start`` (default: x = x_T, pure noise)."""
        for state in self.iterate(model_fn, x, start, generator, progress):
            x = state.sample
        return x

    def _step_t(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """The step as a 0-d tensor (one step for the whole batch), after checking ``x`` and
        ``t``: a negative ``t`` would otherwise index the schedule from its end, and a step per
        row fail in the scalar lookups of the step without naming it."""
        check_data(x, "x_t")
        if isinstance(t, torch.Tensor) and t.numel() != 1:
            raise ValueError(
                f"a sampler step takes one step index for the whole batch (an int), got t of "
                f"shape {tuple(t.shape)}: for one step per row use process.p_mean_variance"
            )
        return self.process._steps(t, x).reshape(())


class DDPMSampler(Sampler):
    """Ancestral sampling, x_{t-1} = mu_theta(x_t, t) + sigma_t z (z = 0 at t = 1 or without noise)."""

    def __init__(
        self,
        process: GaussianDiffusion,
        add_noise: bool = True,
        clip_x0: tuple[float, float] | None = None,
    ) -> None:
        super().__init__(process, clip_x0)
        self.add_noise = add_noise

    def step(self, model_fn, x_t, t, generator=None):
        step = self._step_t(x_t, t)
        out = self.process._p_mean_variance(model_fn, x_t, step, self.clip_x0)
        if not self.add_noise or t == 0:
            return SamplerState(t, out.mean, out.pred_x0)
        noise = self._noise(x_t, generator)
        # sigma_t from the float64 table in at least float32: out.log_variance is in x_t's dtype,
        # and a log-variance rounded to bfloat16 puts sigma up to ~1.5% off at small variances.
        wide = torch.promote_types(x_t.dtype, torch.float32)
        log_variance = self.process.reverse_log_variance[step].to(x_t.device, wide)
        spread = torch.exp(0.5 * log_variance) * noise.to(wide)  # a 0-d sigma would take z's dtype
        return SamplerState(t, out.mean + spread.to(out.mean.dtype), out.pred_x0)


class DDIMSampler(Sampler):
    """DDIM with stochasticity ``eta`` (0: deterministic; 1 on all steps: DDPM's posterior variance)."""

    def __init__(
        self,
        process: GaussianDiffusion,
        eta: float = 0.0,
        clip_x0: tuple[float, float] | None = None,
    ) -> None:
        super().__init__(process, clip_x0)
        # Above 1, sigma^2 can exceed 1 - abar_{t'} and the direction term has no real root:
        # the marginals q(x_{t'} | x_0) the sampler relies on are then not preserved.
        if not 0 <= eta <= 1:
            raise ValueError(
                f"eta must lie in [0, 1] (0: deterministic DDIM, 1: DDPM's variance), got {eta}"
            )
        self.eta = eta

    def sigma(self, t: int) -> float:
        """sigma_t of Song et al. Eq. 16 for the step t -> t-1 of this (possibly respaced) process."""
        t = step_index(t, self.process.num_steps)
        abar = float(self.process.alpha_bar[t])
        abar_prev = float(self.process.alpha_bar_prev[t])
        return self.eta * ((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)) ** 0.5

    def step(self, model_fn, x_t, t, generator=None):
        process, batch_t = self.process, self._step_t(x_t, t)
        output = _model_output(model_fn, x_t, process._model_t(batch_t, x_t.shape[0]))
        pred_x0, pred_eps = process._to_x0_eps(output, x_t, batch_t)
        if self.clip_x0 is not None:
            pred_x0 = pred_x0.clamp(*self.clip_x0)
            pred_eps = process._eps_from_x0(x_t, batch_t, pred_x0)
        abar_prev = float(process.alpha_bar_prev[t])
        sigma = self.sigma(t)
        # Non-negative for eta <= 1; the floor only absorbs rounding (eta = 1 at t = 1).
        direction = max(1.0 - abar_prev - sigma**2, 0.0) ** 0.5
        mean = abar_prev**0.5 * pred_x0 + direction * pred_eps
        if sigma == 0.0:
            return SamplerState(t, mean, pred_x0)
        return SamplerState(t, mean + sigma * self._noise(x_t, generator), pred_x0)
