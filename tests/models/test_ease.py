"""EASE: closed form, known weights, lambda selection on validation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from recommender_contract import RecommenderContract, checkerboard

from recdiff.eval import EvalTask
from recdiff.models import EASE, Recommender, select_ease_lambda
from recdiff.models.ease import ease_weights, gram_matrix, grid_edge_note


class TestEASE(RecommenderContract):
    def make_model(self) -> Recommender:
        return EASE(l2_lambda=10.0)  # small lambdas overfit 40 users into negative weights


def test_two_item_weights_by_hand() -> None:
    # X = [[1, 1], [1, 0]] -> G = [[2, 1], [1, 1]]; lambda 1 -> G + I = [[3, 1], [1, 2]]
    # P = (1/5) [[2, -1], [-1, 3]];  B_01 = -P_01 / P_11 = (1/5)/(3/5) = 1/3,
    # B_10 = -P_10 / P_00 = (1/5)/(2/5) = 1/2, diagonal 0.
    train = sp.csr_matrix(np.array([[1, 1], [1, 0]], dtype=np.float32))
    model = EASE(l2_lambda=1.0).fit(train)
    np.testing.assert_allclose(model.weights, [[0, 1 / 3], [1 / 2, 0]], rtol=1e-6)
    # score = history @ B: a user with item 0 scores item 1 with B_01 = 1/3
    np.testing.assert_allclose(model.score(train[1]), [[0, 1 / 3]], rtol=1e-6)


def test_matches_the_dense_formula() -> None:
    rng = np.random.default_rng(3)
    x = (rng.random((30, 12)) < 0.3).astype(np.float64)
    p = np.linalg.inv(x.T @ x + 7.0 * np.eye(12))
    expected = np.eye(12) - p / np.diag(p)[None, :]
    weights = ease_weights(gram_matrix(sp.csr_matrix(x)), 7.0)
    np.testing.assert_allclose(weights, expected, atol=1e-6)
    assert (np.diag(weights) == 0).all()


def test_lambda_must_be_positive() -> None:
    with pytest.raises(ValueError, match="l2_lambda"):
        EASE(l2_lambda=0.0)


def test_select_lambda_on_validation() -> None:
    full = checkerboard(seed=1)
    rng = np.random.default_rng(0)
    held = rng.random(full.nnz) < 0.25
    coo = full.tocoo()

    def part(mask: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((coo.data[mask], (coo.row[mask], coo.col[mask])), shape=full.shape)

    train, valid = part(~held), part(held)
    grid = (0.5, 5.0, 500.0)
    selection = select_ease_lambda(train, valid, grid=grid, metric="recall@5")
    assert list(selection.valid_scores) == list(grid)
    assert selection.best_lambda == max(grid, key=lambda g: (selection.valid_scores[g], -g))
    again = EvalTask.validation(train, valid).evaluate(selection.model.score, ks=(5,))["recall@5"]
    assert again == pytest.approx(selection.valid_scores[selection.best_lambda])
    with pytest.raises(ValueError, match="recall@20"):
        select_ease_lambda(train, valid, grid=grid, metric="recall")
    # The choice at an edge of the grid comes with a warning that names it.
    edge = selection.best_lambda in (min(grid), max(grid))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        select_ease_lambda(train, valid, grid=grid, metric="recall@5")
    assert [str(w.message) for w in caught] == (
        [grid_edge_note(selection.best_lambda, grid)] if edge else []
    )


def test_a_choice_at_the_grid_edge_is_named():
    grid = (50.0, 100.0, 1000.0)
    assert grid_edge_note(50.0, grid) == (
        "EASE's lambda chosen on validation, 50, is the smallest of the grid [50.0, 100.0, "
        "1000.0]; a smaller one may do better: extend model.l2_lambda_grid"
    )
    assert "largest" in grid_edge_note(1000.0, grid) and "a larger one" in grid_edge_note(
        1000.0, grid
    )
    assert grid_edge_note(100.0, grid) is None
    assert grid_edge_note(50.0, (50.0,)) is None  # one value: nothing was searched
