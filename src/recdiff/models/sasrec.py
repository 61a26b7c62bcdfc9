"""SASRec (Kang & McAuley, ICDM 2018): causal self-attention over the history, full softmax;
and :class:`MostPopular`, the next-item floor every model must beat.

The history encoder (:class:`~recdiff.nn.sequence.HistoryEncoder`) summarises the items before the
target; its output is scored against every item embedding (shared input/output table) and trained
with cross-entropy over the whole catalogue, as in DreamRec's SASRec baseline, rather than with the
original paper's sampled binary loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from recdiff.models.sequential import SequentialRecommender
from recdiff.nn.sequence import HistoryEncoder

__all__ = ["MostPopular", "MostPopularConfig", "SASRec", "SASRecConfig"]


class SASRecConfig(BaseModel):
    """SASRec's network (defaults: DreamRec's baseline settings)."""

    model_config = ConfigDict(extra="forbid")

    dim: int = Field(64, ge=1, description="embedding and hidden size")
    blocks: int = Field(1, ge=1, description="self-attention blocks")
    heads: int = Field(1, ge=1, description="attention heads (must divide dim)")
    ff_dim: int | None = Field(None, ge=1, description="feed-forward width (None = dim)")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout in the encoder")

    @model_validator(mode="after")
    def _heads_divide(self) -> SASRecConfig:
        if self.dim % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide dim ({self.dim})")
        return self


class MostPopularConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SASRecNet(nn.Module):
    """Encoder + full-catalogue cross-entropy."""

    def __init__(self, n_items: int, max_len: int, config: SASRecConfig) -> None:
        super().__init__()
        self.encoder = HistoryEncoder(
            n_items,
            config.dim,
            max_len,
            blocks=config.blocks,
            heads=config.heads,
            dropout=config.dropout,
            ff_dim=config.ff_dim,
        )

    def logits(self, history: torch.Tensor) -> torch.Tensor:
        return self.encoder(history) @ self.encoder.items.T

    def forward(self, history: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.logits(history).float(), targets)


class SASRec(SequentialRecommender):
    """Next-item recommendation by causal self-attention, scored by inner product."""

    model_name = "sasrec"
    config_class = SASRecConfig

    def _build_net(self, n_items: int, max_len: int) -> nn.Module:
        return SASRecNet(n_items, max_len, self.config)

    def _score_batch(self, history, generator):
        del generator  # deterministic
        return self.net.logits(history)


class _Counts(nn.Module):
    def __init__(self, n_items: int) -> None:
        super().__init__()
        self.register_buffer("counts", torch.zeros(n_items))


class MostPopular(SequentialRecommender):
    """The next-item floor: every history gets the items most often seen as train targets."""

    model_name = "mostpop"
    config_class = MostPopularConfig

    def _build_net(self, n_items: int, max_len: int) -> nn.Module:
        return _Counts(n_items)

    def fit(self, data, evaluate=None, on_event=None):
        del evaluate, on_event  # nothing to select
        self.build(data.n_items, data.max_len)
        counts = torch.bincount(torch.as_tensor(data.train.targets), minlength=data.n_items)
        self.net.counts.copy_(counts.float())
        return self

    def _score_batch(self, history, generator):
        del generator
        return self.net.counts.expand(history.shape[0], -1)
