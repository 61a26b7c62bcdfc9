"""What items are, beside their ids: titles, categories, prices from a metadata file, so that a
list of recommendations can be read (``recdiff recommend RUN --user 3 --item-info movies.dat``).

Any table the data readers read serves (CSV, TSV, Parquet, JSON Lines such as Amazon's
``meta_*.json`` or Yelp's ``business.json``), with its item ids in the column the run's
``data.item_col`` names, else in its first column. Three files that datasets ship are read as
they come: MovieLens' ``movies.dat`` (``id::title::genres``, no header) and ``u.item``
(``|``-separated, no header), and RecBole's ``.item`` (a typed header, ``item_id:token``).
Ids match as written (``"007"`` is not ``7``); an item the file lacks has no fields.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from recdiff.data.archives import data_suffix
from recdiff.data.errors import DataFormatError, describe_rows
from recdiff.data.json_lines import read_json_lines
from recdiff.data.tables import read_table

__all__ = ["ItemInfo", "describe_item"]

# MovieLens ML-100K's u.item: id | title | release date | video release date | IMDb URL | 19
# genre flags. Only the text fields are named; the flags are read and dropped.
_U_ITEM = ["item", "title", "release_date", "video_release_date", "imdb_url"]
_U_GENRES = 19


class ItemInfo:
    """An item metadata table, looked up by external item id.

    ``fields`` picks the columns shown (default: every column but the id, or the title for
    MovieLens' files); ``id_col`` names the id column (default: ``item_col`` when the file has
    it, else the first column).
    """

    def __init__(
        self,
        path: str | Path,
        fields: Sequence[str] | None = None,
        id_col: str | None = None,
        item_col: str | None = None,
    ) -> None:
        self.path = Path(path)
        frame, lines = _read(self.path)
        columns = [str(c) for c in frame.columns]
        if id_col is None:
            id_col = item_col if item_col in columns else columns[0]
        elif id_col not in columns:
            raise DataFormatError(
                f"{self.path} has no column {id_col!r} for the item ids; its columns are "
                f"{columns}"
            )
        if fields is None:
            fields = _default_fields(self.path, columns, id_col)
        unknown = [f for f in fields if f not in columns]
        if unknown:
            raise DataFormatError(
                f"{self.path} has no column(s) {unknown}; its columns are {columns}: name "
                "fields among them"
            )
        self.id_col, self.fields = id_col, list(fields)
        ids = frame[id_col].map(_id_text)
        repeated = ids.duplicated(keep=False).to_numpy()
        if repeated.any():
            rows = repeated.nonzero()[0]
            raise DataFormatError(
                f"{self.path} lists item {ids.iloc[rows[0]]!r} more than once (at "
                f"{describe_rows(rows, lines)}); give each item one row"
            )
        values = frame[self.fields].astype(object).to_numpy()
        self._rows = {item: [_plain(v) for v in row] for item, row in zip(ids, values, strict=True)}

    def __len__(self) -> int:
        return len(self._rows)

    def lookup(self, items: Sequence[Any]) -> list[dict[str, Any] | None]:
        """Each item's fields (None for an item the file lacks), in the order given."""
        found = (self._rows.get(_id_text(item)) for item in items)
        return [None if row is None else dict(zip(self.fields, row, strict=True)) for row in found]


def describe_item(fields: dict[str, Any] | None) -> str:
    """An item's fields on one line of text: the values, " | " between them."""
    if fields is None:
        return "(not in the item file)"
    return " | ".join("" if value is None else str(value) for value in fields.values())


def _read(path: Path) -> tuple[pd.DataFrame, Any]:
    """The table, text read as written (ids such as ``007`` keep their zeros), with the layouts
    of MovieLens' and RecBole's item files."""
    name = path.name.lower()
    if name.startswith("movies.dat"):
        names = ["item", "title", "genres"]
        return read_table(path, sep="::", header=False, names=names, dtype=str)
    if name.startswith("u.item"):  # Latin-1, as ML-100K ships it
        genres = [f"genre_{i}" for i in range(_U_GENRES)]
        try:
            frame = pd.read_csv(
                path,
                sep="|",
                header=None,
                names=_U_ITEM + genres,
                dtype=str,
                encoding="latin-1",
                keep_default_na=False,
                na_values=[""],
            )
        except (OSError, ValueError, pd.errors.ParserError) as err:
            raise DataFormatError(f"cannot read {path} as MovieLens' u.item ({err})") from None
        return frame[_U_ITEM], frame.index.to_numpy() + 1
    if data_suffix(path) in (".jsonl", ".ndjson", ".json"):  # e.g. Amazon's meta_*.json
        return read_json_lines(path, nested_as_text=True)  # categories lists shown as text
    if data_suffix(path) == ".item":  # RecBole: tab-separated, each header field name:type
        frame, lines = read_table(path, sep="\t", dtype=str)
        frame.columns = [str(c).split(":", 1)[0] for c in frame.columns]
        return frame, lines
    return read_table(path, dtype=str)


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
    """A cell as JSON can carry it: missing values (NaN, None) as None, numpy scalars as
    Python values."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") and not isinstance(value, str) else value
