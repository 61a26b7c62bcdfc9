"""The YAML a user writes (config files, --set values, search spaces) is read as YAML 1.2."""

import pytest
import yaml

from recdiff.config import ConfigError, load_config
from recdiff.config.yaml_io import load_yaml


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("010", 10),  # YAML 1.1: octal 8
        ("0o10", 8),
        ("0x1f", 31),
        ("-0x10", "-0x10"),  # the core schema signs decimal integers only
        ("1_000", 1000),
        ("1:30", "1:30"),  # YAML 1.1: 90, base 60
        ("1e-3", 0.001),  # YAML 1.1: the text "1e-3"
        ("-.5", -0.5),
        ("true", True),
        ("FALSE", False),
        ("yes", "yes"),  # YAML 1.1: True
        ("off", "off"),  # YAML 1.1: False
        ("n", "n"),
        ("~", None),
    ],
)
def test_scalars_read_as_yaml_1_2(text, expected):
    value = load_yaml(text)
    assert value == expected and type(value) is type(expected)


def test_nan_and_infinity_are_floats():
    assert load_yaml(".inf") == float("inf")
    assert load_yaml(".nan") != load_yaml(".nan")  # NaN


def test_a_key_written_twice_is_refused_and_merges_are_not():
    with pytest.raises(yaml.YAMLError, match="key 'lr' appears twice; keep one of them"):
        load_yaml("lr: 1\nlr: 2")
    merged = load_yaml("base: &b {lr: 1, steps: 5}\nrun: {<<: *b, lr: 2}")
    assert merged["run"] == {"lr": 2, "steps": 5}


def test_a_yaml_1_1_boolean_word_is_text_for_a_text_setting():
    # model.name=no used to reach validation as False ("Input should be a valid string").
    with pytest.raises(ConfigError, match=r"model\.name") as error:
        load_config("demo-diffrec", ["model.name=no"])
    assert "'no'" in str(error.value)


def test_a_boolean_setting_still_takes_yes_and_no():
    # pydantic reads the words yes/no/on/off as booleans for a boolean field.
    assert load_config("demo-diffrec", ["train.progress=no"]).train.progress is False
    assert load_config("demo-diffrec", ["train.progress=on"]).train.progress is True
