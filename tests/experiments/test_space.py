"""Search-space files: validation errors that name the key, shipped spaces, sampling and decoding."""

import pytest

from recdiff.config import load_config
from recdiff.experiments.space import (
    CategoricalParam,
    FloatParam,
    SearchSpace,
    SpaceError,
    get_dotted,
    list_spaces,
    load_space,
)
from recdiff.experiments.trials import trial_config


def _write(tmp_path, text):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("train.lr: {type: uniform, low: 1, high: 2}", ["train.lr", "float, int or categorical"]),
        ("train.lr: {low: 1, high: 2}", ["train.lr", "float, int or categorical"]),
        ("train.lr: {type: float, low: 1e-2, high: 1e-3}", ["train.lr", "low (0.01) must be"]),
        ("model.diffusion.steps: {type: int, low: 5, high: 5}", ["diffusion.steps", "low (5)"]),
        (
            "model.hidden_dims: {type: categorical, choices: []}",
            ["model.hidden_dims", "at least 1"],
        ),
        ("train.lr: {type: float, low: 0, high: 1, log: true}", ["train.lr", "low > 0"]),
        ("train.lr: {type: float, low: 1, high: 2, log: 1}", ["train.lr", "log", "boolean"]),
        ("train.epochs: {type: int, low: 1, high: 9, log: 'yes'}", ["epochs", "log", "boolean"]),
        ("train.lr: {type: float, low: 1, high: 2, hgih: 3}", ["train.lr", "hgih"]),
        ("model.dropout: {type: categorical, choices: [0.1, 0.1]}", ["model.dropout", "distinct"]),
        ("train.lr: 0.001", ["train.lr", "must be a mapping"]),
        ("train..lr: {type: float, low: 1, high: 2}", ["train..lr", "dotted setting paths"]),
        ("", ["must map setting paths"]),
        ("[1, 2]", ["must map setting paths"]),
        ("a: {type: categorical, choices: [1], fraction_of: a}", ["'a'", "fraction of itself"]),
        ("a: [unclosed", ["not valid YAML"]),
        # Before, these reached Optuna, whose sampler failed with an OverflowError traceback.
        ("train.lr: {type: float, low: 1e-5, high: .inf, log: true}", ["train.lr", "finite"]),
        ("train.lr: {type: float, low: -.inf, high: 1}", ["train.lr", "low (-inf)", "finite"]),
        ("model.dropout: {type: float, low: -1e308, high: 1e308}", ["model.dropout", "too wide"]),
        # Before, YAML's last value won silently: the search ran over a range nobody meant.
        (
            "train.lr: {type: float, low: 1e-5, high: 1e-3}\n"
            "model.dropout: {type: float, low: 0, high: 0.5}\n"
            "train.lr: {type: float, low: 1e-2, high: 1e-1}\n",
            ["not valid YAML", "key 'train.lr' appears twice", "line 3"],
        ),
        (
            "model.dropout: {type: float, low: 0, high: 0.5, low: 0.1}",
            ["not valid YAML", "key 'low' appears twice", "line 1"],
        ),
        # Before, the trial's run name silently replaced the sampled value.
        ("name: {type: categorical, choices: [a, b]}", ["key 'name'", "names each trial's run"]),
        # Before, pydantic read YAML's true/false as 1 and 0 (a bool is an int in Python).
        ("train.lr: {type: float, low: true, high: 2}", ["train.lr", "low: must be a number"]),
        ("model.dropout: {type: float, low: 0, high: false}", ["model.dropout", "high: must be"]),
        ("train.lr: {type: float, low: 0.1, high: 0.5, step: true}", ["train.lr", "step: must"]),
        (
            "model.diffusion.steps: {type: int, low: false, high: 10}",
            ["model.diffusion.steps", "low: must be a number, not a boolean (false)"],
        ),
        ("model.diffusion.steps: {type: int, low: 2, high: 10, step: true}", ["step: must be"]),
        (
            "a: {type: categorical, choices: [0, true], fraction_of: model.diffusion.steps}",
            ["  a: with fraction_of", "choices must be numbers", "not true"],
        ),
        # Before, Optuna warned before every trial and sampled a range cut short: 1e-4 alone,
        # 50..150.
        (
            "train.lr: {type: float, low: 1e-4, high: 1e-3, step: 0.5}",
            [
                "train.lr: step 0.5 does not divide the range 0.0001..0.001, which would end at "
                "0.0001: set high to 0.0001 or 0.5001, or change the step"
            ],
        ),
        (
            "train.batch_size: {type: int, low: 50, high: 200, step: 100}",
            [
                "step 100 does not divide the range 50..200, which would end at 150: set high to 150 "
            ],
        ),
    ],
)
def test_invalid_space_files_fail_naming_the_key(tmp_path, text, expected):
    with pytest.raises(SpaceError) as error:
        load_space(_write(tmp_path, text))
    for part in expected:
        assert part in str(error.value)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("train.lr: {type: float, low: 1e-5\nmodel.dropout: [1,\n", "line 1, column 11:"),
        ("train.lr: {type: float, low: 1, high: 2}\n\t- 1\n", "line 2, column 1:"),
        ('train.lr: "\x07"\n', "position 11"),  # a character YAML refuses outright
    ],
)
def test_yaml_errors_name_the_space_file_and_keep_the_position(tmp_path, text, where):
    """Before, the marks said ``in "<unicode string>"`` though the line above named the file."""
    path = _write(tmp_path, text)
    with pytest.raises(SpaceError) as error:
        load_space(path)
    message = str(error.value)
    assert "<unicode string>" not in message
    assert f'in "{path}", {where}' in message


