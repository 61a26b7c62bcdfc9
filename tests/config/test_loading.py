"""Presets, YAML files and dotted overrides; unknown keys and bad values fail with their path."""

import re
import shlex

import pytest
import yaml

from recdiff.config import ConfigError, apply_overrides, list_presets, load_config


def test_every_preset_validates():
    names = list_presets()
    assert {"diffrec-ml1m", "diffrec-yelp", "diffrec-amazon-book", "demo-diffrec"} <= set(names)
    for name in names:
        assert load_config(name).name == name


def test_released_ml1m_settings():
    config = load_config("diffrec-ml1m")
    diffusion = config.model.params()["diffusion"]
    assert config.model.params()["hidden_dims"] == [600, 200, 600]
    assert (diffusion["steps"], diffusion["noise_scale"]) == (40, 0.005)
    assert (diffusion["noise_min"], diffusion["noise_max"]) == (0.005, 0.01)
    assert (config.train.lr, config.train.batch_size, config.train.patience) == (1e-3, 400, 20)
    assert config.eval.averaging == "all_users"


def test_overrides_set_nested_values_parsed_as_yaml():
    config = load_config(
        "demo-diffrec", ["train.epochs=3", "model.diffusion.steps=4", "model.hidden_dims=[8, 4]"]
    )
    assert config.train.epochs == 3
    assert config.model.params()["diffusion"]["steps"] == 4
    assert config.model.params()["hidden_dims"] == [8, 4]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.epochz=3"], "train.epochz"),
        (["model.diffusion.noise_min=0.5", "model.diffusion.noise_max=0.1"], "noise_min"),
        (["train.lr=-1"], "train.lr"),
        (["model.name=transformer"], "unknown model"),
        (["model.hiden_dims=[3]"], "hiden_dims"),
        (["data.format=csv"], "data.source"),
        (["eval.averaging=some_users"], "eval.averaging"),
        (["data.time_weights.w_min=0.9", "data.time_weights.w_max=0.5"], "w_min"),
        # A typo's bound, which crashed the progress bar (OverflowError) after loading the data.
        (["train.epochs=100000000000000000000"], r"train.epochs: .*less than or equal to 1000000"),
    ],
)
def test_bad_settings_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config("demo-diffrec", overrides)


def test_bad_override_syntax_and_unknown_preset(tmp_path):
    with pytest.raises(ConfigError, match=r"key\.path=value"):
        apply_overrides({}, ["epochs"])
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"train": 3}, ["train.epochs=1"])
    with pytest.raises(ConfigError, match="presets"):
        load_config("no-such-preset")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(bad))
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(str(listed))


