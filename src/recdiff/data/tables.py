"""Reading delimited text, JSON Lines and Parquet tables into frames, with the file line of every
row.

The interaction and sequence readers share this so that a malformed table gets the same
:class:`~recdiff.data.errors.DataFormatError` from either: naming the file, the line (1-based,
counting the header; in Parquet, which has no lines, the data row counted from 1) and what to do
about it. Ids stay as written (:func:`canonical_ints`), because ``"007"`` and ``"7"`` are two ids.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
import warnings
import zipfile
from collections.abc import Collection
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from recdiff.data.archives import (
    UNREADABLE,
    cannot_read,
    data_suffix,
    read_bytes,
    zip_member,
)
from recdiff.data.errors import DataFormatError, RowNumbers
from recdiff.data.frames import _SEP_WRITTEN
from recdiff.data.json_lines import read_json_lines

PathLike = str | os.PathLike[str]
TableFormat = Literal["csv", "tsv", "parquet", "jsonl"]


# --------------------------------------------------------------------------------- text
# The format a suffix names outright; other suffixes (.txt, .log, .dat, ...) say nothing.
SUFFIX_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",  # Amazon's and Yelp's review dumps: JSON Lines named .json
}
_SEPARATORS = {"csv": ",", "tsv": "\t"}
_SEP_NAMES = {",": "commas", "\t": "tabs"}
_SUFFIX_SEPARATORS = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".inter": "\t", ".dat": "::"}

# An integer as str(int) writes it: no sign on 0, no leading zeros, no '+', no spaces.
_CANONICAL_INT = r"0|-?[1-9][0-9]*"


def _zip_source(path: Path) -> Path | io.StringIO:
    """What pandas reads of a text table: the path itself, or, for a zip that also holds folder
    entries (which pandas counts as files), its one file's text. A zip holding several files
    or none is an error naming it."""
    if path.suffix.lower() != ".zip":
        return path
    try:
        with zipfile.ZipFile(path) as archive:
            zip_member(path, archive)  # exactly one file, or an error naming the zip
            if len(archive.namelist()) == 1:
                return path
    except UNREADABLE as err:
        raise cannot_read(path, err) from None
    return io.StringIO(read_text(path))


def read_text(path: Path, fallback: str | None = None) -> str:
    """A text file as UTF-8, without the byte-order mark some editors write at its start;
    decompressed when its suffix says so (``.gz``, ``.bz2``, ``.xz``, ``.zip``).

    ``fallback`` (e.g. ``"latin-1"``, which older MovieLens files use) decodes a file that is not
    UTF-8; without it such a file is a :class:`DataFormatError` naming the line.
    """
    raw = read_bytes(path)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        if fallback is None:
            raise _not_utf8(path, raw) from None
        return raw.removeprefix(codecs.BOM_UTF8).decode(fallback)


def _not_utf8(path: Path, raw: bytes) -> DataFormatError:
    """The error for a file that does not decode as UTF-8, naming the first bad line."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        return DataFormatError(
            f"{path} line {line} is not UTF-8 text (byte {raw[err.start]:#04x}); save the file "
            "as UTF-8"
        )
    return DataFormatError(f"{path} is not UTF-8 text; save the file as UTF-8")


def canonical_ints(series: pd.Series) -> pd.Series:
    """Ids read as text: ints when every one is written as ``str(int)`` writes it, else strings.

    ``"007"`` and ``"7"`` are two ids, so a column holding ``"007"`` stays strings (as ints they
    would merge). Surrounding whitespace is not part of an id and is stripped.
    """
    if series.isna().any():
        return series  # leave NaN for the id check, which reports the line
    as_str = series.astype(str).str.strip()
    if not as_str.str.fullmatch(_CANONICAL_INT).all():
        return as_str
    try:
        return as_str.astype(np.int64)
    except (OverflowError, ValueError):  # beyond int64: they stay strings
        return as_str


