"""What items are, beside their ids: titles, categories, prices from a metadata file, so that a
list of recommendations can be read (``recdiff recommend RUN --user 3 --item-info movies.dat``).

Any table the data readers read serves (CSV, TSV, Parquet, JSON Lines such as Amazon's
``meta_*.json`` or Yelp's ``business.json``), with its item ids in the column the run's
``data.item_col`` names, else in its first column. Three files that datasets ship are read as
they come: MovieLens' ``movies.dat`` (``id::title::genres``, no header) and ``u.item``
(``|``-separated, no header), and RecBole's ``.item`` (a typed header, ``item_id:token``).
Ids match as written (``"007"`` is not ``7``; a JSON file's as the JSON Lines reader reads them,
so ``7.0`` is not ``7``); an item the file lacks has no fields. Cells are shown as JSON carries
them: missing ones as None, lists and objects (JSON's, Parquet's) as JSON text, times as text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recdiff._warnings import warn
from recdiff.data.archives import data_suffix
from recdiff.data.errors import DataFormatError, describe_rows
from recdiff.data.json_lines import first_fields, read_json_lines, text_ids
from recdiff.data.tables import SUFFIX_FORMATS, read_table, read_text

__all__ = ["ItemInfo", "describe_item"]

# MovieLens ML-100K's u.item: id | title | release date | video release date | IMDb URL | 19
# genre flags. Only the text fields are named; the flags are read and dropped.
_U_ITEM = ["item", "title", "release_date", "video_release_date", "imdb_url"]
_U_GENRES = 19


class ItemInfo:
    """An item metadata table, looked up by external item id.

    ``fields`` picks the columns shown (default: every column but the id; the title and genres
    or release date of MovieLens' files); ``id_col`` names the id column (default: ``item_col``
    when the file has it, else the first column).
    """

    def __init__(
        self,
        path: str | Path,
        fields: Sequence[str] | None = None,
        id_col: str | None = None,
        item_col: str | None = None,
    ) -> None:
        self.path = Path(path)
        if fields is not None:
            fields = list(dict.fromkeys(fields))
        json_file = _is_json(self.path)
        frame, lines = _read(self.path, _json_columns(self.path, fields, id_col, item_col))
        columns = [str(c) for c in frame.columns]
        # a JSON file read for the fields shown only lists all its fields (its first object's)
        listed = list(dict.fromkeys([*frame.attrs.get("fields", []), *columns]))
        if len(frame) == 0:  # a MovieLens file without a line; the table readers refuse it
            raise DataFormatError(f"{self.path} holds no items; give the item file itself")
        if id_col is None:
            id_col = item_col if item_col in columns else listed[0]
        elif id_col not in columns:
            raise DataFormatError(
                f"{self.path} has no column {id_col!r} for the item ids; its columns are {listed}"
            )
        if fields is None:
            fields = _default_fields(self.path, columns, id_col)
        unknown = [f for f in fields if f not in columns]
        if unknown:
            raise DataFormatError(
                f"{self.path} has no column(s) {unknown}; its columns are {listed}: name "
                "fields among them"
            )
        self.id_col, self.fields = id_col, list(fields)
        #: every column the file has (a JSON file's as its first object names them)
        self.columns = listed
        written = text_ids(frame[id_col]) if json_file else frame[id_col]
        missing = written.isna().to_numpy()
        if missing.any():  # as text they would be an item "nan" (or "None"), and repeat
            raise DataFormatError(
                f"{self.path} has no item id in column {id_col!r} at "
                f"{describe_rows(missing.nonzero()[0], lines)}; give every row its item's id, "
                "or drop those rows"
            )
        ids = written.map(_id_text)
        later = ids.duplicated(keep="first").to_numpy()
        if later.any():  # Amazon's meta files repeat some items: shown, not refused
            example = ids.iloc[later.nonzero()[0][0]]
            rows = (ids == example).to_numpy().nonzero()[0]
            warn(
                f"{self.path} lists {ids[later].nunique():,} item(s) more than once (e.g. "
                f"{example!r} at {describe_rows(rows, lines)}): each item's first row is shown"
            )
        values = frame.loc[~later, self.fields].astype(object).to_numpy()
        self._rows = {
            item: [_plain(v) for v in row] for item, row in zip(ids[~later], values, strict=True)
        }

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, item: object) -> bool:
        """Whether the file lists ``item`` (matched as :meth:`lookup` matches it)."""
        return _id_text(item) in self._rows

    def lookup(self, items: Sequence[Any]) -> list[dict[str, Any] | None]:
        """Each item's fields (None for an item the file lacks), in the order given."""
        found = (self._rows.get(_id_text(item)) for item in items)
        return [None if row is None else dict(zip(self.fields, row, strict=True)) for row in found]


# Line breaks and tabs in a value shown as escapes, so that each item keeps one line.
_ONE_LINE = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": "\\t"})