def test_yaml_file_round_trip(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("name: mine\nmodel:\n  name: ease\n  l2_lambda: 100\n")
    config = load_config(str(path))
    assert config.name == "mine" and config.model.params() == {"l2_lambda": 100}


def test_selection_metric_must_be_evaluated():
    with pytest.raises(ConfigError, match=r"train\.metric"):
        load_config("demo-diffrec", ["train.metric=recall@50"])
    with pytest.raises(ConfigError, match=r"eval\.metrics"):
        load_config("demo-diffrec", ["train.metric=ndcg@20", "eval.metrics=[recall]"])


@pytest.mark.parametrize(
    ("preset", "overrides", "line"),
    [
        (
            "demo-diffrec",
            ["model.diffusion.noise_min=0.1", "model.diffusion.noise_max=0.01"],
            "  model.diffusion: noise_min (0.1) must be smaller than noise_max (0.01)",
        ),
        ("demo-diffrec", ["model.foo=1"], "  model.foo: unknown key (this section takes: chain_"),
        ("demo-diffrec", ["model.dropout=2"], "  model.dropout: Input should be less than 1"),
        ("demo-diffrec", ["model.hidden_dims=[]"], "  model.hidden_dims: List should have"),
        ("demo-sasrec", ["model.dropout=2"], "  model.dropout: Input should be less than 1"),
        ("demo-multvae", ["model.foo=1"], "  model.foo: unknown key (this section takes: batch"),
        ("demo-multvae", ["model.hiden_dims=[9]"], "  model.hiden_dims: unknown key; did you mean"),
        (
            "demo-popularity",
            ["model.alpha=1"],
            "  model.alpha: unknown key (this section takes: name)",
        ),
        # a text setting written as a number: the quotes that keep it text
        (
            "demo-diffrec",
            ["name=2024"],
            (
                "  name: Input should be a valid string, and 2024 reads as a number: quote it to "
                "keep it text (--set 'name=\"2024\"' on the command line, name: '2024' in a "
                "config file)"
            ),
        ),
        (
            "demo-diffrec",
            ["data.time_col=no", "data.user_col=true"],
            "  data.user_col: Input should be a valid string, and true reads as a boolean",
        ),
        ("demo-diffrec", ["model.name=transformer"], "  model.name: unknown model"),
        # caught before training, not after it
        ("demo-diffrec", ["eval.metrics=[recall,foo]"], "  eval.metrics: unknown metrics ['foo']"),
        ("demo-sasrec", ["eval.metrics=[ndcg,ndcg]"], "  eval.metrics: metrics repeat"),
        ("demo-diffrec", ["eval.ks=[20,20]"], "  eval.ks: cut-offs repeat in [20, 20]"),
        ("demo-diffrec", ["model.hidden_dims=[0]"], "  model.hidden_dims.0: Input should be"),
        ("demo-dreamrec", ["model.hidden_dims=[-1]"], "  model.hidden_dims.0: Input should be"),
    ],
)
def test_model_errors_name_the_full_key_without_pydantic_noise(preset, overrides, line):
    with pytest.raises(ConfigError) as caught:
        load_config(preset, overrides)
    message = str(caught.value)
    assert message.splitlines()[1].startswith(line), message
    for noise in ("pydantic.dev", "input_value", "validation error for", "(top level)"):
        assert noise not in message


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("train.epochs=true", "train.epochs"),
        ("train.lr=TRUE", "train.lr"),
        ("eval.ks=[true, 20]", "eval.ks.0"),
        ("model.diffusion.steps=True", "model.diffusion.steps"),
        ("model.hidden_dims=[true]", "model.hidden_dims.0"),
        # false reads as 0, which these settings' bounds refuse: still said as a type error
        ("train.epochs=false", "train.epochs"),
        ("train.ema_decay=true", "train.ema_decay"),
        ("model.diffusion.steps=False", "model.diffusion.steps"),
        ("model.dropout=true", "model.dropout"),
    ],
)
def test_booleans_are_not_numbers(override, key):
    with pytest.raises(ConfigError, match=rf"{re.escape(key)}: expected a number"):
        load_config("demo-diffrec", [override])


def test_yaml_1_1_boolean_words_are_text_and_refused_as_numbers():
    # YAML 1.2 (recdiff's loader): yes/no are text, which no number setting parses.
    with pytest.raises(ConfigError, match=r"train\.lr: Input should be a valid number"):
        load_config("demo-diffrec", ["train.lr=yes"])
    with pytest.raises(ConfigError, match=r"model\.diffusion\.steps: Input should be a valid"):
        load_config("demo-diffrec", ["model.diffusion.steps=no"])


def test_boolean_settings_still_take_booleans():
    config = load_config("demo-diffrec", ["train.progress=false", "train.tensorboard=true"])
    assert config.train.progress is False and config.train.tensorboard is True


def test_device_must_be_a_torch_device():
    with pytest.raises(ConfigError, match=r"train\.device 'banana' is not a torch device"):
        load_config("demo-diffrec", ["train.device=banana"])
    # Whether the machine has the device is the CLI's check: a GPU run's config loads anywhere.
    assert load_config("demo-diffrec", ["train.device=cuda:1"]).train.device == "cuda:1"


def test_a_config_file_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=rf"{re.escape(str(path))} is not UTF-8 text"):
        load_config(str(path))


