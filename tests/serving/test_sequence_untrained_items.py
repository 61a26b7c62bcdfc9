"""Next-item runs read a history through the items their training examples hold: an item seen
only as a user's valid or test target has an embedding that learned nothing, and before, one
such item in a history (a known user's newest, typically) moved their whole list."""

from __future__ import annotations

import numpy as np
import pytest

from recdiff.config import load_config
from recdiff.serving.predictor import Predictor
from recdiff.train.run import run_training


@pytest.fixture(scope="module", params=["demo-sasrec", "demo-dreamrec"])
def run(request, tmp_path_factory):
    """40 users x 8 interactions over 30 items; user 0's last (test) item, 99, is no other's."""
    folder = tmp_path_factory.mktemp("untrained")
    rows = [(u, (u + 3 * t) % 30, t) for u in range(40) for t in range(8)]
    rows.append((0, 99, 100))
    log = folder / "log.csv"
    log.write_text("user,item,ts\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))
    settings = [f"data.source={log}", "data.format=csv", "data.time_col=ts"]
    settings += ["data.split=leave_one_out", "train.epochs=2", "train.eval_every=1"]
    settings += ["model.dim=8"]
    return run_training(load_config(request.param, settings), folder / "runs", progress=False)


def test_an_item_never_trained_on_is_no_input_but_still_excluded(run):
    predictor = Predictor.load(run.directory)
    assert predictor.items.ids[~predictor.trained_items].tolist() == [99]
    history = [3, 6, 9]
    without = predictor.recommend(history=history, k=10)
    with_it = predictor.recommend(history=[*history, 99], k=10)
    assert with_it.items == [i for i in without.items if i != 99][:10]
    assert 99 not in with_it.items
    # user 0's sequence ends with 99: served as if it did not
    sequence = [(0 + 3 * t) % 30 for t in range(8)]
    assert (
        predictor.recommend(user=0, k=5).items == predictor.recommend(history=sequence, k=5).items
    )
    alone = predictor.recommend(history=[99], k=3)
    assert alone.note is not None and "not personalised" in alone.note


def test_a_run_saved_before_reads_every_item(run, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(run.directory, old)
    (old / "data/trained_items.npy").unlink()
    assert Predictor.load(old).trained_items is None
    np.save(old / "data/trained_items.npy", np.ones(3, dtype=bool))  # of another catalogue
    with pytest.raises(ValueError, match=r"trained_items\.npy"):
        Predictor.load(old)
    (old / "data/trained_items.npy").write_bytes(b"")  # cut short (a full disk, say)
    with pytest.raises(
        ValueError, match=r"trained_items\.npy: cannot be read \(not a numpy \.npy "
    ):
        Predictor.load(old)
