"""Interactions: a users x items CSR matrix with its id vocabularies, ratings and timestamps.

The matrix stays sparse (scipy CSR, float32) until a batch of rows is built. Its shape always comes
from the vocabularies, never from the largest id seen in one split, so train, valid and test
matrices built with the same vocabularies line up column for column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recdiff.data import frames
from recdiff.data._ragged import concat_ranges, indptr_from_counts, row_of_entries
from recdiff.data.duplicates import DuplicatePolicy, one_row_per_pair
from recdiff.data.errors import UnknownIdError, describe_rows, describe_source
from recdiff.data.vocab import Vocabulary, check_row, integer_indices

UnknownPolicy = Literal["raise", "drop"]


def _csr(
    data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, shape: tuple[int, int], dtype: type
) -> sp.csr_matrix:
    return sp.csr_matrix((np.asarray(data, dtype=dtype), indices, indptr), shape=shape)


@dataclass(frozen=True, eq=False)
class Interactions:
    """User-item interactions.

    Attributes:
        matrix: users x items CSR, float32, canonical (sorted indices, no duplicates). Values are
            1.0 for implicit feedback, the ratings when built with a rating column, or whatever
            a transformation put there (counts after ``duplicates="sum"``).
        users: vocabulary of the rows (external user ids).
        items: vocabulary of the columns (external item ids).
        ratings: optional CSR (float32) with exactly the sparsity pattern of ``matrix``.
        timestamps: optional CSR (float64, seconds or any increasing order key) with the same
            pattern. Stored values may be 0; never call ``eliminate_zeros`` on it.
        order: optional CSR (float64) with the same pattern: each entry's row position in the
            table it was read from, which orders interactions logged at the same time (temporal
            splits); None orders them by item index. Kept by tables read with a time column.
    """

    matrix: sp.csr_matrix
    users: Vocabulary
    items: Vocabulary
    ratings: sp.csr_matrix | None = None
    timestamps: sp.csr_matrix | None = None
    order: sp.csr_matrix | None = None

    def __post_init__(self) -> None:
        shape = (len(self.users), len(self.items))
        matrix = self.matrix
        if not sp.issparse(matrix):
            raise TypeError(f"matrix must be a scipy sparse matrix, got {type(matrix).__name__}")
        matrix = sp.csr_matrix(matrix, dtype=np.float32)
        if matrix.shape != shape:
            raise ValueError(
                f"matrix shape {matrix.shape} does not match the vocabularies "
                f"({len(self.users)} users x {len(self.items)} items)"
            )
        has_side = any(m is not None for m in (self.ratings, self.timestamps, self.order))
        if not matrix.has_canonical_format:
            if has_side:
                raise ValueError(
                    "matrix has unsorted or duplicate entries; build Interactions with "
                    "from_frame/from_indices, which sort and deduplicate ratings and timestamps too"
                )
            matrix = matrix.copy()
            matrix.sum_duplicates()
        object.__setattr__(self, "matrix", matrix)
        for name, dtype in (("ratings", np.float32), ("timestamps", np.float64), ("order", float)):
            side = getattr(self, name)
            if side is None:
                continue
            side = sp.csr_matrix(side, dtype=dtype)
            if not (
                np.array_equal(side.indptr, matrix.indptr)
                and np.array_equal(side.indices, matrix.indices)
            ):
                raise ValueError(f"{name} must have exactly the sparsity pattern of matrix")
            object.__setattr__(self, name, side)

    # ----------------------------------------------------------------------------- sizes
    @property
    def n_users(self) -> int:
        """Number of users in the vocabulary (rows), including users without interactions."""
        return len(self.users)

    @property
    def n_items(self) -> int:
        """Number of items in the vocabulary (columns), including items without interactions."""
        return len(self.items)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_users, self.n_items)

    @property
    def nnz(self) -> int:
        """Number of stored (user, item) interactions."""
        return int(self.matrix.nnz)

    def __repr__(self) -> str:
        extra = "".join(
            f", {name}" for name in ("ratings", "timestamps") if getattr(self, name) is not None
        )
        return f"Interactions({self.n_users} users x {self.n_items} items, nnz={self.nnz}{extra})"

    # ----------------------------------------------------------------------------- entry view
    def user_indices(self) -> np.ndarray:
        """Row (user index) of every stored entry, in CSR order."""
        return row_of_entries(self.matrix.indptr)

    def item_indices(self) -> np.ndarray:
        """Column (item index) of every stored entry, in CSR order."""
        return self.matrix.indices.astype(np.int64)

    def user_counts(self) -> np.ndarray:
        """Interactions per user (length ``n_users``)."""
        return np.diff(self.matrix.indptr).astype(np.int64)

    def item_counts(self) -> np.ndarray:
        """Interactions per item (length ``n_items``): the popularity of every item."""
        return np.bincount(self.matrix.indices, minlength=self.n_items).astype(np.int64)

    def time_order(self) -> np.ndarray:
        """A key per entry (CSR order) that sorts the interactions by time, those logged at the
        same time in the order of the rows they were read from (``order``), when known."""
        if self.timestamps is None:
            raise ValueError("these interactions have no timestamps to order them by")
        times = self.timestamps.data
        if self.order is None:
            return times
        rank = np.empty(self.nnz, dtype=np.int64)
        rank[np.lexsort((self.order.data, times))] = np.arange(self.nnz)
        return rank

    def row(self, user: int) -> np.ndarray:
        """Item indices of one user (sorted by item index)."""
        user = check_row(user, self.n_users, "user index")
        start, end = self.matrix.indptr[user], self.matrix.indptr[user + 1]
        return self.matrix.indices[start:end].astype(np.int64)

    def rows(self, user_indices: np.ndarray) -> sp.csr_matrix:
        """CSR rows of the given users, in the given order: the input of a batch."""
        return self.matrix[integer_indices(user_indices, "user indices")]

    # ----------------------------------------------------------------------------- transforms
    def _side_data(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        ratings = None if self.ratings is None else self.ratings.data
        times = None if self.timestamps is None else self.timestamps.data
        return ratings, times

    def select_entries(self, keep: np.ndarray) -> Interactions:
        """Keep the entries where the boolean mask ``keep`` (length nnz, CSR order) is True.

        Vocabularies are unchanged, so the result lines up with ``self``.
        """
        keep = np.asarray(keep)
        if keep.dtype != bool:  # positions as long as nnz would pass for a mask
            raise TypeError(
                f"keep must be a boolean mask (one entry per stored interaction), got "
                f"{keep.dtype}; for positions build the mask: m = np.zeros(nnz, bool); m[pos] = True"
            )
        if keep.shape != (self.nnz,):
            raise ValueError(f"keep must be a boolean mask of length nnz={self.nnz}")
        return self._gather(np.flatnonzero(keep), self.users, None)

    def _gather(
        self, positions: np.ndarray, users: Vocabulary, rows: np.ndarray | None
    ) -> Interactions:
        """Entries at ``positions`` (CSR order, grouped by row); ``rows`` = their new rows."""
        if rows is None:
            rows = self.user_indices()[positions]
        indptr = indptr_from_counts(np.bincount(rows, minlength=len(users)))
        shape = (len(users), self.n_items)
        indices = self.matrix.indices[positions]

        def side(m: sp.csr_matrix | None, dtype: type) -> sp.csr_matrix | None:
            return None if m is None else _csr(m.data[positions], indices, indptr, shape, dtype)

        return Interactions(
            _csr(self.matrix.data[positions], indices, indptr, shape, np.float32),
            users,
            self.items,
            side(self.ratings, np.float32),
            side(self.timestamps, np.float64),
            side(self.order, np.float64),
        )

    def select_users(self, user_indices: np.ndarray) -> Interactions:
        """A new Interactions with only the given users (rows come in vocabulary order).

        The user vocabulary shrinks to the selected users; the item vocabulary is kept.
        """
        idx = np.unique(integer_indices(user_indices, "user indices"))
        if idx.size and (idx[0] < 0 or idx[-1] >= self.n_users):
            raise IndexError(f"user indices must be in 0..{self.n_users - 1}")
        indptr = self.matrix.indptr
        counts = indptr[idx + 1] - indptr[idx]
        positions = concat_ranges(indptr[idx], counts)
        new_rows = np.repeat(np.arange(idx.size, dtype=np.int64), counts)
        return self._gather(positions, Vocabulary(self.users.ids[idx]), new_rows)

    def compact(self) -> Interactions:
        """Drop users and items without interactions from the vocabularies."""
        users = np.flatnonzero(self.user_counts() > 0)
        items = np.flatnonzero(self.item_counts() > 0)
        sub = self.select_users(users)
        new_col = np.cumsum(self.item_counts() > 0) - 1  # old item index -> new item index
        ratings, times = sub._side_data()
        return Interactions.from_indices(
            sub.users,
            Vocabulary(self.items.ids[items]),
            sub.user_indices(),
            new_col[sub.matrix.indices],
            values=sub.matrix.data,
            ratings=ratings,
            timestamps=times,
            order=None if sub.order is None else sub.order.data,
        )

    def binarize(self) -> Interactions:
        """Same entries with matrix values 1.0 (ratings and timestamps are kept)."""
        m = self.matrix.copy()
        m.data[:] = 1.0
        return Interactions(m, self.users, self.items, self.ratings, self.timestamps, self.order)

    # ----------------------------------------------------------------------------- building
    @classmethod
    def from_indices(
        cls,
        users: Vocabulary,
        items: Vocabulary,
        user_idx: np.ndarray,
        item_idx: np.ndarray,
        *,
        values: np.ndarray | None = None,
        ratings: np.ndarray | None = None,
        timestamps: np.ndarray | None = None,
        duplicates: DuplicatePolicy = "raise",
        source: frames.Source = None,
        line_numbers: np.ndarray | None = None,
        order: np.ndarray | None = None,
    ) -> Interactions:
        """Build from parallel arrays of contiguous indices (one entry per element).

        Args:
            values: matrix values (default: ``ratings`` if given, else 1.0).
            duplicates: repeated (user, item) pairs: ``"raise"`` (default) an error naming them,
                keep the ``"first"`` or ``"last"`` row (input order), or ``"sum"`` the values and
                ratings (timestamps and ``order`` keep the latest).
            source, line_numbers: where the rows came from, for error messages.
        """
        u = integer_indices(user_idx, "user_idx")
        i = integer_indices(item_idx, "item_idx")
        n_u, n_i = len(users), len(items)
        if u.shape != i.shape or u.ndim != 1:
            raise ValueError("user_idx and item_idx must be 1-d arrays of the same length")
        if u.size and (u.min() < 0 or u.max() >= n_u or i.min() < 0 or i.max() >= n_i):
            raise ValueError(f"indices out of range for {n_u} users x {n_i} items")
        ratings = _entry_array(ratings, u.size, "ratings")
        timestamps = _entry_array(timestamps, u.size, "timestamps")
        positions = _entry_array(order, u.size, "order")
        if values is None:
            values = ratings if ratings is not None else np.ones(u.size, dtype=np.float32)
        values = _entry_array(values, u.size, "values")
        cols = {"v": values, "r": ratings, "t": timestamps, "o": positions}
        where = (users, items, source, line_numbers)  # for the error naming repeated pairs
        u, i, cols = one_row_per_pair(u, i, n_i, cols, duplicates, where)
        return cls._assemble(users, items, u, i, cols)

    @classmethod
    def _assemble(
        cls,
        users: Vocabulary,
        items: Vocabulary,
        u: np.ndarray,
        i: np.ndarray,
        cols: dict[str, np.ndarray | None],
    ) -> Interactions:
        shape = (len(users), len(items))
        indptr = indptr_from_counts(np.bincount(u, minlength=shape[0]))
        r, t, o = cols["r"], cols["t"], cols["o"]
        return cls(
            _csr(cols["v"], i, indptr, shape, np.float32),
            users,
            items,
            None if r is None else _csr(r, i, indptr, shape, np.float32),
            None if t is None else _csr(t, i, indptr, shape, np.float64),
            None if o is None else _csr(o, i, indptr, shape, np.float64),
        )

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        user_col: str = "user",
        item_col: str = "item",
        rating_col: str | None = None,
        time_col: str | None = None,
        users: Vocabulary | None = None,
        items: Vocabulary | None = None,
        *,
        duplicates: DuplicatePolicy = "raise",
        unknown: UnknownPolicy = "raise",
        source: frames.Source = None,
        line_numbers: np.ndarray | None = None,
    ) -> Interactions:
        """Build from a DataFrame with one row per interaction.

        Given vocabularies are reused (so splits share them); otherwise they are built from the
        frame's ids. ``unknown="drop"`` skips rows whose ids are not in the given vocabularies.
        Matrix values are the ratings when ``rating_col`` is given, else 1.0.
        """
        user_ids, item_ids, ratings, times = frames.interaction_columns(
            frame, user_col, item_col, rating_col, time_col, source, line_numbers
        )
        users = users if users is not None else Vocabulary.from_ids(user_ids)
        items = items if items is not None else Vocabulary.from_ids(item_ids)
        # with times, each row's place in the frame: it orders the rows logged at the same time
        rows = None if times is None else np.arange(len(user_ids), dtype=np.float64)
        known = users.contains(user_ids) & items.contains(item_ids)
        if not known.all():
            if unknown == "raise":
                bad = np.flatnonzero(~known)
                where = f"{describe_source(source)} at {describe_rows(bad, line_numbers)}"
                try:
                    users.index(user_ids[bad], what=f"user id ({user_col!r})")
                    items.index(item_ids[bad], what=f"item id ({item_col!r})")
                except UnknownIdError as err:
                    # the reader's parameter, not Vocabulary.index's (missing='drop')
                    message = err.message.replace("pass missing='drop'", "pass unknown='drop'")
                    raise UnknownIdError(f"{message}{where}", err.unknown, err.n_unknown) from None
            keep = np.flatnonzero(known)
            user_ids, item_ids = user_ids[keep], item_ids[keep]
            ratings = None if ratings is None else ratings[keep]
            times = None if times is None else times[keep]
            rows = None if rows is None else rows[keep]
            if line_numbers is not None:
                line_numbers = np.asanyarray(line_numbers)[keep]  # keeps RowNumbers
        return cls.from_indices(
            users,
            items,
            users.index(user_ids),
            items.index(item_ids),
            ratings=ratings,
            timestamps=times,
            duplicates=duplicates,
            source=source,
            line_numbers=line_numbers,
            order=rows,
        )

    def to_frame(
        self,
        user_col: str = "user",
        item_col: str = "item",
        rating_col: str = "rating",
        time_col: str = "timestamp",
        value_col: str | None = None,
    ) -> pd.DataFrame:
        """One row per interaction with external ids, ordered by user then item index.

        Ratings and timestamps become columns when present; ``value_col`` adds matrix values.
        """
        data: dict[str, np.ndarray] = {
            user_col: self.users.external(self.user_indices()),
            item_col: self.items.external(self.matrix.indices),
        }
        if self.ratings is not None:
            data[rating_col] = self.ratings.data
        if self.timestamps is not None:
            data[time_col] = self.timestamps.data
        if value_col is not None:
            data[value_col] = self.matrix.data
        return pd.DataFrame(data)


def _entry_array(values: np.ndarray | None, n: int, name: str) -> np.ndarray | None:
    if values is None:
        return None
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have one value per entry ({n}), got shape {arr.shape}")
    return arr