def test_multvae_takes_the_train_settings_it_can_honour():
    from recdiff.config.models import build_model
    from recdiff.config.schema import RunConfig

    config = load_config(
        "demo-multvae", ["train.epochs=4", "train.lr=0.01", "train.metric=ndcg@20", "train.seed=7"]
    )
    model = build_model(config.model.name, config.model.params(), config.train)
    cfg = model.config
    assert (cfg.max_epochs, cfg.lr, cfg.valid_metric, cfg.seed) == (4, 0.01, "ndcg@20", 7)
    assert (cfg.batch_size, cfg.patience) == (100, 5)  # the preset's train section
    # model.* still works alone, and wins over train.* left at its default
    config = load_config("multvae-ml1m", ["model.max_epochs=3", "model.seed=2"])
    cfg = build_model(config.model.name, config.model.params(), config.train).config
    assert (cfg.max_epochs, cfg.seed, cfg.lr) == (3, 2, 1e-3)
    # A resolved config lists every train key, defaults too: it reloads as it was.
    resolved = RunConfig.model_validate(load_config("demo-multvae").model_dump())
    assert resolved.train.epochs == 100


def test_multvae_takes_a_train_setting_set_on_the_command_line_even_at_the_trainer_default():
    from recdiff.config.models import build_model
    from recdiff.config.schema import RunConfig

    def batch_size(config):
        return build_model("multvae", config.model.params(), config.train).config.batch_size

    asked = load_config("multvae-ml1m", ["train.batch_size=400"])  # TrainConfig's default
    assert batch_size(asked) == 400
    assert batch_size(RunConfig.model_validate(asked.model_dump(mode="json"))) == 400  # saved
    assert batch_size(load_config("multvae-ml1m", [])) == 500  # Mult-VAE's own default
    # a saved config still takes model.* overrides (a search over model.lr)
    saved = asked.model_dump(mode="json")
    assert RunConfig.model_validate({**saved, "model": {**saved["model"], "lr": 0.003}})


def test_multvae_takes_a_train_setting_written_in_a_yaml_file_even_at_the_trainer_default(
    tmp_path,
):
    from recdiff.config.models import build_model

    def settings(config):
        return build_model("multvae", config.model.params(), config.train).config

    path = tmp_path / "multvae.yaml"
    path.write_text(
        "name: mine\ndata: {format: demo}\nmodel: {name: multvae}\n"
        "train: {batch_size: 400, lr: 0.001}\n"  # both TrainConfig's defaults
    )
    written = load_config(str(path))
    assert settings(written).batch_size == 400  # not Mult-VAE's own 500
    saved = tmp_path / "resolved.yaml"  # a run's config.yaml lists every train key
    saved.write_text(yaml.safe_dump(written.model_dump(mode="json")))
    assert settings(load_config(str(saved))).batch_size == 400
    # A resolved config of a run that kept Mult-VAE's batch lists the trainer's 400 too.
    resolved = tmp_path / "default.yaml"
    resolved.write_text(yaml.safe_dump(load_config("multvae-ml1m").model_dump(mode="json")))
    assert load_config(str(resolved)).train.batch_size == 400
    assert settings(load_config(str(resolved))).batch_size == 500


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.precision=bf16"], "train.precision: does not apply to multvae"),
        (["train.ema_decay=0.9"], "train.ema_decay: does not apply to multvae"),
        (["train.eval_every=1"], "in `recdiff experiment`, give it to the other configs only"),
        (["train.epochs=4", "model.max_epochs=7"], "train.epochs: 4 contradicts model.max_epochs"),
    ],
)
def test_multvae_refuses_train_settings_it_would_ignore(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config("demo-multvae", overrides)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.split=random"], "set data.split=leave_one_out (got 'random')"),
        (["data.split=user_temporal"], "set data.split=leave_one_out (got 'user_temporal')"),
        (["data.k_core=5"], "data.k_core is not applied to a sequence file"),
        (["data.min_rating=3"], "a sequence file holds no ratings: remove data.min_rating"),
        (["data.time_weights.w_min=0.2"], "a next-item model reads the order"),
    ],
)
def test_next_item_models_refuse_data_settings_they_would_ignore(overrides, message, tmp_path):
    source = tmp_path / "seq.txt"
    source.write_text("u1 1 2 3 4\nu2 2 3 4 5\n")
    on_file = ["data.format=sequences", f"data.source={source}"]
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config("demo-sasrec", [*on_file, *overrides])
    # the default split of a sequence file is written as what it is
    assert load_config("demo-sasrec", on_file).data.split == "leave_one_out"
    assert load_config("demo-dreamrec", []).data.split == "leave_one_out"
    with pytest.raises(ConfigError, match=re.escape("data.k_core is not applied to sequences")):
        load_config("demo-sasrec", ["data.format=csv", f"data.source={source}", "data.k_core=2"])


