"""data.sep: a CSV separated by something else than commas (spreadsheets write semicolons where
the comma is the decimal mark) is read when the config says so, and named when it does not; and
data.decimal: such a file's numbers, written 3,5, read as numbers."""

import re
import shlex

import numpy as np
import pytest

from recdiff.config import ConfigError, load_config
from recdiff.data.errors import DataFormatError
from recdiff.train.datasets import load_splits

ROWS = [("u1", "a", 5, 1), ("u1", "b", 4, 2), ("u2", "a", 3, 3), ("u2", "c", 5, 4)]


def _config(path, *extra):
    sets = [
        "data.format=csv",
        f"data.source={path}",
        "data.time_col=t",
        "data.split=random",
        "data.ratios=[0.5, 0.25, 0.25]",
        *extra,
    ]
    return load_config("demo-popularity", sets).data


def _write(path, sep):
    lines = [sep.join(["user", "item", "rating", "t"])]
    lines += [sep.join(str(value) for value in row) for row in ROWS]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_semicolon_file_reads_as_its_comma_twin(tmp_path):
    comma = load_splits(_config(_write(tmp_path / "comma.csv", ",")))
    semicolon = load_splits(_config(_write(tmp_path / "semi.csv", ";"), "data.sep=;"))
    train = semicolon.train
    assert list(train.users.ids) == ["u1", "u2"] and list(train.items.ids) == ["a", "b", "c"]
    for split in ("train", "valid", "test"):
        mine, twin = getattr(semicolon, split), getattr(comma, split)
        np.testing.assert_array_equal(mine.matrix.toarray(), twin.matrix.toarray())
    parts = (semicolon.train, semicolon.valid, semicolon.test, semicolon.dropped)
    assert sum(part.nnz for part in parts) == len(ROWS)  # dropped: held out, item not in train


def test_a_semicolon_file_read_as_csv_names_the_setting(tmp_path):
    with pytest.raises(DataFormatError) as error:
        load_splits(_config(_write(tmp_path / "semi.csv", ";")))
    message = str(error.value)
    assert "the data has columns ['user;item;rating;t']" in message
    assert "one column holding semicolons" in message and "data.sep=';'" in message


def test_a_missing_column_of_a_well_read_file_gets_no_separator_hint(tmp_path):
    path = _write(tmp_path / "comma.csv", ",")
    with pytest.raises(DataFormatError) as error:
        load_splits(_config(path, "data.user_col=customer"))
    assert "column(s) ['customer'] not found" in str(error.value)
    assert "data.sep" not in str(error.value)


def test_sep_belongs_to_csv_and_tsv_files_only():
    with pytest.raises(ConfigError, match=r"data.sep sets the separator of a csv or tsv file"):
        load_config("demo-diffrec", ["data.sep=;"])
    # An empty separator is refused (an empty --set value is null: the format's separator).
    with pytest.raises(ConfigError, match=r"data.sep: String should have at least 1 character"):
        load_config("demo-popularity", ["data.format=csv", "data.source=x.csv", "data.sep=''"])
    assert load_config("demo-popularity", ["data.format=csv", "data.source=x.csv", "data.sep="])


@pytest.mark.parametrize(("sep", "name"), [("|", "pipes"), (";", "semicolons"), ("\t", "tabs")])
def test_the_separator_the_hint_suggests_reads_the_file_when_typed(tmp_path, sep, name):
    """The hint said ``set data.sep='|'``, which a shell passes on as ``data.sep=|``: YAML's
    block scalar, an empty separator. The command-line form it gives now works as typed."""
    path = _write(tmp_path / "other.csv", sep)
    with pytest.raises(DataFormatError) as error:
        load_splits(_config(path))
    message = str(error.value)
    assert f"one column holding {name}" in message
    typed = re.search(r"set data\.sep: --set ('[^']*'|\"[^\"]*\") on the command line", message)
    assert typed, message
    read = load_splits(_config(path, shlex.split(typed.group(1))[0]))
    twin = load_splits(_config(_write(tmp_path / "comma.csv", ",")))
    np.testing.assert_array_equal(read.train.matrix.toarray(), twin.train.matrix.toarray())


def test_a_comma_decimal_file_reads_its_ratings_with_data_decimal(tmp_path):
    """A spreadsheet's CSV where the comma is the decimal mark: columns by semicolons, ratings
    as 3,5. data.sep alone read them as text and refused them; data.decimal reads them."""
    path = tmp_path / "semi.csv"
    rows = [
        ("u1", "a", "4,5", 1),
        ("u1", "b", "3,5", 2),
        ("u2", "a", "4", 3),
        ("u2", "c", "5,0", 4),
    ]
    path.write_text("user;item;rating;t\n" + "".join(";".join(map(str, r)) + "\n" for r in rows))
    keep = ["data.sep=;", "data.rating_col=rating", "data.min_rating=4"]
    with pytest.raises(DataFormatError, match=r"values: '4,5', '3,5', '5,0'") as error:
        load_splits(_config(path, *keep))
    assert "set data.decimal=','" in str(error.value)
    splits = load_splits(_config(path, *keep, "data.decimal=','"))
    parts = (splits.train, splits.valid, splits.test, splits.dropped)
    # 3,5 is below min_rating 4 (read as 35 it would be kept): u1's b is the one row dropped
    assert sum(part.nnz for part in parts) == 3
    assert list(splits.train.items.ids) == ["a", "c"]


def test_decimal_needs_a_text_table_with_another_separator():
    base = ["data.format=csv", "data.source=x.csv", "data.decimal=','"]
    with pytest.raises(ConfigError, match=r"is also the column separator.*data.sep=';'"):
        load_config("demo-popularity", base)
    assert load_config("demo-popularity", [*base, "data.sep=;"]).data.decimal == ","
    tsv = ["data.format=tsv", "data.source=x.tsv", "data.decimal=','"]
    assert load_config("demo-popularity", tsv).data.decimal == ","
    with pytest.raises(ConfigError, match=r"data.decimal sets the decimal mark of a csv or tsv"):
        load_config("demo-popularity", ["data.format=parquet", "data.source=x.parquet", base[2]])
