"""Sequential data: per-user item sequences and the next-item dataset built from them.

Two representations:

- :class:`UserSequences`: every user's items in time order (oldest first) as one ragged array
  (``indptr`` + ``item_idx``, CSR style). Repeated items are allowed: a sequence is a history,
  not a set. This is what the SASRec/ICLRec text files and DiffuRec's pickles hold.
- :class:`SequenceDataset`: the train/valid/test :class:`~recdiff.data.batches.SequenceExamples`
  (history windows + lengths + targets) a sequential model consumes, with the item vocabulary,
  ``pad_id`` and the padding side. DreamRec's pickles are stored this way already.

Conventions: items are contiguous indices ``0..n_items-1``; the pad id defaults to ``n_items``
(an extra embedding row, DreamRec's choice), so it can never collide with an item.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recdiff.data import frames
from recdiff.data._ragged import (
    check_integer_arrays,
    indptr_from_counts,
    position_in_row,
    rank_within_rows,
)
from recdiff.data.batches import (
    Padding,
    SequenceExamples,
    WindowedExamples,
    examples_from_sequences,
    history_windows,
    prefix_target_positions,
)
from recdiff.data.interactions import Interactions
from recdiff.data.prepare import ratings_at_least, warn_negative_ratings
from recdiff.data.vocab import Vocabulary, as_id_array, check_row

Examples = SequenceExamples | WindowedExamples


@dataclass(frozen=True)
class SequenceDataset:
    """Next-item examples per split over one item vocabulary.

    Attributes:
        train, valid, test: the examples; histories are ``[n, max_len]`` item indices.
            Built from :class:`UserSequences` they are :class:`WindowedExamples` (windows
            built per mini-batch with ``take``); read from DreamRec files, plain arrays.
        items: item vocabulary (``n_items = len(items)``).
        pad_id: the id filling empty history slots (not an item index).
        padding: ``"left"`` (newest item last) or ``"right"`` (oldest item first, pads after);
            see :mod:`recdiff.data.batches`.
    """

    train: Examples
    valid: Examples
    test: Examples
    items: Vocabulary
    pad_id: int
    padding: Padding

    def __post_init__(self) -> None:
        if 0 <= self.pad_id < self.n_items:
            raise ValueError(
                f"pad_id {self.pad_id} collides with an item index (0.."
                f"{self.n_items - 1}); use pad_id=n_items"
            )
        if self.padding not in ("left", "right"):
            raise ValueError(f"padding must be 'left' or 'right', got {self.padding!r}")
        for name in ("train", "valid", "test"):
            examples = getattr(self, name)
            targets = examples.targets
            if targets.size and (targets.min() < 0 or targets.max() >= self.n_items):
                raise ValueError(f"{name} targets fall outside 0..{self.n_items - 1}")
            if isinstance(examples, SequenceExamples):  # windows of UserSequences are checked
                history = examples.history
                bad = (history != self.pad_id) & ((history < 0) | (history >= self.n_items))
                if bad.any():
                    raise ValueError(
                        f"{name} history holds {history[bad][:5].tolist()}, neither an item "
                        f"index (0..{self.n_items - 1}) nor the pad id {self.pad_id}"
                    )

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def max_len(self) -> int:
        return self.train.max_len

    def with_layout(self, padding: Padding, pad_id: int | None = None) -> SequenceDataset:
        """The same examples with histories padded on ``padding``'s side with ``pad_id``
        (default ``n_items``); models take one layout, files come in either."""
        pad = self.n_items if pad_id is None else pad_id
        if (padding, pad) == (self.padding, self.pad_id):
            return self
        parts = [
            _relayout(getattr(self, name), self.padding, padding, pad)
            for name in ("train", "valid", "test")
        ]
        return SequenceDataset(*parts, items=self.items, pad_id=pad, padding=padding)

    def with_max_len(self, max_len: int) -> SequenceDataset:
        """The same examples with histories of ``max_len`` slots: the newest ``max_len`` items
        of each, all of them when the histories are shorter (DreamRec folders come windowed)."""
        if max_len == self.max_len:
            return self
        parts = [
            _relayout(getattr(self, name), self.padding, self.padding, self.pad_id, max_len)
            for name in ("train", "valid", "test")
        ]
        return dataclasses.replace(self, train=parts[0], valid=parts[1], test=parts[2])


def _relayout(
    examples: Examples, old: Padding, new: Padding, pad_id: int, max_len: int | None = None
) -> Examples:
    if isinstance(examples, WindowedExamples):  # windows are built per batch: just re-describe
        width = examples.max_len if max_len is None else max_len
        return dataclasses.replace(examples, padding=new, pad_id=pad_id, max_len=width)
    lengths, width = examples.lengths, examples.max_len
    columns = np.arange(width)[None, :]
    if old == "left":
        real = columns >= (width - lengths)[:, None]
    else:
        real = columns < lengths[:, None]
    flat = examples.history[real]  # row-major: each row's real items, oldest first
    ends = np.cumsum(lengths)
    history, kept = history_windows(
        flat, ends - lengths, ends, width if max_len is None else max_len, pad_id, new
    )
    return SequenceExamples(history, kept, examples.targets, examples.users)


@dataclass(frozen=True)
class UserSequences:
    """Per-user item sequences, oldest first, as a ragged array.

    Attributes:
        indptr: int64 ``[n_users + 1]``; user ``u``'s items are ``item_idx[indptr[u]:indptr[u+1]]``.
        item_idx: int64 item indices of all users, concatenated.
        users: user vocabulary (row ``u`` is user ``users.ids[u]``).
        items: item vocabulary.
    """

    indptr: np.ndarray
    item_idx: np.ndarray
    users: Vocabulary
    items: Vocabulary

    def __post_init__(self) -> None:
        check_integer_arrays(self, "indptr", "item_idx")
        if self.indptr.shape != (len(self.users) + 1,) or self.indptr[-1] != self.item_idx.size:
            raise ValueError("indptr must have n_users + 1 entries ending at len(item_idx)")
        if self.indptr[0] != 0 or (np.diff(self.indptr) < 0).any():
            raise ValueError(
                "indptr must start at 0 and never decrease (row u is indptr[u]:indptr[u+1])"
            )
        if self.item_idx.size and (
            self.item_idx.min() < 0 or self.item_idx.max() >= len(self.items)
        ):
            raise ValueError(f"item indices must be in 0..{len(self.items) - 1}")

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def lengths(self) -> np.ndarray:
        """Sequence length per user."""
        return np.diff(self.indptr)

    def sequence(self, user: int) -> np.ndarray:
        """Item indices of one user, oldest first."""
        user = check_row(user, self.n_users, "user index")
        return self.item_idx[self.indptr[user] : self.indptr[user + 1]]

    # ------------------------------------------------------------------------------ building
    @classmethod
    def from_pairs(
        cls,
        user_ids: Iterable[object],
        item_ids: Iterable[object],
        users: Vocabulary | None = None,
        items: Vocabulary | None = None,
    ) -> UserSequences:
        """From parallel external ids whose order within each user is the time order."""
        u_ext, i_ext = as_id_array(user_ids, "user id"), as_id_array(item_ids, "item id")
        if u_ext.shape != i_ext.shape:
            raise ValueError(
                f"user_ids and item_ids must have the same length (one pair each), got "
                f"{u_ext.size} and {i_ext.size}"
            )
        users = users if users is not None else Vocabulary.from_ids(u_ext)
        items = items if items is not None else Vocabulary.from_ids(i_ext)
        u, i = users.index(u_ext, what="user id"), items.index(i_ext, what="item id")
        order = np.argsort(u, kind="stable")  # group by user, keep each user's order
        counts = np.bincount(u, minlength=len(users))
        return cls(indptr_from_counts(counts), i[order], users, items)

    @classmethod
    def from_lists(
        cls, sequences: Mapping[object, Sequence[object]], items: Vocabulary | None = None
    ) -> UserSequences:
        """From ``{user_id: [item_id, ...]}`` (oldest first)."""
        lens = [len(s) for s in sequences.values()]
        user_ids = np.repeat(as_id_array(list(sequences.keys()), "user id"), lens)
        flat = [x for s in sequences.values() for x in s]
        item_ids = as_id_array(flat, "item id") if flat else np.zeros(0, dtype=np.int64)
        seqs = cls.from_pairs(user_ids, item_ids, items=items)
        if len(seqs.users) < len(sequences):  # users with empty sequences keep a (empty) row
            all_users = Vocabulary.from_ids(list(sequences.keys()))
            counts = np.zeros(len(all_users), dtype=np.int64)
            counts[all_users.index(seqs.users.ids)] = seqs.lengths()
            seqs = cls(indptr_from_counts(counts), seqs.item_idx, all_users, seqs.items)
        return seqs

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        user_col: str = "user",
        item_col: str = "item",
        time_col: str = "timestamp",
        rating_col: str | None = None,
        min_rating: float | None = None,
        *,
        source: frames.Source = None,
        line_numbers: np.ndarray | None = None,
    ) -> UserSequences:
        """Each user's rows of a table (one row per interaction) in ``time_col`` order.

        Repeated (user, item) rows are kept, since a sequence is a history, not a set; rows with
        equal times keep their frame order. Ids, times and ratings are checked exactly as
        :meth:`Interactions.from_frame` checks them, so a missing id or a time that is not a
        number names the file line (``source``/``line_numbers``, as there); datetime columns
        count as Unix seconds. With ``min_rating``, only rows whose ``rating_col`` value is
        ``>= min_rating`` are kept (as :func:`~recdiff.data.prepare.filter_ratings` keeps them).
        """
        if time_col is None:
            raise ValueError(
                "sequences are ordered by time: set data.time_col in the run config (time_col=... "
                "from Python) to the column holding each interaction's time"
            )
        user_ids, item_ids, ratings, times = frames.interaction_columns(
            frame, user_col, item_col, rating_col, time_col, source, line_numbers
        )
        keep = np.arange(len(frame))
        if min_rating is not None:
            keep = np.flatnonzero(ratings_at_least(ratings, min_rating, rating_col, source))
        else:
            warn_negative_ratings(ratings, source)
        order = keep[np.argsort(times[keep], kind="stable")]  # stable: ties keep frame order
        return cls.from_pairs(user_ids[order], item_ids[order])

    @classmethod
    def from_interactions(cls, data: Interactions) -> UserSequences:
        """Each user's interactions ordered by timestamp (ties in the order the rows were read,
        when the interactions know it, else by item index)."""
        if data.timestamps is None:
            raise ValueError(
                "sequences need timestamps to order interactions: set data.time_col in the run "
                "config (time_col=... when reading from Python)"
            )
        warn_negative_ratings(None if data.ratings is None else data.ratings.data)
        rows = data.user_indices()
        rank = rank_within_rows(rows, data.time_order(), data.n_users)
        ordered = np.empty(data.nnz, dtype=np.int64)
        ordered[data.matrix.indptr[rows] + rank] = data.matrix.indices
        return cls(data.matrix.indptr.astype(np.int64), ordered, data.users, data.items)

    def to_interactions(self) -> Interactions:
        """Implicit interactions; a repeated item keeps its latest position as its timestamp."""
        rows = np.repeat(np.arange(self.n_users), self.lengths())
        return Interactions.from_indices(
            self.users,
            self.items,
            rows,
            self.item_idx,
            timestamps=position_in_row(self.indptr).astype(np.float64),
            duplicates="last",
        )

    # ------------------------------------------------------------------------------ splitting
    def leave_one_out(
        self,
        max_len: int,
        pad_id: int | None = None,
        padding: Padding = "left",
        min_history: int = 1,
    ) -> SequenceDataset:
        """SASRec/DiffuRec protocol: per user, last item test, second-to-last valid.

        Test histories end before the last item, valid ones before the second-to-last; train
        has one example per earlier item with at least ``min_history`` items before it.
        """
        pad = self.n_items if pad_id is None else pad_id
        counts = self.lengths()
        ends = self.indptr[1:]
        test_pos = (ends - 1)[counts >= min_history + 1]
        valid_pos = (ends - 2)[counts >= min_history + 2]
        train_pos = prefix_target_positions(self.indptr, min_history, exclude_last=2)

        def build(pos: np.ndarray) -> WindowedExamples:
            return examples_from_sequences(self.indptr, self.item_idx, pos, max_len, pad, padding)

        return SequenceDataset(
            build(train_pos), build(valid_pos), build(test_pos), self.items, pad, padding
        )