def test_a_relative_item_embeddings_file_is_stored_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(
        "demo-diffrec", ["model.name=ldiffrec", "model.latent.item_embeddings=e.npy"]
    )
    assert config.model.params()["latent"]["item_embeddings"] == str(tmp_path / "e.npy")
    kept = load_config(
        "demo-diffrec", ["model.name=ldiffrec", "model.latent.item_embeddings=datasets:x/e.npy"]
    )
    assert kept.model.params()["latent"]["item_embeddings"] == "datasets:x/e.npy"


def test_a_file_with_the_demo_format_or_a_sum_of_ratings_is_refused(tmp_path):
    source = str(tmp_path / "log.csv")
    with pytest.raises(
        ConfigError, match=r"data\.format is demo, the built-in data, which reads no"
    ):
        load_config("demo-ease", [f"data.source={source}"])
    table = ["data.format=csv", f"data.source={source}", "data.rating_col=r"]
    with pytest.raises(ConfigError, match="a sum of ratings is no rating"):
        load_config("demo-ease", [*table, "data.duplicates=sum", "data.min_rating=3"])
    assert load_config("demo-ease", [*table, "data.duplicates=last", "data.min_rating=3"])


def test_a_saved_next_item_run_from_before_the_checks_still_reads(tmp_path):
    """Runs trained when these settings were silently ignored are not damaged: their config
    reads as what they trained with."""
    from recdiff.config.schema import SAVED_RUN, RunConfig

    saved = load_config("demo-sasrec", []).model_dump(mode="json")
    saved["data"].update(split="random", k_core=5, time_weights={"w_min": 0.2, "w_max": 1.0})
    with pytest.raises(ValueError, match="next-item model"):  # a new config is refused
        RunConfig.model_validate(saved)
    read = RunConfig.model_validate(saved, context=SAVED_RUN)
    assert (read.data.split, read.data.k_core, read.data.time_weights) == (
        "leave_one_out",
        None,
        None,
    )


def test_masking_the_history_is_for_next_item_models():
    with pytest.raises(ConfigError, match=r"eval\.exclude_history applies to next-item models"):
        load_config("demo-diffrec", ["eval.exclude_history=true"])
    assert load_config("demo-sasrec", ["eval.exclude_history=true"]).eval.exclude_history
    assert not load_config("demo-diffrec", ["eval.exclude_history=false"]).eval.exclude_history


def test_a_relative_data_source_is_kept_absolute(tmp_path, monkeypatch):
    """The run's saved config finds its data from any folder (evaluate run elsewhere)."""
    monkeypatch.chdir(tmp_path)
    config = load_config("demo-diffrec", ["data.format=csv", "data.source=logs/log.csv"])
    assert config.data.source == str(tmp_path / "logs" / "log.csv")
    portable = load_config("diffrec-ml1m", [])  # datasets: sources stay as written
    assert portable.data.source == "datasets:diffrec/ml-1m_clean"
    with pytest.raises(ConfigError, match=r"data\.source is required"):
        load_config("demo-diffrec", ["data.format=csv", "data.source="])


def test_a_folder_is_not_a_config_but_does_not_hide_a_preset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "adir").mkdir()
    with pytest.raises(ConfigError, match="adir is a folder, not a config"):
        load_config("adir", [])
    (tmp_path / "demo-ease").mkdir()  # e.g. a folder of that preset's runs
    assert load_config("demo-ease", []).model.name == "ease"


