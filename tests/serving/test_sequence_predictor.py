"""Serving next-item runs: the predictor, export and the HTTP service on a SASRec demo run."""

from __future__ import annotations

import numpy as np
import pytest

from recdiff.config import load_config
from recdiff.serving.predictor import Predictor
from recdiff.serving.sequence_predictor import SequencePredictor
from recdiff.train.run import run_training

FAST = ["train.epochs=3", "train.eval_every=3", "model.dim=16"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    runs = tmp_path_factory.mktemp("sequence-runs")
    return run_training(load_config("demo-sasrec", FAST), runs, progress=False).directory


@pytest.fixture(scope="module")
def predictor(run_dir):
    return Predictor.load(run_dir)


def test_load_picks_the_sequence_predictor(predictor):
    assert isinstance(predictor, SequencePredictor)
    assert predictor.model.model_name == "sasrec"


def test_known_user_is_served_from_the_whole_sequence(predictor):
    user = predictor.users.ids[5]
    sequence = predictor.sequence_items[predictor.indptr[5] : predictor.indptr[6]]
    expected, _ = predictor.model.recommend([sequence], k=10, exclude_seen=True)
    got = predictor.recommend(user=user, k=10)
    assert got.items == predictor.items.external(expected[0]).tolist()
    assert not set(got.items) & set(predictor.items.external(sequence).tolist())


def test_new_history_keeps_order_and_repeats(predictor):
    ids = predictor.items.ids
    history = [ids[3], ids[7], ids[3]]
    got = predictor.recommend(history=history, k=5, exclude_seen=False)
    expected, _ = predictor.model.recommend([[3, 7, 3]], k=5)
    assert got.items == ids[expected[0]].tolist()
    reordered = predictor.recommend(history=[ids[3], ids[3], ids[7]], k=5, exclude_seen=False)
    assert reordered.scores != got.scores  # order is what a sequence model reads


def test_unknown_items_and_empty_histories(predictor):
    known = predictor.items.ids[0]
    with pytest.raises(KeyError, match="not in the catalogue"):
        predictor.recommend(history=[known, 10**9], k=3)
    recs = predictor.recommend(history=[known, 10**9], k=3, ignore_unknown=True)
    assert recs.unknown_items == [10**9] and len(recs.items) == 3
    with pytest.raises(ValueError, match="history is empty"):
        predictor.recommend(history=[], k=3)
    with pytest.raises(KeyError, match="not among"):
        predictor.recommend(user=10**9, k=3)


def test_batched_queries_equal_single_ones(predictor):
    users = predictor.users.ids[:6]
    queries = [predictor.query(user=u) for u in users]
    together = predictor.recommend_queries(queries, [5] * len(users))
    one_by_one = [predictor.recommend(user=u, k=5) for u in users]
    assert [r.items for r in together] == [r.items for r in one_by_one]
    assert np.allclose([r.scores for r in together], [r.scores for r in one_by_one], atol=1e-5)


def test_evaluate_reproduces_the_run(predictor):
    results = predictor.evaluate()
    assert results["test"] == pytest.approx(predictor.metrics["test"])


def test_http_service_answers_like_the_python_api(run_dir, predictor, serve_app):
    pytest.importorskip("fastapi")
    from recdiff.serving.service import create_app

    ids = predictor.items.ids
    with serve_app(create_app(run_dir)) as http:
        answer = http.post("/recommend", json={"history": [int(ids[1]), int(ids[2])], "k": 4})
        assert answer.status_code == 200
        expected = predictor.recommend(history=[ids[1], ids[2]], k=4)
        assert answer.json()["items"] == expected.items
        user = int(predictor.users.ids[0])
        answer = http.post("/recommend", json={"user": user, "k": 4})
        assert answer.json()["items"] == predictor.recommend(user=user, k=4).items
        unknown = http.post("/recommend", json={"history": [10**9], "k": 4})
        assert unknown.status_code == 422 and "not in the catalogue" in unknown.text
