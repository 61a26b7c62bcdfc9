"""SASRec (Kang & McAuley, ICDM 2018): causal self-attention over the history, full softmax;
and :class:`MostPopular`, the next-item floor every model must beat.

The history encoder (:class:`~recdiff.nn.sequence.HistoryEncoder`) summarises the items before the
target; its output is scored against every item embedding (shared input/output table) and trained
with cross-entropy over the whole catalogue, as in DreamRec's SASRec baseline, rather than with the
original paper's sampled binary loss.

Two ways to train:

- ``all_positions=False`` (default): one prediction per example, the target after the whole
  history, as DreamRec's SASRec baseline does on its fixed (history, next) examples.
- ``all_positions=True``: SASRec's own objective. Every position of a window predicts the item
  after it (the last one the target) in one forward pass; on per-user sequences only each user's
  latest window is used, so an epoch is one pass per user instead of one per prefix.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn
from torch.utils.checkpoint import checkpoint

from recdiff.data.batches import WindowedExamples
from recdiff.models.sequential import SequentialRecommender, check_sequence_dataset
from recdiff.nn.sequence import HistoryEncoder

__all__ = ["MostPopular", "MostPopularConfig", "SASRec", "SASRecConfig"]


class SASRecConfig(BaseModel):
    """SASRec's network (defaults: DreamRec's baseline settings)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    dim: int = Field(64, ge=1, description="embedding and hidden size")
    blocks: int = Field(1, ge=1, description="self-attention blocks")
    heads: int = Field(1, ge=1, description="attention heads (must divide dim)")
    ff_dim: int | None = Field(None, ge=1, description="feed-forward width (None = dim)")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout in the encoder")
    activation: Literal["gelu", "relu"] = Field(
        "gelu",
        description="the feed-forward's non-linearity: relu as in SASRec's paper, gelu (the "
        "default, with which docs/results.md measured SASRec) as in later Transformers",
    )
    all_positions: bool = Field(
        False,
        description="train every position of a window to predict its next item (SASRec's "
        "objective; per-user data: one window per user) instead of the last position only",
    )

    @model_validator(mode="after")
    def _heads_divide(self) -> SASRecConfig:
        if self.dim % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide dim ({self.dim})")
        return self


class MostPopularConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


#: Logits the all-positions loss holds at a time (positions x items, 1 GB in float32): beyond
#: it, the loss is summed over chunks of positions whose logits are recomputed in the backward
#: pass, not kept. A batch of 256 windows of 50 over 286,099 items would otherwise hold 15 GB of
#: logits several times over (the softmax, its gradient): out of memory on a 24 GB machine,
#: where in chunks it trains in a few GB more than its other tensors, for a third more logit
#: work. The papers' catalogues (Beauty's 12,101 items: 155 M logits a batch) stay unchunked.
LOSS_BLOCK = 2**28


def _cross_entropy_sum(states: torch.Tensor, items: torch.Tensor, targets: torch.Tensor):
    return F.cross_entropy((states @ items.T).float(), targets, reduction="sum")


def position_loss_sum(
    states: torch.Tensor, items: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """The summed full-catalogue cross-entropy of ``states`` [positions, dim] against ``items``
    [n_items, dim], with at most :data:`LOSS_BLOCK` logits held at a time."""
    rows = max(1, LOSS_BLOCK // items.shape[0])
    if states.shape[0] <= rows:
        return _cross_entropy_sum(states, items, targets)
    parts = [
        checkpoint(
            _cross_entropy_sum,
            states[start : start + rows],
            items,
            targets[start : start + rows],
            use_reentrant=False,
        )
        for start in range(0, states.shape[0], rows)
    ]
    return torch.stack(parts).sum()


class SASRecNet(nn.Module):
    """Encoder + full-catalogue cross-entropy."""

    def __init__(self, n_items: int, max_len: int, config: SASRecConfig) -> None:
        super().__init__()
        self.all_positions = config.all_positions
        self.encoder = HistoryEncoder(
            n_items,
            config.dim,
            max_len,
            blocks=config.blocks,
            heads=config.heads,
            dropout=config.dropout,
            ff_dim=config.ff_dim,
            activation=config.activation,
        )

    def logits(self, history: torch.Tensor) -> torch.Tensor:
        return self.encoder(history) @ self.encoder.items.T

    def real_positions(self, history: torch.Tensor) -> torch.Tensor:
        """[batch, length] mask of the items that are not padding."""
        return history != self.encoder.pad_id

    def forward(self, history: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if not self.all_positions:
            return F.cross_entropy(self.logits(history).float(), targets)
        # Left-padded: the real items are a suffix, so a real position's next item is real too.
        real = self.real_positions(history)
        following = torch.cat([history[:, 1:], targets[:, None]], dim=1)
        states = self.encoder(history, all_positions=True)[real]
        # The mean over real positions; a DDP shard of empty histories gives 0, not NaN.
        total = position_loss_sum(states, self.encoder.items, following[real])
        return total / real.sum().clamp_min(1)


class SASRec(SequentialRecommender):
    """Next-item recommendation by causal self-attention, scored by inner product."""

    model_name = "sasrec"
    config_class = SASRecConfig
    #: Each loss reaches every parameter, so DDP need not search for unused ones.
    trains_every_parameter = True

    def _build_net(self, n_items: int, max_len: int) -> nn.Module:
        return SASRecNet(n_items, max_len, self.config)

    def _training_examples(self, train):
        if self.config.all_positions and isinstance(train, WindowedExamples):
            return train.last_per_user()
        return train

    def loss_weight(self, batch: dict[str, torch.Tensor]) -> float | None:
        """The terms the loss averages over (see ``Trainable``): every real position of the
        windows with ``all_positions``, so DDP shards count by positions; None (the examples)
        otherwise."""
        if not self.config.all_positions:
            return None
        return float(self.net.real_positions(batch["history"]).sum())

    def _score_batch(self, history, generator):
        del generator  # deterministic
        return self.net.logits(history)

    ranks_by_inner_product = True

    def item_vectors(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self._check_fitted().encoder.items.detach(), None

    def _query_batch(self, history, generator):
        del generator
        return self.net.encoder(history)


class _Counts(nn.Module):
    def __init__(self, n_items: int) -> None:
        super().__init__()
        self.register_buffer("counts", torch.zeros(n_items))


class MostPopular(SequentialRecommender):
    """The next-item floor: every history gets the items most often seen as train targets."""

    model_name = "mostpop"
    config_class = MostPopularConfig
    seed_independent = True  # counting draws no random numbers

    def _build_net(self, n_items: int, max_len: int) -> nn.Module:
        return _Counts(n_items)

    def fit(self, data, *, evaluate=None, on_event=None):
        del evaluate, on_event  # nothing to select
        data = check_sequence_dataset(data)
        if len(data.train) == 0:  # no counts: the ranking would be the items' order
            raise ValueError("train has no next-item examples")
        self.build(data.n_items, data.max_len)
        counts = torch.bincount(torch.as_tensor(data.train.targets), minlength=data.n_items)
        self.net.counts.copy_(counts.float())
        return self

    def _score_batch(self, history, generator):
        del generator
        return self.net.counts.expand(history.shape[0], -1)
