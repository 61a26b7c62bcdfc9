"""Vocabulary: a deterministic map between external ids and contiguous indices 0..n-1.

External ids are the user and item ids of the raw data (ints or strings). Models only ever see the
contiguous indices. The map is the sorted order of the unique external ids, so the same set of ids
always gives the same indices, whatever order the rows came in; the vocabulary is saved next to a
model (``to_json``) so that predictions can be translated back to external ids.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd

from recdiff.data.errors import DataFormatError, UnknownIdError

IdKind = Literal["int", "str"]
MissingPolicy = Literal["raise", "drop", "mask"]

# How many unknown ids an error message shows; the total count is always given.
_SHOWN = 5


def as_id_array(values: Any, what: str = "id") -> np.ndarray:
    """Convert external ids to an ``int64`` or a numpy unicode array, refusing anything ambiguous.

    Integral floats (``3.0``, as pandas reads an int column that once held a NaN) become ints;
    integers beyond int64 (uint64 hashes) become their decimal strings, as a text file's do
    (:func:`~recdiff.data.tables.canonical_ints`), never other ints; missing values
    (NaN/None), non-integral floats, booleans, bytes and mixed int/str collections raise
    :class:`DataFormatError`, because silently mapping them would corrupt the id space.
    """
    if isinstance(values, (str, bytes)) or np.isscalar(values):
        values = [values]
    if not isinstance(values, (np.ndarray, pd.Series, pd.Index)):
        # Through an object array: np.asarray([1, "a"]) would silently give the strings "1", "a".
        values = list(values)
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
    else:
        arr = np.asarray(values)
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    kind = arr.dtype.kind
    if kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        return arr.astype(str)  # as int64 they would wrap to negative ids
    if kind in "iu":
        return arr.astype(np.int64, copy=False)
    if kind == "U":
        return arr
    if kind in "fO":
        missing = pd.isna(arr)
        if missing.any():
            pos = np.flatnonzero(missing)
            raise DataFormatError(
                f"{pos.size} {what}s are missing (NaN/None), first at position(s) "
                f"{pos[:_SHOWN].tolist()}; drop those rows or fill them before building ids"
            )
    if kind == "f":
        return _integral_floats(arr, what)
    if kind == "O":
        inferred = pd.api.types.infer_dtype(arr, skipna=False)
        if inferred == "string":
            converted = arr.astype(str)
            # numpy unicode arrays drop trailing NUL characters; refuse rather than merge ids.
            if not np.array_equal(
                np.char.str_len(converted), np.fromiter(map(len, arr), np.int64, arr.size)
            ):
                raise DataFormatError(f"{what}s must not end with NUL characters ('\\x00')")
            return converted
        if inferred == "integer":
            try:
                return arr.astype(np.int64)
            except OverflowError:  # Python ints beyond int64
                return arr.astype(str)
        if inferred in ("floating", "mixed-integer-float"):
            return _integral_floats(arr.astype(np.float64), what)
        if inferred == "empty":
            return np.zeros(0, dtype=np.int64)
        raise DataFormatError(
            f"{what}s must be all integers or all strings, got {inferred!r} values such as "
            f"{arr[:_SHOWN].tolist()}; convert the column to one type first"
        )
    raise DataFormatError(
        f"{what}s must be integers or strings, got dtype {arr.dtype}; convert them first"
    )


def integer_indices(values: Any, what: str) -> np.ndarray:
    """``values`` as an int64 array of indices, refusing what a cast would misread: a boolean
    mask (``[True, False, True]`` would become rows 1, 0, 1) and non-integer numbers (0.7 would
    become row 0). The range is the caller's to check."""
    idx = np.asarray(values)
    if idx.dtype == bool:
        raise TypeError(f"{what} must be integers, got a boolean mask; pass np.flatnonzero(mask)")
    if idx.size and idx.dtype.kind not in "iu":
        raise TypeError(f"{what} must be integers, got dtype {idx.dtype}")
    return idx.astype(np.int64, copy=False)


#: Significand bits of the float types ids arrive in: such a float holds every integer up to
#: 2**bits exactly, and rounds some of those beyond to a neighbour.
_SIGNIFICAND_BITS = {"float16": 11, "bfloat16": 8, "float32": 24, "float64": 53}


