"""What a new user met with ICLRec's Yelp and Sports files (``user item item ...`` lines, one
user a line, items oldest first), a format recdiff reads as ``data.format=sequences``.

Found by a trial on ``iclrec/Yelp.txt``: the file given as ``data.format=csv`` (the first guess
for a ``.txt`` of ids) to a next-item model was answered "set data.time_col", and to a model of
rows "column(s) ['user', 'item'] not found; the data has columns ['1 1 2 3 ...']" with no hint
that the file is separated by spaces, or that it is a sequence file; and ``--set
model.max_len=20`` (SASRec's own name for the history length) listed the model's keys without
saying that the setting is ``data.max_len``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from recdiff.config import load_config
from recdiff.config.loading import ConfigError
from recdiff.data.errors import DataFormatError
from recdiff.train.datasets import load_sequences, load_splits

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: Six users' lines as ICLRec writes them: the user id, then the items oldest first (a repeat
#: included, as Yelp's lines hold them).
LINES = ["1 1 2 3 4 3", "2 5 6 7 8", "3 2 9 10 11", "4 1 3 5 7", "5 12 12 2 4", "6 6 8 10 1"]


def _iclrec_file(path: Path) -> Path:
    path.write_text("\n".join(LINES) + "\n")
    return path


def test_the_file_reads_as_sequences_as_the_readme_says(tmp_path: Path) -> None:
    path = _iclrec_file(tmp_path / "Yelp.txt")
    sets = ["data.format=sequences", f"data.source={path}", "data.split=leave_one_out"]
    config = load_config("demo-sasrec", sets)
    examples, sequences = load_sequences(config.data)
    assert sequences.users.ids.tolist() == [1, 2, 3, 4, 5, 6]
    first = sequences.item_idx[sequences.indptr[0] : sequences.indptr[1]]
    assert sequences.items.ids[first].tolist() == [1, 2, 3, 4, 3]  # in place, repeat kept
    assert len(examples.test) == 6 and len(examples.valid) == 6


def test_the_file_given_as_csv_to_a_next_item_model_names_the_sequence_format(
    tmp_path: Path,
) -> None:
    path = _iclrec_file(tmp_path / "Yelp.txt")
    sets = ["data.format=csv", f"data.source={path}", "data.split=leave_one_out"]
    config = load_config("demo-sasrec", sets)
    with pytest.raises(ValueError, match=r"set data\.time_col") as error:
        load_sequences(config.data)
    # before: only "set data.time_col", a column this file does not have
    assert "data.format=sequences, not csv" in str(error.value)


@pytest.mark.parametrize("file_format", ["csv", "tsv"])
def test_the_file_given_as_a_table_to_a_model_of_rows_names_spaces_and_sequences(
    tmp_path: Path, file_format: str
) -> None:
    path = _iclrec_file(tmp_path / "Yelp.txt")
    sets = [f"data.format={file_format}", f"data.source={path}", "data.split=random"]
    with pytest.raises(DataFormatError) as error:
        load_splits(load_config("demo-ease", sets).data)
    message = str(error.value)
    assert "the data has columns ['1 1 2 3 4 3']" in message
    # before: no hint at all for a space-separated file (there was one for ; | tab and comma)
    assert "one column holding spaces" in message
    assert "is data.format=sequences" in message and '--set "data.sep= "' in message


def test_the_hinted_space_separator_reads_a_space_separated_table(tmp_path: Path) -> None:
    """The other half of the hint: a ``user item time`` table separated by spaces reads when
    the hinted setting is typed as shown."""
    path = tmp_path / "log.txt"
    rows = [f"u{u} i{(u + t) % 5} {t}" for u in range(4) for t in range(4)]
    path.write_text("user item time\n" + "\n".join(rows) + "\n")
    sets = ["data.format=csv", f"data.source={path}", "data.time_col=time", "data.split=random"]
    with pytest.raises(DataFormatError, match="one column holding spaces"):
        load_splits(load_config("demo-ease", sets).data)
    splits = load_splits(load_config("demo-ease", [*sets, "data.sep= "]).data)
    assert sorted(splits.users.ids) == ["u0", "u1", "u2", "u3"]


@pytest.mark.parametrize(
    ("key", "where"),
    [("model.max_len", "data.max_len"), ("model.lr", "train.lr"), ("eval.epochs", "train.epochs")],
)
def test_a_key_set_in_the_wrong_section_names_its_section(key: str, where: str) -> None:
    """SASRec's history length is its model's ``max_len`` in the papers' code; here it is
    ``data.max_len``. Before, ``--set model.max_len=20`` listed the model's keys only."""
    with pytest.raises(ConfigError) as error:
        load_config("sasrec-beauty", [f"{key}=20"])
    message = str(error.value)
    assert f"{key}: unknown key" in message
    assert f"is a setting of another section: {where}" in message


def test_a_typo_within_its_section_gets_no_other_section() -> None:
    with pytest.raises(ConfigError) as error:
        load_config("sasrec-beauty", ["train.epoch=5"])
    assert "did you mean 'epochs'?" in str(error.value)
    assert "another section" not in str(error.value)


@pytest.mark.parametrize(
    ("preset", "load", "error", "what"),
    [
        ("diffrec-yelp", load_splits, DataFormatError, "is a file, but data.format=diffrec"),
        ("dreamrec-zhihu", load_sequences, FileNotFoundError, "is not a folder: a DreamRec data"),
    ],
)
def test_the_file_given_to_a_folder_preset_names_the_sequence_format(
    tmp_path: Path, preset: str, load, error: type[Exception], what: str
) -> None:
    """``diffrec-yelp`` is the preset a user with ICLRec's Yelp.txt reaches for; its DiffRec
    folder format listed every table format as the fix, not the one that reads the file, and a
    DreamRec preset described its folder only."""
    path = _iclrec_file(tmp_path / "Yelp.txt")
    with pytest.raises(error) as caught:
        load(load_config(preset, [f"data.source={path}"]).data)
    assert what in str(caught.value)
    assert "is data.format=sequences, with data.split=leave_one_out" in str(caught.value)


def test_a_missing_dreamrec_folder_gets_no_sequence_file_hint(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as error:
        load_sequences(load_config("dreamrec-zhihu", [f"data.source={tmp_path / 'no'}"]).data)
    assert "not found" in str(error.value) and "sequences" not in str(error.value)
