"""Ratings under data.min_rating are left out of training and evaluation (the papers' protocol)
but count as seen: a service must not recommend back a film its user rated one star."""

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recdiff.config import load_config
from recdiff.serving.predictor import Predictor
from recdiff.train.datasets import load_splits
from recdiff.train.run import run_training

# Three users, items a-e. Ratings >= 4 are kept; u1 rated c 1 and d 2, u2 rated e 3.
ROWS = [
    ("u1", "a", 5, 1), ("u1", "b", 4, 2), ("u1", "c", 1, 3), ("u1", "d", 2, 4), ("u1", "e", 4, 5),
    ("u2", "a", 4, 1), ("u2", "c", 5, 2), ("u2", "d", 4, 3), ("u2", "e", 3, 4), ("u2", "b", 5, 5),
    ("u3", "b", 5, 1), ("u3", "c", 4, 2), ("u3", "d", 5, 3), ("u3", "a", 4, 4), ("u3", "e", 5, 5),
]  # fmt: skip


def _config(tmp_path, model="demo-popularity"):
    log = tmp_path / "log.csv"
    pd.DataFrame(ROWS, columns=["user", "item", "rating", "ts"]).to_csv(log, index=False)
    return load_config(
        model,
        ["data.format=csv", f"data.source={log}", "data.rating_col=rating", "data.min_rating=4",
         "data.time_col=ts", "data.split=random", "data.ratios=[0.6,0.2,0.2]",
         "eval.averaging=test_users"],
    )  # fmt: skip


def _pairs(matrix, splits):
    rows, cols = matrix.nonzero()
    return sorted(
        zip(splits.users.ids[rows].tolist(), splits.items.ids[cols].tolist(), strict=True)
    )


def test_the_low_ratings_are_kept_apart_from_every_split(tmp_path):
    splits = load_splits(_config(tmp_path).data)
    assert _pairs(splits.filtered.matrix, splits) == [("u1", "c"), ("u1", "d"), ("u2", "e")]
    held = sum(p.matrix for _, p in splits) + splits.dropped.matrix
    assert held.nnz == 12  # the 12 ratings >= 4, none of the three below
    assert held.multiply(splits.filtered.matrix).nnz == 0


def test_a_known_user_is_not_recommended_what_they_rated_low(tmp_path):
    run = run_training(_config(tmp_path), tmp_path / "runs", progress=False).directory
    seen = sp.load_npz(run / "data/seen.npz")
    predictor = Predictor.load(run)
    assert np.asarray(seen.sum(axis=1)).ravel().tolist() == [5, 5, 5]  # every rating each had
    # u1 rated a, b, e high and c, d low: nothing is left to recommend, and the note says so.
    recs = predictor.recommend(user="u1", k=5)
    assert recs.items == []
    assert recs.note.startswith("every catalogue item is already in the history")
    assert predictor.recommend(user="u1", k=2, exclude_seen=False).items != []
