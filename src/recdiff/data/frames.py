"""Checked extraction of id, rating and time columns from a pandas DataFrame.

Readers pass ``source`` (the file) and ``line_numbers`` (the file line of each frame row) so that
every error points at the offending line; frames built in memory are described by row position.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from recdiff.data.errors import DataFormatError, describe_rows, describe_source
from recdiff.data.vocab import as_id_array

Source = str | os.PathLike[str] | None


def require_columns(
    frame: pd.DataFrame, columns: Sequence[tuple[str, str | None]], source: Source = None
) -> None:
    """Raise if a named column is missing; ``columns`` holds ``(argument name, column)`` pairs."""
    missing = [(arg, col) for arg, col in columns if col is not None and col not in frame.columns]
    if missing:
        wanted = ", ".join(f"{arg}={col!r}" for arg, col in missing)
        raise DataFormatError(
            f"column(s) {[c for _, c in missing]} not found{describe_source(source)}; the data "
            f"has columns {[str(c) for c in frame.columns]}. Pass the right names ({wanted} was "
            f"asked for) or rename the columns"
        )


def id_column(
    frame: pd.DataFrame, col: str, source: Source = None, line_numbers: np.ndarray | None = None
) -> np.ndarray:
    """External ids of column ``col`` (int64 or str array); missing ids are an error."""
    series = frame[col]
    missing = series.isna().to_numpy()
    if missing.any():
        pos = np.flatnonzero(missing)
        raise DataFormatError(
            f"{pos.size} missing (NaN/empty) value(s) in id column {col!r}"
            f"{describe_source(source)} at {describe_rows(pos, line_numbers)}; drop or fill "
            "those rows"
        )
    try:
        return as_id_array(series.to_numpy(), what=f"{col!r} value")
    except DataFormatError as err:
        raise DataFormatError(f"{err}{describe_source(source)}") from None


def numeric_column(
    frame: pd.DataFrame,
    col: str,
    source: Source = None,
    line_numbers: np.ndarray | None = None,
) -> np.ndarray:
    """Column ``col`` as finite float64; non-numeric, missing or infinite values are an error."""
    series = frame[col]
    if pd.api.types.is_datetime64_any_dtype(series):
        return _datetime_seconds(series)
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        pos = np.flatnonzero(bad)
        examples = [str(v) for v in series.iloc[pos[:5]].tolist()]
        raise DataFormatError(
            f"{pos.size} non-numeric or missing value(s) in column {col!r}"
            f"{describe_source(source)} at {describe_rows(pos, line_numbers)} (values {examples}); "
            f"every {col!r} value must be a finite number: fix or drop those rows"
        )
    return values


def _datetime_seconds(series: pd.Series) -> np.ndarray:
    """Datetimes as float64 seconds since the Unix epoch (timezone-aware ones via UTC)."""
    if series.isna().any():
        raise DataFormatError(f"column {series.name!r} has missing datetimes; fill or drop them")
    if getattr(series.dt, "tz", None) is not None:
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    delta = series - pd.Timestamp(0)
    return (delta / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64)
