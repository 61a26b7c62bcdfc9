"""``recdiff presets``: a table of every preset's model and data, one preset's file, or its
resolved settings."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from recdiff.cli.main import app
from recdiff.config import RunConfig, list_presets, load_config, preset_text
from recdiff.config.models import validate_model_params

runner = CliRunner()


def test_the_table_names_each_presets_model_and_data():
    result = runner.invoke(app, ["presets"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1:] for line in result.output.splitlines() if line}
    assert rows["preset"] == ["model", "data"]
    assert rows["ldiffrec-ml1m-tuned"] == ["ldiffrec", "datasets:diffrec/ml-1m_clean"]
    assert rows["sasrec-beauty"] == ["sasrec", "datasets:iclrec/Beauty.txt"]
    assert rows["demo-dreamrec"] == ["dreamrec", "built-in", "demo"]
    assert set(list_presets()) <= set(rows)


def test_names_only_for_scripts():
    result = runner.invoke(app, ["presets", "--names"])
    assert result.exit_code == 0 and result.output.split("\n")[:-1] == list_presets()


def test_one_preset_is_its_file_comment_included():
    result = runner.invoke(app, ["presets", "dreamrec-beauty"])
    assert result.exit_code == 0
    assert result.output == preset_text("dreamrec-beauty")
    assert result.output.startswith("# DreamRec on Amazon Beauty")


def test_resolved_lists_every_setting_as_a_runs_config_yaml():
    result = runner.invoke(app, ["presets", "tdiffrec-ml1m", "--resolved"])
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.output)
    assert shown["train"]["precision"] == "fp32"  # a default the preset file does not write
    assert "precision" not in preset_text("tdiffrec-ml1m")
    # ... and the model's: DiffRec's step embedding and T' (the preset writes neither)
    assert shown["model"]["time_dim"] == 10 and "time_dim" not in preset_text("tdiffrec-ml1m")
    assert shown["model"]["diffusion"]["inference_noise_steps"] == 0
    preset = load_config("tdiffrec-ml1m")
    back = RunConfig.model_validate(shown)
    assert back.model_dump(exclude={"model"}) == preset.model_dump(exclude={"model"})


@pytest.mark.parametrize(
    "name", [n for n in list_presets() if load_config(n).model.name != "multvae"]
)
def test_every_presets_resolved_model_section_lists_all_its_settings_and_reads_back(name):
    """A user's walk found the model section showing only what the preset wrote. The shown
    settings build the model the preset builds (Mult-VAE's, read from train.* too, stay as
    written)."""
    result = runner.invoke(app, ["presets", name, "--resolved"])
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.output)["model"]
    preset = load_config(name).model
    settings = validate_model_params(preset.name, preset.params())
    assert set(shown) == {"name", *type(settings).model_fields}
    again = validate_model_params(shown.pop("name"), shown)
    assert again == settings


def test_an_unknown_name_and_resolved_without_a_name_are_refused():
    result = runner.invoke(app, ["presets", "difrec-ml1m"])
    assert result.exit_code == 2 and "no preset 'difrec-ml1m'" in result.output
    assert "(did you mean 'diffrec-ml1m'?)" in result.output
    # train says it too, and lists the presets as presets does (it printed a Python list)
    result = runner.invoke(app, ["train", "difrec-ml1m"])
    assert result.exit_code == 2
    assert "nor a preset (did you mean 'diffrec-ml1m'?); presets: demo-diffrec, " in result.output
    assert "diffrec-ml1m" in result.output
    result = runner.invoke(app, ["presets", "--resolved"])
    assert result.exit_code == 2 and "give its NAME" in result.output


@pytest.mark.parametrize("name", ["demo-multvae", "multvae-ml1m", "demo-ease", "mostpop-zhihu"])
def test_resolved_train_lists_only_what_the_model_reads(name):
    """``--resolved`` showed Mult-VAE and EASE the whole train section (eval_every 5, the
    optimizer, ...), settings they never read; Mult-VAE's own ones (max_epochs, ...) were not
    shown at all. Now the left-out keys are named in a closing comment, and the view still reads
    back as a config that builds the same model."""
    from recdiff.config.models import multvae_params

    result = runner.invoke(app, ["presets", name, "--resolved"])
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.output)
    preset = load_config(name)
    comment = " ".join(line[2:] for line in result.output.splitlines() if line.startswith("# "))
    assert "eval_every" not in shown["train"] and "train.eval_every" in comment
    assert "optimizer" not in shown["train"] and "train.optimizer" in comment
    assert shown["train"]["seed"] == preset.train.seed
    back = RunConfig.model_validate(shown)
    if preset.model.name == "multvae":
        want_epochs = {"demo-multvae": 100, "multvae-ml1m": 200}  # the preset's, the default
        assert shown["model"]["max_epochs"] == want_epochs[name]
        assert "train.epochs as model.max_epochs" in comment
        assert "seed" not in shown["model"]  # train.seed's
        again = validate_model_params("multvae", multvae_params(back.model.params(), back.train))
        want = validate_model_params("multvae", multvae_params(preset.model.params(), preset.train))
        assert again == want
    else:
        assert "no training loop" in comment
        assert validate_model_params(back.model.name, back.model.params()) == (
            validate_model_params(preset.model.name, preset.model.params())
        )
