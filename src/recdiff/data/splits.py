"""Train/valid/test splits that share one user and one item vocabulary.

Every splitter returns a :class:`DatasetSplits` whose three matrices have the shape of the input,
so a user's row means the same thing in all three. Ratio splits cut at
``floor(n * cumulative_ratio)`` (DiffRec's ``int(0.7 * n)``), with a tiny tolerance so that
``0.7 + 0.1`` of 10 cuts at 8, not 7.

Temporal splits need timestamps. Interactions logged at the same time keep the order of the rows
they were read from (``Interactions.order``, which tables read with a time column keep), and the
CSR order (by item index) where that is unknown, so the same data always splits the same way.
Ordering ties by item index put a user's alphabetically last items of their last day in test,
for every user, wherever times are dates.

A split can leave a user with valid/test interactions but none in train (under
``global_temporal``, a user whose interactions all fall after the cut). ``drop_unseen=True``
moves those held-out rows to ``dropped``; without it they stay, a model scores those users from
an empty history, and the splitter warns (:class:`UsersWithoutTrainWarning`) saying how many.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from recdiff._warnings import warn
from recdiff.data._ragged import rank_within_rows
from recdiff.data.interactions import Interactions
from recdiff.data.prepare import warn_negative_ratings
from recdiff.data.vocab import Vocabulary

_EPS = 1e-9


class UsersWithoutTrainWarning(UserWarning):
    """A split kept valid/test interactions of users who have no train interaction."""


@dataclass(frozen=True)
class DatasetSplits:
    """Train, validation and test interactions over one shared user and item vocabulary.

    ``valid`` may be empty (nnz 0) for protocols without a validation set. ``dropped`` holds the
    held-out interactions a split removed because their user or item is not in train (they
    cannot be evaluated, but the user did have them: a service must not recommend them back).
    ``filtered`` holds, for the same reason, the interactions a data filter left out although
    their user and item stayed (ratings below ``data.min_rating``: a film rated one star).
    """

    train: Interactions
    valid: Interactions
    test: Interactions
    dropped: Interactions | None = None
    filtered: Interactions | None = None

    def __post_init__(self) -> None:
        for name in ("valid", "test", "dropped", "filtered"):
            part: Interactions | None = getattr(self, name)
            if part is None:
                continue
            if part.users != self.train.users or part.items != self.train.items:
                raise ValueError(
                    f"{name} does not share the train vocabularies ({part.shape} vs "
                    f"{self.train.shape}); build all splits with the same users/items Vocabulary"
                )

    @property
    def users(self) -> Vocabulary:
        return self.train.users

    @property
    def items(self) -> Vocabulary:
        return self.train.items

    @property
    def n_users(self) -> int:
        return self.train.n_users

    @property
    def n_items(self) -> int:
        return self.train.n_items

    def __iter__(self) -> Iterator[tuple[str, Interactions]]:
        """``("train", train), ("valid", valid), ("test", test)``."""
        return iter((("train", self.train), ("valid", self.valid), ("test", self.test)))

    def summary(self) -> dict[str, int]:
        """Sizes for logs: users, items and nnz per split."""
        return {
            "n_users": self.n_users,
            "n_items": self.n_items,
            **{f"{name}_nnz": part.nnz for name, part in self},
        }


def _check_ratios(ratios: Sequence[float]) -> np.ndarray:
    r = np.asarray(ratios, dtype=np.float64)
    if r.shape != (3,) or (r < 0).any() or abs(r.sum() - 1.0) > 1e-6:
        raise ValueError(
            f"ratios must be three non-negative numbers summing to 1 (train, valid, "
            f"test), got {list(ratios)}"
        )
    return r


def _cuts(n: np.ndarray | int, ratios: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Train end and valid end for groups of size ``n``."""
    n = np.asarray(n, dtype=np.float64)
    train_end = np.floor(n * ratios[0] + _EPS).astype(np.int64)
    valid_end = np.floor(n * (ratios[0] + ratios[1]) + _EPS).astype(np.int64)
    return train_end, valid_end


def _require_times(data: Interactions) -> np.ndarray:
    if data.timestamps is None:
        raise ValueError(
            "a temporal split needs timestamps: set data.time_col in the run config (time_col=... "
            "when reading from Python), or split at random (data.split=random, split_random)"
        )
    return data.timestamps.data


def _time_order(data: Interactions) -> np.ndarray:
    _require_times(data)  # its message says what to set
    return data.time_order()


def _from_labels(
    data: Interactions, label: np.ndarray, drop_unseen: bool, splitter: str
) -> DatasetSplits:
    """Split entries by ``label`` (0 train, 1 valid, 2 test; CSR order). ``splitter`` (a key of
    ``_NO_TRAIN``) words the warning about users without train interactions. Negative ratings
    still in the data are warned of (:func:`~recdiff.data.prepare.warn_negative_ratings`)."""
    warn_negative_ratings(None if data.ratings is None else data.ratings.data)
    train = data.select_entries(label == 0)
    valid_mask, test_mask = label == 1, label == 2
    if drop_unseen:
        # Valid/test entries whose user or item never occurs in train cannot be scored by a
        # collaborative model; DiffRec removed them.
        seen = (train.user_counts() > 0)[data.user_indices()] & (train.item_counts() > 0)[
            data.item_indices()
        ]
        dropped = data.select_entries((label != 0) & ~seen)
        valid_mask &= seen
        test_mask &= seen
    else:
        dropped = None
        _warn_users_without_train(data, label, train, splitter)
    valid, test = data.select_entries(valid_mask), data.select_entries(test_mask)
    return DatasetSplits(train, valid, test, dropped)


