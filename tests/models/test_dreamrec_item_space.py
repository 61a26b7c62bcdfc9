"""DreamRec generating in a pre-trained SASRec item space (``model.item_space.source=sasrec``)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from recdiff.config import load_config
from recdiff.data.synthetic_sequences import demo_sequences
from recdiff.models.base import SavedModel
from recdiff.models.dreamrec import DreamRec
from recdiff.models.dreamrec_config import DreamRecConfig, GuidedDiffusionConfig
from recdiff.models.sasrec import SASRec, SASRecConfig
from recdiff.train.config import TrainConfig
from recdiff.train.run import run_training

STAGE = {"source": "sasrec", "epochs": 3, "lr": 3e-3, "rms": 0.5}


@pytest.fixture(scope="module")
def data():
    return demo_sequences(seed=0).with_layout("left")


def _training(**overrides) -> TrainConfig:
    base = {"lr": 3e-3, "batch_size": 256, "epochs": 2, "progress": False, "seed": 1}
    return TrainConfig(**{**base, **overrides})


def _dreamrec(data, **item_space) -> DreamRec:
    config = DreamRecConfig(
        dim=32,
        hidden_dims=[64],
        detach_target=True,
        diffusion=GuidedDiffusionConfig(steps=20),
        item_space={**STAGE, **item_space},
    )
    # No evaluate: the stage trains all its epochs, and says so.
    with pytest.warns(UserWarning, match=r"item_space\.epochs\) without selection"):
        return DreamRec(config, _training()).fit(data)


def _standalone_sasrec_table(data) -> torch.Tensor:
    """What the stage should be: SASRec trained alone with the stage's settings."""
    training = _training(lr=STAGE["lr"], epochs=STAGE["epochs"], eval_every=2, patience=10)
    sasrec = SASRec(SASRecConfig(dim=32), training).fit(data)
    return sasrec.net.encoder.item_embedding.weight.detach().clone()


def test_the_table_is_sasrecs_rescaled_and_stays_frozen(data):
    model = _dreamrec(data)
    table = model.net.encoder.item_embedding.weight.detach()
    expected = _standalone_sasrec_table(data)
    items = expected[: data.n_items]
    items = items * 0.5 * 32**0.5 / items.norm(dim=1, keepdim=True)  # rms 0.5 at dim 32
    torch.testing.assert_close(table[: data.n_items], items)
    torch.testing.assert_close(table[data.n_items], expected[data.n_items])  # pad row as trained
    rms = table[: data.n_items].pow(2).mean(dim=1).sqrt()
    np.testing.assert_allclose(rms.numpy(), 0.5, rtol=1e-5)
    assert model.items_result is not None and model.items_result.epochs_run == STAGE["epochs"]
    # The denoiser did train (the table alone was frozen).
    assert model.result is not None and model.result.epochs_run == 2


def test_an_unfrozen_table_trains_on_from_the_stages_rows(data):
    start = _standalone_sasrec_table(data)[: data.n_items]
    start = start * 0.5 * 32**0.5 / start.norm(dim=1, keepdim=True)
    table = _dreamrec(data, freeze=False).net.encoder.item_embedding.weight.detach()
    moved = (table[: data.n_items] - start).norm()
    assert 0 < moved < 0.5 * start.norm()  # trained on, from SASRec's rows (not from N(0, 1))


def test_the_table_is_the_stages_selected_epoch_and_trainable_again_after_fit(data):
    scored = []

    def evaluate(score):  # falling metric: each training selects its first evaluation
        scored.append(type(score.__self__).__name__)
        return {"valid": {"recall@20": 1.0 / len(scored)}}

    config = DreamRecConfig(
        dim=32,
        hidden_dims=[64],
        diffusion=GuidedDiffusionConfig(steps=20),
        item_space={**STAGE, "rms": None, "eval_every": 1},
    )
    model = DreamRec(config, _training(eval_every=1)).fit(data, evaluate=evaluate)
    assert scored == ["SASRec"] * 3 + ["DreamRec"] * 2
    assert (model.items_result.best_epoch, model.result.best_epoch) == (1, 1)
    # rms None: SASRec's rows as they were after its first epoch, the one selected.
    first_epoch = SASRec(SASRecConfig(dim=32), _training(lr=STAGE["lr"], epochs=1)).fit(data)
    weight = model.net.encoder.item_embedding.weight
    torch.testing.assert_close(weight.detach(), first_epoch.net.encoder.item_embedding.weight)
    assert weight.requires_grad  # frozen while DreamRec trained only, as a loaded model is


def test_the_stage_validates_its_last_epoch_whatever_its_eval_every(tmp_path):
    """Before, one stage epoch with validation every two kept the stage unjudged, with a
    warning naming model.item_space.eval_every."""
    settings = ["model.item_space.source=sasrec", "model.item_space.epochs=1"]
    settings += ["model.item_space.eval_every=2", "train.epochs=1", "train.eval_every=1"]
    result = run_training(load_config("demo-dreamrec", settings), tmp_path, progress=False)
    records = [json.loads(line) for line in (result.directory / "events.jsonl").open()]
    stage_evals = [r for r in records if r.get("event") == "eval" and r.get("stage") == "items"]
    assert [r["epoch"] for r in stage_evals] == [1]
    assert result.metrics["stages"]["items"]["validated"] is True


