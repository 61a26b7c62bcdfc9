"""Reading JSON Lines (one JSON object per line) into a frame, with the file line of every row.

The logs recommender data ships in are often JSON Lines: Amazon's review dumps (2018:
``reviewerID``, ``asin``, ``overall``, ``unixReviewTime``; 2023: ``user_id``, ``parent_asin``,
``rating``, ``timestamp``) and Yelp's ``review.json`` (``user_id``, ``business_id``, ``stars``,
``date``). Those files run to gigabytes, mostly review text, so the file is read line by line
(decompressed as it goes) and only the fields asked for are kept.

Ids are read as :func:`~recdiff.data.tables.read_table` reads them from text: ``"007"`` and
``"7"`` are two ids, and a column becomes ints only when every id is written as a plain integer
(so the number ``7`` and the string ``"7"`` are one id, as they are in a CSV file). Every error
names the file and the line to fix.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import json
import lzma
import zipfile
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from recdiff.data.archives import UNREADABLE, cannot_read, zip_member
from recdiff.data.errors import DataFormatError, RowNumbers

__all__ = ["read_json_lines"]

_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
_RECORDS = "pandas' DataFrame.to_json(orient='records', lines=True) writes it"


@contextlib.contextmanager
def _open_binary(path: Path) -> Iterator[IO[bytes]]:
    """The file's bytes as a stream, decompressed when its suffix names a compression."""
    suffix = path.suffix.lower()
    if suffix == ".zip":
        with zipfile.ZipFile(path) as archive, archive.open(zip_member(path, archive)) as member:
            yield member
    elif suffix in _OPENERS:
        with _OPENERS[suffix](path, "rb") as stream:
            yield stream
    else:
        with open(path, "rb") as stream:
            yield stream


def read_json_lines(
    path: Path,
    columns: Collection[str] | None = None,
    ids: Collection[str] = (),
    nested_as_text: bool = False,
) -> tuple[pd.DataFrame, np.ndarray]:
    """A JSON Lines file as a frame, and the file line of every row (blank lines skipped).

    ``columns`` names the fields to keep (None: every field any line has); a field a line
    lacks is missing there (NaN), and a field no line has is no column, so the reader's column
    check names it. ``ids`` names the id fields, read as text ids (see the module docstring).
    A file whose first character is ``[`` is read as one JSON array of objects; its rows are
    then numbered as records (:class:`~recdiff.data.errors.RowNumbers`), not lines. A field
    holding an object or an array is an error naming the line, or, with ``nested_as_text``
    (item metadata, shown rather than read as data), its JSON text.
    """
    keep = None if columns is None else list(dict.fromkeys(columns))
    # a value of every row for each field (None where a line lacks it)
    values: dict[str, list[Any]] = {} if keep is None else {name: [] for name in keep}
    absent = set(values)  # fields asked for and not yet seen: no column unless one line has it
    lines: list[int] = []
    first: list[str] = []  # the first object's fields, for a message naming a missing one
    try:
        with _open_binary(path) as stream:
            for number, record in _records(stream, path):
                if not lines:
                    first = list(record)
                if keep is None:  # a field first seen here is missing on the rows before
                    for name in record:
                        if name not in values:
                            values[name] = [None] * len(lines)
                elif absent:
                    absent -= record.keys()
                for name, column in values.items():
                    value = record.get(name)
                    if isinstance(value, dict | list):
                        if not nested_as_text:
                            raise _nested(value, name, path, number)
                        value = json.dumps(value, ensure_ascii=False)
                    column.append(value)
                lines.append(number)
    except UNREADABLE as err:
        raise cannot_read(path, err) from None
    if not lines:
        raise DataFormatError(f"{path} holds no JSON object; expected one interaction per line")
    frame = pd.DataFrame(
        {
            name: pd.Series(column, dtype=object)
            for name, column in values.items()
            if name not in absent
        },
        index=pd.RangeIndex(len(lines)),
    )
    frame.attrs["fields"] = first  # require_columns lists these when a field asked for is absent
    for name in ids:
        if name in frame.columns:
            frame[name] = _text_ids(frame[name])
    if lines[0] < 0:  # a JSON array: its records have no lines of their own
        return frame, RowNumbers.first(len(lines))
    return frame, np.asarray(lines, dtype=np.int64)


