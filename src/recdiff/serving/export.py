"""Top-k recommendations for many known users, written to a Parquet or CSV file.

One row per recommendation, in external ids: ``user, rank, item, score`` (rank 1 is the best).
Users are scored in batches (one model call per batch, as in evaluation), and the file is streamed
batch by batch into a temporary file beside the target that replaces it only when complete.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from recdiff.atomic import atomic_path
from recdiff.serving.ids import split_id_list
from recdiff.serving.item_info import ItemInfo
from recdiff.serving.predictor import Predictor

__all__ = ["ExportResult", "export_recommendations", "read_user_list"]

FORMATS = {".parquet": "parquet", ".csv": "csv"}
#: Items per user unless the caller says (fewer in a smaller catalogue).
DEFAULT_EXPORT_K = 20


@dataclass(frozen=True)
class ExportResult:
    """What was written: the file, how many users and rows, and how long it took; ``empty``
    users have no row, since no item was left to recommend them (their history holds every
    item the rules allow, unless seen items are ranked too)."""

    path: Path
    users: int
    rows: int
    seconds: float
    empty: int = 0


#: Suffixes that make a ``--users`` value without a comma a file name, never an id.
_LIST_FILES = (*FORMATS, ".txt")


def read_user_list(spec: str, user_col: str | None = None) -> list[str]:
    """User ids from a file (one per line, or a CSV / Parquet file with a ``user`` column, or
    one named ``user_col``: the run's ``data.user_col``) or from a comma-separated list (an id
    holding a comma quoted: ``'"a,b",c'``); blank entries (and nulls of a Parquet column) are
    skipped.

    A value without a comma that ends in .csv, .parquet or .txt is a file that must exist (read
    as an id, a mistyped path would be "user ids are integers, got ['users.csv']")."""
    path = Path(spec)
    if "," not in spec and path.suffix.lower() in _LIST_FILES and not path.is_file():
        state = "is not a file" if path.exists() else f"does not exist (from {Path.cwd()})"
        raise FileNotFoundError(
            f"{path} {state}: give the path of a file of user ids, or the ids themselves, "
            "comma-separated (1,2,3)"
        )
    if path.suffix.lower() in FORMATS and path.is_file():
        names = list(dict.fromkeys(["user", *([user_col] if user_col else [])]))
        # Ids as written: inferred as integers, "0001" and "01" would both become user 1.
        as_text = pa_csv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()))
        table = (
            pq.read_table(path)
            if path.suffix.lower() == ".parquet"
            else pa_csv.read_csv(path, convert_options=as_text)
        )
        found = [name for name in names if name in table.column_names]
        if len(found) > 1:
            raise ValueError(
                f"{path} has both a 'user' and a {user_col!r} column: which holds the user ids "
                "is unclear: keep only the one that does, or give a text file with one id per line"
            )
        if not found:
            quoted = " or ".join(repr(name) for name in names)
            raise ValueError(
                f"{path} has columns {table.column_names} but no {quoted} column; name the "
                f"column of user ids {quoted}, or give a text file with one id per line"
            )
        # A Parquet column of ids with a gap is float (pandas writes 7 as 7.0) or has nulls.
        values = [_as_text(v) for v in table.column(found[0]).to_pylist() if not _is_null(v)]
    elif path.is_file():
        # utf-8-sig: without the byte-order mark some editors write, the first id is "\ufeff7"
        values = path.read_text(encoding="utf-8-sig").splitlines()
    else:
        values = split_id_list(spec, "--users")  # '"a,b",c': quoted, as --history takes them
    users = [v.strip() for v in values if v.strip()]
    if not users:
        raise ValueError(f"no user ids in {spec!r}: give a file with one id per line or 1,2,3")
    return users


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _as_text(value: Any) -> str:
    """An id of a Parquet column as text: an integral float as the integer it holds."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def export_recommendations(
    predictor: Predictor,
    out: str | Path,
    k: int | None = None,
    users: Sequence[Any] | np.ndarray | None = None,
    batch_size: int = 1024,
    exclude_seen: bool = True,
    progress: bool = True,
    exclude_items: Sequence[Any] | None = None,
    candidates: Sequence[Any] | None = None,
    item_info: ItemInfo | None = None,
) -> ExportResult:
    """Write the top ``k`` items of every known user (or of ``users``, external ids) to ``out``.

    The format follows the suffix (``.parquet`` or ``.csv``). ``k`` defaults to 20, or the
    catalogue's size when it holds fewer. Unknown user ids raise before anything is written; so
    do a ``k`` given outside 1..n_items and a run without user ids (DreamRec's example files).
    Duplicate ids are exported once. ``exclude_items`` and ``candidates`` rule items out of
    every user's list, as :meth:`Predictor.rule_out` says. ``item_info`` adds its fields as
    text columns after ``score`` (empty for an item it lacks).
    """
    from recdiff.progress import progress_bar

    started = time.perf_counter()
    out = Path(out)
    kind = FORMATS.get(out.suffix.lower())
    if kind is None:
        raise ValueError(f"{out} must end in .parquet or .csv (the format follows the suffix)")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if k is None:
        k = min(DEFAULT_EXPORT_K, len(predictor.items))
    predictor.check_k(k)
    if len(predictor.users) == 0:  # else "no users to export", or "not among the 0 users"
        raise ValueError(
            "this run's data has no user ids (next-item examples only, as DreamRec's files), so "
            "there is nobody to export: export from a run trained on per-user data (a sequence "
            "file or a table of interactions), or recommend from histories (recdiff recommend "
            "RUN --history ITEM,ITEM,...)"
        )
    # parsed as the CLI and the service parse them ("3" is user 3 of an integer-id run)
    ids = predictor.users.ids if users is None else _unique(predictor.parse_users(list(users)))
    if len(ids) == 0:
        raise ValueError("no users to export: give at least one user id")
    predictor.user_rows(ids)  # every id is checked before a file is opened
    ruled = predictor.ruled_items(exclude_items, candidates)  # and so are the rules
    if item_info is not None:
        own = [*_COLUMNS, _IN_ITEM_FILE]
        clash = [name for name in item_info.fields if name in own]
        if clash:
            raise ValueError(
                f"item fields {clash} would repeat the export's own columns {own}: "
                "leave them out of the fields shown"
            )
    written = empty = 0
    with atomic_path(out) as tmp, _TableWriter(tmp, kind) as writer:
        bar = progress_bar(total=len(ids), show=progress, unit="user", desc="export")
        with bar:
            for start in range(0, len(ids), batch_size):
                batch = ids[start : start + batch_size]
                query = predictor.query_users(batch, exclude_seen)
                if ruled is not None:
                    query = query.ruling_out(ruled)
                items, scores = predictor.top_k([query], k)
                written += writer.write(_table(predictor, batch, items, scores, item_info))
                empty += int((~(items >= 0).any(axis=1)).sum())
                bar.update(len(batch))
    return ExportResult(out, len(ids), written, time.perf_counter() - started, empty)