def describe_item(fields: dict[str, Any] | None) -> str:
    """An item's fields on one line of text: the values, " | " between them (a line break or
    tab inside a value written as ``\\n``, ``\\r``, ``\\t``)."""
    if fields is None:
        return "(not in the item file)"
    return " | ".join(
        "" if value is None else str(value).translate(_ONE_LINE) for value in fields.values()
    )


def _is_json(path: Path) -> bool:
    """Whether the file's name says JSON Lines, as the table readers read names."""
    return SUFFIX_FORMATS.get(data_suffix(path)) == "jsonl"


def _json_columns(
    path: Path, fields: list[str] | None, id_col: str | None, item_col: str | None
) -> list[str] | None:
    """The fields to read of a JSON file when only some are shown: those, and the ids' (the
    ``id_col``, else ``item_col`` and the first field, whichever the file has). Amazon's
    ``meta_*.json`` runs to gigabytes of descriptions and image lists that would otherwise all
    be held, each as JSON text. None (every field) for other files, or when every one is shown."""
    if fields is None or not _is_json(path):
        return None
    if id_col is not None:
        return [id_col, *fields]
    first = first_fields(path)  # its first line only
    ids = [item_col] if item_col in first else [item_col, *first[:1]]  # item_col: a later line's?
    return list(dict.fromkeys([*(c for c in ids if c is not None), *fields]))


def _read(path: Path, json_columns: list[str] | None = None) -> tuple[pd.DataFrame, Any]:
    """The table, text read as written (ids such as ``007`` keep their zeros), with the layouts
    of MovieLens' and RecBole's item files; of a JSON file, ``json_columns`` only (None: all)."""
    name = path.name.lower()
    if name.startswith("movies.dat"):
        return _movielens(path, "::", ["item", "title", "genres"])
    if name.startswith("u.item"):
        frame, lines = _movielens(path, "|", _U_ITEM + [f"genre_{i}" for i in range(_U_GENRES)])
        return frame[_U_ITEM], lines
    if _is_json(path):  # e.g. Amazon's meta_*.json, categories lists shown as text
        return read_json_lines(path, columns=json_columns, nested_as_text=True)
    if data_suffix(path) == ".item":  # RecBole: tab-separated, each header field name:type
        frame, lines = read_table(path, sep="\t", dtype=str)
        frame.columns = [str(c).split(":", 1)[0] for c in frame.columns]
        return frame, lines
    return read_table(path, dtype=str)


def _movielens(path: Path, sep: str, names: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """A MovieLens item file, each line split at ``sep``: these quote nothing, and a title may
    begin with a quote (``"Great Performances" Cats (1998)``), which a CSV reader would take
    for quoting and drop. UTF-8, else Latin-1 (as ML-100K and ML-1M ship); empty fields are
    missing; blank lines are skipped, the line numbers staying exact."""
    rows: list[list[str | None]] = []
    lines: list[int] = []
    # split at newlines only: str.splitlines also splits at \x85, which Latin-1 text may hold
    for number, line in enumerate(read_text(path, fallback="latin-1").split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        fields = line.split(sep)
        if len(fields) != len(names):
            raise DataFormatError(
                f"{path} line {number} has {len(fields)} fields separated by {sep!r}, but "
                f"MovieLens' {path.name.split('.')[0]} files have {len(names)}: give the file "
                "as MovieLens ships it, or name it *.csv with a header"
            )
        rows.append([field or None for field in fields])
        lines.append(number)
    return pd.DataFrame(rows, columns=names, dtype=object), np.asarray(lines, dtype=np.int64)


def _default_fields(path: Path, columns: list[str], id_col: str) -> list[str]:
    name = path.name.lower()
    if name.startswith("movies.dat"):
        return ["title", "genres"]
    if name.startswith("u.item"):
        return ["title", "release_date"]
    return [c for c in columns if c != id_col]


def _id_text(value: Any) -> str:
    """An id as text, so that a file's ids match a run's whichever was read as numbers:
    ``7`` and ``"7"`` are one id, ``"007"`` another."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _plain(value: Any) -> Any:
    """A cell as JSON carries it (``recommend --json``, the service's answers) and a person
    reads it: missing values (None, NaN, pandas' NA and NaT) as None, numpy scalars as Python
    values, lists and objects (Parquet's list and struct columns) as JSON text, as a JSON
    file's are, and what JSON has no type for (times, decimals, infinities) as its text."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, list | tuple | dict | np.ndarray):
        return json.dumps(value, ensure_ascii=False, default=_json_default)
    if value is None or pd.isna(value):
        return None
    if isinstance(value, str | bool | int) or (isinstance(value, float) and math.isfinite(value)):
        return value
    return str(value)


def _json_default(value: Any) -> Any:
    """What json.dumps cannot write by itself, inside a list or an object cell."""
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    return str(value)
