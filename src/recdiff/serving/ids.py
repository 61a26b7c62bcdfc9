"""External ids as callers give them (CLI text, JSON, Python values) and as errors name them:
integer ids may come as ints, integral floats or ASCII digits, never as booleans or other
scripts' digits; string ids keep their exact form when the vocabulary holds it.

:class:`ExternalIds` looks them up in a run's user and item vocabularies for the predictors."""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from recdiff.data import Vocabulary
from recdiff.data.errors import UnknownIdError
from recdiff.data.vocab import refuse_rounded_ids

__all__ = [
    "NOT_A_USER",
    "SHOWN",
    "ExternalIds",
    "as_known",
    "as_python",
    "beyond_int64",
    "is_integral_float",
    "parse_integer",
    "refuse_booleans",
    "shown",
    "split_id_list",
]


#: Why an id of the data may still be no user of a model, for the messages of an unknown user.
NOT_A_USER = (
    "the data's user ids; a user data.min_rating, data.k_core or the split left without "
    "training items is not one"
)


def split_id_list(text: str, option: str) -> list[str]:
    """Ids written comma-separated on a command line (``option`` names it in errors); with
    double quotes, read as a line of CSV, so that an id holding a comma is given quoted
    (``'"a,b",c'`` is the ids ``a,b`` and ``c``), as a CSV file writes it. Pieces are kept as
    typed; empty ones are skipped."""
    if '"' not in text:
        return [piece for piece in text.split(",") if piece.strip()]
    try:
        # strict: an unclosed quote is an error, not an id running to the end of the line
        fields = next(csv.reader([text], skipinitialspace=True, strict=True), [])
    except csv.Error as error:
        raise ValueError(
            f"{option} cannot be read as comma-separated ids ({error}): a double quote opens "
            "an id that may hold commas and must close right before the next comma or the end, "
            "e.g. '\"a,b\",c'"
        ) from None
    return [field for field in fields if field.strip()]


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


