"""What repeated (user, item) rows become when interactions are built (``data.duplicates``):
an error naming them (``raise``), the ``first`` or ``last`` row as read, or their ``sum``."""

from __future__ import annotations

from typing import Any, Literal, NoReturn

import numpy as np

from recdiff.data.errors import DataFormatError, describe_rows, describe_source

__all__ = ["DuplicatePolicy", "one_row_per_pair"]

DuplicatePolicy = Literal["raise", "first", "last", "sum"]


def one_row_per_pair(
    u: np.ndarray,
    i: np.ndarray,
    n_items: int,
    cols: dict[str, np.ndarray | None],
    duplicates: DuplicatePolicy,
    where: tuple[Any, Any, Any, Any],
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray | None]]:
    """The entries ``(u, i)`` with their columns ``cols`` (one value per entry, or None), one per
    pair in row-major order. ``"sum"`` adds up the values (``"v"``) and ratings (``"r"``) of a
    pair's rows and keeps the latest time (``"t"``) and row place (``"o"``). ``where``: the
    vocabularies, source and line numbers that the error for ``"raise"`` names."""
    if duplicates not in ("raise", "first", "last", "sum"):
        raise ValueError(f"duplicates must be raise/first/last/sum, got {duplicates!r}")
    order = np.argsort(u * n_items + i, kind="stable")  # row-major order; stable keeps file order
    keys = (u * n_items + i)[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if keys.size else keys
    if starts.size == keys.size:  # no duplicates
        picked = order
    elif duplicates == "raise":
        _raise_duplicates(u, i, order, keys, starts, *where)
    elif duplicates == "first":
        picked = order[starts]
    elif duplicates == "last":
        picked = order[np.r_[starts[1:], keys.size] - 1]
    else:  # "sum": reduce every column over its duplicate group
        picked = order[starts]
        reduce = {"v": np.add, "r": np.add, "t": np.maximum, "o": np.maximum}
        summed = {
            k: None if v is None else reduce[k].reduceat(v[order], starts) for k, v in cols.items()
        }
        return u[picked], i[picked], summed
    return u[picked], i[picked], {k: None if v is None else v[picked] for k, v in cols.items()}


def _raise_duplicates(
    u: np.ndarray,
    i: np.ndarray,
    order: np.ndarray,
    keys: np.ndarray,
    starts: np.ndarray,
    users: Any,
    items: Any,
    source: Any,
    line_numbers: np.ndarray | None,
) -> NoReturn:
    sizes = np.diff(np.r_[starts, keys.size])
    groups = np.flatnonzero(sizes > 1)
    examples = []
    for g in groups[:3]:  # only formats the message: at most 3 iterations
        rows = np.sort(order[starts[g] : starts[g] + sizes[g]])
        pair = (users.ids[u[rows[0]]].item(), items.ids[i[rows[0]]].item())
        examples.append(f"{pair} at {describe_rows(rows, line_numbers)}")
    raise DataFormatError(
        f"{groups.size} duplicate (user, item) pair(s){describe_source(source)}, e.g. "
        + "; ".join(examples)
        + ". Remove the repeated rows from the data, or choose what to do with them: "
        "data.duplicates in a run config (duplicates=... from Python) set to 'last' or 'first' "
        "keeps one row per pair, 'sum' adds them up"
    )
