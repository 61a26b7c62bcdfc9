"""A known user is served from everything the run knows of them (train, valid and test), not
from the train rows alone, which evaluation scores: before, `recommend --user`, `export` and
`serve` gave a row model's answer to the user's history as it stood at the split, and a user's
newest interactions changed nothing."""

from __future__ import annotations

import numpy as np
import pytest

from recdiff.config import load_config
from recdiff.data import time_weights
from recdiff.serving.predictor import Predictor
from recdiff.train.datasets import load_splits
from recdiff.train.run import run_training
from recdiff.train.run_rows import known_user_inputs


def _log(tmp_path, rows):
    path = tmp_path / "log.csv"
    path.write_text("user,item,ts\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))
    return ["data.format=csv", f"data.source={path}", "data.time_col=ts"]


@pytest.fixture(scope="module")
def ease_run(tmp_path_factory):
    """EASE (fitted in a second) on 40 users x 30 items, 10 interactions each in time order."""
    folder = tmp_path_factory.mktemp("known-users")
    rows = [(u, (3 * u + 7 * t) % 30, 1000 * t + u) for u in range(40) for t in range(10)]
    settings = [*_log(folder, rows), "data.split=user_temporal", "model.l2_lambda=10"]
    return run_training(load_config("demo-ease", settings), folder / "runs", progress=False)


def test_a_known_user_is_scored_from_their_whole_history(ease_run):
    predictor = Predictor.load(ease_run.directory)
    user = 5
    history = [(3 * user + 7 * t) % 30 for t in range(10)]  # oldest first
    known = predictor.recommend(user=user, k=8)
    new = predictor.recommend(history=history, k=8)
    assert (known.items, known.scores) == (new.items, pytest.approx(new.scores))
    # the train rows alone (7 of the 10) give another answer, the one served before
    row = predictor.users.index([user])
    train_only = np.asarray(predictor.model.score(predictor.inputs[row])).ravel()
    whole = np.asarray(predictor.model.score(predictor.known_inputs[row])).ravel()
    assert predictor.inputs[row].nnz == 7 and predictor.known_inputs[row].nnz == 10
    assert not np.allclose(train_only, whole)
    # evaluation still scores the train rows: it repeats the run's metrics
    assert predictor.evaluate()["test"] == pytest.approx(ease_run.metrics["test"])


def test_a_run_saved_before_keeps_serving_from_its_train_rows(ease_run, tmp_path):
    import shutil

    old = tmp_path / "old-run"
    shutil.copytree(ease_run.directory, old)
    (old / "data/known_inputs.npz").unlink()
    predictor = Predictor.load(old)
    assert (predictor.known_inputs != predictor.inputs).nnz == 0
    assert predictor.recommend(user=5, k=3).items  # still serves


def test_time_weights_run_over_the_whole_history(tmp_path):
    """T-DiffRec's weights of a known user's input: w_min on their oldest interaction of all
    three splits, w_max on their newest (a test one), as a new user's history is weighted."""
    rows = [(u, (u + 2 * t) % 25, 100 * t) for u in range(12) for t in range(10)]
    config = load_config(
        "demo-diffrec",
        [*_log(tmp_path, rows), "data.split=user_temporal", "data.time_weights.w_min=0.2"],
    )
    splits = load_splits(config.data)
    known = known_user_inputs(splits, config)
    user = splits.users.index([3])[0]
    row = known[user]
    order = [splits.items.index([(3 + 2 * t) % 25])[0] for t in range(10)]
    weights = dict(zip(row.indices.tolist(), row.data.tolist(), strict=True))
    assert [round(weights[i], 6) for i in order] == pytest.approx(np.linspace(0.2, 1.0, 10))
    assert (known[user] != time_weights(_whole(splits), 0.2, 1.0)[user]).nnz == 0


def _whole(splits):
    from recdiff.data import Interactions

    parts = [splits.train, splits.valid, splits.test]
    return Interactions.from_indices(
        splits.users,
        splits.items,
        np.concatenate([p.user_indices() for p in parts]),
        np.concatenate([p.matrix.indices for p in parts]),
        timestamps=np.concatenate([p.timestamps.data for p in parts]),
    )


def test_diffrec_files_order_each_split_after_the_one_before(tmp_path):
    """DiffRec's npy splits store row positions, each file from 0: the whole history orders
    train, then valid, then test (the paper's splits are temporal), not position by position."""
    train = [[0, 0], [0, 1], [0, 2], [1, 0], [1, 3], [1, 4]]
    np.save(tmp_path / "train_list.npy", np.array(train))
    np.save(tmp_path / "valid_list.npy", np.array([[0, 3]]))
    np.save(tmp_path / "test_list.npy", np.array([[0, 4]]))
    config = load_config(
        "demo-diffrec",
        ["data.format=diffrec", f"data.source={tmp_path}", "data.time_weights.w_min=0.2"],
    )
    row = known_user_inputs(load_splits(config.data), config)[0]
    weights = dict(zip(row.indices.tolist(), row.data.tolist(), strict=True))
    assert [round(weights[i], 6) for i in range(5)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])


def test_a_history_item_never_trained_on_is_left_out_of_the_input_but_not_recommended(tmp_path):
    """A random split can leave an item only in test: the model learned nothing from it.
    It is no input (a history of only such items gets the empty-history note), and it is
    still never recommended back to the user who named it."""
    rows = [(u, (u + t) % 20, t) for u in range(30) for t in range(8)]
    rows += [(0, 77, 50)]  # item 77: one interaction, which the split may put anywhere
    settings = [*_log(tmp_path, rows), "data.split=leave_one_out", "model.l2_lambda=10"]
    run = run_training(load_config("demo-ease", settings), tmp_path / "runs", progress=False)
    predictor = Predictor.load(run.directory)
    untrained = predictor.items.ids[~predictor.trained_items].tolist()
    assert untrained == [77]  # user 0's last interaction: test
    with_it = predictor.recommend(history=[1, 2, 77], k=20)
    without = predictor.recommend(history=[1, 2], k=20)
    assert 77 not in with_it.items
    assert with_it.items == [i for i in without.items if i != 77]
    alone = predictor.recommend(history=[77], k=3)
    assert alone.note == predictor.empty_input_note and 77 not in alone.items
