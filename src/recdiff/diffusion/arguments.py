"""What the process, its samplers and the ELBO terms accept as ``x``, ``t``, ``noise``, ``clip_x0``.

Data is a floating-point ``[batch, ...]`` tensor; a step is an int or a long tensor of step
indices, 0-based (index ``i`` is the paper's ``t = i + 1``), one for the batch or one per example;
noise has the data's shape; an x0 clip range is ``(low, high)``. Every public entry point checks
its arguments here once, so each refusal reads the same wherever it is raised and names the fix.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["check_clip", "check_data", "step_index", "step_indices"]


def check_data(x: torch.Tensor, name: str = "x0") -> None:
    """Refuse what the process cannot treat as a batch of real vectors, naming the fix.

    The schedule's float64 coefficients are cast to the data's dtype, so integer data would
    truncate them to 0 (x_t = 0) and bool data turn them into True; and every per-example
    reduction (losses, ELBO terms) sums over the dims after the first, the batch.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor, got {x.dtype} (the schedule's "
            f"coefficients would be cast to it): pass {name}.float()"
        )
    if x.dim() < 2:
        raise ValueError(
            f"{name} must be [batch, ...] with at least 2 dims, got shape {tuple(x.shape)}: "
            f"for one value per example pass {name}[:, None]"
        )


def check_clip(clip_x0: tuple[float, float] | None) -> tuple[float, float] | None:
    """``clip_x0`` as (low, high), refused when reversed: ``clamp`` with low > high sets every
    value to high, a constant x0 prediction instead of a clipped one."""
    if clip_x0 is None:
        return None
    try:
        low, high = clip_x0
    except (TypeError, ValueError):
        raise ValueError(f"clip_x0 must be a pair (low, high), got {clip_x0!r}") from None
    if not low <= high:
        raise ValueError(f"clip_x0 must be (low, high) with low <= high, got {clip_x0!r}")
    return low, high


def _noise_for(x0: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
    """``noise`` (fresh draws if None), refused when it would broadcast against x0."""
    if noise is None:
        return torch.randn_like(x0)
    if noise.shape != x0.shape:
        raise ValueError(f"noise must have x0's shape {tuple(x0.shape)}, got {tuple(noise.shape)}")
    if noise.dtype != x0.dtype:
        # integer or boolean noise is no Gaussian draw; float64 noise would turn x_t (and the
        # network's input) float64 beside a float32 x0
        raise TypeError(
            f"noise must have x0's dtype {x0.dtype}, got {noise.dtype}: draw it with "
            "torch.randn_like(x0), or convert it with noise.to(x0.dtype)"
        )
    return noise


def step_index(t: int, num_steps: int) -> int:
    """A Python int step in 0..T-1 as itself, checked without building a tensor (the samplers
    look their coefficients up by one at every step)."""
    if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer)):
        return int(step_indices(t, num_steps))  # a tensor, or the error naming what t is
    if not 0 <= t < num_steps:
        raise ValueError(f"{_step_rule(num_steps)} {int(t)}")
    return int(t)


def _step_rule(num_steps: int) -> str:
    return (
        f"t must be integer step indices in 0..{num_steps - 1} (0-based; the paper's "
        "t = index + 1), got"
    )


def step_indices(
    t: torch.Tensor | int,
    num_steps: int,
    batch: int | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``t`` as a long tensor of step indices, after checking it is one.

    A Python int becomes a 0-d tensor on ``device``; a tensor must hold integers, be 0-d (one
    step for the whole batch) or ``[batch]``, and lie in 0..T-1. Otherwise a negative index
    would silently wrap to the end of the schedule, a float one be refused by indexing, and a
    ``[batch, 1]`` column broadcast the batch against itself. The range is checked on CPU
    tensors only: reading an accelerator's tensor back would stall every training and sampling
    step (there an index past T fails in the lookup itself; a negative one is not caught).
    """
    rule = _step_rule(num_steps)
    if isinstance(t, (bool, np.bool_)) or (
        isinstance(t, torch.Tensor) and (t.dtype == torch.bool or not _is_integer(t))
    ):
        what = f"a {t.dtype} tensor" if isinstance(t, torch.Tensor) else repr(t)
        raise TypeError(f"{rule} {what}: pass whole numbers as a long tensor (t.long())")
    if isinstance(t, (int, np.integer)):
        return torch.tensor(step_index(t, num_steps), dtype=torch.long, device=device)
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{rule} a {type(t).__name__}: pass an int or a long tensor")
    if t.dim() > 1 or (batch is not None and t.dim() == 1 and t.shape[0] != batch):
        expected = "[batch]" if batch is None else f"[{batch}] (the batch)"
        raise ValueError(
            f"t must be 0-d (one step for the batch) or {expected}, got shape "
            f"{tuple(t.shape)}" + (": flatten it with t.reshape(-1)" if t.dim() > 1 else "")
        )
    if t.numel() and t.device.type == "cpu":  # no device sync; a meta tensor has no values
        low, high = torch.stack(torch.aminmax(t)).tolist()
        if low < 0 or high >= num_steps:
            bad = t[(t < 0) | (t >= num_steps)].reshape(-1)[:5].tolist()
            raise ValueError(f"{rule} {bad}")
    return t.long()


def _is_integer(t: torch.Tensor) -> bool:
    return not (t.is_floating_point() or t.is_complex())
