"""An exponential moving average of the weights (DDPM's EMA), kept by the trainer."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

__all__ = ["WeightAverage"]


class WeightAverage:
    """An exponential moving average of a module's trainable parameters (Polyak averaging).

    ``update()`` after each optimizer step; ``applied()`` swaps the average into the module for
    evaluation (and checkpointing) and the trained weights back afterwards. Buffers are shared,
    not averaged. The decay warms up as min(decay, (1 + n) / (10 + n)) so that early averages are
    not dominated by the initial weights.
    """

    def __init__(self, module: torch.nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"ema decay must lie in (0, 1), got {decay}")
        self.decay, self.updates = decay, 0
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.average = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self.average, [p.detach() for p in self.params], 1 - decay)

    @torch.no_grad()
    def copy_to_module(self) -> None:
        torch._foreach_copy_([p.data for p in self.params], self.average)

    def state(self) -> dict[str, Any]:
        """The average and its step count, for a resume checkpoint."""
        return {"average": [tensor.clone() for tensor in self.average], "updates": self.updates}

    @torch.no_grad()
    def load_state(self, state: dict[str, Any]) -> None:
        torch._foreach_copy_(self.average, list(state["average"]))
        self.updates = int(state["updates"])

    @contextlib.contextmanager
    def applied(self):
        trained = [p.detach().clone() for p in self.params]
        self.copy_to_module()
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_([p.data for p in self.params], trained)
