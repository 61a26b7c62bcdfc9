"""T-DiffRec's weights w_m = w_min + (m-1)/(M-1) (w_max - w_min), m = 1..M oldest to
newest (../shared/docs/PAPERS.md, section 3), by hand, and the rows a T-DiffRec run feeds its
model.

tests/data/test_weighting.py already pins M = 3 at w_min = 0.1, ties, the single interaction
(w_max, or w_min with ``single="min"`` as the released linspace) and the pair-order variant. Added
here: M = 5 and M = 2 at another w_min with users interleaved and times out of order, and the
run's model input (train rows only, weighted over the train interactions' time order).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recdiff.config import load_config
from recdiff.data import Interactions, split_user_temporal, time_weights, time_weights_from_order
from recdiff.train.run_rows import model_inputs


def test_five_two_and_one_interactions_by_hand_with_users_interleaved():
    frame = pd.DataFrame(
        {
            # user 0: 5 items; user 1: 2; user 2: 1. Rows interleaved, times out of order.
            "user": [0, 1, 0, 2, 0, 1, 0, 0],
            "item": [4, 0, 2, 5, 0, 3, 1, 3],
            "t": [50, 9, 10, 1, 40, 3, 30, 20],
        }
    )
    data = Interactions.from_frame(frame, time_col="t")
    weights = time_weights(data, w_min=0.3, w_max=1.0).toarray()
    # user 0 by time: item 2 (t 10), 3 (20), 1 (30), 0 (40), 4 (50): 0.3 + (m-1)/4 x 0.7
    np.testing.assert_allclose(weights[0], [0.825, 0.65, 0.3, 0.475, 1.0, 0.0], rtol=1e-6)
    # user 1: item 3 (t 3) oldest, item 0 (t 9) newest: w_min and w_max
    np.testing.assert_allclose(weights[1], [1.0, 0, 0, 0.3, 0, 0], rtol=1e-6)
    # user 2, a single interaction: (m-1)/(M-1) is 0/0; the newest (only) one gets w_max
    np.testing.assert_allclose(weights[2], [0, 0, 0, 0, 0, 1.0], rtol=1e-6)
    released = time_weights(data, w_min=0.3, w_max=1.0, single="min").toarray()
    np.testing.assert_allclose(released[2], [0, 0, 0, 0, 0, 0.3], rtol=1e-6)  # linspace(., ., 1)
    np.testing.assert_allclose(released[:2], weights[:2], rtol=1e-6)


def test_pairs_in_time_order_by_hand():
    users = np.array([1, 0, 1, 0, 1, 1])  # per user, the given order is the time order
    items = np.array([0, 2, 1, 0, 3, 2])
    weights = time_weights_from_order(users, items, (2, 4), w_min=0.5, w_max=1.0).toarray()
    np.testing.assert_allclose(weights[0], [1.0, 0, 0.5, 0], rtol=1e-6)
    np.testing.assert_allclose(weights[1], [0.5, 0.5 + 0.5 / 3, 1.0, 0.5 + 1.0 / 3], rtol=1e-6)


def test_a_t_diffrec_run_feeds_the_model_its_train_rows_weighted_by_time():
    # One user, 10 interactions at times 100 - 10 i on items i: item 9 oldest, item 0 newest.
    frame = pd.DataFrame(
        {"user": [0] * 10, "item": list(range(10)), "t": [100 - 10 * i for i in range(10)]}
    )
    splits = split_user_temporal(Interactions.from_frame(frame, time_col="t"), (0.7, 0.1, 0.2))
    config = load_config("demo-diffrec", ["data.time_weights.w_min=0.3"])
    rows = model_inputs(splits, config).toarray()
    # Train: the 7 oldest, items 9..3 (m = 1..7): 0.3 + (m-1)/6 x 0.7; valid and test items 0-2
    # are not in the input.
    by_item = {9 - (m - 1): 0.3 + (m - 1) / 6 * 0.7 for m in range(1, 8)}
    expected = np.array([by_item.get(item, 0.0) for item in range(10)])
    np.testing.assert_allclose(rows[0], expected, rtol=1e-6)
    binary = model_inputs(splits, load_config("demo-diffrec")).toarray()
    np.testing.assert_array_equal(binary[0], (expected > 0).astype(np.float32))