def test_an_invalid_config_lists_the_models_bad_keys_beside_the_others():
    """The model's settings are checked by its own config class once the rest is valid; the
    error still lists every bad key at once, not the model's only after the others are fixed."""
    with pytest.raises(ConfigError) as caught:
        load_config("demo-diffrec", ["model.diffusion.steps=-3", "train.epochs=0", "model.foo=1"])
    lines = str(caught.value).splitlines()[1:]
    assert [line.split(":")[0].strip() for line in lines] == [
        "train.epochs",
        "model.diffusion.steps",
        "model.foo",
    ]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["model.diffusion.schedule=exp", "model.diffusion.beta_max=5000"],
            "model.diffusion: steps=100 with this exp schedule (beta_min, beta_max) is not a "
            "usable noise schedule",
        ),
        (["model.p_uncond=1"], "model.p_uncond: Input should be less than 1"),
        (["model.guidance_weight=inf"], "model.guidance_weight: Input should be a finite number"),
        (["model.embedding_std=.nan"], "model.embedding_std: Input should be a finite number"),
        (["train.lr=inf"], "train.lr: Input should be a finite number"),
        (["train.weight_decay=.inf"], "train.weight_decay: Input should be a finite number"),
        (["model.p_uncond=0"], "never trains with p_uncond=0 (it keeps its random start)"),
        (["data.duplicates=last"], "data.duplicates=last is not applied to sequences"),
        # a negative seed trained, then failed at evaluation with no key named (T' > 0 noise)
        (["train.seed=-1"], "train.seed: Input should be greater than or equal to 0"),
        (["data.seed=-1"], "data.seed: Input should be greater than or equal to 0"),
        (
            ["train.metric=foo@20"],
            "train.metric: metric 'foo@20' names no metric; choose from ['recall'",
        ),
    ],
)
def test_dreamrec_and_trainer_settings_that_cannot_train_are_refused(overrides, message):
    with pytest.raises(ConfigError) as caught:
        load_config("demo-dreamrec", overrides)
    assert message in str(caught.value)


@pytest.mark.parametrize("preset", ["demo-diffrec", "demo-dreamrec", "ldiffrec-ml1m"])
def test_a_step_embedding_of_one_unit_is_refused_by_the_config(preset):
    """A sinusoidal step embedding needs a cosine and a sine: time_dim 1 fails when the config is
    read, naming the key, not at the model's first matmul."""
    with pytest.raises(
        ConfigError, match=r"model\.time_dim: Input should be greater than or equal to 2"
    ):
        load_config(preset, ["model.time_dim=1"])
    assert load_config(preset, ["model.time_dim=2"]).model.params()["time_dim"] == 2


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("trian.epochs=3", "trian: unknown key; did you mean 'train'? (this section takes: data, "),
        ("train.epoch=3", "train.epoch: unknown key; did you mean 'epochs'? (this section takes: "),
        ("data.time_column=ts", "data.time_column: unknown key; did you mean 'time_col'?"),
        ("model.diffusion.stepz=3", "model.diffusion.stepz: unknown key; did you mean 'steps'?"),
        ("model.hiden_dims=[8]", "model.hiden_dims: unknown key; did you mean 'hidden_dims'?"),
        ("eval.k=[5]", "eval.k: unknown key; did you mean 'ks'?"),
    ],
)
def test_an_unknown_key_names_what_its_section_takes(item, expected):
    """A typo names the key it is probably a typo of, and the section's keys, at every level
    (pydantic said only "Extra inputs are not permitted")."""
    with pytest.raises(ConfigError) as caught:
        load_config("demo-diffrec", [item])
    assert f"\n  {expected}" in str(caught.value)


def test_an_unknown_model_key_lists_the_models_own_settings():
    with pytest.raises(ConfigError) as caught:
        load_config("demo-sasrec", ["model.block=2"])
    line = str(caught.value).splitlines()[1]
    assert line.startswith("  model.block: unknown key; did you mean 'blocks'?")
    assert "name" in line.partition("takes: ")[2].rstrip(")").split(", ")