def _records(stream: IO[bytes], path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, object) for every non-blank line; for a JSON array, (-(record number), object),
    the sign telling :func:`read_json_lines` to number rows as records."""
    for number, raw in enumerate(stream, start=1):
        line = raw.removeprefix(b"\xef\xbb\xbf") if number == 1 else raw
        text = line.strip()
        if not text:
            continue
        if number == 1 and text.startswith(b"["):
            yield from _array(text + stream.read(), path)
            return
        yield number, _object(text, path, f"line {number}")


def _array(raw: bytes, path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """The objects of a file holding one JSON array (record n numbered -n)."""
    try:
        records = json.loads(raw)
    except UnicodeDecodeError:
        raise DataFormatError(f"{path} is not UTF-8 text; save the file as UTF-8") from None
    except json.JSONDecodeError as err:
        raise DataFormatError(
            f"{path} starts with '[' but is not one JSON array ({err.msg}, line {err.lineno} "
            f"column {err.colno}); write one JSON object per line (JSON Lines: {_RECORDS})"
        ) from None
    for index, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise DataFormatError(
                f"{path}: the array's record {index} is {_kind(record)}, not an object with the "
                "interaction's fields"
            )
        yield -index, record


def _object(text: bytes, path: Path, where: str) -> dict[str, Any]:
    try:
        record = json.loads(text)
    except UnicodeDecodeError:
        raise DataFormatError(f"{path} {where} is not UTF-8 text; save the file as UTF-8") from None
    except json.JSONDecodeError as err:
        hint = ""
        if text.startswith(b"{'"):
            hint = (
                " The line is written in Python's dict syntax (single quotes), not JSON, as "
                "Amazon's 2014 review files are: use their strict-JSON versions, or convert "
                "each line with ast.literal_eval and json.dumps."
            )
        elif text in (b"{", b"["):
            hint = " A pretty-printed JSON file spreads one object over several lines."
        raise DataFormatError(
            f"{path} {where} is not JSON ({err.msg}, column {err.colno}); each line must hold "
            f"one whole JSON object (JSON Lines: {_RECORDS}).{hint}"
        ) from None
    if not isinstance(record, dict):
        raise DataFormatError(
            f"{path} {where} holds {_kind(record)}, not an object: each line must hold one JSON "
            f"object with the interaction's fields, e.g. {{\"user\": \"u1\", \"item\": \"i7\"}}"
        )
    return record


def _nested(value: Any, name: str, path: Path, number: int) -> DataFormatError:
    """The error for a field holding an object or an array: no id, rating or time."""
    where = f"line {number}" if number > 0 else f"record {-number}"
    return DataFormatError(
        f"{path} {where}: field {name!r} holds {_kind(value)}, but ids, ratings and times are "
        f"numbers or strings: point the setting at another field, or write one interaction "
        f"per line with plain values ({_RECORDS})"
    )


def _text_ids(series: pd.Series) -> pd.Series:
    """Ids as a text reader sees them: every value written out as JSON writes it (``7``,
    ``7.0``, ``true``; strings as they are), then ints when every id is a plain integer."""
    from recdiff.data.tables import canonical_ints  # tables imports this module

    missing = series.isna()
    written = series.map(lambda v: json.dumps(v) if isinstance(v, bool | float) else v)
    written = written.where(missing, written.astype(str))
    return canonical_ints(written)


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, list):
        return "a JSON array"
    return f"the JSON value {json.dumps(value)[:40]}"
