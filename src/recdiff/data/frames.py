"""Checked extraction of id, rating and time columns from a pandas DataFrame.

Readers pass ``source`` (the file) and ``line_numbers`` (the file line of each frame row) so that
every error points at the offending line; frames built in memory are described by row position.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from recdiff.data.errors import SEQUENCE_FILE, DataFormatError, describe_rows, describe_source
from recdiff.data.vocab import as_id_array

Source = str | os.PathLike[str] | None


def require_columns(
    frame: pd.DataFrame, columns: Sequence[tuple[str, str | None]], source: Source = None
) -> None:
    """Raise if a named column is missing; ``columns`` holds ``(argument name, column)`` pairs."""
    missing = [(arg, col) for arg, col in columns if col is not None and col not in frame.columns]
    if missing:
        wanted = ", ".join(f"{arg}={col!r}" for arg, col in missing)
        keys = ", ".join(f"data.{arg}" for arg, _ in missing)
        # a JSON Lines reader keeps only the fields asked for, and lists the file's in attrs
        has = frame.attrs.get("fields") or [str(c) for c in frame.columns]
        raise DataFormatError(
            f"column(s) {[c for _, c in missing]} not found{describe_source(source)}; the data "
            f"has columns {has}. {_separator_hint(frame)}"
            f"{_no_header_hint(frame)}Pass the "
            f"right names ({wanted} was asked for; {keys} in a run config) or rename the columns"
        )


def _separator_hint(frame: pd.DataFrame) -> str:
    """A sentence when the header was read as one column that holds another separator: a
    semicolon-separated export (common where the comma is the decimal mark) read as CSV."""
    if len(frame.columns) != 1:
        return ""
    header = str(frame.columns[0])
    for sep, name in ((";", "semicolons"), ("|", "pipes"), ("\t", "tabs"), (",", "commas")):
        if sep in header:
            return (
                f"The header reads as one column holding {name}: if the file is separated by "
                f"them, set data.sep: --set {_SEP_WRITTEN[sep][1]} on the command line, sep: "
                f"{_SEP_WRITTEN[sep][0]} in a run config's data section, sep={sep!r} from Python. "
            )
    if len(header.split()) > 1:  # e.g. ICLRec's "1 1 2 3 ..." or SASRec's "1 5" read as CSV
        return (
            f"The header reads as one column holding spaces: {SEQUENCE_FILE}; a table separated "
            "by spaces needs --set \"data.sep= \" on the command line, sep: ' ' in a run "
            "config's data section. "
        )
    return ""


# Each separator as YAML reads it back (a bare | is YAML syntax, a block scalar; only double
# quotes make \t a tab), and as a shell passes it on to YAML (the outer quotes are the shell's).
_SEP_WRITTEN = {
    ";": ("';'", "\"data.sep=';'\""),
    "|": ("'|'", "\"data.sep='|'\""),
    "\t": ('"\\t"', "'data.sep=\"\\t\"'"),
    ",": ("','", "\"data.sep=','\""),
}


def _no_header_hint(frame: pd.DataFrame) -> str:
    """A sentence when column names are numbers: a file without a header line, whose first
    interaction was read as one. Naming those "columns" would lose that interaction."""
    names = pd.Series([c for c in frame.columns if isinstance(c, str)], dtype=object)
    numbers = names[pd.to_numeric(names, errors="coerce").notna()].tolist()
    if not numbers:
        return ""
    return (
        f"The header holds numbers ({numbers[:3]}): if the file has no header line, add one "
        "naming the columns (e.g. user,item,rating,timestamp), since its first line is read as "
        "the header; MovieLens' u.data and ratings.dat have none: set data.format=movielens. "
    )


def interaction_columns(
    frame: pd.DataFrame,
    user_col: str,
    item_col: str,
    rating_col: str | None = None,
    time_col: str | None = None,
    source: Source = None,
    line_numbers: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Checked user ids, item ids, ratings and times of a frame with one row per interaction.

    The one check shared by the interaction matrix and the per-user sequences read from a
    table, so both refuse the same rows with the same message. ``rating_col``/``time_col`` may
    be None (that array is then None); an empty frame is an error.
    """
    require_columns(
        frame,
        [
            ("user_col", user_col),
            ("item_col", item_col),
            ("rating_col", rating_col),
            ("time_col", time_col),
        ],
        source,
    )
    if len(frame) == 0:
        raise DataFormatError(f"no interactions{describe_source(source)}: the data is empty")
    user_ids = id_column(frame, user_col, source, line_numbers)
    item_ids = id_column(frame, item_col, source, line_numbers)
    ratings = (
        None if rating_col is None else numeric_column(frame, rating_col, source, line_numbers)
    )
    times = None if time_col is None else time_column(frame, time_col, source, line_numbers)
    return user_ids, item_ids, ratings, times