def test_a_mapping_override_merges_into_its_section():
    """``--set model.diffusion={steps: 5}`` changes the steps only: it used to replace the
    section, so the preset's noise settings silently fell back to the defaults."""
    preset = load_config("demo-diffrec")
    merged = load_config("demo-diffrec", ["model.diffusion={steps: 5}"])
    assert merged.model.params()["diffusion"]["steps"] == 5
    for key in ("noise_scale", "noise_min", "noise_max"):
        assert merged.model.params()["diffusion"][key] == preset.model.params()["diffusion"][key]
    assert merged == load_config("demo-diffrec", ["model.diffusion.steps=5"])
    # nested mappings merge at every depth; null first replaces the whole section
    assert load_config("demo-diffrec", ["model={diffusion: {steps: 5}}"]) == merged
    replaced = load_config("demo-diffrec", ["model.diffusion=null", "model.diffusion={steps: 5}"])
    assert replaced.model.params()["diffusion"] == {"steps": 5}
    with pytest.raises(ConfigError, match="stepz: unknown key"):
        load_config("demo-diffrec", ["model.diffusion={stepz: 5}"])


# ------------------------------------------------------------------------- --set values as text


def _typed(message: str) -> str:
    """The override a message says to type, as the shell passes it on (quotes removed)."""
    typed = re.search(r"--set ('[^']*'|\"[^\"]*\")", message)
    assert typed, message
    return shlex.split(typed.group(1))[0]


CSV = ["data.format=csv", "data.source=x.csv"]


@pytest.mark.parametrize(
    ("value", "syntax"),
    [
        ("|", "a block scalar"),
        (">", "a folded block scalar"),
        ("%", "a directive"),
        ("@", "a reserved indicator"),
        ("`", "a reserved indicator"),
        ("!", "a tag"),
        ("&a", "an anchor"),
        ("-", "a list item"),
        ("?", "a mapping key"),
    ],
)
def test_a_set_value_yaml_reads_as_syntax_says_how_to_quote_it(value, syntax):
    """``--set data.sep=|`` was a block scalar holding nothing, refused as "String should have
    at least 1 character"; the message names the syntax and the quoting that works in a shell."""
    with pytest.raises(ConfigError) as caught:
        load_config("demo-popularity", [*CSV, f"data.sep={value}"])
    message = str(caught.value)
    assert message.startswith(
        f"override 'data.sep={value}': YAML reads {value[0]!r} at the start of a value as "
        f"syntax ({syntax}), not as text: quote the value (--set "
    )
    assert load_config("demo-popularity", [*CSV, _typed(message)]).data.sep == value


def test_the_quoting_a_comment_message_suggests_works_when_typed():
    with pytest.raises(ConfigError) as caught:
        load_config("demo-diffrec", ["name=my run #2"])
    assert """(--set "name='my run #2'")""" in str(caught.value)
    assert load_config("demo-diffrec", [_typed(str(caught.value))]).name == "my run #2"


def test_values_that_merely_contain_yaml_indicators_stay_as_written():
    assert load_config("demo-popularity", [*CSV, "data.sep=a|b"]).data.sep == "a|b"
    assert load_config("demo-popularity", [*CSV, "data.sep=;"]).data.sep == ";"
    assert load_config("demo-popularity", [*CSV, "data.sep=!!str 5"]).data.sep == "5"
    assert apply_overrides({}, ["a=-1e-3", "b=- 5", "c=!!null"]) == {
        "a": -1e-3,
        "b": [5],
        "c": None,
    }


# ------------------------------------------------------------------------- relative paths in a file


def _config_file(folder, source="ratings.csv", embeddings=None):
    folder.mkdir(exist_ok=True)
    config = {"data": {"format": "csv", "source": source, "split": "random"}}
    config["model"] = {"name": "popularity"}
    if embeddings is not None:
        config["model"] = {"name": "ldiffrec", "latent": {"item_embeddings": embeddings}}
    (folder / "run.yaml").write_text(yaml.safe_dump(config))
    return folder / "run.yaml"


