"""The restricted unpickler: data loads, code does not run."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recdiff.data import (
    DataFormatError,
    UnsafePickleError,
    read_dreamrec_frame,
    safe_load,
)


class _SystemPayload:
    """Unpickles into ``os.system(command)``: the classic malicious pickle."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


def test_os_system_payload_is_refused_and_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.df"
    path.write_bytes(pickle.dumps(_SystemPayload(f"touch {marker}")))
    with pytest.raises(UnsafePickleError, match=r"(posix|os|nt)\.system.*evil\.df"):
        safe_load(path)
    assert not marker.exists()
    with pytest.raises(UnsafePickleError):  # readers use the same loader
        read_dreamrec_frame(path, n_items=10)


def test_unsafe_error_is_both_data_and_pickle_error() -> None:
    payload = pickle.dumps(eval)  # a reference to builtins.eval
    with pytest.raises(UnsafePickleError) as info:
        safe_load(payload)
    assert isinstance(info.value, DataFormatError) and isinstance(info.value, ValueError)
    assert isinstance(info.value, pickle.UnpicklingError)


def test_plain_data_loads() -> None:
    obj = {"train": {0: [1, 2]}, "x": (1.5, "a", None, True)}
    assert safe_load(pickle.dumps(obj)) == obj
    np.testing.assert_array_equal(safe_load(pickle.dumps(np.arange(4))), np.arange(4))


def test_current_pandas_frames_load(tmp_path: Path) -> None:
    frame = pd.DataFrame({"seq": [[1, 2], [3, 4]], "seq_len": [2, 2], "tgt": [5.0, 6.0]})
    frame["name"] = ["a", "bc"]  # pandas >= 3 pickles strings as Arrow arrays
    frame.to_pickle(tmp_path / "f.df")
    pd.testing.assert_frame_equal(safe_load(tmp_path / "f.df"), frame)


class _BadArrowArray:
    """Unpickles into an Arrow string array whose offsets point far past its data buffer."""

    def __reduce__(self) -> tuple[object, tuple[object]]:
        import pyarrow as pa
        import pyarrow.lib

        offsets = pa.py_buffer(np.array([0, 100_000], dtype=np.int32).tobytes())
        state = (pa.string(), 1, 0, 0, [None, offsets, pa.py_buffer(b"ab")], [], None)
        return (pyarrow.lib._restore_array, (state,))


def test_inconsistent_arrow_buffers_are_refused() -> None:
    with pytest.raises(UnsafePickleError, match="out of bounds"):
        safe_load(pickle.dumps(_BadArrowArray()))


def test_garbage_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.df"
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(DataFormatError, match=r"junk\.df"):
        safe_load(path)
    path.write_bytes(pickle.dumps([1, 2, 3])[:-3])  # truncated
    with pytest.raises(DataFormatError, match="complete"):
        safe_load(path)


@pytest.mark.data
def test_every_shared_pickle_loads(datasets_root: Path) -> None:
    paths = sorted(datasets_root.glob("dreamrec/**/*.df")) + sorted(
        datasets_root.glob("diffurec/*/dataset.pkl")
    )
    assert len(paths) == 10
    for path in paths:
        assert isinstance(safe_load(path), (pd.DataFrame, dict))