class ExternalIds:
    """The id side of a predictor: ids as callers give them, parsed and checked against the
    run's vocabularies, as row indices (users) and item indices (histories)."""

    users: Vocabulary
    items: Vocabulary
    #: Whether a history's order means something (time, for next-item models).
    ordered_history = False

    def parse_user(self, value: Any) -> Any:
        """A user id (typed on a command line, or from JSON) as the vocabulary's type.

        Surrounding whitespace is stripped, for string ids as for integer ones (a string id
        that the vocabulary holds exactly, padding included, is kept as given). Integer ids
        typed as text are ASCII digits with an optional sign; booleans are no ids.
        """
        refuse_booleans([value], "user")
        if self.users.kind != "int":
            return as_known(str(value), self.users)
        user = parse_integer(value)
        if user is None:
            raise ValueError(f"user ids of this run are integers, got {as_python(value)!r}")
        return user

    def parse_users(self, values: Sequence[Any]) -> np.ndarray:
        """Many user ids (e.g. lines of a file) as an array of the vocabulary's type (surrounding
        whitespace stripped unless the padded string id itself is known)."""
        refuse_booleans(values, "user")
        if self.users.kind != "int":
            return np.asarray([as_known(str(v), self.users) for v in values], dtype=str)
        ids = [parse_integer(v) for v in values]
        bad = [v for v, i in zip(values, ids, strict=True) if i is None]
        if bad:
            raise ValueError(f"user ids of this run are integers, got {shown(bad)}")
        if beyond_int64(ids).any():
            self.user_rows(ids)  # raises: no user has such an id
        return np.asarray(ids, dtype=np.int64)

    def _parse_items(self, items: Sequence[Any]) -> list[Any]:
        """Item ids as the vocabulary's type; surrounding whitespace is stripped; a padded
        string id the vocabulary holds exactly is kept as given. Integer ids may come as ints,
        integral floats (a pandas column read as float) or ASCII digits typed as text; any
        other value is ``None`` (no item of the catalogue: 1.5 is not truncated to item 1)."""
        refuse_booleans(items, "item")
        if self.items.kind != "int":
            return [as_known(str(i), self.items) for i in items]
        return [parse_integer(i) if not is_integral_float(i) else int(i) for i in items]

    def user_rows(self, users: Sequence[Any] | np.ndarray) -> np.ndarray:
        """Row indices of known users (external ids of the vocabulary's type).

        Raises :class:`UnknownIdError` (a ``KeyError``) naming the unknown ids.
        """
        huge = beyond_int64(users)
        rows = np.full(len(huge), -1, dtype=np.int64)
        lookup = [u for u, h in zip(users, huge, strict=True) if not h] if huge.any() else users
        rows[~huge] = self.users.index(lookup, missing="mask", what="user id")
        if (rows < 0).any():
            unknown = list(dict.fromkeys(np.asarray(users)[rows < 0].tolist()))
            raise UnknownIdError(
                f"{len(unknown)} user id(s) not among the {len(self.users)} users of this model: "
                f"{shown(unknown)}; check the ids ({NOT_A_USER}), or score a new user from "
                "their item history",
                unknown=unknown[:SHOWN],
                n_unknown=len(unknown),
            )
        return rows

    def known_item_indices(self, ids: Any, what: str) -> np.ndarray:
        """The distinct item indices of those of ``ids`` (external) the catalogue holds; the
        others are skipped. ``what`` names the argument in the error for a bare string."""
        if hasattr(ids, "tolist") and getattr(ids, "ndim", 1) == 1:
            refuse_rounded_ids(ids, what)
            ids = ids.tolist()
        if isinstance(ids, (str, bytes)) or not hasattr(ids, "__len__"):
            raise TypeError(
                f"{what} must be a list of item ids, got the {type(ids).__name__} {ids!r}; "
                f"pass a list, e.g. {what}=[12, 7]"
            )
        ids = list(ids)
        parsed = self._parse_items(ids)
        usable = [i for i in parsed if i is not None]
        usable = [i for i, huge in zip(usable, beyond_int64(usable), strict=True) if not huge]
        if not usable:
            return np.zeros(0, dtype=np.int64)
        return np.unique(self.items.index(usable, missing="drop", what="item id"))

    def history_indices(
        self, history: Sequence[Any], ignore_unknown: bool = False
    ) -> tuple[np.ndarray, list[Any]]:
        """Item indices of a history of external ids (order and repeats kept), and the ids the
        catalogue lacks (an error, naming them as given, unless ``ignore_unknown``)."""
        if hasattr(history, "tolist") and getattr(history, "ndim", 1) == 1:
            refuse_rounded_ids(history, "history")
            history = history.tolist()  # a numpy array or tensor: its numbers, as Python's
        if isinstance(history, (set, frozenset, dict)) and self.ordered_history:
            raise TypeError(
                f"history must be a list of item ids, oldest first, got a "
                f"{type(history).__name__}, which has no order; this run reads the order as time"
            )
        # A string is a sequence too: "123" would be read as the items 1, 2 and 3.
        if isinstance(history, (str, bytes)) or not hasattr(history, "__len__"):
            raise TypeError(
                f"history must be a list of item ids, oldest first, got the "
                f"{type(history).__name__} {history!r}; pass a list, e.g. history=[12, 7, 40]"
            )
        if len(history) == 0:
            raise ValueError("history is empty: give at least one item the user interacted with")
        # An id that cannot be an item of this run (text where the ids are integers) is unknown
        # like any other: named with the others, or dropped with ignore_unknown.
        ids = self._parse_items(history)
        parsed = np.fromiter((i is not None for i in ids), dtype=bool, count=len(ids))
        looked_up = parsed & ~beyond_int64(ids)
        known = np.zeros(len(ids), dtype=bool)
        known[looked_up] = self.items.contains(
            [i for i, ok in zip(ids, looked_up, strict=True) if ok]
        )
        missing = np.flatnonzero(~known)
        as_given = list(history)
        given = [as_python(as_given[i]) for i in missing]  # named as the caller typed them
        if given and not ignore_unknown:
            mistyped = [as_python(as_given[i]) for i in missing if ids[i] is None]
            # say why: "nope" or 1.5 cannot be an id of this catalogue
            why = f"item ids of this run are integers, got {shown(mistyped)}" if mistyped else ""
            raise UnknownIdError(
                f"{len(given)} item id(s) not in the catalogue: {shown(given)}"
                f"{f' ({why})' if why else ''}; remove them or pass ignore_unknown=True "
                "(--ignore-unknown)",
                unknown=given[:SHOWN],
                n_unknown=len(given),
                why=why,
            )
        index = self.items.index([i for i, ok in zip(ids, known, strict=True) if ok])
        if index.size == 0:
            raise ValueError(
                f"none of the history's {len(given)} item id(s) is in the catalogue "
                f"({shown(given)}): check them against the run's items (data/items.json), or "
                "recommend for a known user instead"
            )
        return index, given