# --------------------------------------------------------------------------------- tables
def _guess_format(
    path: Path, sep: str | None, file_format: TableFormat | None
) -> tuple[str, str | None]:
    """``("parquet", None)``, ``("jsonl", None)`` or ``("text", separator)`` from the format or
    the file name."""
    if file_format not in (None, *SUFFIX_FORMATS.values()):
        raise ValueError(f"file_format must be csv, tsv, parquet or jsonl, got {file_format!r}")
    suffix = data_suffix(path)
    named = SUFFIX_FORMATS.get(suffix)
    if file_format is not None and named is not None and named != file_format:
        asked = _SEPARATORS.get(file_format)
        separated = (
            f"; if it is separated by {_SEP_NAMES[asked]} whatever its name, set "
            f"data.format={named} and data.sep (--set {_SEP_WRITTEN[asked][1]})"
            if asked is not None and named in _SEPARATORS
            else ""
        )
        raise DataFormatError(
            f"{path} is named as a {named} file, but the format asked for is {file_format}: "
            f"set data.format={named} in a run config (file_format={named!r} from Python), or "
            f"rename the file{separated}"
        )
    kind = file_format or named
    if kind in ("parquet", "jsonl"):
        if sep is not None:
            raise DataFormatError(
                f"a separator (sep={sep!r}) was given for {path}, but a {kind} file has none: "
                "drop data.sep, or set data.format=csv for a text table"
            )
        return kind, None
    if sep is not None:
        return "text", sep
    guessed = _SEPARATORS.get(kind) if kind else _SUFFIX_SEPARATORS.get(suffix)
    if guessed is None:
        raise DataFormatError(
            f"cannot tell the separator of {path} from its name; name the file *.csv (commas), "
            "*.tsv (tabs), *.parquet or *.jsonl (one JSON object a line), set data.format to "
            "csv, tsv, parquet or jsonl in a run config, or pass sep=... from Python"
        )
    return "text", guessed


def _text_dtypes(dtype: Any, ids: Collection[str]) -> tuple[Any, list[str]]:
    """pandas' ``dtype`` argument with the id columns read as strings (so that pandas cannot
    turn ``"007"`` into 7), and the id columns to canonicalize: those ``dtype`` does not type."""
    if dtype is not None and not isinstance(dtype, dict):
        return dtype, []  # one dtype for every column: the caller's choice
    typed = dtype or {}
    untyped = [col for col in ids if col not in typed]
    return {**dict.fromkeys(untyped, str), **typed}, untyped


