"""The Predictor's id parsing: what a caller of the Python API passes as item ids."""

from __future__ import annotations

import numpy as np
import pytest

from recdiff.serving.predictor import Predictor


@pytest.fixture(scope="module")
def predictor(run_dir):
    return Predictor.load(run_dir)


def test_non_integral_item_ids_are_refused_not_truncated(predictor):
    # int(1.5) is 1: the history [1.5, 2.7] would silently be scored as items 1 and 2.
    with pytest.raises(ValueError, match=r"item ids of this run are integers, got \[1.5, 2.7\]"):
        predictor.recommend(history=[1.5, 2.7], k=3)
    # Integral floats (a pandas column read as float) and text ids still name their items.
    expected = predictor.recommend(history=[1, 2], k=3).items
    assert predictor.recommend(history=np.array([1.0, 2.0]), k=3).items == expected
    assert predictor.recommend(history=["1", " 2"], k=3).items == expected
