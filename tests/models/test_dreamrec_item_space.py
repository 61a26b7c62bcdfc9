"""DreamRec generating in a pre-trained SASRec item space (``model.item_space.source=sasrec``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from recdiff.config import load_config
from recdiff.data.synthetic_sequences import demo_sequences
from recdiff.models.base import SavedModel
from recdiff.models.dreamrec import DreamRec, DreamRecConfig, GuidedDiffusionConfig
from recdiff.models.sasrec import SASRec, SASRecConfig
from recdiff.train.run import run_training
from recdiff.train.trainer import TrainConfig

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


def test_an_unfrozen_table_moves_and_rms_none_keeps_sasrecs_rows(data):
    expected = _standalone_sasrec_table(data)
    kept = _dreamrec(data, rms=None, freeze=False)
    table = kept.net.encoder.item_embedding.weight.detach()
    assert table.shape == expected.shape
    assert not torch.allclose(table, expected)  # DreamRec trained it on
    # ... but it started from SASRec's rows, not from a fresh N(0, 1) table of norm ~5.7.
    assert table[: data.n_items].norm(dim=1).mean() < 0.5 * 32**0.5


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


def test_stage_settings_need_the_sasrec_source():
    with pytest.raises(ValidationError, match=r"applies to item_space\.source=sasrec"):
        DreamRecConfig(item_space={"freeze": False})
    DreamRecConfig(item_space={"freeze": True, "rms": 1.0})  # defaults, as saved configs list them
    with pytest.raises(ValidationError, match=r"item_space\.heads"):
        DreamRecConfig(dim=32, item_space={"source": "sasrec", "heads": 3})
    assert DreamRecConfig(item_space={"source": "sasrec"}).item_space.rms == 1.0
