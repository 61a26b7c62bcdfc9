"""Synthetic item sequences with planted order, for the next-item demo and tests.

Items are split into ``n_groups`` groups, each with a fixed cyclic order. A user walks one group:
the next item is, with probability ``follow``, the successor of the current item in the group's
order; otherwise an item of the same group (probability ``stay``) or of the whole catalogue, both
uniform. Popularity is flat, so most-popular does poorly; a model that learns "what follows what"
(SASRec, DreamRec) recovers the successors. Deterministic by ``seed``; built without Python loops
over users (one vectorised step per position).
"""

from __future__ import annotations

import numpy as np

from recdiff.data.sequences import SequenceDataset, UserSequences
from recdiff.data.vocab import Vocabulary

__all__ = ["demo_sequences", "make_sequences"]


def make_sequences(
    n_users: int = 1000,
    n_items: int = 200,
    n_groups: int = 10,
    min_length: int = 8,
    max_length: int = 30,
    follow: float = 0.7,
    stay: float = 0.2,
    seed: int = 0,
) -> UserSequences:
    """Per-user sequences (oldest first) of the planted walk described in the module."""
    if n_items < n_groups or n_groups < 1:
        raise ValueError(f"need 1 <= n_groups <= n_items, got {n_groups} and {n_items}")
    if not 1 <= min_length <= max_length:
        raise ValueError(f"need 1 <= min_length <= max_length, got {min_length}, {max_length}")
    if follow < 0 or stay < 0 or follow + stay > 1:
        raise ValueError(f"follow and stay must be >= 0 with sum <= 1, got {follow}, {stay}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_items)  # group g holds order[g::n_groups], in that cyclic order
    group_of = np.empty(n_items, dtype=np.int64)
    position = np.empty(n_items, dtype=np.int64)
    group_of[order] = np.arange(n_items) % n_groups
    position[order] = np.arange(n_items) // n_groups
    sizes = np.bincount(group_of, minlength=n_groups)

    lengths = rng.integers(min_length, max_length + 1, size=n_users)
    walk = np.empty((n_users, max_length), dtype=np.int64)
    walk[:, 0] = rng.integers(0, n_items, size=n_users)
    for step in range(1, max_length):
        current = walk[:, step - 1]
        g, p = group_of[current], position[current]
        successor = order[((p + 1) % sizes[g]) * n_groups + g]
        same_group = order[rng.integers(0, sizes[g]) * n_groups + g]
        anywhere = rng.integers(0, n_items, size=n_users)
        draw = rng.random(n_users)
        walk[:, step] = np.where(
            draw < follow, successor, np.where(draw < follow + stay, same_group, anywhere)
        )
    keep = np.arange(max_length)[None, :] < lengths[:, None]
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    return UserSequences(indptr, walk[keep], Vocabulary.range(n_users), Vocabulary.range(n_items))


def demo_sequences(seed: int = 0, max_len: int = 10) -> SequenceDataset:
    """The built-in next-item demo: :func:`make_sequences` split leave-one-out."""
    return make_sequences(seed=seed).leave_one_out(max_len=max_len)
