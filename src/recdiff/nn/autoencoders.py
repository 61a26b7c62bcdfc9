"""Autoencoders over groups of input columns (L-DiffRec's item clusters): one variational
encoder per group, latents concatenated in group order, decoded per group or by one shared
decoder."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ClusterAutoencoder", "split_units"]


def split_units(total: int, sizes: np.ndarray) -> list[int]:
    """``total`` units shared by groups in proportion to their sizes: one each first, the rest
    by largest remainder, so the parts always sum to ``total``. 0 units (no hidden layer): 0
    each."""
    sizes = np.asarray(sizes, dtype=np.float64)
    if total == 0:
        return [0] * sizes.size
    if total < sizes.size:
        raise ValueError(f"cannot give {sizes.size} groups at least one of {total} units")
    share = (total - sizes.size) * sizes / sizes.sum()
    dims = 1 + np.floor(share).astype(np.int64)
    leftover = total - int(dims.sum())
    dims[np.argsort(-(share - np.floor(share)), kind="stable")[:leftover]] += 1
    return [int(d) for d in dims]


def _mlp(widths: list[int], bounded: bool = False) -> nn.Module:
    """Linear layers through the non-zero widths, tanh between them (and after the last when
    ``bounded``)."""
    widths = [w for w in widths if w]
    layers: list[nn.Module] = []
    for i in range(len(widths) - 1):
        if i:
            layers.append(nn.Tanh())
        layers.append(nn.Linear(widths[i], widths[i + 1]))
    if bounded:
        layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class ClusterAutoencoder(nn.Module):
    """One variational encoder per item group, latents concatenated in group order; one decoder
    per group (from its own latent) or one shared decoder (from the whole latent).

    ``labels[i]`` is column i's group: 0..C-1, every group with at least one column.
    """

    def __init__(
        self,
        labels: np.ndarray,
        latent_dim: int,
        dropout: float,
        hidden_dim: int = 0,
        decoder: Literal["cluster", "shared"] = "cluster",
        decoder_hidden_dim: int | None = None,
        normalize_input: bool = True,
        bounded_encoder: bool = False,
    ) -> None:
        super().__init__()
        labels = np.asarray(labels, dtype=np.int64)
        if labels.ndim != 1 or labels.size == 0 or labels.min() < 0:
            raise ValueError(
                "labels must be a non-empty 1-d array of group numbers >= 0, one per column"
            )
        n_groups = int(labels.max()) + 1
        sizes = np.bincount(labels, minlength=n_groups)
        if not sizes.all():
            raise ValueError(
                f"labels leave group(s) {np.flatnonzero(sizes == 0).tolist()} of 0..{n_groups - 1} "
                "empty: number the groups 0..C-1 without gaps (e.g. np.unique(labels, "
                "return_inverse=True)[1])"
            )
        if latent_dim < n_groups:
            raise ValueError(f"latent_dim ({latent_dim}) must be >= n_clusters ({n_groups})")
        dims = split_units(latent_dim, sizes)
        hidden = split_units(hidden_dim, sizes)
        if decoder_hidden_dim is None:
            decoder_hidden_dim = hidden_dim
        self.register_buffer("labels", torch.from_numpy(labels))
        self.groups = [np.flatnonzero(labels == c) for c in range(n_groups)]
        for c, members in enumerate(self.groups):
            self.register_buffer(f"items_{c}", torch.from_numpy(members))
        # Each item's column within its group's slice, and within the concatenation of the groups'
        # logits (for sparse rows); derived from the labels, so not saved.
        position = np.empty_like(labels)
        for members in self.groups:
            position[members] = np.arange(members.size)
        offset = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.register_buffer("position", torch.from_numpy(position), persistent=False)
        self.register_buffer(
            "grouped_column", torch.from_numpy(offset[labels] + position), persistent=False
        )
        self.latent_dims = dims
        self.encoders = nn.ModuleList(
            _mlp([int(n), int(h), 2 * int(d)], bounded_encoder)
            for n, h, d in zip(sizes, hidden, dims, strict=True)
        )
        self.shared = decoder == "shared"
        if self.shared:  # item order: logits need no scatter
            self.decoders = nn.ModuleList(
                [_mlp([latent_dim, decoder_hidden_dim, int(labels.size)])]
            )
        else:
            out_hidden = split_units(decoder_hidden_dim, sizes)
            self.decoders = nn.ModuleList(
                _mlp([int(d), int(h), int(n)])
                for n, h, d in zip(sizes, out_hidden, dims, strict=True)
            )
        self.dropout = nn.Dropout(dropout)
        self.normalize_input = normalize_input
        self.n_items = int(labels.size)
        for layer in self.modules():
            if isinstance(layer, nn.Linear):
                nn.init.xavier_normal_(layer.weight)
                nn.init.normal_(layer.bias, std=1e-3)

    def _items(self, c: int) -> torch.Tensor:
        return getattr(self, f"items_{c}")

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent means and log-variances [b, latent_dim] of each group's slice of the rows
        (L2-normalised unless ``normalize_input`` is off).

        ``x`` is a dense [b, n_items] block or a coalesced sparse COO one
        (``recdiff.train.batches.sparse_rows``).
        """
        if x.is_sparse:
            return self._encode_sparse(x)
        mus, logvars = [], []
        for c, encoder in enumerate(self.encoders):
            part = x[:, self._items(c)]
            if self.normalize_input:
                part = F.normalize(part, dim=1)
            part = self.dropout(part)
            mu, logvar = encoder(part).chunk(2, dim=1)
            mus.append(mu)
            logvars.append(logvar)
        return torch.cat(mus, dim=1), torch.cat(logvars, dim=1)

    def _encode_sparse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`encode` touching only the stored entries: the first layer of each encoder is a
        sparse x dense product, ``nnz x width`` work instead of ``b x n_items x width``."""
        rows, items = x.indices()
        values, n_rows = x.values(), x.shape[0]
        group = self.labels[items]
        mus, logvars = [], []
        for c, encoder in enumerate(self.encoders):
            mine = group == c
            r, v = rows[mine], values[mine]
            # F.normalize's row norm, clamped the same way; dropout acts on stored entries only,
            # as dense dropout of the zeros changes nothing.
            if self.normalize_input:
                norm = v.new_zeros(n_rows).index_add_(0, r, v * v).sqrt().clamp_min(1e-12)
                v = v / norm[r]
            v = self.dropout(v)
            # Group-local columns keep the row-major order: the slice stays coalesced.
            part = torch.sparse_coo_tensor(
                torch.stack([r, self.position[items[mine]]]),
                v,
                (n_rows, self.groups[c].size),
                is_coalesced=True,
                check_invariants=False,
            )
            first = encoder[0]
            with torch.autocast(x.device.type, enabled=False):  # sparse kernels: float32 only
                hidden = torch.sparse.mm(part, first.weight.t()) + first.bias
            mu, logvar = encoder[1:](hidden).chunk(2, dim=1)
            mus.append(mu)
            logvars.append(logvar)
        return torch.cat(mus, dim=1), torch.cat(logvars, dim=1)

    def decode_grouped(self, z: torch.Tensor) -> torch.Tensor:
        """Item logits [b, n_items] group after group (item i at ``grouped_column[i]``): a
        softmax over items needs no item order, and skips :meth:`decode`'s scatter."""
        if self.shared:
            raise ValueError("a shared decoder scores items in item order: call decode()")
        parts = z.split(self.latent_dims, dim=1)
        return torch.cat(
            [decoder(part) for part, decoder in zip(parts, self.decoders, strict=True)], 1
        )

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Item logits [b, n_items] in item order from concatenated latents."""
        if self.shared:
            return self.decoders[0](z)
        out = z.new_empty(z.shape[0], self.n_items)
        for c, (part, decoder) in enumerate(
            zip(z.split(self.latent_dims, dim=1), self.decoders, strict=True)
        ):
            out[:, self._items(c)] = decoder(part).to(out.dtype)
        return out
