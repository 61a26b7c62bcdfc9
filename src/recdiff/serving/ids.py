"""External ids as callers give them (CLI text, JSON, Python values) and as errors name them:
integer ids may come as ints, integral floats or ASCII digits, never as booleans or other
scripts' digits; string ids keep their exact form when the vocabulary holds it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from recdiff.data import Vocabulary

__all__ = [
    "SHOWN",
    "as_known",
    "as_python",
    "beyond_int64",
    "is_integral_float",
    "parse_integer",
    "refuse_booleans",
    "shown",
]

#: How many unknown ids an error message lists; the total count is always given.
SHOWN = 10

# An integer id as text: ASCII digits only. int() also reads "1_0" and other scripts' digits
# ("١٠") as 10, which would serve an id nobody typed.
_DECIMAL = re.compile(r"[+-]?[0-9]+")


def as_python(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (JSON and messages show ``7``, not
    ``np.int64(7)``)."""
    return value.item() if isinstance(value, np.generic) else value


_INT64 = np.iinfo(np.int64)


def beyond_int64(ids: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Which ids are integers too large for int64: no vocabulary holds them, and numpy cannot
    look them up (it raises OverflowError)."""
    if isinstance(ids, np.ndarray) and ids.dtype != object:
        return np.zeros(len(ids), dtype=bool)
    return np.fromiter(
        (isinstance(i, int) and not _INT64.min <= i <= _INT64.max for i in ids),
        dtype=bool,
        count=len(ids),
    )


def parse_integer(value: Any) -> int | None:
    """An integer id given as an int or as its ASCII decimal text (surrounding whitespace
    stripped); None for anything else."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        return int(value.strip())
    return None


def is_integral_float(value: Any) -> bool:
    return isinstance(value, (float, np.floating)) and float(value).is_integer()


def refuse_booleans(ids: Sequence[Any], what: str) -> None:
    """Booleans are ints to Python (``True == 1``) but never an id anybody meant."""
    bad = [i for i in ids if isinstance(i, (bool, np.bool_))]
    if bad:
        raise ValueError(f"{what} ids cannot be booleans (true/false), got {shown(bad)}")


def as_known(value: str, vocabulary: Vocabulary) -> str:
    """A string id as given when the vocabulary holds it, else without surrounding whitespace."""
    return value if value == value.strip() or value in vocabulary else value.strip()


def shown(ids: Sequence[Any]) -> str:
    more = f" (and {len(ids) - SHOWN} more)" if len(ids) > SHOWN else ""
    return f"{[as_python(i) for i in ids[:SHOWN]]}{more}"
