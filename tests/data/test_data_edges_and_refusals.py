"""Data and config paths no other test reached: malformed DiffRec split files, tables that are
missing or blank, ids beyond int64, misused Interactions and Vocabulary calls, config files and
overrides a user gets wrong, and dataset sources that cannot be found. Each refusal is pinned
by the words that tell the user what to fix."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recdiff.config import ConfigError, load_config
from recdiff.config.sources import check_source, resolve_source
from recdiff.data import (
    DataFormatError,
    Interactions,
    Vocabulary,
    read_diffrec_splits,
    read_interactions,
    time_weights_from_order,
)
from recdiff.data.batches import (
    SequenceExamples,
    examples_from_sequences,
    prefix_target_positions,
)
from recdiff.data.sequences import SequenceDataset
from recdiff.data.tables import read_table


# ------------------------------------------------------------------------ DiffRec splits
def _splits(folder: Path, train: np.ndarray, **save: bool) -> Path:
    folder.mkdir()
    np.save(folder / "train_list.npy", train, **save)
    for name in ("valid", "test"):
        np.save(folder / f"{name}_list.npy", np.zeros((0, 2), dtype=np.int64))
    return folder


def test_diffrec_splits_that_are_all_empty_are_refused(tmp_path: Path) -> None:
    folder = _splits(tmp_path / "d", np.zeros((0, 2), dtype=np.int64))
    with pytest.raises(DataFormatError, match=r"the DiffRec split files in .* are all empty"):
        read_diffrec_splits(folder)


def test_diffrec_ids_stored_as_floats_are_refused(tmp_path: Path) -> None:
    folder = _splits(tmp_path / "d", np.array([[0.0, 1.5]]))
    with pytest.raises(DataFormatError, match="has dtype float64; user and item ids must be ints"):
        read_diffrec_splits(folder)


def test_a_pickled_object_array_is_not_unpickled(tmp_path: Path) -> None:
    folder = _splits(tmp_path / "d", np.array([[0, "a"]], dtype=object), allow_pickle=True)
    with pytest.raises(DataFormatError, match=r"train_list.npy is not a plain numeric .npy array"):
        read_diffrec_splits(folder)


# -------------------------------------------------------------------------------- tables
def test_a_missing_table_or_an_unknown_format_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nothere\.csv not found"):
        read_interactions(tmp_path / "nothere.csv")
    (tmp_path / "r.csv").write_text("user,item\n1,2\n")
    with pytest.raises(
        ValueError, match="file_format must be csv, tsv, parquet or jsonl, got 'xlsx'"
    ):
        read_interactions(tmp_path / "r.csv", file_format="xlsx")  # type: ignore[arg-type]


def test_a_table_of_blank_lines_has_no_header_and_no_data(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("\n\n\n")
    with pytest.raises(DataFormatError, match="has no header and no data; expected one inter"):
        read_interactions(tmp_path / "r.csv")


def test_ids_beyond_int64_stay_distinct_strings(tmp_path: Path) -> None:
    # As ints the 20-digit id would overflow; as strings both ids keep their identity.
    (tmp_path / "r.csv").write_text("user,item\n99999999999999999999,1\n5,2\n")
    data = read_interactions(tmp_path / "r.csv")
    assert data.users.kind == "str"
    assert data.users.ids.tolist() == ["5", "99999999999999999999"]
    np.testing.assert_array_equal(data.matrix.toarray(), [[0, 1], [1, 0]])


def test_parquet_columns_can_be_renamed_and_rows_are_counted_from_one(tmp_path: Path) -> None:
    import pandas as pd

    pd.DataFrame({"a": [1, 2], "b": [3, 4]}).to_parquet(tmp_path / "t.parquet")
    frame, rows = read_table(tmp_path / "t.parquet", names=["user", "item"])
    assert list(frame.columns) == ["user", "item"]
    assert frame["item"].tolist() == [3, 4]
    np.testing.assert_array_equal(rows, [1, 2])


# -------------------------------------------------------------------------- Interactions
def _duplicated_csr() -> sp.csr_matrix:
    # user 0 holds item 1 twice (values 1 and 2): not canonical CSR
    return sp.csr_matrix((np.array([1.0, 2.0]), np.array([1, 1]), np.array([0, 2, 2])), (2, 3))


def test_duplicate_matrix_entries_are_summed_unless_side_data_would_be_misaligned() -> None:
    data = Interactions(_duplicated_csr(), Vocabulary.range(2), Vocabulary.range(3))
    assert data.nnz == 1
    np.testing.assert_array_equal(data.matrix.toarray(), [[0, 3, 0], [0, 0, 0]])
    with pytest.raises(ValueError, match="unsorted or duplicate entries; build Interactions"):
        Interactions(
            _duplicated_csr(), Vocabulary.range(2), Vocabulary.range(3), ratings=_duplicated_csr()
        )
    with pytest.raises(TypeError, match="matrix must be a scipy sparse matrix, got ndarray"):
        Interactions(np.zeros((2, 3)), Vocabulary.range(2), Vocabulary.range(3))


def test_interactions_selections_check_their_arguments() -> None:
    users, items = Vocabulary.from_ids(["a", "b"]), Vocabulary.from_ids([7, 8, 9])
    data = Interactions.from_indices(users, items, [1, 0], [2, 0], values=[2.0, 3.0])
    with pytest.raises(ValueError, match="keep must be a boolean mask of length nnz=2"):
        data.select_entries(np.array([True]))
    with pytest.raises(IndexError, match=r"user indices must be in 0\.\.1"):
        data.select_users([2])
    with pytest.raises(ValueError, match="duplicates must be raise/first/last/sum, got 'max'"):
        Interactions.from_indices(users, items, [0, 0], [1, 1], duplicates="max")  # type: ignore
    with pytest.raises(ValueError, match=r"values must have one value per entry \(2\), got shape"):
        Interactions.from_indices(users, items, [0, 0], [1, 2], values=[1.0])
    # external ids, CSR order (user a, then b), and the matrix values on request
    frame = data.to_frame(value_col="w")
    assert frame.to_dict("list") == {"user": ["a", "b"], "item": [7, 9], "w": [3.0, 2.0]}


def test_select_users_refuses_a_boolean_mask_it_would_misread() -> None:
    # A cast to int64 read [True, False, True] as users 1, 0, 1: 'a' and 'b' instead of 'a', 'c'.
    data = Interactions.from_indices(
        Vocabulary.from_ids(["a", "b", "c"]), Vocabulary.range(2), [0, 1, 2], [0, 1, 0]
    )
    mask = np.array([True, False, True])
    with pytest.raises(TypeError, match="user indices must be integers, got a boolean mask"):
        data.select_users(mask)
    with pytest.raises(TypeError, match=r"user indices .* dtype float64"):
        data.rows(np.array([0.0, 0.7]))
    with pytest.raises(TypeError, match="user_idx must be integers, got dtype float64"):
        Interactions.from_indices(data.users, data.items, [0.5], [0])
    assert data.select_users(np.flatnonzero(mask)).users.ids.tolist() == ["a", "c"]
    with pytest.raises(TypeError, match="item_idx must be integers, got dtype float64"):
        time_weights_from_order([0, 0], [0.0, 1.5], (1, 2))


# ---------------------------------------------------------------------------- Vocabulary
def test_vocabulary_misuse_is_refused_or_answered_plainly() -> None:
    vocab = Vocabulary.from_ids([10, 30, 20])
    assert 20 in vocab and 1.5 not in vocab and "a" not in vocab  # wrong types: just absent
    assert vocab != [10, 20, 30]
    with pytest.raises(ValueError, match="missing must be 'raise', 'drop' or 'mask', got 'skip'"):
        vocab.index([10], missing="skip")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="indices must be integers, got dtype float64"):
        vocab.external([0.0])
    with pytest.raises(ValueError, match="a vocabulary cannot have -1 ids; n must be >= 0"):
        Vocabulary.range(-1)
    with pytest.raises(DataFormatError, match="got dtype complex128; convert them first"):
        Vocabulary.from_ids(np.array([1 + 2j]))


def test_vocabulary_from_a_scalar_or_a_matrix_of_ids() -> None:
    assert Vocabulary.from_ids(7).ids.tolist() == [7]
    assert Vocabulary.from_ids(np.array([[3, 1], [2, 1]])).ids.tolist() == [1, 2, 3]


# ----------------------------------------------------------------------------- sequences
# Three users: items 5, 6, 7 (oldest first), item 8, and no items at all.
INDPTR, ITEMS = np.array([0, 3, 4, 4]), np.array([5, 6, 7, 8])


def test_target_positions_skip_short_and_held_out_prefixes() -> None:
    # user 0 has targets at positions 1, 2 (one item before); holding out its last leaves 1;
    # user 1's only item has nothing before it; user 2 has no items.
    np.testing.assert_array_equal(prefix_target_positions(INDPTR, 1, 1), [1])
    np.testing.assert_array_equal(prefix_target_positions(INDPTR, 0, 0), [0, 1, 2, 3])
    np.testing.assert_array_equal(prefix_target_positions(INDPTR, 2, 0), [2])
    with pytest.raises(ValueError, match="min_history and exclude_last must be >= 0"):
        prefix_target_positions(INDPTR, -1)


@pytest.mark.parametrize(
    ("padding", "max_len", "history", "lengths"),
    [
        ("left", 3, [[9, 9, 9], [9, 5, 6], [9, 9, 9]], [0, 2, 0]),  # newest item last
        ("right", 3, [[9, 9, 9], [5, 6, 9], [9, 9, 9]], [0, 2, 0]),  # oldest item first
        ("left", 1, [[9], [6], [9]], [0, 1, 0]),  # only the newest item fits
    ],
)
def test_windows_pad_empty_and_short_histories(padding, max_len, history, lengths) -> None:
    # targets: user 0's first item (empty history), its third, and user 1's only item
    examples = examples_from_sequences(INDPTR, ITEMS, np.array([0, 2, 3]), max_len, 9, padding)
    assert examples.history.tolist() == history
    assert examples.lengths.tolist() == lengths
    assert examples.targets.tolist() == [5, 7, 8] and examples.users.tolist() == [0, 0, 1]


def test_sequence_windows_and_datasets_refuse_inconsistent_settings() -> None:
    with pytest.raises(ValueError, match="max_len must be >= 1, got 0"):
        examples_from_sequences(INDPTR, ITEMS, [0], 0, 9)
    with pytest.raises(ValueError, match="padding must be 'left' or 'right', got 'middle'"):
        examples_from_sequences(INDPTR, ITEMS, [0], 2, 9, "middle")  # type: ignore[arg-type]
    one = SequenceExamples(np.array([[0, 3]]), np.array([1]), np.array([1]))
    with pytest.raises(ValueError, match="users must have one entry per example"):
        SequenceExamples(one.history, one.lengths, one.targets, users=np.array([0, 1]))
    items = Vocabulary.range(3)
    with pytest.raises(ValueError, match=r"pad_id 2 collides .* \(0\.\.2\); use pad_id=n_items"):
        SequenceDataset(one, one, one, items, 2, "right")
    beyond = SequenceExamples(one.history, one.lengths, np.array([3]))
    with pytest.raises(ValueError, match=r"valid targets fall outside 0\.\.2"):
        SequenceDataset(one, beyond, one, items, 3, "right")


# -------------------------------------------------------------------------------- config
def test_config_files_and_overrides_a_user_gets_wrong(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file .*missing\.yaml not found"):
        load_config(str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match=r"override 'train.epochs=\[1': the value is not valid"):
        load_config("demo-diffrec", ["train.epochs=[1"])
    with pytest.raises(ConfigError, match=r"eval\.ks: every cut-off in ks must be >= 1"):
        load_config("demo-diffrec", ["eval.ks=[0, 10]"])
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping of settings, got list"):
        load_config(str(tmp_path / "list.yaml"))


def test_dataset_sources_resolve_under_recdiff_datasets_or_list_where_they_were_sought(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no shared/datasets here nor in the parent
    (tmp_path / "root" / "ml").mkdir(parents=True)
    monkeypatch.setenv("RECDIFF_DATASETS", str(tmp_path / "root"))
    assert resolve_source("datasets:ml") == tmp_path / "root" / "ml"
    with pytest.raises(FileNotFoundError, match=r"dataset 'nope' not found: no .*root/nope"):
        resolve_source("datasets:nope")
    monkeypatch.delenv("RECDIFF_DATASETS")
    with pytest.raises(FileNotFoundError, match=r"\(\$RECDIFF_DATASETS is not set\)"):
        resolve_source("datasets:nope")
    config = load_config("demo-popularity", ["data.format=csv", "data.source=gone.csv"])
    with pytest.raises(FileNotFoundError, match=r"gone\.csv not found"):
        check_source(config.data)


def test_a_dataset_found_outside_recdiff_datasets_is_said(tmp_path: Path, monkeypatch) -> None:
    """$RECDIFF_DATASETS names a folder without the dataset, ./shared/datasets has it: that one
    is read, as before, but no longer without a word (a mistyped variable read another copy)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shared" / "datasets" / "ml").mkdir(parents=True)
    (tmp_path / "mine").mkdir()
    monkeypatch.setenv("RECDIFF_DATASETS", str(tmp_path / "mine"))
    with pytest.warns(
        UserWarning, match=r"'ml' is not under \$RECDIFF_DATASETS \(.*mine\); reading"
    ):
        assert resolve_source("datasets:ml") == Path("shared/datasets/ml")
    (tmp_path / "mine" / "ml").mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_source("datasets:ml") == tmp_path / "mine" / "ml"
