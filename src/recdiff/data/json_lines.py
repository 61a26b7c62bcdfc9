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

import codecs
import itertools
import json
import math
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from recdiff.data.archives import UNREADABLE, cannot_read, open_bytes
from recdiff.data.errors import DataFormatError, RowNumbers

__all__ = ["first_fields", "read_json_lines", "text_ids"]

_RECORDS = "pandas' DataFrame.to_json(orient='records', lines=True) writes it"


class _Repeated(dict):
    """An object that names a field more than once: the last value, as Python's json keeps it,
    and every value of each repeated field (JSON leaves open which one counts)."""

    repeated: dict[str, list[Any]]


def _fields(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record = dict(pairs)
    if len(record) == len(pairs):
        return record
    marked = _Repeated(record)
    names = [name for name, _ in pairs]
    marked.repeated = {
        name: [value for key, value in pairs if key == name]
        for name in dict.fromkeys(names)
        if names.count(name) > 1
    }
    return marked


# json.loads without its per-call encoding sniffing; objects naming a field twice are marked
# (the hook costs ~20% of a read)
_DECODE = json.JSONDecoder(object_pairs_hook=_fields).decode
# (line, or -(record number) in a JSON array; the object)
Record = tuple[int, dict[str, Any]]


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
    A file whose first non-blank character is ``[`` is read (whole) as one JSON array of
    objects; its rows are then numbered as records (:class:`~recdiff.data.errors.RowNumbers`),
    not lines. A field holding an object or an array is an error naming the line, or, with
    ``nested_as_text`` (item metadata, shown rather than read as data), its JSON text; a file
    that is one object of such fields (a whole table, pandas' default ``to_json()``) is an error.
    """
    keep = None if columns is None else list(dict.fromkeys(columns))
    # a value of every row for each field (None where a line lacks it)
    values: dict[str, list[Any]] = {} if keep is None else {name: [] for name in keep}
    absent = set(values)  # fields asked for and not yet seen: no column unless one line has it
    lines: list[int] = []
    first: list[str] = []  # the first object's fields, for a message naming a missing one
    # fields whose repeats are refused: the ones asked for (all read, none asked: the ids only)
    checked = set(ids) if keep is None else {*keep, *ids}
    try:
        with open_bytes(path) as stream:
            for number, record in _refuse_one_table(_records(stream, path), path):
                if not lines:
                    first = list(record)
                if keep is None:  # a field first seen here is missing on the rows before
                    for name in record:
                        if name not in values:
                            values[name] = [None] * len(lines)
                elif absent:
                    absent -= record.keys()
                if type(record) is _Repeated:
                    _refuse_repeated(record, checked, path, number)
                for name, column in values.items():
                    value = record.get(name)
                    if isinstance(value, dict | list):
                        if not nested_as_text:
                            raise _nested(value, name, path, number)
                        value = json.dumps(value, ensure_ascii=False)
                    # isascii is O(1): only text beyond ASCII may hold a lone surrogate
                    if isinstance(value, str) and not value.isascii() and not _encodable(value):
                        raise _surrogate(name, path, number)
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
            frame[name] = text_ids(frame[name])
    if lines[0] < 0:  # a JSON array: its records have no lines of their own
        return frame, RowNumbers.first(len(lines))
    return frame, np.asarray(lines, dtype=np.int64)


def _refuse_repeated(record: _Repeated, checked: Collection[str], path: Path, number: int) -> None:
    """A field asked for that one object names twice, with different values, is an error: which
    value counts is the writer's guess (Python's json takes the last, others the first).
    Elsewhere (review text, metadata shown as it is) it is left alone, so one odd line of a
    multi-GB dump does not stop the read."""
    for name, values in record.repeated.items():
        if name in checked and any(value != values[0] for value in values):
            shown = " and ".join(_short(value) for value in values[:3])
            raise DataFormatError(
                f"{path} {_where(number)} names the field {name!r} {len(values)} times with "
                f"different values ({shown}{' and more' if len(values) > 3 else ''}): JSON "
                "leaves open which one counts, so the reader will not guess. Give the field "
                "once per object"
            )


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    if len(text) <= 40:
        return text
    closing = text[-1] if text[-1] in '"]}' else ""  # a cut string still reads as one
    return f"{text[:36]}...{closing}"


def first_fields(path: Path) -> list[str]:
    """The fields of the file's first object, read from its first line (none in a file without
    one): which field holds the ids, known before the file is read for a few fields."""
    try:
        with open_bytes(path) as stream:
            for _, record in _records(stream, path):
                return list(record)
    except UNREADABLE as err:
        raise cannot_read(path, err) from None
    return []


def _records(stream: IO[bytes], path: Path) -> Iterator[Record]:
    """(line, object) for every non-blank line; for a JSON array, (-(record number), object),
    the sign telling :func:`read_json_lines` to number rows as records."""
    seen = False  # a non-blank line: the array's '[' must be the first, blank lines aside
    for number, raw in enumerate(stream, start=1):
        line = raw.removeprefix(codecs.BOM_UTF8) if number == 1 else raw
        text = line.strip()
        if not text:
            continue
        if not seen and text.startswith(b"["):
            yield from _array(text + stream.read(), path)
            return
        seen = True
        yield number, _object(text, path, f"line {number}")


def _refuse_one_table(records: Iterator[Record], path: Path) -> Iterator[Record]:
    """``records``, unless the file is one object whose every field holds an object or an
    array: a whole table, as pandas' ``DataFrame.to_json()`` writes it by default (a column of
    values by row label; orient='index', 'split' and 'table' are alike). Read as JSON Lines,
    it would be one row (an item file matching no item, silently) or an error about a field."""
    head = list(itertools.islice(records, 2))
    fields = head[0][1] if len(head) == 1 else {}
    if fields and all(isinstance(value, dict | list) for value in fields.values()):
        raise DataFormatError(
            f"{path} holds one JSON object whose fields {list(fields)[:5]} all hold objects "
            "or arrays: a whole table in one object, as pandas' DataFrame.to_json() writes by "
            "default, not one object per line. Write it with to_json(orient='records', "
            "lines=True), or save it as CSV or Parquet"
        )
    return itertools.chain(head, records)


def _array(raw: bytes, path: Path) -> Iterator[Record]:
    """The objects of a file holding one JSON array (record n numbered -n)."""
    try:
        records = _DECODE(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise DataFormatError(
            f"{path} is not UTF-8 text{_utf16_hint(raw)}; save the file as UTF-8"
        ) from None
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
        # decoded here, strictly: json.loads would take bytes for UTF-16 when they look so
        record = _DECODE(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        if isinstance(err, UnicodeDecodeError) or _utf16_hint(text):  # UTF-16 may decode
            raise DataFormatError(
                f"{path} {where} is not UTF-8 text{_utf16_hint(text)}; save the file as UTF-8"
            ) from None
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
            f'object with the interaction\'s fields, e.g. {{"user": "u1", "item": "i7"}}'
        )
    return record


def _nested(value: Any, name: str, path: Path, number: int) -> DataFormatError:
    """The error for a field holding an object or an array: no id, rating or time."""
    return DataFormatError(
        f"{path} {_where(number)}: field {name!r} holds {_kind(value)}, but ids, ratings and "
        "times are numbers or strings: point the setting at another field, or write one "
        f"interaction per line with plain values ({_RECORDS})"
    )


def _where(number: int) -> str:
    """Where a record is: its line, or its place in a JSON array (numbered -n)."""
    return f"line {number}" if number > 0 else f"record {-number}"


def _utf16_hint(raw: bytes) -> str:
    """Words for bytes that look like UTF-16 (a UTF-16 byte-order mark, or a NUL byte in about
    every other place, as UTF-16 writes ASCII); else nothing. A few NULs (a file padded by a
    crash) are no sign of it."""
    utf16 = raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    if utf16 or raw.count(b"\x00") * 3 >= len(raw):
        return " (it looks like UTF-16, as Windows tools such as PowerShell write by default)"
    return ""


def _encodable(value: str) -> bool:
    """Whether ``value`` is text UTF-8 can write: not a lone surrogate (``"\\ud83d"`` in JSON,
    half of an emoji, cut), which no id, and no text pyarrow or a terminal takes, can hold."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _surrogate(name: str, path: Path, number: int) -> DataFormatError:
    """The error for a value holding a lone surrogate (``\\ud83d`` without its pair)."""
    return DataFormatError(
        f"{path} {_where(number)}: field {name!r} holds a lone surrogate (a \\uD800-\\uDFFF "
        "escape without its pair, e.g. an emoji cut in half), which is no text: fix or drop the "
        "value"
    )


def text_ids(series: pd.Series) -> pd.Series:
    """Ids as a text reader sees them: every value written out as JSON writes it (``7``,
    ``7.0``, ``true``; strings as they are), then ints when every id is a plain integer.
    Missing values (None, NaN) stay missing, for the id check to name their lines."""
    from recdiff.data.tables import canonical_ints  # tables imports this module

    # value by value: Series.map would infer floats for [None, 3], writing 3 as "3.0"
    written = [_written(value) for value in series.tolist()]
    return canonical_ints(pd.Series(written, index=series.index, dtype=object))


def _written(value: Any) -> str | None:
    """A JSON value as a text file would hold it; None (missing) for null and NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return json.dumps(value) if isinstance(value, bool | float) else str(value)


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, list):
        return "a JSON array"
    return f"the JSON value {json.dumps(value)[:40]}"