def test_name_is_refused_in_any_space_and_other_keys_reach_the_trial():
    """``name`` is refused however the space is built; other keys reach the trial config."""
    spec = {"type": "categorical", "choices": ["x"]}
    with pytest.raises(SpaceError, match="key 'name' cannot be searched"):
        SearchSpace.from_dict({"name": spec}, "test space")
    progress = {"type": "categorical", "choices": [True, False]}
    with pytest.raises(SpaceError, match=r"key 'train\.progress' cannot be searched: a search"):
        SearchSpace.from_dict({"train.progress": progress}, "test space")
    base = load_config("demo-diffrec").model_dump(mode="json")
    space = SearchSpace.from_dict({"train.optimizer": {**spec, "choices": ["adam"]}})
    config = trial_config(base, space.settings({"train.optimizer": "adam"}, base), "trial7")
    assert (config.name, config.train.optimizer) == ("trial7", "adam")


def test_unknown_space_names_list_the_shipped_ones(tmp_path):
    with pytest.raises(SpaceError, match="diffrec-paper"):
        load_space("no-such-space")
    with pytest.raises(SpaceError, match="not found"):
        load_space(tmp_path / "missing.yaml")


def test_shipped_spaces_load_with_numbers_as_numbers():
    assert {"diffrec-paper", "dreamrec-paper"} <= set(list_spaces())
    space = load_space("diffrec-paper")
    lr = space.params["train.lr"]
    assert isinstance(lr, FloatParam) and (lr.low, lr.high, lr.log) == (1e-5, 1e-3, True)
    scale = space.params["model.diffusion.noise_scale"]
    assert isinstance(scale, CategoricalParam) and scale.choices == [1e-5, 1e-4, 5e-3, 1e-2, 1e-1]
    assert space.params["model.hidden_dims"].choices == [[300], [600, 200, 600], [1000]]
    assert space.params["model.diffusion.inference_noise_steps"].fraction_of == (
        "model.diffusion.steps"
    )


def test_list_choices_reach_optuna_as_text_and_come_back_as_lists():
    optuna = pytest.importorskip("optuna")
    space = load_space("diffrec-paper")
    hidden = space.params["model.hidden_dims"]
    assert hidden.encoded and hidden.optuna_choices() == ["[300]", "[600, 200, 600]", "[1000]"]
    fixed = {
        "train.lr": 3e-4,
        "model.hidden_dims": "[600, 200, 600]",
        "model.diffusion.steps": 50,
        "model.diffusion.noise_scale": 1e-2,
        "model.diffusion.noise_min": 1e-3,
        "model.diffusion.noise_max": 1e-2,
        "model.diffusion.inference_noise_steps": 0.25,
    }
    values = space.suggest(optuna.trial.FixedTrial(fixed))
    base = load_config("diffrec-ml1m").model_dump(mode="json")
    settings = space.settings(values, base)
    assert settings["model.hidden_dims"] == [600, 200, 600]
    assert settings["model.diffusion.inference_noise_steps"] == 12  # floor(0.25 * 50): T/4
    config = trial_config(base, settings, "trial")
    assert config.model.params()["hidden_dims"] == [600, 200, 600]
    assert config.model.params()["diffusion"]["inference_noise_steps"] == 12
    assert config.train.lr == 3e-4


