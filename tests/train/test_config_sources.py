"""A run config's ``data`` section reaching the readers: format, separator, duplicates.

(These test :mod:`recdiff.train.datasets`, the bridge from ``data.*`` to the readers.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recdiff.config.schema import DataConfig
from recdiff.data import DataFormatError
from recdiff.train.datasets import load_sequences, load_splits


def write_log(path: Path, sep: str) -> Path:
    """Five users with four items each, at times 0..3."""
    rows = [sep.join(map(str, (u, (u + t) % 6, t))) for u in range(5) for t in range(4)]
    path.write_text(sep.join(("user", "item", "ts")) + "\n" + "\n".join(rows) + "\n")
    return path


def test_data_format_chooses_the_separator(tmp_path: Path) -> None:
    # a .txt suffix names no format: data.format does
    for fmt, sep in (("csv", ","), ("tsv", "\t")):
        log = write_log(tmp_path / f"{fmt}.txt", sep)
        splits = load_splits(DataConfig(format=fmt, source=str(log), time_col="ts", split="random"))
        assert splits.n_users == 5
        config = DataConfig(format=fmt, source=str(log), time_col="ts", split="leave_one_out")
        _, sequences = load_sequences(config)
        assert sequences is not None and sequences.lengths().tolist() == [4] * 5


@pytest.mark.parametrize(("fmt", "name"), [("parquet", "log.csv"), ("csv", "log.tsv")])
def test_data_format_that_contradicts_the_suffix_is_refused(
    tmp_path: Path, fmt: str, name: str
) -> None:
    log = write_log(tmp_path / name, "\t" if name.endswith("tsv") else ",")
    config = DataConfig(format=fmt, source=str(log), time_col="ts", split="random")
    with pytest.raises(DataFormatError, match=rf"{name} is named as a .* asked for is {fmt}"):
        load_splits(config)


def test_diffrec_folder_takes_data_duplicates(tmp_path: Path) -> None:
    np.save(tmp_path / "train_list.npy", np.array([[0, 1], [0, 2], [0, 1], [1, 0]]))
    np.save(tmp_path / "valid_list.npy", np.array([[0, 3]]))
    np.save(tmp_path / "test_list.npy", np.array([[1, 3]]))
    with pytest.raises(DataFormatError, match=r"duplicate.*data\.duplicates"):
        load_splits(DataConfig(format="diffrec", source=str(tmp_path)))
    splits = load_splits(DataConfig(format="diffrec", source=str(tmp_path), duplicates="first"))
    assert splits.train.nnz == 3


@pytest.mark.parametrize("split", ["user_temporal", "global_temporal", "leave_one_out"])
def test_every_split_drops_held_out_items_never_trained_on(tmp_path: Path, split: str) -> None:
    """An item first seen after training cannot be scored by a collaborative model: every split
    drops it from valid/test (user_temporal kept it) and keeps it in ``dropped``."""
    rows = [(u, (u + t) % 12, t) for u in range(12) for t in range(10)]
    rows += [(u, 99, 100) for u in range(12)]  # every user's last item, new to everyone
    log = tmp_path / "log.csv"
    log.write_text("user,item,ts\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))
    splits = load_splits(DataConfig(format="csv", source=str(log), time_col="ts", split=split))
    new = splits.items.index([99])[0]
    assert splits.train.matrix[:, new].nnz == 0
    assert splits.valid.matrix[:, new].nnz == splits.test.matrix[:, new].nnz == 0
    assert splits.dropped is not None and splits.dropped.matrix[:, new].nnz == 12
