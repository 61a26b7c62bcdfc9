"""From a run config's ``data`` section to train/valid/test splits, and the check that a run
has held-out data to select on and to report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

import numpy as np

from recdiff.config.schema import DataConfig
from recdiff.config.sources import resolve_source
from recdiff.data import (
    DatasetSplits,
    Interactions,
    Vocabulary,
    demo_splits,
    filter_ratings,
    k_core,
    read_diffrec_splits,
    read_interactions,
    read_movielens,
    read_recbole_inter,
    split_global_temporal,
    split_leave_one_out,
    split_random,
    split_user_temporal,
)
from recdiff.data.errors import SEQUENCE_FILE
from recdiff.data.prepare import ratings_at_least
from recdiff.data.sequence_readers import read_dreamrec, read_sequence_file
from recdiff.data.sequences import SequenceDataset, UserSequences
from recdiff.data.synthetic_sequences import make_sequences
from recdiff.data.tables import read_table

__all__ = [
    "held_out_left_out",
    "left_out_note",
    "load_as_saved",
    "load_sequences",
    "load_sequences_and_low_ratings",
    "load_splits",
    "require_held_out",
]

T = TypeVar("T")


def _read_table(data: DataConfig) -> Interactions:
    path = resolve_source(data.source)
    if data.format == "movielens":
        return read_movielens(path, duplicates=data.duplicates)
    # For RecBole files the config defaults the columns to RecBole's own names (user_id, ...).
    columns = {
        key: getattr(data, key) for key in ("user_col", "item_col", "rating_col", "time_col")
    }
    if data.format == "recbole":
        return read_recbole_inter(path, duplicates=data.duplicates, **columns)
    return read_interactions(
        path,
        file_format=data.format,
        sep=data.sep,
        decimal=data.decimal,
        duplicates=data.duplicates,
        **columns,
    )


def load_splits(data: DataConfig, drop_emptied: bool = True) -> DatasetSplits:
    """Read, filter and split as configured; DiffRec folders come already split.

    ``drop_emptied=False`` keeps the users and items ``data.min_rating`` leaves without
    interactions, as runs saved before 2026-11-28 did (to evaluate those as they were trained).
    """
    if data.format == "demo":
        return demo_splits(seed=data.seed)
    if data.format == "diffrec":
        return read_diffrec_splits(resolve_source(data.source), duplicates=data.duplicates)
    if data.format == "dreamrec":
        raise ValueError(
            "DreamRec folders hold next-item examples, not users' rows: use a next-item model "
            "(sasrec, dreamrec, mostpop)"
        )
    if data.format == "sequences":
        interactions = _sequence_rows(data)
    else:
        interactions = _read_table(data)
    read = interactions
    if data.min_rating is not None:
        # Users and items with no rating above the bar are not in the data any more (as in
        # DiffRec's ML-1M split, 2,810 of 3,706 items): catalogue and user counts follow.
        interactions = _filtered(interactions, data.min_rating, drop_emptied)
    if data.k_core:
        interactions = k_core(interactions, data.k_core)
    splits = _split(interactions, data)
    if data.min_rating is None:
        return splits
    below = _below_min_rating(read, data.min_rating, splits.users, splits.items)
    return replace(splits, filtered=below)


def _split(interactions: Interactions, data: DataConfig) -> DatasetSplits:
    if data.split == "random":
        return split_random(interactions, data.ratios, seed=data.seed, drop_unseen=True)
    if interactions.timestamps is None:
        raise ValueError(
            f"data.split={data.split!r} needs timestamps: set data.time_col, or use split: random"
        )
    if data.split == "user_temporal":
        return split_user_temporal(interactions, data.ratios, drop_unseen=True)
    if data.split == "leave_one_out":
        return split_leave_one_out(interactions, drop_unseen=True)
    return split_global_temporal(interactions, data.ratios, drop_unseen=True)


def _below_min_rating(
    read: Interactions, min_rating: float, users: Vocabulary, items: Vocabulary
) -> Interactions:
    """The ratings under ``min_rating`` whose user and item are still in ``users`` and
    ``items``: not trained on or evaluated (the papers' protocol), but had, so never to be
    recommended back."""
    # No ratings: the threshold's own error (a caller that did not read the data through
    # load_splits or load_sequences, which fail there first).
    below = ~ratings_at_least(None if read.ratings is None else read.ratings.data, min_rating)
    user_ids = read.users.ids[read.user_indices()[below]]
    item_ids = read.items.ids[read.matrix.indices[below]]
    kept = users.contains(user_ids) & items.contains(item_ids)
    return Interactions.from_indices(
        users, items, users.index(user_ids[kept]), items.index(item_ids[kept])
    )


def _sequence_rows(data: DataConfig) -> Interactions:
    """A sequence file as interaction rows, each item's position in its user's sequence as its
    time (a repeated item keeps its latest). Positions order one user's items, not users."""
    if data.split == "global_temporal":
        raise ValueError(
            "a sequence file orders each user's items but holds no times to compare users by: "
            "set data.split to leave_one_out, user_temporal or random"
        )
    if data.min_rating is not None:
        raise ValueError("a sequence file holds no ratings: remove data.min_rating")
    return read_sequence_file(resolve_source(data.source)).to_interactions()


def load_as_saved(load: Callable[..., T], data: DataConfig, matches: Callable[[T], bool]) -> T:
    """``load(data)`` (:func:`load_splits` or :func:`load_sequences`) for a saved run: when that
    does not ``match`` what the run holds but the older reading does (a run saved before
    ``data.min_rating`` dropped the users and items it empties), the older reading."""
    loaded = load(data)
    if not matches(loaded) and data.min_rating is not None:
        older = load(data, drop_emptied=False)
        if matches(older):
            return older
    return loaded


def _filtered(interactions: Interactions, min_rating: float, drop_emptied: bool) -> Interactions:
    kept = filter_ratings(interactions, min_rating)
    return kept.compact() if drop_emptied else kept


def load_sequences(
    data: DataConfig, drop_emptied: bool = True
) -> tuple[SequenceDataset, UserSequences | None]:
    """Next-item examples as configured, and the users' full sequences when the data has them
    (DreamRec folders hold examples only). Sequences are split leave-one-out.
    ``drop_emptied`` as for :func:`load_splits`."""
    examples, sequences, _ = load_sequences_and_low_ratings(data, drop_emptied)
    return examples, sequences


def load_sequences_and_low_ratings(
    data: DataConfig, drop_emptied: bool = True
) -> tuple[SequenceDataset, UserSequences | None, Interactions | None]:
    """:func:`load_sequences`, and the ratings under ``data.min_rating`` of the sequences'
    users and items, read from the same table (None without ``min_rating``): the sequences
    leave them out, as the papers' protocol does, but they were had, so a run keeps them never
    to recommend them back."""
    low = None
    if data.format == "dreamrec":
        return read_dreamrec(resolve_source(data.source)).with_max_len(data.max_len), None, low
    if data.format == "demo":
        sequences = make_sequences(seed=data.seed)
    elif data.format == "sequences":
        sequences = read_sequence_file(resolve_source(data.source))
    elif data.format == "diffrec":
        raise ValueError(
            "DiffRec folders hold unordered train/valid/test pairs; next-item models need "
            "time-ordered data (format: dreamrec, sequences, or a table with time_col)"
        )
    else:
        if data.split != "leave_one_out":
            raise ValueError(
                f"next-item models split each user's sequence: set data.split=leave_one_out "
                f"(got {data.split!r})"
            )
        sequences, low = _table_sequences(data, drop_emptied)
    return sequences.leave_one_out(max_len=data.max_len), sequences, low


def _table_sequences(
    data: DataConfig, drop_emptied: bool = True
) -> tuple[UserSequences, Interactions | None]:
    """Each user's rows of a table in time order (repeated (user, item) rows are kept, since a
    sequence is a history, not a set), and the ratings under ``data.min_rating`` of its users
    and items (None without one)."""
    if data.format in ("movielens", "recbole"):
        read = _read_table(data)  # these formats hold one row per (user, item)
        if data.min_rating is None:
            return UserSequences.from_interactions(read), None
        sequences = UserSequences.from_interactions(_filtered(read, data.min_rating, drop_emptied))
        return sequences, _below_min_rating(read, data.min_rating, sequences.users, sequences.items)
    if data.time_col is None:
        raise ValueError(
            "next-item models order each user's rows by time: set data.time_col to the "
            f"table's time column ({SEQUENCE_FILE}, not {data.format})"
        )
    if data.k_core:
        raise ValueError("data.k_core is not applied to sequences; filter the table first")
    path = resolve_source(data.source)
    columns = (data.user_col, data.item_col, data.time_col, data.rating_col)
    frame, lines = read_table(
        path,
        sep=data.sep,
        decimal=data.decimal,
        ids=(data.user_col, data.item_col),
        file_format=data.format,
        columns=[c for c in columns if c is not None],
    )
    sequences = UserSequences.from_frame(
        frame, *columns, data.min_rating, source=path, line_numbers=lines
    )
    if data.min_rating is None:
        return sequences, None
    # the same rows as a matrix: a (user, item) rated several times counts as its last rating
    # (an item of the user's sequence is excluded anyway)
    read = Interactions.from_frame(
        frame,
        data.user_col,
        data.item_col,
        data.rating_col,
        users=sequences.users,
        items=sequences.items,
        duplicates="last",
        unknown="drop",
        source=path,
        line_numbers=lines,
    )
    return sequences, _below_min_rating(read, data.min_rating, sequences.users, sequences.items)


def require_held_out(valid: int, test: int, unit: str, left_out: str = "") -> None:
    """A run selects on validation and reports test: refuse data that leaves either empty.
    ``left_out`` says what the split left out of them (:func:`held_out_left_out`), if anything."""
    empty = [name for name, size in (("validation", valid), ("test", test)) if not size]
    if empty:
        raise ValueError(
            f"the {' and '.join(empty)} split{'s are' if len(empty) > 1 else ' is'} empty (0 "
            f"{unit}; validation {valid}, test {test}): check data.ratios and data.split, and "
            "for a time split that users of the later periods also occur in training (only "
            f"they can be evaluated){left_out}"
        )


def _cold_dropped(splits: DatasetSplits) -> tuple[np.ndarray, np.ndarray] | None:
    """For each held-out interaction the split left out (``splits.dropped``): whether its user,
    and whether its item, has no train interaction; None when nothing was left out."""
    dropped = splits.dropped
    if dropped is None or not dropped.nnz:
        return None
    cold_user = (splits.train.user_counts() == 0)[dropped.user_indices()]
    cold_item = (splits.train.item_counts() == 0)[dropped.item_indices()]
    return cold_user, cold_item


def held_out_left_out(splits: DatasetSplits) -> str:
    """What a split left out of validation and test because its user or item has no train
    interaction (an item seen only in users' last interactions, say), for an error message;
    "" when nothing was."""
    cold = _cold_dropped(splits)
    if cold is None:
        return ""
    dropped = splits.dropped
    cold_user, cold_item = cold[0], cold[1] & ~cold[0]
    items = np.unique(dropped.item_indices()[cold_item])
    shown = ", ".join(repr(x) for x in splits.items.ids[items[:5]].tolist())
    more = f" and {items.size - 5} more" if items.size > 5 else ""
    example = f": {shown}{more}" if items.size else ""
    return (
        f". {dropped.nnz} held-out interaction(s) were left out because their user "
        f"({int(cold_user.sum())} of them) or their item ({int(cold_item.sum())}, of "
        f"{items.size} item(s){example}) has no train interaction"
    )


def left_out_note(splits: DatasetSplits) -> str:
    """For the data line a run prints: how many held-out interactions the split left out of
    valid and test because their user or item has no train interaction ("" when none), which
    would otherwise make the held-out counts look short of ``data.ratios``."""
    cold = _cold_dropped(splits)
    if cold is None:
        return ""
    dropped = splits.dropped
    cold_users = np.unique(dropped.user_indices()[cold[0]]).size
    cold_items = np.unique(dropped.item_indices()[cold[1]]).size
    return (
        f"; {dropped.nnz:,} held-out interaction{'s' if dropped.nnz != 1 else ''} left out "
        f"(their user or item has no train interaction: {cold_users:,} "
        f"user{'s' if cold_users != 1 else ''}, {cold_items:,} item{'s' if cold_items != 1 else ''})"
    )