# Per splitter: why a user can end up without train interactions, and the other way out.
_PER_USER_NO_TRAIN = (
    "too few interactions for a train share",
    "drop users with few interactions (k_core) or raise the train ratio",
)
_NO_TRAIN = {
    "split_global_temporal": (
        "all their interactions fall after the train cut",
        "split per user (split_user_temporal, split_leave_one_out)",
    ),
    "split_random": ("none of their interactions was drawn for train", "pass per_user=True"),
    "split_random(per_user=True)": _PER_USER_NO_TRAIN,
    "split_user_temporal": _PER_USER_NO_TRAIN,
    "split_leave_one_out": _PER_USER_NO_TRAIN,  # cannot happen: a user's oldest row is train
}


def _warn_users_without_train(
    data: Interactions, label: np.ndarray, train: Interactions, splitter: str
) -> None:
    """Warn when users with valid/test entries have no train entry: their input is empty."""
    held_out_users = np.unique(data.user_indices()[label != 0])
    cold = held_out_users[train.user_counts()[held_out_users] == 0]
    if cold.size == 0:
        return
    shown = ", ".join(repr(x) for x in data.users.ids[cold[:5]].tolist())
    more = f" and {cold.size - 5} more" if cold.size > 5 else ""
    why, other = _NO_TRAIN[splitter]
    warn(
        f"{splitter}: {cold.size} of {held_out_users.size} user(s) with valid/test "
        f"interactions have no train interaction ({why}; e.g. users {shown}{more}). They stay "
        "in valid/test and are scored from an empty history: pass drop_unseen=True to move "
        "their held-out interactions to `dropped` (as DiffRec did, and as a run config always "
        f"does), or {other}",
        UsersWithoutTrainWarning,
    )


def split_global_temporal(
    data: Interactions, ratios: Sequence[float] = (0.7, 0.1, 0.2), drop_unseen: bool = False
) -> DatasetSplits:
    """Sort all interactions by time and cut the timeline by ``ratios`` (DiffRec's 7:1:2).

    Every train interaction is no later than every valid one, and valid no later than test.
    ``drop_unseen=True`` removes valid/test interactions of users or items absent from train
    (what DiffRec did).
    """
    r = _check_ratios(ratios)
    order = np.argsort(_time_order(data), kind="stable")
    train_end, valid_end = _cuts(data.nnz, r)
    label = np.empty(data.nnz, dtype=np.int8)
    label[order] = np.searchsorted([train_end, valid_end], np.arange(data.nnz), side="right")
    return _from_labels(data, label, drop_unseen, "split_global_temporal")


def _per_user_labels(data: Interactions, keys: np.ndarray, ratios: np.ndarray) -> np.ndarray:
    """Per user, rank entries by ``keys`` and cut each user's list by ``ratios``."""
    rows = data.user_indices()
    rank = rank_within_rows(rows, keys, data.n_users)
    train_end, valid_end = _cuts(data.user_counts(), ratios)
    label = (rank >= train_end[rows]).astype(np.int8) + (rank >= valid_end[rows])
    return label


def split_user_temporal(
    data: Interactions, ratios: Sequence[float] = (0.8, 0.1, 0.1), drop_unseen: bool = False
) -> DatasetSplits:
    """Per user: oldest ``ratios[0]`` of the interactions train, then valid, newest test.

    A user with ``n`` interactions gets ``floor(n * r_train)`` train interactions, and
    ``floor(n * (r_train + r_valid))`` train + valid ones; the rest are test.
    """
    r = _check_ratios(ratios)
    labels = _per_user_labels(data, _time_order(data), r)
    return _from_labels(data, labels, drop_unseen, "split_user_temporal")


def split_leave_one_out(data: Interactions, drop_unseen: bool = False) -> DatasetSplits:
    """Per user in time order: last interaction test, second-to-last valid, the rest train.

    Users with 2 interactions have no valid one; users with 1 only a train one.
    """
    times = _time_order(data)
    rows = data.user_indices()
    counts = data.user_counts()
    from_end = counts[rows] - 1 - rank_within_rows(rows, times, data.n_users)  # 0 = newest
    label = np.zeros(data.nnz, dtype=np.int8)
    label[(from_end == 1) & (counts[rows] >= 3)] = 1
    label[(from_end == 0) & (counts[rows] >= 2)] = 2
    return _from_labels(data, label, drop_unseen, "split_leave_one_out")


def split_random(
    data: Interactions,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    per_user: bool = False,
    drop_unseen: bool = False,
) -> DatasetSplits:
    """Random split, reproducible by ``seed``.

    ``per_user=False`` cuts one random permutation of all interactions; ``per_user=True`` cuts
    every user's interactions by ``ratios`` in a random order (every user with enough
    interactions gets train, valid and test items).
    """
    r = _check_ratios(ratios)
    rng = np.random.default_rng(seed)
    keys = rng.random(data.nnz)
    if per_user:
        labels = _per_user_labels(data, keys, r)
        return _from_labels(data, labels, drop_unseen, "split_random(per_user=True)")
    train_end, valid_end = _cuts(data.nnz, r)
    rank = np.empty(data.nnz, dtype=np.int64)
    rank[np.argsort(keys, kind="stable")] = np.arange(data.nnz)
    label = (rank >= train_end).astype(np.int8) + (rank >= valid_end)
    return _from_labels(data, label, drop_unseen, "split_random")