def id_column(
    frame: pd.DataFrame, col: str, source: Source = None, line_numbers: np.ndarray | None = None
) -> np.ndarray:
    """External ids of column ``col`` (int64 or str array); missing ids are an error.

    Whitespace around a string id is dropped (``"u0, i17"`` in a CSV means item ``"i17"``),
    so an id left empty by that is missing too.
    """
    series = frame[col]
    missing = series.isna().to_numpy()
    if missing.any():
        raise _missing_ids(missing, col, source, line_numbers)
    try:
        ids = as_id_array(series.to_numpy(), what=f"{col!r} value")
    except DataFormatError as err:
        raise DataFormatError(f"{err}{describe_source(source)}") from None
    if ids.dtype.kind == "U":
        ids = np.char.strip(ids)
        if (ids == "").any():
            raise _missing_ids(ids == "", col, source, line_numbers)
    return ids


def _missing_ids(
    missing: np.ndarray, col: str, source: Source, line_numbers: np.ndarray | None
) -> DataFormatError:
    pos = np.flatnonzero(missing)
    return DataFormatError(
        f"{pos.size} missing (NaN/empty) value(s) in id column {col!r}"
        f"{describe_source(source)} at {describe_rows(pos, line_numbers)}; drop or fill "
        "those rows"
    )


def numeric_column(
    frame: pd.DataFrame,
    col: str,
    source: Source = None,
    line_numbers: np.ndarray | None = None,
) -> np.ndarray:
    """Column ``col`` as finite float64; non-numeric, missing or infinite values are an error."""
    series = frame[col]
    if pd.api.types.is_datetime64_any_dtype(series):
        return _datetime_seconds(series, col, source, line_numbers)
    return _finite(pd.to_numeric(series, errors="coerce"), series, col, source, line_numbers)


def _finite(
    numeric: pd.Series,
    series: pd.Series,
    col: str,
    source: Source,
    line_numbers: np.ndarray | None,
    rule: str | None = None,
) -> np.ndarray:
    """``numeric`` (``series`` read as numbers) as float64, or an error naming the values of
    ``series`` that are not finite numbers (``rule``: what the values must be instead)."""
    values = numeric.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        pos = np.flatnonzero(bad)
        # an absent value (an empty CSV cell, a JSON field left out or null) is "missing",
        # not the text 'None' or 'nan' that str() makes of it
        first = series.iloc[pos[:5]]
        examples = _shown_values(first)
        # "3,5" from a spreadsheet written where the comma is the decimal mark
        comma = first.astype(str).str.fullmatch(r"\s*[-+]?\d*,\d+\s*").all()
        decimal = (
            " (if ',' is the file's decimal mark, set data.decimal=',' and a separator other "
            "than the comma)"
            if comma
            else ""
        )
        raise DataFormatError(
            f"{pos.size} non-numeric or missing value(s) in column {col!r}"
            f"{describe_source(source)} at {describe_rows(pos, line_numbers)} (values: {examples}); "
            f"{rule or f'every {col!r} value must be a finite number'}: fix or drop those "
            f"rows{decimal}"
        )
    return values


