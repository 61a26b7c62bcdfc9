"""What a user's walk through the commands found (2026-11-30): messages that misled or input
read without a word. Each test failed before its fix."""

from __future__ import annotations

import importlib

import pandas as pd
import pytest
from typer.testing import CliRunner

from recdiff.cli.main import app
from recdiff.config import load_config
from recdiff.config.loading import ConfigError
from recdiff.data.errors import DataFormatError
from recdiff.data.frames import time_column
from recdiff.models.base import SavedModel
from recdiff.serving.ids import split_id_list

runner = CliRunner()


@pytest.mark.parametrize("text", ['"i1', '"i1,i2', 'a,"b"c'])
def test_an_unclosed_or_misplaced_quote_in_an_id_list_is_an_error(text):
    """``'"i1'`` was read as the id ``i1``, and ``'"i1,i2'`` as the one id ``i1,i2``, which
    then was "not in the catalogue" without a word about the quote."""
    with pytest.raises(ValueError, match=r"--history cannot be read .* e\.g\. '\"a,b\",c'"):
        split_id_list(text, "--history")


def test_quoted_ids_holding_commas_still_read():
    assert split_id_list('"a,b", c,"d"', "--history") == ["a,b", "c", "d"]
    assert split_id_list('x"y,z', "--history") == ['x"y', "z"]  # a quote inside an id is kept


def test_loading_a_run_folder_as_a_model_names_the_model_folder(tmp_path):
    runs = tmp_path / "runs"
    trained = runner.invoke(app, ["train", "demo-popularity", "--quiet", "--runs-dir", str(runs)])
    assert trained.exit_code == 0, trained.output
    (run,) = [path for path in runs.iterdir() if not path.name.startswith(".")]
    with pytest.raises(FileNotFoundError, match="is a run folder, whose model is in") as error:
        SavedModel.load(run)
    assert str(run / "model") in str(error.value)
    # the loader it names exists where it says, and loads the run
    named = str(error.value).split("run with ")[1].split(".load(")[0]
    module, _, cls = named.rpartition(".")
    assert getattr(importlib.import_module(module), cls).load(run) is not None
    assert SavedModel.load(run / "model") is not None
    with pytest.raises(FileNotFoundError, match="a saved model folder"):
        SavedModel.load(tmp_path)  # neither: the message as before


def test_duplicates_on_a_next_item_config_say_how_to_set_them_per_config():
    with pytest.raises(ConfigError) as error:
        load_config("demo-sasrec", ["data.duplicates=first"])
    message = str(error.value)
    assert "set it to raise, the default" in message
    assert "--set CONFIG:data.duplicates=first" in message
    load_config("demo-sasrec", ["data.duplicates=raise"])  # what the message offers reads


def test_a_word_among_numeric_times_says_dates_are_read_too():
    frame = pd.DataFrame({"timestamp": ["1700000000", "1700000010", "yesterday"]})
    with pytest.raises(DataFormatError) as error:
        time_column(frame, "timestamp")
    message = str(error.value)
    assert "'yesterday'" in message and "ISO 8601 dates such as 2024-05-01T13:00:00" in message
