"""Readers for user-item interaction files.

- :func:`read_diffrec_splits`: DiffRec's ``train_list.npy`` / ``valid_list.npy`` / ``test_list.npy``
- :func:`read_interactions`: CSV, TSV, Parquet files or a DataFrame, with configurable columns
- :func:`read_movielens`: MovieLens ``ratings.dat`` (``::``), ``u.data`` (tab), ``ratings.csv``
- :func:`read_recbole_inter`: RecBole atomic ``.inter`` files (typed header ``user_id:token``)

Malformed files raise :class:`~recdiff.data.errors.DataFormatError` naming the file, the line
(1-based, counting the header; in Parquet, which has no lines, the data row counted from 1) and
what to do about it. Sequence formats live in
:mod:`recdiff.data.sequences`.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
import warnings
from collections.abc import Collection
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from recdiff.data.errors import DataFormatError, RowNumbers
from recdiff.data.interactions import DuplicatePolicy, Interactions, UnknownPolicy
from recdiff.data.splits import DatasetSplits
from recdiff.data.vocab import Vocabulary

PathLike = str | os.PathLike[str]
TableFormat = Literal["csv", "tsv", "parquet"]

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


# --------------------------------------------------------------------------------- text
# The format a suffix names outright; other suffixes (.txt, .log, .dat, ...) say nothing.
_SUFFIX_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_SEPARATORS = {"csv": ",", "tsv": "\t"}
_SUFFIX_SEPARATORS = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".inter": "\t", ".dat": "::"}

# An integer as str(int) writes it: no sign on 0, no leading zeros, no '+', no spaces.
_CANONICAL_INT = r"0|-?[1-9][0-9]*"


def read_text(path: Path, fallback: str | None = None) -> str:
    """A text file as UTF-8, without the byte-order mark some editors write at its start.

    ``fallback`` (e.g. ``"latin-1"``, which older MovieLens files use) decodes a file that is not
    UTF-8; without it such a file is a :class:`DataFormatError` naming the line.
    """
    raw = path.read_bytes()
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
    """``("parquet", None)`` or ``("text", separator)`` from the format or the file name."""
    if file_format not in (None, *_SUFFIX_FORMATS.values()):
        raise ValueError(f"file_format must be csv, tsv or parquet, got {file_format!r}")
    suffix = path.suffix.lower()
    named = _SUFFIX_FORMATS.get(suffix)
    if file_format is not None and named is not None and named != file_format:
        raise DataFormatError(
            f"{path} is named as a {named} file, but the format asked for is {file_format}: "
            f"set data.format={named} in a run config (file_format={named!r} from Python), or "
            "rename the file"
        )
    kind = file_format or named
    if kind == "parquet":
        return "parquet", None
    if sep is not None:
        return "text", sep
    guessed = _SEPARATORS.get(kind) if kind else _SUFFIX_SEPARATORS.get(suffix)
    if guessed is None:
        raise DataFormatError(
            f"cannot tell the separator of {path} from its name; name the file *.csv (commas), "
            "*.tsv (tabs) or *.parquet, set data.format to csv, tsv or parquet in a run config, "
            "or pass sep=... from Python"
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
    header: bool = True,
    names: list[str] | None = None,
    dtype: Any = None,
    ids: Collection[str] = (),
    file_format: TableFormat | None = None,
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Read a delimited text or Parquet file into a frame, and the file line of every row.

    Blank lines are skipped (line numbers stay exact); Parquet has no lines, so its "line
    numbers" are :class:`~recdiff.data.errors.RowNumbers` (data rows counted from 1, and errors
    say so). A header naming a column twice is an error. ``names`` replaces the header (or names
    headerless columns); ``dtype`` is passed to pandas (e.g. ``str`` to keep zero-padded ids).
    ``ids`` names the id columns: in a text file they are read as written, and become ints only
    when every value is a plain integer (``"007"`` stays a string); spaces around them and around
    header names are dropped. Only empty fields are missing values (``NA`` or ``null`` is
    text). ``file_format`` (csv, tsv or parquet) overrides the suffix, which must not name
    another format.
    """
    path = Path(path)
    kind, sep = _guess_format(path, sep, file_format)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    if path.stat().st_size == 0:
        raise DataFormatError(f"{path} is empty; expected one interaction per line")
    if names is not None and len(set(names)) < len(names):
        raise ValueError(f"names {names} repeat {_repeated(names)}; give every column its own name")
    if kind == "parquet":
        import pyarrow.parquet as pq  # pandas' engine: only the schema, before pandas reads

        # pyarrow refuses a repeated column with an opaque "Multiple matches for FieldRef"
        _refuse_repeated_columns(pq.read_schema(path).names, path, "")
        frame = pd.read_parquet(path)
        if names is not None:
            frame.columns = names
        return _non_empty(frame, path), RowNumbers.first(len(frame))
    source: Any = path
    written = sep  # the file's separator, for messages
    if len(sep) > 1:  # e.g. MovieLens "::": map to a tab so pandas' fast C parser can read it
        source = io.StringIO(read_text(path, fallback="latin-1").replace(sep, "\t"))
        sep = "\t"
    dtypes, canonical = _text_dtypes(dtype, ids)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            frame = pd.read_csv(
                source,
                sep=sep,
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
        raise _not_utf8(path, path.read_bytes()) from None
    if any(issubclass(w.category, pd.errors.ParserWarning) for w in caught):
        _refuse_extra_fields(source, path, sep, names, written)  # dropped fields: empty ones?
    if header and names is None:
        _refuse_repeated_header(source, path, sep, list(frame.columns))
    frame.columns = [c.strip() if isinstance(c, str) else c for c in frame.columns]
    line_numbers = frame.index.to_numpy(dtype=np.int64) + (2 if header else 1)
    blank = frame.isna().all(axis=1).to_numpy()
    frame, line_numbers = frame.loc[~blank].reset_index(drop=True), line_numbers[~blank]
    for col in canonical:
        if col in frame.columns:
            frame[col] = canonical_ints(frame[col])
    return _non_empty(frame, path), line_numbers


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


def read_interactions(
    source: PathLike | pd.DataFrame,
    *,
    user_col: str = "user",
    item_col: str = "item",
    rating_col: str | None = None,
    time_col: str | None = None,
    sep: str | None = None,
    header: bool = True,
    names: list[str] | None = None,
    dtype: Any = None,
    users: Vocabulary | None = None,
    items: Vocabulary | None = None,
    duplicates: DuplicatePolicy = "raise",
    unknown: UnknownPolicy = "raise",
    file_format: TableFormat | None = None,
) -> Interactions:
    """Read interactions from a CSV/TSV/Parquet file or a DataFrame.

    Example: ``read_interactions("ratings.csv", user_col="userId", item_col="movieId",
    rating_col="rating", time_col="timestamp")``. The format comes from ``file_format`` or the
    suffix; ids are kept as written (see :func:`read_table`). See
    :meth:`Interactions.from_frame` for ``users``/``items``/``duplicates``/``unknown``.
    """
    if isinstance(source, pd.DataFrame):
        frame, lines, where = source, None, None
    else:
        frame, lines = read_table(
            source,
            sep=sep,
            header=header,
            names=names,
            dtype=dtype,
            ids=(user_col, item_col),
            file_format=file_format,
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


def read_movielens(path: PathLike, duplicates: DuplicatePolicy = "raise") -> Interactions:
    """MovieLens ratings with ratings and timestamps (matrix values are the ratings).

    Accepts ML-1M/10M ``ratings.dat`` (``user::item::rating::time``), ML-100K ``u.data``
    (tab-separated, no header) and ML-20M+ ``ratings.csv`` (``userId,movieId,rating,timestamp``).
    """
    path = Path(path)
    cols = ["user", "item", "rating", "timestamp"]
    if path.suffix.lower() == ".csv":
        return read_interactions(
            path,
            user_col="userId",
            item_col="movieId",
            rating_col="rating",
            time_col="timestamp",
            duplicates=duplicates,
        )
    sep = "::" if path.suffix.lower() == ".dat" else "\t"
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
    (``"007"`` stays ``"007"``). ``rating_col``/``time_col`` are used only if the file has them.
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