def time_column(
    frame: pd.DataFrame,
    col: str,
    source: Source = None,
    line_numbers: np.ndarray | None = None,
) -> np.ndarray:
    """Times as float64 seconds: numbers as they are, datetimes (Parquet) and ISO 8601 text
    (``2024-05-01 13:00:00``, with or without a UTC offset; none means UTC) since the epoch.
    A missing (empty) time is an error that says so, whatever the other times look like."""
    series = frame[col]
    missing = np.flatnonzero(series.isna().to_numpy())
    if missing.size and not pd.api.types.is_datetime64_any_dtype(series):  # NaT: _datetime_seconds
        raise DataFormatError(
            f"{missing.size} missing (NaN/empty) time value(s) in column {col!r}"
            f"{describe_source(source)} at {describe_rows(missing, line_numbers)}; every "
            "interaction needs a time: fill or drop those rows"
        )
    text = pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)
    if not text:
        return numeric_column(frame, col, source, line_numbers)
    numeric = pd.to_numeric(series, errors="coerce")  # read once, for the checks and the values
    numbers = numeric.notna().to_numpy()
    _refuse_numbers_mixed_with_dates(series, numbers, col, source, line_numbers)
    if not numbers.any():
        parsed = pd.to_datetime(series, format="ISO8601", utc=True, errors="coerce")
        bad = np.flatnonzero(parsed.isna().to_numpy())
        if bad.size:
            raise DataFormatError(
                f"{bad.size} time value(s) in column {col!r}{describe_source(source)} at "
                f"{describe_rows(bad, line_numbers)} are neither numbers nor ISO 8601 dates "
                f"(values: {_shown_values(series.iloc[bad[:5]])}): write them as seconds or as "
                "2024-05-01T13:00:00"
            )
        return _datetime_seconds(parsed, col, source, line_numbers)
    rule = (
        f"every {col!r} value must be a time, all of one kind: seconds (a finite number) or "
        "ISO 8601 dates such as 2024-05-01T13:00:00"
    )
    return _finite(numeric, series, col, source, line_numbers, rule)


def _refuse_numbers_mixed_with_dates(
    series: pd.Series,
    numbers: np.ndarray,
    col: str,
    source: Source,
    line_numbers: np.ndarray | None,
) -> None:
    """A text column of seconds and ISO 8601 dates at once has no one reading: name the kind
    that stands out (the fewer), rather than calling all the other kind invalid. ``numbers``
    marks the values that read as numbers."""
    if numbers.all() or not numbers.any():
        return
    dates = np.zeros(len(series), dtype=bool)
    dates[~numbers] = (
        pd.to_datetime(series[~numbers], format="ISO8601", utc=True, errors="coerce")
        .notna()
        .to_numpy()
    )
    if not dates.any():
        return  # numbers and text that is no date: the numeric reading names the text
    odd, kind = (numbers, "number") if numbers.sum() <= dates.sum() else (dates, "ISO 8601 date")
    rows = np.flatnonzero(odd)
    raise DataFormatError(
        f"column {col!r}{describe_source(source)} mixes {int(numbers.sum())} number(s) and "
        f"{int(dates.sum())} ISO 8601 date(s); write every time one way: the {rows.size} "
        f"{kind}(s) at {describe_rows(rows, line_numbers)} (values: "
        f"{_shown_values(series.iloc[rows[:5]])}) stand out"
    )


def _shown_values(values: pd.Series) -> str:
    """``'five', missing``: the cells as written, quoted, and an absent one (an empty CSV cell,
    a JSON field left out or null) as the bare word missing, neither the text 'None' or 'nan'
    that str() makes of it nor a quoted 'missing' that reads as if the cell held that word."""
    return ", ".join("missing" if pd.isna(v) else repr(str(v)) for v in values.tolist())


def _datetime_seconds(
    series: pd.Series, col: str, source: Source, line_numbers: np.ndarray | None
) -> np.ndarray:
    """Datetimes as float64 seconds since the Unix epoch (timezone-aware ones via UTC);
    missing ones (NaT) are an error naming the rows."""
    missing = np.flatnonzero(series.isna().to_numpy())
    if missing.size:
        raise DataFormatError(
            f"{missing.size} missing datetime(s) in column {col!r}{describe_source(source)} at "
            f"{describe_rows(missing, line_numbers)}; fill or drop those rows"
        )
    if getattr(series.dt, "tz", None) is not None:
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    delta = series - pd.Timestamp(0)
    return (delta / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64)
