"""A causal Transformer over item histories (SASRec, Kang & McAuley 2018; DreamRec's guidance).

Histories are left-padded: ``history[b, -1]`` is the newest item and pads (id ``n_items``, an
extra embedding row) fill the front. Each position attends to itself and to the real items
before it, never to later positions or to pads, so the output at the last position summarises the
whole history. An empty history (all pads) gives a finite vector computed from the pad embedding.

==========================  ===================================
paper                       code
==========================  ===================================
item embedding M_i          ``item_embedding.weight[i]``
positional embedding P_j    ``position_embedding.weight[j]``
self-attention blocks b     ``blocks`` (``heads``, ``ff_dim``)
F_n (last position)         ``HistoryEncoder.forward``
==========================  ===================================
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["HistoryEncoder", "attention_mask", "trim_left_padding"]


def attention_mask(is_pad: torch.Tensor, heads: int, last_only: bool = False) -> torch.Tensor:
    """Boolean ``[batch * heads, L, L]`` mask, True where attention is *not* allowed; with
    ``last_only``, its last query's row alone, ``[batch * heads, 1, L]``.

    Query i may attend key j when j <= i and key j is a real item, and always to itself (so no
    row is fully masked: a pad query then only sees itself, and nothing reads its output).
    """
    length = is_pad.shape[1]
    keys = torch.arange(length, device=is_pad.device)
    queries = keys[-1:] if last_only else keys
    future = keys[None, :] > queries[:, None]
    itself = keys[None, :] == queries[:, None]
    blocked = future | (is_pad[:, None, :] & ~itself)
    return blocked.repeat_interleave(heads, dim=0)


def trim_left_padding(history: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Left-padded ``[batch, L]`` histories without the leading columns that are padding in every
    row (at least one column is kept). :class:`HistoryEncoder` anchors positions at the newest
    item and masks pads, so its output is unchanged; the cost then follows the longest history
    in the batch instead of ``max_len``."""
    real = (history != pad_id).any(dim=0)
    if bool(real[0]) or history.shape[1] <= 1:
        return history
    first = int(real.to(torch.int8).argmax()) if bool(real.any()) else history.shape[1] - 1
    return history[:, first:]


class HistoryEncoder(nn.Module):
    """Item embeddings + learned positions + causal self-attention blocks; returns the last state.

    Args:
        n_items: catalogue size; the embedding table has one more row, the pad.
        dim: embedding and hidden size.
        max_len: the longest history (positions embedded).
        blocks: number of self-attention blocks.
        heads: attention heads (must divide ``dim``).
        dropout: dropout on embeddings, attention and feed-forward outputs.
        ff_dim: feed-forward width (default ``dim``, as SASRec).
        embedding_std: initial std of the item embeddings (DreamRec diffuses them, so their
            scale against the unit noise matters: it uses 1).
        activation: the feed-forward's non-linearity: ``"gelu"`` (the default) or ``"relu"``
            (SASRec's paper).
    """

    def __init__(
        self,
        n_items: int,
        dim: int,
        max_len: int,
        blocks: int = 1,
        heads: int = 1,
        dropout: float = 0.1,
        ff_dim: int | None = None,
        embedding_std: float | None = None,
        activation: str = "gelu",
    ) -> None:
        super().__init__()
        if n_items < 1 or dim < 1 or max_len < 1 or blocks < 0 or heads < 1:
            raise ValueError(
                "n_items, dim, max_len and heads must be >= 1 and blocks >= 0, got "
                f"{n_items}, {dim}, {max_len}, {heads}, {blocks}"
            )
        if dim % heads:
            raise ValueError(f"heads ({heads}) must divide dim ({dim})")
        self.n_items, self.dim, self.max_len, self.heads = n_items, dim, max_len, heads
        self.pad_id = n_items
        self.item_embedding = nn.Embedding(n_items + 1, dim)
        self.position_embedding = nn.Embedding(max_len, dim)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                dim,
                heads,
                dim_feedforward=ff_dim or dim,
                dropout=dropout,
                activation=activation,
                batch_first=True,
                norm_first=True,
            )
            for _ in range(blocks)
        )
        self.norm = nn.LayerNorm(dim)
        nn.init.normal_(self.item_embedding.weight, std=embedding_std or dim**-0.5)
        nn.init.normal_(self.position_embedding.weight, std=dim**-0.5)

    @property
    def items(self) -> torch.Tensor:
        """The ``[n_items, dim]`` item embeddings (without the pad row)."""
        return self.item_embedding.weight[: self.n_items]

    def forward(self, history: torch.Tensor, all_positions: bool = False) -> torch.Tensor:
        """``[batch, dim]`` summary of left-padded ``[batch, L]`` histories (L <= max_len); with
        ``all_positions``, the ``[batch, L, dim]`` state after every prefix (position j has seen
        items up to j only; pad positions hold values nothing should read)."""
        length = history.shape[1]
        if length > self.max_len:
            raise ValueError(f"histories of length {length} exceed max_len {self.max_len}")
        positions = torch.arange(self.max_len - length, self.max_len, device=history.device)
        x = self.item_embedding(history) + self.position_embedding(positions)
        x = self.dropout(x)
        if not self.blocks:
            return self.norm(x if all_positions else x[:, -1])
        is_pad = history == self.pad_id
        if all_positions:
            mask = attention_mask(is_pad, self.heads)
            for block in self.blocks:
                x = block(x, src_mask=mask)
            return self.norm(x)
        if len(self.blocks) > 1:
            mask = attention_mask(is_pad, self.heads)
            for block in self.blocks[:-1]:
                x = block(x, src_mask=mask)
        last_row = attention_mask(is_pad, self.heads, last_only=True)
        return self.norm(_last_query(self.blocks[-1], x, last_row))


def _last_query(
    block: nn.TransformerEncoderLayer, x: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """``block(x)[:, -1]`` computed for the last position only: ``[batch, dim]``.

    Nothing after the last block reads the other positions' outputs, so their queries and
    feed-forward rows need not be computed; the keys and values still come from every position.
    The same pre-norm arithmetic as ``nn.TransformerEncoderLayer(norm_first=True)``, with the
    block's own parameters, so a model computes the same state either way (up to rounding);
    only fewer dropout draws are made in training. ``mask``: the last query's row of
    :func:`attention_mask` (``last_only``), ``[batch * heads, 1, L]``.
    """
    keys = block.norm1(x)
    attended = block.self_attn(keys[:, -1:], keys, keys, attn_mask=mask, need_weights=False)[0]
    y = x[:, -1] + block.dropout1(attended[:, 0])
    hidden = block.dropout(block.activation(block.linear1(block.norm2(y))))
    return y + block.dropout2(block.linear2(hidden))