def _unique(users: Sequence[Any] | np.ndarray) -> np.ndarray:
    ids = np.asarray(users)
    _, first = np.unique(ids, return_index=True)
    return ids[np.sort(first)]


_COLUMNS = ("user", "rank", "item", "score")
# With an item file: whether it lists the item, so that an item it lacks is not taken for one
# whose fields are empty (both leave the field columns null).
_IN_ITEM_FILE = "in_item_file"


def _table(
    predictor: Predictor,
    users: np.ndarray,
    items: np.ndarray,
    scores: np.ndarray,
    item_info: ItemInfo | None = None,
):
    """The long ``user, rank, item, score`` table of one batch (padding rows dropped), with
    ``item_info``'s fields as text (one type in every batch, whatever the first one holds)
    after an ``in_item_file`` column."""
    keep = items >= 0
    k = items.shape[1]
    columns = {
        "user": np.repeat(users, k)[keep.ravel()],
        "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), len(users))[keep.ravel()],
        "item": predictor.items.external(items[keep]),
        "score": scores[keep].astype(np.float32),
    }
    if item_info is not None:
        found = item_info.lookup(columns["item"].tolist())
        columns[_IN_ITEM_FILE] = pa.array([row is not None for row in found], type=pa.bool_())
        for name in item_info.fields:
            values = [None if row is None or row[name] is None else str(row[name]) for row in found]
            columns[name] = pa.array(values, type=pa.string())
    return pa.table(columns)


class _TableWriter:
    """Appends Arrow tables to one Parquet or CSV file (the schema comes from the first)."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path, self.kind = path, kind
        self._writer: pq.ParquetWriter | pa_csv.CSVWriter | None = None

    def __enter__(self) -> _TableWriter:
        return self

    def write(self, table: pa.Table) -> int:
        if self._writer is None:
            make = pq.ParquetWriter if self.kind == "parquet" else pa_csv.CSVWriter
            self._writer = make(str(self.path), table.schema)
        self._writer.write_table(table)
        return table.num_rows

    def __exit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.close()