def test_the_stage_is_validated_on_its_own_scores(tmp_path):
    stage = ["model.item_space.source=sasrec", "model.item_space.epochs=4"]
    stage += ["model.item_space.lr=0.003", "train.epochs=2", "train.eval_every=1"]
    config = load_config("demo-dreamrec", stage)
    result = run_training(config, tmp_path / "dream", progress=False)
    records = [json.loads(line) for line in (result.directory / "events.jsonl").open()]
    stage_evals = [r for r in records if r.get("event") == "eval" and r.get("stage") == "items"]
    assert [r["epoch"] for r in stage_evals] == [2, 4]

    alone = load_config("demo-sasrec", ["train.epochs=4", "train.progress=false"])
    sasrec = run_training(alone, tmp_path / "sasrec", progress=False)
    alone_records = [json.loads(line) for line in (sasrec.directory / "events.jsonl").open()]
    alone_evals = [r for r in alone_records if r.get("event") == "eval"]
    key = "valid/hit_rate@10"
    assert [r[key] for r in stage_evals] == [r[key] for r in alone_evals]
    stage = result.metrics["stages"]["items"]  # metrics.json: how the stage was selected
    best = max(stage_evals, key=lambda r: r["valid/hit_rate@10"])  # the trainer's metric
    assert (stage["epochs_run"], stage["validated"]) == (4, True)
    assert stage["best_epoch"] == best["epoch"]
    assert stage["valid"]["hit_rate@10"] == best[key]
    # DreamRec's own evaluations carry no stage and score the oracle, not SASRec.
    own = [r for r in records if r.get("event") == "eval" and "stage" not in r]
    assert [r["epoch"] for r in own] == [1, 2] and all(key in r for r in own)


def test_a_saved_model_scores_as_trained(data, tmp_path):
    model = _dreamrec(data)
    model.save(tmp_path / "model")
    loaded = SavedModel.load(tmp_path / "model")
    history = torch.as_tensor(np.asarray(data.test.history[:16]))
    torch.testing.assert_close(loaded.score(history), model.score(history))


def test_a_saved_run_with_its_own_table_ignores_the_stage_settings_it_listed(data, tmp_path):
    """Saved configs list every item_space field; a later change of their defaults must not make
    a run that never used them look as if it had set them."""
    import json

    model = DreamRec(
        DreamRecConfig(dim=32, hidden_dims=[64], diffusion=GuidedDiffusionConfig(steps=20)),
        _training(epochs=1),
    ).fit(data)
    model.save(tmp_path / "model")
    meta = json.loads((tmp_path / "model" / "config.json").read_text())
    assert meta["config"]["settings"]["item_space"]["epochs"] == 200  # listed, unused
    meta["config"]["settings"]["item_space"]["epochs"] = 100  # as if the default were 100
    (tmp_path / "model" / "config.json").write_text(json.dumps(meta))
    assert SavedModel.load(tmp_path / "model").config.item_space.source == "learned"


def _resave(directory, edit) -> None:
    meta = json.loads((directory / "config.json").read_text())
    edit(meta["config"]["settings"])
    (directory / "config.json").write_text(json.dumps(meta))


def test_a_run_saved_under_the_options_first_name_norm_loads_as_rms(data, tmp_path):
    """The first release of the option fixed a row norm (``norm``); rms = norm / sqrt(dim)."""
    model = _dreamrec(data)
    model.save(tmp_path / "model")

    def to_norm(settings):
        space = settings["item_space"]
        space["norm"] = space.pop("rms") * 32**0.5  # 0.5 * sqrt(32): the rows as trained

    _resave(tmp_path / "model", to_norm)
    loaded = SavedModel.load(tmp_path / "model")
    assert loaded.config.item_space.rms == pytest.approx(0.5)
    history = torch.as_tensor(np.asarray(data.test.history[:16]))
    torch.testing.assert_close(loaded.score(history), model.score(history))


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_a_run_saved_with_eta_above_one_loads_with_eta_one(data, tmp_path, sampler):
    """eta > 1 was accepted before it was bounded; only a DDIM run samples differently now."""
    model = DreamRec(
        DreamRecConfig(dim=32, hidden_dims=[64], diffusion=GuidedDiffusionConfig(steps=20)),
        _training(epochs=1),
    ).fit(data)
    model.save(tmp_path / "model")

    def to_old_eta(settings):
        settings["diffusion"].update(eta=1.5, sampler=sampler)

    _resave(tmp_path / "model", to_old_eta)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = SavedModel.load(tmp_path / "model")
    assert loaded.config.diffusion.eta == 1.0
    messages = [str(w.message) for w in caught if "eta" in str(w.message)]
    if sampler == "ddim":
        assert len(messages) == 1 and "diffusion.eta=1.5" in messages[0]
    else:
        assert messages == []


def test_stage_settings_need_the_sasrec_source():
    with pytest.raises(ValidationError, match=r"applies to item_space\.source=sasrec"):
        DreamRecConfig(item_space={"freeze": False})
    DreamRecConfig(item_space={"freeze": True, "rms": 1.0})  # defaults, as saved configs list them
    with pytest.raises(ValidationError, match=r"item_space\.heads"):
        DreamRecConfig(dim=32, item_space={"source": "sasrec", "heads": 3})
    with pytest.raises(ValidationError, match="embedding_std"):  # SASRec's table replaces it
        DreamRecConfig(embedding_std=0.1, item_space={"source": "sasrec"})
    assert DreamRecConfig(item_space={"source": "sasrec"}).item_space.rms == 1.0
