"""Loading research pickles without running arbitrary code.

DreamRec ships its data as pandas pickles (``*.df``) and DiffuRec as a pickled dict
(``dataset.pkl``). ``pickle.load`` on a downloaded file can call any importable function (the
classic ``os.system`` payload), so these files are read with :class:`RestrictedUnpickler`, which
only resolves the numpy / pandas classes that such data frames and arrays are made of. Anything
else raises :class:`~recdiff.data.errors.UnsafePickleError` before it is called.

The allow-list was found by loading every pickle in the shared datasets folder (pandas 1.x and
2.x writers, pickle protocols 4 and 5) and frames written by pandas 3 (Arrow-backed strings).
"""

from __future__ import annotations

import importlib
import io
import os
import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from recdiff.data.errors import DataFormatError, UnsafePickleError

# (module, name) pairs that construct plain data: arrays, dtypes, scalars, data frames, indexes.
SAFE_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("builtins", "slice"),
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
        ("pandas._libs.internals", "_unpickle_block"),
        ("pandas.core.frame", "DataFrame"),
        ("pandas.core.series", "Series"),
        ("pandas.core.indexes.base", "Index"),
        ("pandas.core.indexes.base", "_new_Index"),
        ("pandas.core.indexes.range", "RangeIndex"),
        ("pandas.core.internals.managers", "BlockManager"),
        ("pandas.core.internals.managers", "SingleBlockManager"),
        # pandas >= 3 writes the public paths, and bytearray buffers
        ("builtins", "bytearray"),
        ("pandas", "DataFrame"),
        ("pandas", "Series"),
        ("pandas", "Index"),
        ("pandas", "RangeIndex"),
        ("pandas", "StringDtype"),
    }
)

# pandas >= 3 stores string columns (and string column names) as Arrow arrays, rebuilt from raw
# buffers. pyarrow does not validate pickled buffers, so the restore function is replaced by one
# that fully validates offsets and sizes before anything reads the array.
_ARROW_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("pandas.arrays", "ArrowStringArray"),
        ("pyarrow.lib", "_restore_array"),
        ("pyarrow.lib", "py_buffer"),
        ("pyarrow.lib", "type_for_alias"),
    }
)
SAFE_GLOBALS = SAFE_GLOBALS | _ARROW_GLOBALS


def _validated_restore_array(data: Any) -> Any:
    import pyarrow.lib

    array = pyarrow.lib._restore_array(data)
    try:
        array.validate(full=True)
    except Exception as err:  # pyarrow raises ArrowInvalid / ArrowException subclasses
        raise UnsafePickleError(
            f"a pickled Arrow array is inconsistent ({err}); refusing it"
        ) from None
    return array


_SUBSTITUTES = {("pyarrow.lib", "_restore_array"): _validated_restore_array}

# Modules that numpy 2 renamed; the old names still import but warn, so resolve the new ones.
_RENAMED = {
    "numpy.core.multiarray": "numpy._core.multiarray",
    "numpy.core.numeric": "numpy._core.numeric",
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` resolves only an allow-list of (module, name) pairs."""

    def __init__(
        self,
        file: Any,
        *,
        source: str | None = None,
        allowed: Iterable[tuple[str, str]] = SAFE_GLOBALS,
    ) -> None:
        super().__init__(file)
        self._source = source
        self._allowed = frozenset(allowed)

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._allowed:
            where = f" in {self._source}" if self._source else ""
            raise UnsafePickleError(
                f"refusing to load {module}.{name}{where}: the pickle references a class or "
                "function outside the data allow-list (numpy arrays, pandas frames). If the file "
                "is trusted and needs it, pass it in allowed=...; otherwise do not load the file"
            )
        if (module, name) in _SUBSTITUTES:
            return _SUBSTITUTES[(module, name)]
        if int(np.__version__.split(".")[0]) >= 2:
            module = _RENAMED.get(module, module)
        return getattr(importlib.import_module(module), name)


def safe_load(
    path_or_bytes: str | os.PathLike[str] | bytes,
    allowed: Iterable[tuple[str, str]] = SAFE_GLOBALS,
) -> Any:
    """Unpickle a file (or bytes) allowing only the globals in ``allowed``."""
    if isinstance(path_or_bytes, bytes):
        return _load(io.BytesIO(path_or_bytes), None, allowed)
    path = Path(path_or_bytes)
    with path.open("rb") as fh:
        return _load(fh, str(path), allowed)


def _load(fh: Any, source: str | None, allowed: Iterable[tuple[str, str]]) -> Any:
    try:
        return RestrictedUnpickler(fh, source=source, allowed=allowed).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        where = f"{source} " if source else ""
        raise DataFormatError(
            f"{where}is not a readable data pickle ({type(err).__name__}: {err}); check that the "
            "file is complete and was written by pandas/pickle"
        ) from None