def test_a_relative_source_in_a_config_file_names_the_working_directory(tmp_path, monkeypatch):
    """Resolved against the working directory (kept: runs rely on it), which the "not found"
    error never said; the file next to the config, if there is one, is named."""
    monkeypatch.chdir(tmp_path)
    path = _config_file(tmp_path / "project")
    (tmp_path / "project" / "ratings.csv").write_text("user,item\n1,2\n")
    with pytest.raises(ConfigError) as caught:
        load_config("project/run.yaml")
    assert str(caught.value) == (
        f"data.source 'ratings.csv' in project/run.yaml is resolved against the working "
        f"directory, {tmp_path} (as a relative path in a config file is, not against the file's "
        f"folder), and {tmp_path / 'ratings.csv'} does not exist: {path.parent / 'ratings.csv'} "
        f"is next to the config file: write that path in it, or run recdiff from {path.parent}"
    )
    monkeypatch.chdir(path.parent)  # where the path is meant: read, as before
    assert load_config("run.yaml").data.source == str(path.parent / "ratings.csv")


def test_a_relative_source_found_nowhere_says_where_it_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _config_file(tmp_path / "project", source="../data/ratings.csv")
    with pytest.raises(ConfigError) as caught:
        load_config("project/run.yaml")
    assert str(caught.value).endswith(
        f"and {tmp_path.parent / 'data' / 'ratings.csv'} does not exist: write a path relative "
        "to the working directory, or an absolute one"
    )
    # set on the command line, the path is the readers' to find (and report)
    assert load_config("project/run.yaml", ["data.source=elsewhere.csv"]).data.source == str(
        tmp_path / "elsewhere.csv"
    )


def test_relative_item_embeddings_in_a_config_file_are_named_the_same_way(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ratings.csv").write_text("user,item\n1,2\n")
    path = _config_file(tmp_path / "project", embeddings="emb.npy")
    (path.parent / "emb.npy").write_bytes(b"")
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    assert str(caught.value).startswith(
        f"model.latent.item_embeddings 'emb.npy' in {path} is resolved against the working "
        f"directory, {tmp_path} "
    )
    assert str(caught.value).endswith(
        f"{path.parent / 'emb.npy'} is next to the config file: "
        f"write that path in it, or run recdiff from {path.parent}"
    )


@pytest.mark.parametrize(
    ("preset", "sets"),
    [
        ("demo-diffrec", []),  # the demo's loader ignores ratios: this trained without a word
        ("demo-popularity", ["data.format=csv", "data.source=x.csv", "data.split=random"]),
    ],
)
def test_ratios_that_do_not_share_the_data_are_refused_by_every_config(preset, sets):
    with pytest.raises(ConfigError) as caught:
        load_config(preset, [*sets, "data.ratios=[0.5, 0.5, 0.5]"])
    assert str(caught.value).splitlines()[1:] == [
        "  data.ratios: [0.5, 0.5, 0.5] sums to 1.5, but the train, valid and test shares must "
        'sum to 1: e.g. --set "data.ratios=[0.7, 0.1, 0.2]"'
    ]
    with pytest.raises(ConfigError, match=r"data\.ratios: \[-0\.1, 0\.6, 0\.5\] holds a negative"):
        load_config(preset, [*sets, "data.ratios=[-0.1, 0.6, 0.5]"])
    assert load_config(preset, [*sets, "data.ratios=[0.8, 0.2, 0]"]).data.ratios == (0.8, 0.2, 0)


def test_a_saved_run_keeps_the_ratios_it_trained_with():
    from recdiff.config.schema import SAVED_RUN, RunConfig

    raw = {"name": "old", "data": {"ratios": [0.5, 0.5, 0.5]}}
    assert RunConfig.model_validate(raw, context=SAVED_RUN).data.ratios == (0.5, 0.5, 0.5)