def refuse_rounded_ids(values: Any, what: str) -> None:
    """Refuse an array or tensor of float ids that may have been rounded to other ids: every
    float16 / bfloat16 one (exact integers only up to 2048 / 256: item 257 in bfloat16 is item
    256, an existing item, so no lookup would notice), and float32 / float64 ones beyond 2**24 /
    2**53. Integral floats below that are as good as ints (a pandas column that held a NaN)."""
    name = str(getattr(values, "dtype", "")).removeprefix("torch.")
    bits = _SIGNIFICAND_BITS.get(name)
    if bits is None or not getattr(values, "shape", (0,)) or not len(values):
        return
    fix = "pass them as integers (an integer array or a long tensor)"
    if bits < 24:
        raise TypeError(
            f"{what} came as {name} numbers, which hold integers exactly only up to {2**bits}: "
            f"larger ids may have been rounded to other ids; {fix}"
        )
    largest = float(abs(values).max())
    if largest > 2**bits:
        raise TypeError(
            f"{what} came as {name} numbers up to {largest:.0f}, but {name} holds integers "
            f"exactly only up to {2**bits}: ids beyond it may have been rounded; {fix}"
        )


def is_integer(value: Any) -> bool:
    """A Python or numpy integer, not a boolean (``True`` is an int to Python, never a count or
    an index anybody meant)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_row(index: Any, n: int, what: str) -> int:
    """One index into ``n`` rows as an int; negative (Python would count from the end) or past
    the end is an IndexError naming ``what`` and the valid range."""
    if not is_integer(index):
        raise TypeError(f"{what} must be an integer, got {index!r}")
    if not 0 <= index < n:
        raise IndexError(f"{what} {index} is out of range (valid: 0..{n - 1})")
    return int(index)


def _integral_floats(arr: np.ndarray, what: str) -> np.ndarray:
    try:
        refuse_rounded_ids(arr, f"{what}s")
    except TypeError as error:
        raise DataFormatError(str(error)) from None
    frac = arr != np.round(arr)
    if frac.any():
        pos = np.flatnonzero(frac)
        raise DataFormatError(
            f"{what}s must be integers or strings, got non-integral numbers such as "
            f"{arr[pos[:_SHOWN]].tolist()} at position(s) {pos[:_SHOWN].tolist()}"
        )
    return arr.astype(np.int64)


class Vocabulary:
    """Sorted unique external ids; the position of an id is its contiguous index.

    Build one with :meth:`from_ids` (any order, duplicates allowed) or :meth:`range`; the
    constructor itself requires ids that are already sorted and unique.
    """

    __slots__ = ("_ids",)

    def __init__(self, ids: Iterable[Any]) -> None:
        arr = as_id_array(ids)
        if arr.size > 1 and not bool(np.all(arr[1:] > arr[:-1])):
            raise ValueError(
                "Vocabulary ids must be sorted and unique; use Vocabulary.from_ids(ids) to sort "
                "and deduplicate arbitrary ids"
            )
        arr = arr.copy()
        arr.setflags(write=False)
        self._ids = arr

    @classmethod
    def from_ids(cls, ids: Iterable[Any], what: str = "id") -> Vocabulary:
        """Vocabulary of the sorted unique values of ``ids`` (deterministic for a given id set)."""
        return cls(np.unique(as_id_array(ids, what)))

    @classmethod
    def range(cls, n: int, start: int = 0) -> Vocabulary:
        """Vocabulary of the ints ``start .. start+n-1`` (index = id - start)."""
        for name, value in (("n", n), ("start", start)):
            if not is_integer(value):
                raise TypeError(f"Vocabulary.range: {name} must be an integer, got {value!r}")
        if n < 0:
            raise ValueError(f"a vocabulary cannot have {n} ids; n must be >= 0")
        return cls(np.arange(start, start + n, dtype=np.int64))

    @property
    def ids(self) -> np.ndarray:
        """The external ids in index order (read-only)."""
        return self._ids

    @property
    def kind(self) -> IdKind:
        """``"int"`` or ``"str"``: the type of the external ids."""
        return "str" if self._ids.dtype.kind == "U" else "int"

    def __len__(self) -> int:
        return int(self._ids.size)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return self is other or (self.kind == other.kind and np.array_equal(self._ids, other._ids))

    __hash__ = None  # type: ignore[assignment]  # mutable-looking array payload; compare by value

    def __reduce__(self) -> tuple[type[Vocabulary], tuple[np.ndarray]]:
        # Rebuild through the constructor so an unpickled copy (DataLoader workers) is read-only.
        return (Vocabulary, (self._ids,))

    def __contains__(self, external_id: object) -> bool:
        try:
            return bool(self.contains([external_id])[0])
        except DataFormatError:
            return False

    def __repr__(self) -> str:
        head = self._ids[:3].tolist()
        dots = ", ..." if len(self) > 3 else ""
        return f"Vocabulary({len(self)} {self.kind} ids: {head}{dots})"

    def _lookup(self, external_ids: Any, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (query array, candidate positions, found mask) for ``external_ids``."""
        query = as_id_array(external_ids, what)
        n = len(self)
        if n == 0 or query.size == 0 or query.dtype.kind != self._ids.dtype.kind:
            pos = np.zeros(query.size, dtype=np.int64)
            return query, pos, np.zeros(query.size, dtype=bool)
        pos = np.searchsorted(self._ids, query).astype(np.int64)
        clipped = np.minimum(pos, n - 1)
        found = (pos < n) & (self._ids[clipped] == query)
        return query, clipped, found

    def contains(self, external_ids: Any) -> np.ndarray:
        """Boolean mask: which of ``external_ids`` are in the vocabulary."""
        return self._lookup(external_ids, "id")[2]

    def index(
        self, external_ids: Any, missing: MissingPolicy = "raise", what: str = "id"
    ) -> np.ndarray:
        """Map external ids to ``int64`` indices.

        Args:
            external_ids: ids of the vocabulary's type (a list, array, Series, or one scalar).
            missing: what to do with unknown ids: ``"raise"`` an :class:`UnknownIdError`
                (default), ``"drop"`` them (the result is shorter; use :meth:`contains` for the
                mask of kept positions), or ``"mask"`` them as ``-1``.
            what: the name used for the ids in error messages (``"user id"``, ...).
        """
        query, pos, found = self._lookup(external_ids, what)
        if missing == "drop":
            return pos[found]
        if missing == "mask":
            return np.where(found, pos, -1)
        if missing != "raise":
            raise ValueError(f"missing must be 'raise', 'drop' or 'mask', got {missing!r}")
        if not found.all():
            self._raise_unknown(query, found, what)
        return pos

    def _raise_unknown(self, query: np.ndarray, found: np.ndarray, what: str) -> None:
        unknown = np.unique(query[~found])
        shown = unknown[:_SHOWN].tolist()
        more = f" (and {unknown.size - _SHOWN} more)" if unknown.size > _SHOWN else ""
        hint = (
            "; pass missing='drop' to skip them, or build the vocabulary from all the data "
            "(e.g. train, valid and test together)"
        )
        if query.size and len(self) and query.dtype.kind != self._ids.dtype.kind:
            given = "str" if query.dtype.kind == "U" else "int"
            hint = f"; the vocabulary holds {self.kind} ids but {given} ids were given"
        raise UnknownIdError(
            f"{unknown.size} unknown {what}(s) ({int((~found).sum())} of {query.size} values) "
            f"not in the vocabulary of {len(self)} {self.kind} ids: {shown}{more}{hint}",
            unknown=shown,
            n_unknown=int(unknown.size),
        )

    def external(self, indices: Any) -> np.ndarray:
        """Map indices back to external ids (an array of the vocabulary's type)."""
        idx = integer_indices(indices, "indices")
        bad = (idx < 0) | (idx >= len(self))
        if bad.any():
            raise IndexError(
                f"indices {idx[bad][:_SHOWN].tolist()} are out of range for a vocabulary of "
                f"{len(self)} ids (valid: 0..{len(self) - 1})"
            )
        return self._ids[idx]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict ``{"kind": "int"|"str", "ids": [...]}``."""
        return {"kind": self.kind, "ids": self._ids.tolist()}

    def to_json(self) -> str:
        """The vocabulary as a JSON string (see :meth:`to_dict`)."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, data: str | Mapping[str, Any]) -> Vocabulary:
        """Inverse of :meth:`to_json` / :meth:`to_dict` (accepts the string or the parsed dict)."""
        obj = json.loads(data) if isinstance(data, str) else data
        if not isinstance(obj, Mapping) or set(obj) != {"kind", "ids"}:
            raise DataFormatError(
                "a vocabulary JSON must be an object with exactly the keys 'kind' and 'ids'"
            )
        kind, ids = obj["kind"], obj["ids"]
        expected = {"int": int, "str": str}.get(kind)
        if expected is None or not isinstance(ids, list):
            raise DataFormatError(
                f"vocabulary kind must be 'int' or 'str' with a list of ids, got kind={kind!r}"
            )
        # bool is a subclass of int; a JSON true/false is never a valid id.
        if not all(type(x) is expected for x in ids):
            raise DataFormatError(f"all ids of a {kind!r} vocabulary must be JSON {kind}s")
        dtype = np.int64 if kind == "int" else str
        return cls(np.array(ids, dtype=dtype))
