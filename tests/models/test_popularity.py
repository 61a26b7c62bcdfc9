"""Most-popular baseline."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from recommender_contract import RecommenderContract

from recdiff.models import Popularity, Recommender


class TestPopularity(RecommenderContract):
    def make_model(self) -> Recommender:
        return Popularity()

    def test_known_answer(self) -> None:  # type: ignore[override]
        """Not personalised: the known answer is the count order, ties to the lower index."""
        train = sp.csr_matrix(
            np.array([[1, 0, 1, 1], [0, 0, 1, 1], [1, 0, 0, 1], [0, 1, 0, 0]], dtype=np.float32)
        )
        model = Popularity().fit(train)
        # counts: item0 2, item1 1, item2 2, item3 3 -> 3, then 0 and 2 tie (0 first), then 1
        np.testing.assert_array_equal(model.item_counts, [2, 1, 2, 3])
        items, _ = model.recommend(sp.csr_matrix((1, 4)), k=4)
        np.testing.assert_array_equal(items, [[3, 0, 2, 1]])
        items, _ = model.recommend(sp.csr_matrix(np.array([[0, 0, 0, 1.0]])), k=2)
        np.testing.assert_array_equal(items, [[0, 2]])

    def test_counts_ignore_weights_and_duplicates(self) -> None:
        train = sp.coo_matrix(
            (np.array([5.0, 1.0, 1.0]), (np.array([0, 0, 1]), np.array([1, 1, 0]))), shape=(2, 3)
        ).tocsr()
        np.testing.assert_array_equal(Popularity().fit(train).item_counts, [1, 1, 0])
