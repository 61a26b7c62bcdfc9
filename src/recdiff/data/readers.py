"""Readers for user-item interaction files.

- :func:`read_diffrec_splits`: DiffRec's ``train_list.npy`` / ``valid_list.npy`` / ``test_list.npy``
- :func:`read_interactions`: CSV, TSV, Parquet or JSON Lines files, or a DataFrame, with
  configurable columns
- :func:`read_movielens`: MovieLens ``ratings.dat`` (``::``), ``u.data`` (tab), ``ratings.csv``
- :func:`read_recbole_inter`: RecBole atomic ``.inter`` files (typed header ``user_id:token``)

Malformed files raise :class:`~recdiff.data.errors.DataFormatError` naming the file, the line
(1-based, counting the header; in Parquet, which has no lines, the data row counted from 1) and
what to do about it (:func:`~recdiff.data.tables.read_table`, shared with the sequence readers,
reads the text and Parquet tables). Sequence formats live in
:mod:`recdiff.data.sequences`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recdiff.data.errors import SEQUENCE_FILE, DataFormatError
from recdiff.data.frames import require_columns
from recdiff.data.interactions import DuplicatePolicy, Interactions, UnknownPolicy
from recdiff.data.splits import DatasetSplits
from recdiff.data.tables import (
    SUFFIX_FORMATS,
    PathLike,
    TableFormat,
    canonical_ints,
    data_suffix,
    read_table,
)
from recdiff.data.vocab import Vocabulary

_SPLIT_NAMES = ("train", "valid", "test")


# --------------------------------------------------------------------------------- DiffRec npy
def _load_pairs(path: Path) -> np.ndarray:
    """A DiffRec ``*_list.npy`` file: an integer array of ``[user, item]`` rows."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found; a DiffRec split folder must hold "
            + ", ".join(f"{n}_list.npy" for n in _SPLIT_NAMES)
        )
    try:
        pairs = np.load(path, allow_pickle=False)  # never unpickle: npy object arrays are refused
    except ValueError as err:
        raise DataFormatError(f"{path} is not a plain numeric .npy array ({err})") from None
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise DataFormatError(
            f"{path} has shape {pairs.shape}; a DiffRec split must be an (N, 2) array of "
            "[user, item] rows"
        )
    if pairs.dtype.kind not in "iu":
        raise DataFormatError(f"{path} has dtype {pairs.dtype}; user and item ids must be ints")
    pairs = pairs.astype(np.int64, copy=False)
    if pairs.size and pairs.min() < 0:
        row = int(np.flatnonzero((pairs < 0).any(axis=1))[0])
        raise DataFormatError(
            f"{path} row {row + 1} (rows counted from 1) has a negative id {pairs[row].tolist()}"
        )
    return pairs


# A data file's suffix, as data.format names its format: the tables', RecBole's and MovieLens'.
_FILE_FORMATS = {**SUFFIX_FORMATS, ".inter": "recbole", ".dat": "movielens"}


def _file_for_a_split_folder(path: Path) -> str:
    """Why a file is no DiffRec split folder, and the format to read it with (the paper presets
    say ``data.format: diffrec``, so a table given as ``data.source`` alone lands here)."""
    files = ", ".join(f"{name}_list.npy" for name in _SPLIT_NAMES)
    named = _FILE_FORMATS.get(data_suffix(path))
    fix = (
        f"set data.format={named}"
        if named
        else "set data.format to the file's (csv, tsv, parquet, jsonl, movielens or recbole)"
    ) + ", and name its columns (data.user_col, data.item_col, ...)"
    if not named:  # e.g. ICLRec's Yelp.txt, which the preset diffrec-yelp's name invites
        fix += f"; {SEQUENCE_FILE}, with data.split=leave_one_out, user_temporal or random"
    return (
        f"{path} is a file, but data.format=diffrec (the paper presets' format) reads a DiffRec "
        f"split folder holding {files}: {fix}"
    )


def read_diffrec_splits(
    folder: PathLike,
    *,
    row_order_as_time: bool = True,
    allow_overlap: bool = False,
    duplicates: DuplicatePolicy = "raise",
) -> DatasetSplits:
    """Read DiffRec's ``{train,valid,test}_list.npy`` into splits sharing one vocabulary each.

    Ids in these files are already contiguous 0-based indices, so the vocabularies are
    ``0..max_id`` over all three files (users or items seen only in valid/test still get a row).

    Args:
        folder: the dataset folder (e.g. ``.../diffrec/ml-1m_clean``).
        row_order_as_time: store every row's position in its file as its ``timestamps`` value.
            The files have no times, but DiffRec wrote each user's train rows in time order and
            T-DiffRec's weights use that order; with this, ``time_weights(splits.train)`` works.
            These are row positions, not seconds.
        allow_overlap: accept a (user, item) pair that is in more than one split (a leak);
            by default that is an error.
        duplicates: a (user, item) pair repeated within one file, as for
            :meth:`Interactions.from_indices` (by default an error naming the rows).
    """
    folder = Path(folder)
    if folder.is_file():
        raise DataFormatError(_file_for_a_split_folder(folder))
    pairs = {name: _load_pairs(folder / f"{name}_list.npy") for name in _SPLIT_NAMES}
    stacked = np.concatenate(list(pairs.values()))
    if stacked.size == 0:
        raise DataFormatError(f"the DiffRec split files in {folder} are all empty")
    n_users, n_items = (int(x) + 1 for x in stacked.max(axis=0))
    users, items = Vocabulary.range(n_users), Vocabulary.range(n_items)
    parts = {
        name: Interactions.from_indices(
            users,
            items,
            p[:, 0],
            p[:, 1],
            timestamps=np.arange(len(p), dtype=np.float64) if row_order_as_time else None,
            duplicates=duplicates,
            source=folder / f"{name}_list.npy",
        )
        for name, p in pairs.items()
    }
    if not allow_overlap:
        for a, b in (("train", "valid"), ("train", "test"), ("valid", "test")):
            shared = parts[a].binarize().matrix.multiply(parts[b].binarize().matrix).nnz
            if shared:
                raise DataFormatError(
                    f"{shared} (user, item) pairs of {folder} are in both {a} and {b}: the "
                    f"evaluation would leak; remove them from the files (a run config has no "
                    "setting for this), or pass allow_overlap=True from Python"
                )
    return DatasetSplits(parts["train"], parts["valid"], parts["test"])


