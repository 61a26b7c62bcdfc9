"""Next-item runs: the ratings under data.min_rating are out of the sequences (the papers'
protocol) but were had, so recommend, export and serve never suggest them back to their user."""

import pandas as pd
import pytest
import scipy.sparse as sp

from recdiff.config import load_config
from recdiff.serving.export import export_recommendations
from recdiff.serving.sequence_predictor import SequencePredictor
from recdiff.train.run import run_training

# Items a-h. Ratings >= 4 are kept; u1 rated c 1 and d 2, u2 rated h 3; all else is >= 4.
ROWS = [
    ("u1", "a", 5, 1), ("u1", "b", 4, 2), ("u1", "c", 1, 3), ("u1", "d", 2, 4),
    ("u1", "e", 4, 5), ("u1", "f", 5, 6), ("u1", "g", 4, 7),
    ("u2", "a", 4, 1), ("u2", "b", 5, 2), ("u2", "c", 4, 3), ("u2", "d", 5, 4),
    ("u2", "h", 3, 5), ("u2", "e", 4, 6),
    ("u3", "h", 5, 1), ("u3", "g", 4, 2), ("u3", "f", 5, 3), ("u3", "e", 4, 4), ("u3", "d", 5, 5),
    ("u4", "c", 5, 1), ("u4", "h", 4, 2), ("u4", "a", 5, 3), ("u4", "b", 4, 4), ("u4", "g", 5, 5),
]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("low")
    log = folder / "log.csv"
    pd.DataFrame(ROWS, columns=["user", "item", "rating", "ts"]).to_csv(log, index=False)
    config = load_config(
        "demo-sasrec",
        [f"data.source={log}", "data.format=csv", "data.rating_col=rating",
         "data.min_rating=4", "data.time_col=ts", "data.split=leave_one_out",
         "train.epochs=1", "train.eval_every=1"],
    )  # fmt: skip
    return run_training(config, folder / "runs", progress=False).directory


def test_the_run_keeps_each_users_low_ratings_apart(run):
    low = sp.load_npz(run / "data/low_ratings.npz")
    predictor = SequencePredictor.load(run)
    rows, cols = low.nonzero()
    pairs = sorted(
        zip(predictor.users.ids[rows].tolist(), predictor.items.ids[cols].tolist(), strict=True)
    )
    assert pairs == [("u1", "c"), ("u1", "d"), ("u2", "h")]


def test_a_known_user_is_not_recommended_what_they_rated_low(run):
    predictor = SequencePredictor.load(run)
    # u1's sequence holds a, b, e, f, g; c and d were rated low: only h is left.
    assert predictor.recommend(user="u1", k=8).items == ["h"]
    assert sorted(predictor.recommend(user="u2", k=8).items) == ["f", "g"]
    assert len(predictor.recommend(user="u1", k=8, exclude_seen=False).items) == 8
    # a new user's history is all that is known of them
    assert "c" in predictor.recommend(history=["a", "b"], k=6).items


def test_export_leaves_them_out_too(run, tmp_path):
    out = tmp_path / "recs.csv"
    export_recommendations(SequencePredictor.load(run), out, k=8)
    table = pd.read_csv(out)
    assert sorted(table[table.user == "u1"].item) == ["h"]
