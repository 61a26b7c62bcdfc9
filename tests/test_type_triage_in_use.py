"""Failures a static type check pointed at, or that turned up beside its reports, met as a user
meets them: a value that can be None on some input path ends in the library's own message, not
in an AttributeError, TypeError or KeyError from inside it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from recdiff.cli.main import app
from recdiff.config import ConfigError, load_config
from recdiff.config.schema import DataConfig
from recdiff.train.datasets import load_sequences_and_low_ratings

runner = CliRunner()


def test_low_ratings_of_a_table_without_ratings_name_the_setting(tmp_path):
    """The low ratings of a next-item run's table (exported) were read from
    ``read.ratings.data`` of a table read without a rating column: AttributeError on None,
    where the loaders say which key to set."""
    table = tmp_path / "log.csv"
    table.write_text("user,item,time\n1,1,1\n1,2,2\n1,3,3\n2,1,1\n2,3,2\n2,2,3\n")
    data = DataConfig(
        format="csv", source=str(table), time_col="time", min_rating=4, split="leave_one_out"
    )
    with pytest.raises(ValueError, match="rating column"):
        load_sequences_and_low_ratings(data)


def test_multvae_train_section_set_to_null_is_a_config_error():
    """The preset's train keys were copied to Mult-VAE's from ``raw["train"]`` even once
    ``train=null`` had removed the section: a TypeError, where any other model gets the
    config error naming ``train``."""
    with pytest.raises(ConfigError, match="train"):
        load_config("demo-multvae", ["train=null"])


def test_multvae_train_section_replaced_keeps_only_the_new_keys():
    """``train=null`` then ``train.batch_size=400`` (the way to replace a section): the preset's
    ``train.epochs`` is gone, and was looked up anyway (KeyError)."""
    config = load_config("demo-multvae", ["train=null", "train.batch_size=400"])
    assert config.model.params()["batch_size"] == 400
    assert "max_epochs" not in config.model.params()


def test_demo_ddpm_refuses_steps_its_betas_cannot_take(tmp_path):
    """The toy's betas scale as 1000 / T: ``--steps 20`` (min was 2) ended in a ScheduleError
    traceback about betas the command does not let one set."""
    out = tmp_path / "ddpm.png"
    args = ["demo", "ddpm", "--out", str(out), "--iterations", "1", "--steps", "20"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "--steps" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not out.exists()
