"""Two-dimensional toy distributions and a two-sample statistic to judge generated samples."""

from __future__ import annotations

import math

import torch

__all__ = ["TOY_DATASETS", "energy_distance", "gaussian_mixture", "two_moons"]


def gaussian_mixture(
    n: int,
    generator: torch.Generator | None = None,
    modes: int = 8,
    radius: float = 2.0,
    std: float = 0.15,
) -> torch.Tensor:
    """``modes`` isotropic Gaussians of standard deviation ``std`` evenly spaced on a circle."""
    component = torch.randint(0, modes, (n,), generator=generator)
    angle = 2 * math.pi * component.float() / modes
    centers = radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return centers + std * torch.randn(n, 2, generator=generator)


def two_moons(
    n: int, generator: torch.Generator | None = None, noise: float = 0.08
) -> torch.Tensor:
    """Two interleaved half circles, centred and scaled to roughly unit spread."""
    upper = torch.rand(n, generator=generator) < 0.5
    angle = math.pi * torch.rand(n, generator=generator)
    x = torch.where(upper, torch.cos(angle), 1 - torch.cos(angle))
    y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
    points = torch.stack([x - 0.5, y - 0.25], dim=1) * 1.5
    return points + noise * torch.randn(n, 2, generator=generator)


TOY_DATASETS = {"mixture": gaussian_mixture, "moons": two_moons}


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Székely's energy distance 2 E|X-Y| - E|X-X'| - E|Y-Y'| (V-statistic; 0 iff equal laws).

    Both samples are used in full (cost O((n + m)^2)); keep them to a few thousand points.
    """
    x, y = x.double(), y.double()
    xy = torch.cdist(x, y).mean()
    xx = torch.cdist(x, x).mean()
    yy = torch.cdist(y, y).mean()
    return float(2 * xy - xx - yy)
