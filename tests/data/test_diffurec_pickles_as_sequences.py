"""DiffuRec's ``dataset.pkl`` trains through ``data.format=sequences`` like the text files:
``read_diffurec`` existed, but the config read every sequence file as text ("line 1 is not
UTF-8 text (byte 0x80)")."""

import pickle
from pathlib import Path

import pytest

from recdiff.config import load_config
from recdiff.data.sequence_readers import read_sequence_file
from recdiff.train.datasets import load_sequences, load_splits

TINY = {
    "train": {0: [1, 2, 5], 1: [3, 4, 1]},
    "val": {0: [3], 1: [5]},
    "test": {0: [4], 1: [2]},
    "umap": {10: 0, 11: 1},
    "smap": {7: 1, 8: 2, 9: 3, 6: 4, 5: 5},
}


def _config(path: Path, preset: str, split: str = "leave_one_out"):
    return load_config(
        preset, ["data.format=sequences", f"data.source={path}", f"data.split={split}"]
    )


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_pickled_dict_is_read_as_diffurecs_sequences(tmp_path: Path, protocol: int) -> None:
    path = tmp_path / "dataset.pkl"
    path.write_bytes(pickle.dumps(TINY, protocol=protocol))
    sequences = read_sequence_file(path)
    external = [sequences.items.external(sequences.sequence(u)).tolist() for u in range(2)]
    assert external == [[1, 2, 5, 3, 4], [3, 4, 1, 5, 2]]  # train + val + test, oldest first


def test_next_item_and_row_models_train_on_it(tmp_path: Path) -> None:
    path = tmp_path / "any-name.bin"  # told apart by its first byte, not its suffix
    path.write_bytes(pickle.dumps(TINY))
    data, sequences = load_sequences(_config(path, "demo-sasrec").data)
    items = sequences.items
    assert items.external(data.test.targets).tolist() == [4, 2]
    assert items.external(data.valid.targets).tolist() == [3, 5]
    rows = load_splits(_config(path, "demo-diffrec").data)
    test_items = rows.items.external(rows.test.matrix.nonzero()[1]).tolist()
    assert sorted(test_items) == [2, 4]  # each user's last item, both seen in training


def test_a_pickle_that_is_not_diffurecs_dict_says_what_it_must_hold(tmp_path: Path) -> None:
    path = tmp_path / "other.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(ValueError, match=r"must be a dict with 'train', 'val' and 'test'"):
        read_sequence_file(path)
