"""Classifier-free guidance (Ho & Salimans 2022) in DreamRec's convention (Yang et al. 2023).

Training: the condition c is replaced by a learned null embedding with probability p_u
(:func:`drop_condition`). Sampling: the denoiser's output is combined as
f~ = (1 + w) f(x_t, c, t) - w f(x_t, null, t) (:func:`guided`); w = 0 is purely conditional and
skips the unconditional pass. With w > 0 the samples move past the conditional ones, away from
the unconditional prediction, and concentrate: for a mixture of two Gaussian classes the samples'
mean moves beyond their class's mean and their spread shrinks as w grows, as the combination
implies, not as a defect of the sampler. Both passes run as one batch of twice the size. A denoiser may
offer a cheaper equivalent that shares the work both passes have in common; the checks of
:func:`guided` are public so that it refuses the same inputs with the same words.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .parametrization import ModelFn
from .samplers import draw_on_generator_device

__all__ = [
    "ConditionalModelFn",
    "check_guidance_cond",
    "check_guidance_scale",
    "drop_condition",
    "guided",
]

ConditionalModelFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def drop_condition(
    cond: torch.Tensor,
    null: torch.Tensor,
    prob: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Replace each row of ``cond`` [b, ...] by ``null`` [...] with probability ``prob``."""
    if not 0 <= prob <= 1:
        raise ValueError(f"condition drop probability must lie in [0, 1], got {prob}")
    _check_null(null, cond)
    if prob == 0:
        return cond
    draw = draw_on_generator_device(torch.rand, (cond.shape[0],), generator, cond.device)
    mask = (draw < prob).reshape((-1,) + (1,) * (cond.dim() - 1))
    return torch.where(mask, null.to(cond.dtype).expand_as(cond), cond)


def guided(
    model: ConditionalModelFn, cond: torch.Tensor, null: torch.Tensor, scale: float
) -> ModelFn:
    """A ``model_fn(x_t, t)`` giving (1 + w) f(x_t, c, t) - w f(x_t, null, t) with w = ``scale``.

    ``cond`` is [batch, ...], or [1, ...] for one condition shared by the whole batch (expanded
    to it, as a denoiser broadcasts it); ``null`` is one row of it, ``cond.shape[1:]``.
    """
    check_guidance_scale(scale)
    if cond.dim() >= 2:  # else cond itself is refused (or its row is a scalar) once called
        _check_null(null, cond)

    def model_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        batch = x_t.shape[0]
        check_guidance_cond(cond, batch)
        _check_null(null, cond)
        if scale == 0:
            return model(x_t, t, cond)
        if t.dim() == 0:  # one step for the batch, as the process's own t may be
            t = t.expand(batch)
        # The two halves are concatenated, so a shared condition must first fill its half.
        rows = cond.expand(batch, *cond.shape[1:])
        null_batch = null.to(cond.dtype).expand_as(rows)
        both = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([rows, null_batch]))
        conditional, unconditional = both[:batch], both[batch:]
        return (1 + scale) * conditional - scale * unconditional

    return model_fn


def check_guidance_scale(scale: float) -> None:
    """Refuse a guidance weight w that is not a finite number >= 0 (as :func:`guided` does)."""
    if not 0 <= scale < math.inf:  # NaN and inf would turn every output into NaN
        raise ValueError(f"guidance scale w must be a finite number >= 0, got {scale}")


def check_guidance_cond(cond: torch.Tensor, batch: int) -> None:
    """Refuse a condition that is not [batch, ...] or [1, ...] for x_t's ``batch`` rows."""
    if cond.dim() == 0 or cond.shape[0] not in (1, batch):
        raise ValueError(
            f"cond must be [batch, ...] with batch {batch} (x_t's) or 1, got shape "
            f"{tuple(cond.shape)}"
        )


def _check_null(null: torch.Tensor, cond: torch.Tensor) -> None:
    """Refuse a null embedding that is not one row of ``cond`` (``cond.shape[1:]``): it would
    be broadcast into every dropped row, or fail inside torch without naming it."""
    if not isinstance(null, torch.Tensor):
        raise TypeError(f"null must be a tensor of one condition row, got {type(null).__name__}")
    if cond.dim() >= 1 and null.shape != cond.shape[1:]:
        raise ValueError(
            f"null must have the shape of one row of cond, {tuple(cond.shape[1:])}, got "
            f"{tuple(null.shape)}: it replaces whole rows of cond"
        )
