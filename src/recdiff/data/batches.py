"""Next-item examples for sequential recommenders: last-N history windows, lengths, targets.

A history window holds the ``max_len`` most recent items before a target, padded with
``pad_id`` when the history is shorter:

- ``padding="left"`` (SASRec style): pads first, the newest item is in the last column;
  ``history[e, -1]`` is always the most recent item (when ``lengths[e] > 0``).
- ``padding="right"`` (DreamRec style): the oldest kept item is in column 0, then newer items,
  then pads; ``history[e, lengths[e] - 1]`` is the most recent item.

In both layouts the real items are in time order (oldest first). All functions work on every
example at once with numpy; nothing loops over examples in Python.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from recdiff.data._ragged import check_integer_arrays, concat_ranges

if TYPE_CHECKING:
    import torch

Padding = Literal["left", "right"]


def history_windows(
    items: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    max_len: int,
    pad_id: int,
    padding: Padding = "left",
) -> tuple[np.ndarray, np.ndarray]:
    """Windows over a flat item array: example ``e`` uses ``items[starts[e]:ends[e]]``.

    Only the last ``max_len`` items of each range are kept. Returns ``(history, lengths)``:
    an int64 ``[n, max_len]`` array and the int64 number of real items per row.
    """
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    if padding not in ("left", "right"):
        raise ValueError(f"padding must be 'left' or 'right', got {padding!r}")
    items = np.asarray(items, dtype=np.int64)
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    if (ends < starts).any():
        raise ValueError("every window needs starts <= ends")
    lengths = np.minimum(ends - starts, max_len)
    offsets = np.arange(max_len, dtype=np.int64)[None, :]
    if padding == "left":
        positions = ends[:, None] - max_len + offsets
        real = offsets >= (max_len - lengths)[:, None]
    else:
        positions = (ends - lengths)[:, None] + offsets
        real = offsets < lengths[:, None]
    if items.size == 0:
        return np.full(positions.shape, pad_id, dtype=np.int64), lengths
    gathered = items[np.clip(positions, 0, items.size - 1)]
    return np.where(real, gathered, np.int64(pad_id)), lengths


@dataclass(frozen=True)
class SequenceExamples:
    """A set of next-item examples (one split, or one batch).

    Attributes:
        history: int64 ``[n, max_len]`` item indices, ``pad_id`` where there is no item.
        lengths: int64 ``[n]`` number of real items in each history (0 = empty history).
        targets: int64 ``[n]`` the item that came next.
        users: int64 ``[n]`` user (or session) index per example, or None when unknown.
    """

    history: np.ndarray
    lengths: np.ndarray
    targets: np.ndarray
    users: np.ndarray | None = None

    def __post_init__(self) -> None:
        check_integer_arrays(self, "history", "lengths", "targets")
        n = len(self.targets)
        if self.history.ndim != 2 or self.history.shape[0] != n or self.lengths.shape != (n,):
            raise ValueError(
                f"history [n, max_len], lengths [n] and targets [n] disagree: "
                f"{self.history.shape}, {self.lengths.shape}, {self.targets.shape}"
            )
        if self.users is not None and self.users.shape != (n,):
            raise ValueError("users must have one entry per example")

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    @property
    def max_len(self) -> int:
        return int(self.history.shape[1])

    def take(self, index: np.ndarray | slice) -> SequenceExamples:
        """A subset (e.g. one mini-batch) of the examples."""
        return SequenceExamples(
            self.history[index],
            self.lengths[index],
            self.targets[index],
            None if self.users is None else self.users[index],
        )

    def to_torch(self, device: str | torch.device | None = None) -> dict[str, torch.Tensor]:
        """``{"history", "lengths", "targets"[, "users"]}`` as int64 tensors on ``device``."""
        import torch  # imported lazily so reading data does not pay for importing torch

        out = {"history": self.history, "lengths": self.lengths, "targets": self.targets}
        if self.users is not None:
            out["users"] = self.users
        return {k: torch.as_tensor(np.ascontiguousarray(v), device=device) for k, v in out.items()}


@dataclass(frozen=True)
class WindowedExamples:
    """Next-item examples kept as target positions in a ragged per-user array.

    Windows are built only for the examples asked for (:meth:`take` a mini-batch), because all
    training windows of a long-sequence dataset do not fit in memory (ML-1M with
    ``max_len=200``: about 1M examples x 200 ids). Offers the same reading interface as
    :class:`SequenceExamples`; :attr:`history` materialises every window.

    Attributes:
        indptr, items: the per-user sequences (``items[indptr[u]:indptr[u+1]]``, oldest first).
        target_positions: int64 index into ``items`` of each example's target.
        max_len, pad_id, padding: the window layout (see the module docstring).
    """

    indptr: np.ndarray
    items: np.ndarray
    target_positions: np.ndarray
    max_len: int
    pad_id: int
    padding: Padding = "left"

    def __len__(self) -> int:
        return int(self.target_positions.shape[0])

    @property
    def users(self) -> np.ndarray:
        """Row (user index) of every example."""
        return (np.searchsorted(self.indptr, self.target_positions, side="right") - 1).astype(
            np.int64
        )

    @property
    def targets(self) -> np.ndarray:
        return self.items[self.target_positions]

    @property
    def lengths(self) -> np.ndarray:
        starts = self.indptr[self.users]
        return np.minimum(self.target_positions - starts, self.max_len)

    @property
    def history(self) -> np.ndarray:
        """All windows ``[n, max_len]`` (memory: n x max_len x 8 bytes)."""
        return self.materialize().history

    def take(self, index: np.ndarray | slice) -> SequenceExamples:
        """Build the windows of a subset (e.g. one mini-batch) of the examples."""
        positions = self.target_positions[index]
        users = (np.searchsorted(self.indptr, positions, side="right") - 1).astype(np.int64)
        history, lengths = history_windows(
            self.items, self.indptr[users], positions, self.max_len, self.pad_id, self.padding
        )
        return SequenceExamples(history, lengths, self.items[positions], users)

    def materialize(self) -> SequenceExamples:
        return self.take(slice(None))

    def last_per_user(self) -> WindowedExamples:
        """Only each user's latest example (its longest window): for objectives that predict
        every position of a window at once, where all prefixes would repeat the same pairs."""
        positions = np.sort(self.target_positions)
        users = np.searchsorted(self.indptr, positions, side="right") - 1
        keep = np.ones(positions.size, dtype=bool)  # a user's last position ends its run
        keep[:-1] = users[1:] != users[:-1]
        return dataclasses.replace(self, target_positions=positions[keep])

    def to_torch(self, device: str | torch.device | None = None) -> dict[str, torch.Tensor]:
        return self.materialize().to_torch(device)


def examples_from_sequences(
    indptr: np.ndarray,
    items: np.ndarray,
    target_positions: np.ndarray,
    max_len: int,
    pad_id: int,
    padding: Padding = "left",
) -> WindowedExamples:
    """Examples for given target positions in a ragged per-user array (time-ordered rows).

    ``target_positions`` index into ``items``; each history is the target's user's items
    before it (last ``max_len``), and ``users`` is the row of every target.
    """
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    if padding not in ("left", "right"):
        raise ValueError(f"padding must be 'left' or 'right', got {padding!r}")
    return WindowedExamples(
        np.asarray(indptr, dtype=np.int64),
        np.asarray(items, dtype=np.int64),
        np.asarray(target_positions, dtype=np.int64),
        max_len,
        pad_id,
        padding,
    )


def prefix_target_positions(
    indptr: np.ndarray, min_history: int = 1, exclude_last: int = 0
) -> np.ndarray:
    """Positions of every item that has at least ``min_history`` items before it in its row,
    skipping the last ``exclude_last`` items of each row (held out for valid/test)."""
    if min_history < 0 or exclude_last < 0:
        raise ValueError("min_history and exclude_last must be >= 0")
    indptr = np.asarray(indptr, dtype=np.int64)
    counts = np.diff(indptr)
    n_targets = np.maximum(counts - exclude_last - min_history, 0)
    return concat_ranges(indptr[:-1] + min_history, n_targets)