# --------------------------------------------------------------------------------- interactions
def read_interactions(
    source: PathLike | pd.DataFrame,
    *,
    user_col: str = "user",
    item_col: str = "item",
    rating_col: str | None = None,
    time_col: str | None = None,
    sep: str | None = None,
    decimal: str = ".",
    header: bool = True,
    names: list[str] | None = None,
    dtype: Any = None,
    users: Vocabulary | None = None,
    items: Vocabulary | None = None,
    duplicates: DuplicatePolicy = "raise",
    unknown: UnknownPolicy = "raise",
    file_format: TableFormat | None = None,
) -> Interactions:
    """Read interactions from a CSV/TSV/Parquet/JSON Lines file or a DataFrame.

    Example: ``read_interactions("ratings.csv", user_col="userId", item_col="movieId",
    rating_col="rating", time_col="timestamp")``. The format comes from ``file_format`` or the
    suffix; ids are kept as written (see :func:`read_table`, also for ``decimal``). See
    :meth:`Interactions.from_frame` for ``users``/``items``/``duplicates``/``unknown``.
    """
    if isinstance(source, pd.DataFrame):
        frame, lines, where = source, None, None
    else:
        frame, lines = read_table(
            source,
            sep=sep,
            decimal=decimal,
            header=header,
            names=names,
            dtype=dtype,
            ids=(user_col, item_col),
            file_format=file_format,
            columns=_used(user_col, item_col, rating_col, time_col),
        )
        where = source
    return Interactions.from_frame(
        frame,
        user_col,
        item_col,
        rating_col,
        time_col,
        users,
        items,
        duplicates=duplicates,
        unknown=unknown,
        source=where,
        line_numbers=lines,
    )


def _used(*columns: str | None) -> list[str]:
    """The columns a reader uses: a JSON Lines file keeps only these of its fields."""
    return [c for c in columns if c is not None]


def read_movielens(path: PathLike, duplicates: DuplicatePolicy = "raise") -> Interactions:
    """MovieLens ratings with ratings and timestamps (matrix values are the ratings).

    Accepts ML-1M/10M ``ratings.dat`` (``user::item::rating::time``), ML-100K ``u.data``
    (tab-separated, no header) and ML-20M+ ``ratings.csv`` (``userId,movieId,rating,timestamp``),
    each also compressed (``ratings.dat.gz``).
    """
    path = Path(path)
    cols = ["user", "item", "rating", "timestamp"]
    suffix = data_suffix(path)
    if suffix == ".csv":
        return read_interactions(
            path,
            user_col="userId",
            item_col="movieId",
            rating_col="rating",
            time_col="timestamp",
            duplicates=duplicates,
        )
    sep = "::" if suffix == ".dat" else "\t"
    return read_interactions(
        path,
        sep=sep,
        header=False,
        names=cols,
        rating_col="rating",
        time_col="timestamp",
        duplicates=duplicates,
    )


def read_recbole_inter(
    path: PathLike,
    *,
    user_col: str = "user_id",
    item_col: str = "item_id",
    rating_col: str | None = "rating",
    time_col: str | None = "timestamp",
    duplicates: DuplicatePolicy = "raise",
) -> Interactions:
    """A RecBole atomic ``.inter`` file: tab-separated with a typed header ``name:type``.

    Token ids become ints when every token is a plain integer (``"196"``), else stay strings
    (``"007"`` stays ``"007"``). ``rating_col``/``time_col`` left at RecBole's own names
    (``rating``, ``timestamp``) are used only if the file has them; other names must be in it.
    """
    path = Path(path)
    frame, lines = read_table(path, sep="\t", dtype=str)
    fields = [str(c).split(":", 1) for c in frame.columns]
    untyped = [":".join(f) for f in fields if len(f) != 2]
    if untyped:
        raise DataFormatError(
            f"{path} line 1: header field(s) {untyped} lack a RecBole type; every header field "
            "must look like name:token or name:float"
        )
    names = [name for name, _ in fields]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataFormatError(
            f"{path} line 1: the header names field(s) {repeated} more than once (types "
            "aside); give every field its own name"
        )
    frame.columns = names
    types = dict(fields)
    # A column named other than RecBole's own name was asked for: its absence is an error,
    # not a file without ratings or times (whose messages would ask for the setting made).
    asked = [("rating_col", rating_col, "rating"), ("time_col", time_col, "timestamp")]
    require_columns(frame, [(arg, col) for arg, col, own in asked if col != own], path)
    for name, kind in types.items():
        if kind == "token":
            frame[name] = canonical_ints(frame[name])
    return Interactions.from_frame(
        frame,
        user_col,
        item_col,
        rating_col if rating_col in types else None,
        time_col if time_col in types else None,
        duplicates=duplicates,
        source=path,
        line_numbers=lines,
    )
