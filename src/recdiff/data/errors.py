"""Errors raised by the data layer.

Every error message names what was wrong, where (file, line, column when known) and how to fix it,
because data problems are found by people reading a traceback, not by code catching exceptions.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence

import numpy as np


class DataFormatError(ValueError):
    """Input data is malformed: missing columns, bad values, duplicates, empty files, ..."""


class UnknownIdError(KeyError, ValueError):
    """External ids that are not in a :class:`~recdiff.data.vocab.Vocabulary`.

    A subclass of both ``KeyError`` (an id lookup failed) and ``ValueError`` (bad input values), so
    either ``except`` clause catches it. ``unknown`` holds (at most a few of) the unknown ids and
    ``n_unknown`` how many there were in total.
    """

    def __init__(self, message: str, unknown: Sequence[object] = (), n_unknown: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.unknown = list(unknown)
        self.n_unknown = n_unknown

    def __str__(self) -> str:
        # KeyError.__str__ would wrap the message in quotes, which makes long messages hard to read.
        return self.message


class UnsafePickleError(DataFormatError, pickle.UnpicklingError):
    """A pickle referenced a class or function outside the allow-list of the safe loader."""


def describe_source(source: str | os.PathLike[str] | None) -> str:
    """Return ``" in <source>"`` for error messages, or ``""`` when there is no source."""
    return f" in {os.fspath(source)}" if source is not None else ""


def describe_rows(
    positions: Sequence[int] | np.ndarray,
    line_numbers: np.ndarray | None = None,
    limit: int = 5,
) -> str:
    """Describe frame row positions as file lines (when ``line_numbers`` is given) or rows.

    ``line_numbers[p]`` is the 1-based file line of frame row ``p``; readers pass it so that
    messages point into the file, frames built in memory are described by row position.
    """
    pos = np.asarray(positions, dtype=np.int64)
    shown = pos[:limit] if line_numbers is None else np.asarray(line_numbers)[pos[:limit]]
    word = "row" if line_numbers is None else "line"
    more = f" (and {pos.size - limit} more)" if pos.size > limit else ""
    plural = "s" if pos.size > 1 else ""
    return f"{word}{plural} " + ", ".join(str(int(x)) for x in shown) + more
