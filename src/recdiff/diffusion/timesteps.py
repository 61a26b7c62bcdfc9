"""Timestep samplers for training: uniform, and DiffRec's loss-aware importance sampling.

DiffRec (Wang et al. 2023, Eq. 14) samples t with p_t proportional to sqrt(E[L_t^2]), the mean
taken over the last ``history`` losses seen at step t; until every step has a full history the
sampler stays uniform; the learned distribution is mixed with ``uniform_prob`` of uniform, and each
example's loss is divided by its sampling probability. Here the division is written as the weight
1 / (T p_t), which is 1 under uniform sampling, so the two samplers give losses on the same scale.

=========================  =====================
paper                      code
=========================  =====================
p_t                        ``probabilities()``
L_t history (10 per t)     ``loss_history`` [T, 10]
loss / p_t                 ``loss * weights``
=========================  =====================
"""

from __future__ import annotations

import abc
from typing import ClassVar

import numpy as np
import torch

from .arguments import step_indices

__all__ = ["LossAwareSampler", "TimestepSampler", "UniformSampler"]


class TimestepSampler(abc.ABC):
    """Draws training steps and the importance weights that keep the loss unbiased."""

    #: Whether :meth:`update` uses the losses (callers can skip collecting them otherwise, e.g.
    #: the all-gather of every process's losses in data-parallel training).
    records_losses: ClassVar[bool] = False

    def __init__(self, num_steps: int) -> None:
        if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)):
            raise TypeError(f"num_steps (T) must be an integer, got {num_steps!r}")
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        self.num_steps = num_steps

    @abc.abstractmethod
    def probabilities(self) -> torch.Tensor:
        """p_t over the T steps (float64, sums to 1)."""

    def sample(
        self,
        batch: int,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``t`` [batch] (0-based) and ``weights`` [batch] = 1 / (T p_t), on ``device``.

        Steps are drawn where ``generator`` lives (a CUDA generator draws on the GPU, a CPU one
        on the CPU, whatever ``device``); without one, on the CPU from torch's global generator.
        """
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 0:
            raise ValueError(f"batch must be a whole number of examples >= 0, got {batch!r}")
        p = self.probabilities()
        if generator is not None:  # torch draws only from a generator on the tensor's device
            p = p.to(generator.device)
        if batch == 0:  # torch.multinomial refuses to draw nothing
            t = torch.empty(0, dtype=torch.long, device=p.device)
        else:
            t = torch.multinomial(p, int(batch), replacement=True, generator=generator)
        weights = 1.0 / (self.num_steps * p[t])
        return t.to(device), weights.to(device=device, dtype=torch.float32)

    def update(self, t: torch.Tensor, losses: torch.Tensor) -> None:  # noqa: B027 (optional hook)
        """Record per-example losses (before importance weighting); a no-op unless loss-aware."""

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:  # noqa: B027
        """Restore what :meth:`state_dict` returned."""


class UniformSampler(TimestepSampler):
    """t ~ U{0..T-1} with unit weights (DDPM's Algorithm 1)."""

    def probabilities(self) -> torch.Tensor:
        return torch.full((self.num_steps,), 1.0 / self.num_steps, dtype=torch.float64)


class LossAwareSampler(TimestepSampler):
    """Importance sampling of t by the root-mean-square of the recent losses at each step.

    Args:
        num_steps: T.
        history: losses kept per step (DiffRec: 10).
        uniform_prob: the share of uniform probability mixed in (DiffRec: 0.001).

    In data-parallel training every process must hold the same history, so that all sample from
    the same p_t: update it with every process's ``(t, loss)`` pairs of the step, concatenated in
    rank order (:func:`recdiff.train.distributed.gather_timestep_losses` does it for DiffRec).
    """

    records_losses = True

    def __init__(self, num_steps: int, history: int = 10, uniform_prob: float = 0.001) -> None:
        super().__init__(num_steps)
        if isinstance(history, bool) or not isinstance(history, (int, np.integer)):
            raise TypeError(f"history must be an integer number of losses, got {history!r}")
        if history < 1:
            raise ValueError(f"history must be >= 1, got {history}")
        if not 0 <= uniform_prob <= 1:
            raise ValueError(f"uniform_prob must lie in [0, 1], got {uniform_prob}")
        self.history = history
        self.uniform_prob = uniform_prob
        self.loss_history = torch.zeros(num_steps, history, dtype=torch.float64)
        self.counts = torch.zeros(num_steps, dtype=torch.long)  # losses ever seen per step

    @property
    def warmed_up(self) -> bool:
        """True once every step has a full history; before that sampling is uniform."""
        return bool((self.counts >= self.history).all())

    def probabilities(self) -> torch.Tensor:
        """p_t as DiffRec computes it once warmed up; uniform before, and also while the history
        holds a non-finite loss (until it is pushed out) or only zeros."""
        uniform = torch.full((self.num_steps,), 1.0 / self.num_steps, dtype=torch.float64)
        if not self.warmed_up:
            return uniform
        rms = self.loss_history.pow(2).mean(dim=1).sqrt()
        total = rms.sum()
        if not torch.isfinite(total) or total <= 0:
            return uniform
        return (1.0 - self.uniform_prob) * rms / total + self.uniform_prob * uniform

    def update(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        """Append each example's loss to the ring buffer of its step, vectorised over the batch.

        Examples sharing a step are written in batch order; only the last ``history`` of a group
        are kept, so no two writes in one call hit the same slot.
        """
        # Checked as the process checks steps: a float t would otherwise truncate (0.7 -> 0)
        # and a negative one break the per-step count.
        t = step_indices(t.detach().cpu() if isinstance(t, torch.Tensor) else t, self.num_steps)
        if not isinstance(losses, torch.Tensor):  # a numpy array or a list of numbers
            losses = torch.as_tensor(np.asarray(losses, dtype=np.float64))
        if losses.shape != t.shape:
            raise ValueError(
                f"losses must hold one loss per step of t: got shape {tuple(losses.shape)} for "
                f"t of shape {tuple(t.shape)}"
            )
        t, losses = t.reshape(-1), losses.detach().to(torch.float64).cpu().reshape(-1)
        if t.numel() == 0:
            return
        order = torch.sort(t, stable=True).indices
        t_sorted, loss_sorted = t[order], losses[order]
        group_size = torch.bincount(t_sorted, minlength=self.num_steps)
        group_start = torch.cumsum(group_size, 0) - group_size
        rank = torch.arange(t_sorted.numel()) - group_start[t_sorted]
        keep = rank >= group_size[t_sorted] - self.history
        slot = (self.counts[t_sorted] + rank) % self.history
        self.loss_history[t_sorted[keep], slot[keep]] = loss_sorted[keep]
        self.counts += group_size

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"loss_history": self.loss_history.clone(), "counts": self.counts.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if state["loss_history"].shape != self.loss_history.shape:
            raise ValueError(
                f"loss history shape {tuple(state['loss_history'].shape)} does not match "
                f"T={self.num_steps}, history={self.history}"
            )
        if state["counts"].shape != self.counts.shape:
            raise ValueError(
                f"loss counts shape {tuple(state['counts'].shape)} does not match T={self.num_steps}"
            )
        self.loss_history = state["loss_history"].to(torch.float64).clone()
        self.counts = state["counts"].long().clone()
