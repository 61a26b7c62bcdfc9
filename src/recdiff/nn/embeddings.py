"""Timestep embeddings (Vaswani et al. 2017's sinusoids, as DDPM and DiffRec use them)."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["SinusoidalTimeEmbedding", "timestep_embedding"]


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """[cos(t w_k), sin(t w_k)] with frequencies w_k = max_period^(-k / (dim // 2)); shape [b, dim].

    An odd ``dim`` is padded with one zero column.
    """
    _check_dim(dim)
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period)
        * torch.arange(half, dtype=torch.float32, device=t.device)
        / max(half, 1)
    )
    angles = t.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def _check_dim(dim: int) -> None:
    # One frequency needs a cosine and a sine: at dim 1 there is none, and the step would be
    # embedded as an empty vector (a shape error far from here, in the first matmul).
    if dim < 2:
        raise ValueError(f"step embedding dim must be >= 2 (a cosine and a sine), got {dim}")


class SinusoidalTimeEmbedding(nn.Module):
    """Sinusoids of ``t`` followed by a learned map: linear (DiffRec: size 10), or with
    ``hidden > 0`` an MLP ``dim -> hidden -> GELU -> dim`` (DreamRec's released step MLP, hidden
    = 2 dim)."""

    def __init__(self, dim: int, max_period: float = 10000.0, hidden: int = 0) -> None:
        super().__init__()
        _check_dim(dim)
        if hidden < 0:
            raise ValueError(f"hidden must be >= 0, got {hidden}")
        self.dim = dim
        self.max_period = max_period
        self.proj: nn.Module = (
            nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
            if hidden
            else nn.Linear(dim, dim)
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        # The sinusoids are computed in float32 (in float16 the angles of steps in the hundreds
        # lose their fractional part) and then take the projection's dtype, so a network cast
        # with .half(), .to(torch.bfloat16) or .double() works; under autocast the weights stay
        # float32 and autocast casts for the matmul as before.
        weight = next(self.proj.parameters())
        return self.proj(timestep_embedding(t, self.dim, self.max_period).to(weight.dtype))
