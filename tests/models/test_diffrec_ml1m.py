"""DiffRec on the paper's ML-1M split: a short run already ranks far above popularity."""

from __future__ import annotations

import pytest

from recdiff.data import read_diffrec_splits
from recdiff.eval import EvalTask
from recdiff.models import Popularity
from recdiff.models.diffrec import DiffRec
from recdiff.train.trainer import TrainConfig


@pytest.mark.data
def test_five_epochs_of_released_settings_beat_popularity(datasets_root):
    splits = read_diffrec_splits(datasets_root / "diffrec" / "ml-1m_clean")
    train, valid = splits.train.matrix, splits.valid.matrix
    model = DiffRec(training=TrainConfig(epochs=5, eval_every=5, progress=False))
    model.fit(train, valid)
    task = EvalTask.validation(train, valid)
    ours = task.evaluate(model.score, ks=(20,), averaging="all_users", batch_size=2048)
    pop = task.evaluate(Popularity().fit(train).score, ks=(20,), averaging="all_users")
    # Measured: DiffRec 0.112 after 5 epochs (seed 1), popularity 0.079, EASE's best 0.118.
    assert ours["recall@20"] > 0.10 > pop["recall@20"]
    assert ours["recall@20"] == pytest.approx(model.result.best_metric, abs=1e-9)