def test_invalid_combinations_are_reported_with_the_reason():
    base = load_config("demo-diffrec").model_dump(mode="json")
    settings = {"model.diffusion.noise_min": 1e-2, "model.diffusion.noise_max": 5e-3}
    with pytest.raises(ValueError, match=r"noise_min .* must be smaller than noise_max"):
        trial_config(base, settings, "trial")


def test_keys_that_fit_no_config_are_caught_before_the_search():
    space = SearchSpace.from_dict(
        {"model.diffusion.steps": {"type": "int", "low": 2, "high": 10}}, "test space"
    )
    base = load_config("demo-ease").model_dump(mode="json")
    with pytest.raises(SpaceError, match=r"model\.diffusion\.steps"):
        space.check_against(base, base, lambda raw: trial_config(raw, {}, "x"))
    # A key is fine as long as some value of its range fits (noise_max 5e-3 alone would not).
    diffrec = load_config("demo-diffrec").model_dump(mode="json")
    fits = SearchSpace.from_dict(
        {"model.diffusion.noise_max": {"type": "categorical", "choices": [5e-3, 1e-2]}}
    )
    fits.check_against(diffrec, diffrec, lambda raw: trial_config(raw, {}, "x"))
    assert get_dotted(diffrec, "model.diffusion.noise_min") == 0.005


@pytest.mark.parametrize(
    ("key", "guess"),
    [("train.lrr", "lr"), ("model.hidden_dimz", "hidden_dims"), ("model.diffusion.stepz", "steps")],
)
def test_a_typo_in_a_space_key_gets_the_did_you_mean_of_set(key, guess):
    """``train.lrr`` said "train.lrr: Extra inputs are not permitted"; --set said which key."""
    space = SearchSpace.from_dict({key: {"type": "float", "low": 1e-5, "high": 1e-3}}, "sp.yaml")
    base = load_config("demo-diffrec").model_dump(mode="json")
    with pytest.raises(SpaceError) as caught:
        space.check_against(base, base, lambda raw: trial_config(raw, {}, "x"))
    with pytest.raises(ValueError) as set_caught:
        load_config("demo-diffrec", [f"{key}=1e-4"])
    said_by_set = str(set_caught.value).splitlines()[1].partition(f"{key}: ")[2]
    assert said_by_set.startswith(f"unknown key; did you mean {guess!r}? (this section takes: ")
    assert str(caught.value) == f"sp.yaml: key {key!r}: {said_by_set}"


def test_fractions_resolve_against_model_defaults_when_the_config_omits_them():
    from recdiff.experiments.trials import lookup_view

    # null first: the preset's diffusion section goes, with its steps
    config = load_config(
        "demo-diffrec", ["model.diffusion=null", "model.diffusion={noise_scale: 0.01}"]
    )
    space = SearchSpace.from_dict(
        {
            "model.diffusion.inference_noise_steps": {
                "type": "categorical",
                "choices": [0, 0.5],
                "fraction_of": "model.diffusion.steps",
            }
        }
    )
    settings = space.settings({"model.diffusion.inference_noise_steps": 0.5}, lookup_view(config))
    assert settings == {"model.diffusion.inference_noise_steps": 20}  # half of the default T = 40


def test_steps_that_divide_the_range_decimally_are_kept(tmp_path):
    text = "model.dropout: {type: float, low: 0.1, high: 0.9, step: 0.2}\n"
    text += "train.batch_size: {type: int, low: 50, high: 250, step: 100}\n"
    space = load_space(_write(tmp_path, text))  # 0.8 / 0.2 is not 4 in binary floating point
    assert space.params["model.dropout"].step == 0.2
