"""Errors raised by the data layer.

Every error message names what was wrong, where (file, line, column when known) and how to fix it,
because data problems are found by people reading a traceback, not by code catching exceptions.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence

import numpy as np

#: Advice for a sequence file given under another data.format (ICLRec's ``Yelp.txt`` read as
#: CSV, as a DiffRec split folder or as a DreamRec folder).
SEQUENCE_FILE = (
    "a file of `user item item ...` lines (one user a line, items oldest first) or of "
    "`user item` pairs is data.format=sequences"
)


class DataFormatError(ValueError):
    """Input data is malformed: missing columns, bad values, duplicates, empty files, ..."""


class UnknownIdError(KeyError, ValueError):
    """External ids that are not in a :class:`~recdiff.data.vocab.Vocabulary`.

    A subclass of both ``KeyError`` (an id lookup failed) and ``ValueError`` (bad input values), so
    either ``except`` clause catches it. ``unknown`` holds (at most a few of) the unknown ids,
    ``n_unknown`` how many there were in total, and ``why`` what made some of them impossible
    (e.g. text where the ids are integers), for a caller that words its own message.
    """

    def __init__(
        self, message: str, unknown: Sequence[object] = (), n_unknown: int = 0, why: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.unknown = list(unknown)
        self.n_unknown = n_unknown
        self.why = why

    def __str__(self) -> str:
        # KeyError.__str__ would wrap the message in quotes, which makes long messages hard to read.
        return self.message

    @property
    def listed(self) -> str:
        """The unknown ids kept, and how many more there were: ``[7, 9] (and 3 more)``."""
        more = self.n_unknown - len(self.unknown)
        return f"{self.unknown}" + (f" (and {more} more)" if more > 0 else "")

    def restated(self, what: str, remedy: str) -> str:
        """The message in a caller's words: ``"2 history item id(s) not in the catalogue:
        ['a', 'b']; " + remedy``, with ``why`` when some ids could not be ids at all."""
        why = f" ({self.why})" if self.why else ""
        return f"{self.n_unknown} {what} id(s) not in the catalogue: {self.listed}{why}; {remedy}"


class UnsafePickleError(DataFormatError, pickle.UnpicklingError):
    """A pickle referenced a class or function outside the allow-list of the safe loader."""


def describe_source(source: str | os.PathLike[str] | None) -> str:
    """Return ``" in <source>"`` for error messages, or ``""`` when there is no source."""
    return f" in {os.fspath(source)}" if source is not None else ""


class RowNumbers(np.ndarray):
    """The 1-based data-row number of every frame row of a file that has rows but no lines
    (Parquet): passed as ``line_numbers``, it makes :func:`describe_rows` say "row 2 (data rows
    counted from 1)" rather than "line 2". Indexing keeps the type (``np.asarray`` drops it)."""

    @classmethod
    def first(cls, n: int) -> RowNumbers:
        """Rows ``1..n``: every row of a file read whole."""
        return np.arange(1, n + 1, dtype=np.int64).view(cls)


def describe_rows(
    positions: Sequence[int] | np.ndarray,
    line_numbers: np.ndarray | None = None,
    limit: int = 5,
) -> str:
    """Describe frame row positions as file lines (when ``line_numbers`` is given) or rows.

    ``line_numbers[p]`` is the 1-based file line of frame row ``p``; readers pass it so that
    messages point into the file. A :class:`RowNumbers` (Parquet) gives 1-based data rows, said
    so in the message; frames built in memory or unpickled (DreamRec's files) are described by
    row position, said to count from 0 (``DataFrame.iloc``).
    """
    pos = np.asarray(positions, dtype=np.int64)
    file_rows = isinstance(line_numbers, RowNumbers)
    shown = pos[:limit] if line_numbers is None else np.asarray(line_numbers)[pos[:limit]]
    word = "line" if line_numbers is not None and not file_rows else "row"
    notes = [f"and {pos.size - limit} more"] if pos.size > limit else []
    if file_rows:
        notes.append("data rows counted from 1")
    elif line_numbers is None:  # a frame's rows: say how to find them (df.iloc[...])
        notes.append("positions counted from 0")
    plural = "s" if pos.size > 1 else ""
    listed = ", ".join(str(int(x)) for x in shown)
    return f"{word}{plural} {listed}" + (f" ({'; '.join(notes)})" if notes else "")