def read_table(
    path: PathLike,
    *,
    sep: str | None = None,
    decimal: str = ".",
    header: bool = True,
    names: list[str] | None = None,
    dtype: Any = None,
    ids: Collection[str] = (),
    file_format: TableFormat | None = None,
    columns: Collection[str] | None = None,
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Read a delimited text, JSON Lines or Parquet file into a frame, and the file line of
    every row.

    Blank lines are skipped (line numbers stay exact); Parquet has no lines, so its "line
    numbers" are :class:`~recdiff.data.errors.RowNumbers` (data rows counted from 1, and errors
    say so). A header naming a column twice is an error. ``names`` replaces the header (or names
    headerless columns); ``dtype`` is passed to pandas (e.g. ``str`` to keep zero-padded ids).
    ``ids`` names the id columns: in a text file they are read as written, and become ints only
    when every value is a plain integer (``"007"`` stays a string); spaces around them and around
    header names are dropped. Only empty fields are missing values (``NA`` or ``null`` is
    text). ``decimal`` is a text file's decimal mark (``","``: ``3,5`` is 3.5; the separator
    must then be another). ``file_format`` (csv, tsv, parquet or jsonl) overrides the suffix, which must not
    name another format. A text file may be compressed (``log.csv.gz``, ``.bz2``, ``.xz``,
    ``.zip``). A JSON Lines file (``.jsonl``, ``.ndjson``, or ``.json`` as Amazon's and Yelp's
    review dumps are named) keeps only the fields in ``columns`` when given (its lines hold
    review text too); see :func:`~recdiff.data.json_lines.read_json_lines`.
    """
    path = Path(path)
    kind, sep = _guess_format(path, sep, file_format)
    if decimal != "." and (kind != "text" or decimal == sep or len(decimal) != 1):
        raise ValueError(
            f"decimal={decimal!r} is a text table's decimal mark, one character other than its "
            f"separator ({sep!r}), for a {kind} file: give another separator, or drop decimal"
        )
    if path.is_dir():
        raise DataFormatError(f"{path} is a folder, not a file; give the table file itself")
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    if path.stat().st_size == 0:
        raise DataFormatError(f"{path} is empty; expected one interaction per line")
    if names is not None and len(set(names)) < len(names):
        raise ValueError(f"names {names} repeat {_repeated(names)}; give every column its own name")
    if kind == "jsonl":
        if names is not None or not header:
            raise ValueError("a JSON Lines file names its fields on every line: drop names/header")
        frame, lines = read_json_lines(path, columns, ids)
        return _non_empty(frame, path), lines
    if kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq  # pandas' engine: only the schema, before pandas reads

        try:
            schema = pq.read_schema(path)
            # pyarrow refuses a repeated column with an opaque "Multiple matches for FieldRef"
            _refuse_repeated_columns(schema.names, path, "")
            frame = pd.read_parquet(path)
        except (pa.ArrowException, OSError) as err:
            raise DataFormatError(
                f"{path} is not a readable Parquet file ({err}); write it again (e.g. pandas' "
                "DataFrame.to_parquet), or, if it holds text, name it *.csv or *.tsv"
            ) from None
        if names is not None:
            frame.columns = names
        return _non_empty(frame, path), RowNumbers.first(len(frame))
    source: Any = _zip_source(path)
    written = sep  # the file's separator, for messages
    if len(sep) > 1:  # e.g. MovieLens "::": map to a tab so pandas' fast C parser can read it
        source = io.StringIO(read_text(path, fallback="latin-1").replace(sep, "\t"))
        sep = "\t"
    dtypes, canonical = _text_dtypes(dtype, ids)
    try:
        if header and names is None and isinstance(dtypes, dict):
            dtypes = _keyed_as_written(dtypes, source, sep)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            frame = pd.read_csv(
                source,
                sep=sep,
                decimal=decimal,
                header=0 if header else None,
                names=names,
                dtype=dtypes,
                skip_blank_lines=False,
                skipinitialspace=True,
                # Only an empty field is missing: NA, None, null or nan may be ids (pandas would
                # read them as missing, and the id check would refuse them).
                keep_default_na=False,
                na_values=[""],
                # Never an index column: pandas would take the first column of a file whose
                # lines are longer than its header (trailing separators) for one, and shift
                # every column left by one.
                index_col=False,
                engine="c",
            )
    except pd.errors.EmptyDataError:
        raise DataFormatError(
            f"{path} has no header and no data; expected one interaction per line"
        ) from None
    except pd.errors.ParserError as err:
        _refuse_extra_fields(source, path, sep, names, written)  # names the line, if that is it
        raise DataFormatError(
            f"cannot parse {path}: {str(err).strip()}. Check the separator (sep={written!r}) and "
            "that every line has the same number of fields"
        ) from None
    except UnicodeDecodeError:
        raise _not_utf8(path, read_bytes(path)) from None
    except UNREADABLE as err:
        raise cannot_read(path, err) from None
    if any(issubclass(w.category, pd.errors.ParserWarning) for w in caught):
        _refuse_extra_fields(source, path, sep, names, written)  # dropped fields: empty ones?
    if header and names is None:
        _refuse_repeated_header(source, path, sep, list(frame.columns))
    frame.columns = [c.strip() if isinstance(c, str) else c for c in frame.columns]
    line_numbers = frame.index.to_numpy(dtype=np.int64) + (2 if header else 1)
    line_numbers += _breaks_in_rows_before(frame)
    blank = frame.isna().all(axis=1).to_numpy()
    frame, line_numbers = frame.loc[~blank].reset_index(drop=True), line_numbers[~blank]
    for col in canonical:
        if col in frame.columns:
            frame[col] = canonical_ints(frame[col])
    return _non_empty(frame, path), line_numbers


def _breaks_in_rows_before(frame: pd.DataFrame) -> np.ndarray:
    """Per row, the line breaks inside quoted fields of the rows before it (a review's text may
    span lines), by which its first line in the file lies below its position: so that a
    message's "line N" is the line an editor shows. Zeros for the usual file, found by one
    vectorised search per text column."""
    breaks = np.zeros(len(frame), dtype=np.int64)
    for col in frame.columns:
        values = frame[col]
        if not (pd.api.types.is_string_dtype(values) or values.dtype == object):
            continue
        text = values.astype("string")
        if not text.str.contains("\n", regex=False).any():
            continue
        breaks += text.str.count("\n").fillna(0).to_numpy(dtype=np.int64)
    return np.concatenate([[0], np.cumsum(breaks)[:-1]]) if len(breaks) else breaks


def _keyed_as_written(dtypes: dict[Any, Any], source: Any, sep: str) -> dict[Any, Any]:
    """``dtypes`` also keyed by the header's names as written, spaces around them included:
    pandas matches dtype keys exactly, so an id column headed ``user `` would be read as
    numbers, and ``007`` merged into ``7``. Reads the header line only."""
    written = pd.read_csv(
        source, sep=sep, nrows=0, skipinitialspace=True, index_col=False, engine="c"
    ).columns
    if isinstance(source, io.StringIO):
        source.seek(0)
    spaced = {
        col: dtypes[col.strip()]
        for col in written
        if isinstance(col, str) and col != col.strip() and col.strip() in dtypes
    }
    return {**dtypes, **spaced}


def _refuse_extra_fields(
    source: Any, path: Path, sep: str, names: list[str] | None, written: str
) -> None:
    """Raise naming the first line of a text file (``source``: its path or its text, fields
    separated by ``sep``; ``written`` is the file's own separator) with a non-empty field
    beyond the columns of its header (or of ``names``, or of its first line when it has
    neither). Trailing empty fields (``1,10,5,``) hold no data and pass.

    pandas' own messages count neither blank lines nor the lines a quoted field spans, and it
    drops fields beyond the header's with only a warning; this reads the file once more to
    say which line is at fault (on the error path only)."""
    text = source.getvalue() if isinstance(source, io.StringIO) else read_text(path, "latin-1")
    reader = csv.reader(io.StringIO(text), delimiter=sep, skipinitialspace=True)
    width = None if names is None else len(names)
    start = 1  # the line a record starts on: a quoted field may span lines
    try:
        for fields in reader:
            if width is None and fields:
                width = len(fields)  # the header, or the first line of a file without one
            elif width is not None and any(f.strip() for f in fields[width:]):
                break
            start = reader.line_num + 1
        else:
            return
    except csv.Error:  # e.g. a field over csv's size limit: pandas' own message must do
        return
    raise DataFormatError(
        f"cannot parse {path}: line {start} has {len(fields)} fields, but the data has "
        f"{width} columns. Check the separator (sep={written!r}) and that every line has "
        f"{width} fields"
    )


def _repeated(names: list[Any]) -> list[str]:
    """The names that occur more than once, each once, in order of first occurrence."""
    return [str(n) for n in dict.fromkeys(n for n in names if names.count(n) > 1)]


def _refuse_repeated_columns(names: list[Any], path: Path, where: str) -> None:
    """Raise if ``names`` (the columns of ``path``; ``where`` says where they are written)
    repeat one: reading by name would then take one of them silently."""
    repeated = _repeated(names)
    if repeated:
        raise DataFormatError(
            f"{path}{where} names column(s) {repeated} more than once; give every column its "
            "own name (rename or drop the repeated ones), so that it is clear which one holds "
            "the data"
        )


# pandas renames the second "user" of a header to "user.1" (and a third to "user.2").
_MANGLED = re.compile(r"(.+)\.[0-9]+")


def _refuse_repeated_header(source: Any, path: Path, sep: str, columns: list[Any]) -> None:
    """Raise if the header of a text file (``source``, as :func:`_refuse_extra_fields` has it)
    names a column twice, spaces around names aside. pandas would keep the first and rename
    the others ``name.1``, ..., so a column the reader asks for by name could be the wrong one.

    ``columns`` are pandas' names; the header is read again only when they look renamed."""
    stripped = [c.strip() if isinstance(c, str) else c for c in columns]
    names = set(stripped)
    suspect = len(names) < len(stripped) or any(
        isinstance(c, str) and (m := _MANGLED.fullmatch(c)) and m.group(1).strip() in names
        for c in stripped
    )
    if not suspect:
        return
    text = source.getvalue() if isinstance(source, io.StringIO) else read_text(path, "latin-1")
    try:
        fields = next(csv.reader(io.StringIO(text), delimiter=sep, skipinitialspace=True), [])
    except csv.Error:  # pandas read it; keep its reading
        return
    header = [f.strip() for f in fields]
    _refuse_repeated_columns(header, path, " line 1: the header")


def _non_empty(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    if len(frame) == 0:
        raise DataFormatError(
            f"{path} has no data rows (only a header?); expected one interaction per line"
        )
    return frame
