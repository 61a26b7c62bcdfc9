"""Evaluation paths no other test reached: the refusals of bad metric, ranking and evaluator
inputs (each names what to fix), a cut-off beyond the catalogue through the whole evaluator,
and one scoring pass shared by tasks whose users do not overlap."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recdiff.eval import EvalTask, evaluate, evaluate_scores, mask_items, topk_items
from recdiff.eval import metrics as M
from recdiff.eval.multi import evaluate_many
from recdiff.eval.ranking import as_score_tensor

D2 = 1 / np.log2(3)  # discount of rank 1 (0-based)


def _csr(rows: list[list[int]]) -> sp.csr_matrix:
    return sp.csr_matrix(np.array(rows, dtype=np.float32))


# ------------------------------------------------------------------------------- metrics
def test_metric_inputs_of_the_wrong_shape_or_sign_are_refused() -> None:
    with pytest.raises(ValueError, match=r"hits must be a \[users, K\] matrix, got shape \(3,\)"):
        M.recall_at_k(np.array([1, 0, 1]), np.array([1]), 1)
    with pytest.raises(ValueError, match="n_relevant must be non-negative"):
        M.precision_at_k(np.array([[1, 0]]), np.array([-1]), 1)


def test_coverage_refuses_a_bad_cut_off_or_an_empty_catalogue() -> None:
    items = np.array([[0, 1], [2, -1]])
    assert M.coverage_at_k(items, 4, 2) == pytest.approx(0.75)
    with pytest.raises(ValueError, match=r"1 <= k <= K, got \(2, 2\), k=3"):
        M.coverage_at_k(items, 4, 3)
    with pytest.raises(ValueError, match=r"1 <= k <= K, got \(4,\), k=1"):
        M.coverage_at_k(items.ravel(), 4, 1)
    with pytest.raises(ValueError, match="n_items must be positive, got 0"):
        M.coverage_at_k(items, 0, 1)


def test_averaging_nothing_is_nan_in_both_modes() -> None:
    # No users at all: there is no mean to report, not a 0 that looks like a measured score.
    assert np.isnan(M.average(np.array([]), "all_users"))
    assert np.isnan(M.average(np.array([]), "test_users"))


def test_mrr_is_zero_not_one_when_the_top_k_has_no_hit() -> None:
    # argmax of an all-False row is 0, which would read as a hit at rank 0 (MRR 1).
    hits = np.array([[0, 0, 0], [0, 0, 1]], dtype=bool)
    np.testing.assert_allclose(M.mrr_at_k(hits, np.array([1, 1]), 3), [0.0, 1 / 3])
    np.testing.assert_allclose(M.mrr_at_k(hits, np.array([1, 1]), 2), [0.0, 0.0])


# ------------------------------------------------------------------------------- ranking
def test_score_blocks_that_are_not_arrays_or_not_2d_are_refused() -> None:
    with pytest.raises(TypeError, match="numpy array or torch tensor, got list"):
        as_score_tensor([[1.0, 2.0]])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\[batch, n_items\] block, got shape \(3,\)"):
        topk_items(np.zeros(3), 1)
    with pytest.raises(ValueError, match="item_chunk must be a positive number"):
        topk_items(np.zeros((1, 3)), 1, item_chunk=0)


def test_exclude_must_be_sparse() -> None:
    with pytest.raises(TypeError, match="exclude must be a scipy sparse matrix, got ndarray"):
        topk_items(np.zeros((1, 3)), 1, exclude=np.zeros((1, 3)))  # type: ignore[arg-type]


def test_mask_items_in_place_changes_and_returns_the_given_tensor() -> None:
    scores = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    exclude = sp.csr_matrix(([0.0, 1.0], ([0, 1], [2, 0])), shape=(2, 3))  # a stored 0 counts
    out = mask_items(scores, exclude, copy=False)
    assert out is scores
    expected = [[1.0, 2.0, -np.inf], [-np.inf, 5.0, 6.0]]
    np.testing.assert_array_equal(scores.numpy(), expected)


@pytest.mark.parametrize("item_chunk", [None, 1, 2])
def test_masking_ties_and_padding_agree_in_item_chunks(item_chunk) -> None:
    # u0: item 0 masked; items 1 and 3 tie -> 1 first; one real item fewer than k -> padding.
    scores = np.array([[0.9, 0.8, 0.1, 0.8], [0.5, 0.7, 0.9, 0.5]], dtype=np.float32)
    exclude = _csr([[1, 0, 0, 0], [0, 0, 1, 0]])
    items, values = topk_items(scores, 5, exclude=exclude, item_chunk=item_chunk)
    np.testing.assert_array_equal(items, [[1, 3, 2, -1, -1], [1, 0, 3, -1, -1]])
    np.testing.assert_allclose(values[:, :3], [[0.8, 0.8, 0.1], [0.7, 0.5, 0.5]])
    assert np.isneginf(values[:, 3:]).all()


def test_integer_scores_rank_by_their_exact_values() -> None:
    # Popularity-style counts: item 1 was seen once more than item 0. As float32 (before) the
    # two counts merged and the tie went to item 0.
    items, values = topk_items(np.array([[2**24, 2**24 + 1]], dtype=np.int64), 1)
    np.testing.assert_array_equal(items, [[1]])
    assert values[0, 0] == 2**24 + 1


# ----------------------------------------------------------------------------- evaluator
TRUTH = _csr([[0, 1, 0, 1], [0, 0, 0, 0], [1, 0, 0, 0]])  # u1 has nothing held out
EXCLUDE = _csr([[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]])
SCORES = np.array([[0.9, 0.8, 0.1, 0.8], [0.0, 0.0, 0.0, 0.0], [0.5, 0.7, 0.9, 0.5]])


@pytest.mark.parametrize("item_chunk", [None, 3])
def test_a_cut_off_beyond_the_catalogue_is_evaluated_with_padding(item_chunk) -> None:
    # Rankings (see the chunk test): u0 [1, 3, 2, -, -] hits [1, 1, 0, 0, 0] of 2 relevant;
    # u2 [1, 0, 3, -, -] hits [0, 1, 0, 0, 0] of 1 relevant. k = 5 > 4 items.
    res = evaluate_scores(
        SCORES, TRUTH, EXCLUDE, ks=(1, 5), metrics=M.ALL_METRICS, item_chunk=item_chunk
    )
    np.testing.assert_allclose(res.per_user["recall@1"], [0.5, np.nan, 0.0])
    np.testing.assert_allclose(res.per_user["recall@5"], [1.0, np.nan, 1.0])
    # precision divides by the k asked for, padding included: 2/5 and 1/5
    np.testing.assert_allclose(res.per_user["precision@5"], [0.4, np.nan, 0.2])
    np.testing.assert_allclose(res.per_user["ndcg@5"], [1.0, np.nan, D2])
    np.testing.assert_allclose(res.per_user["mrr@5"], [1.0, np.nan, 0.5])
    assert res["ndcg@5"] == pytest.approx((1 + D2) / 2)
    assert res.with_averaging("all_users")["ndcg@5"] == pytest.approx((1 + D2) / 3)
    # top-1 lists are {1} and {1}; the full lists cover all 4 items, padding aside
    assert res["coverage@1"] == pytest.approx(0.25)
    assert res["coverage@5"] == pytest.approx(1.0)
    assert res.to_dict() == {
        "averaging": "test_users",
        "ks": [1, 5],
        "n_users_evaluated": 2,
        "n_users_in_scope": 3,
        "means": res.means,
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ks": ()}, r"ks must be a non-empty sequence of positive cut-offs, got \(\)"),
        ({"ks": (0, 5)}, r"positive cut-offs, got \(0, 5\)"),
        ({"batch_size": 0}, "batch_size must be positive, got 0"),
        ({"exclude": _csr([[1, 0, 0, 0, 0]] * 3)}, r"exclude has shape \(3, 5\) but truth"),
        ({"users": np.array([0, 3])}, r"users must be row indices in \[0, 3\)"),
        ({"users": np.array([-1])}, r"users must be row indices in \[0, 3\)"),
    ],
)
def test_evaluator_options_are_checked_with_the_fix_named(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate_scores(SCORES, TRUTH, **kwargs)


@pytest.mark.parametrize(
    ("users", "why"),
    [(np.array([True, False, True]), "boolean mask.*flatnonzero"), ([0.0, 0.7], "dtype float64")],
)
def test_users_given_as_a_mask_or_as_fractions_are_refused(users, why) -> None:
    # A cast to int64 read the mask [True, False, True] as rows 1, 0, 1 and 0.7 as row 0.
    truth = sp.csr_matrix(np.eye(3, dtype=np.float32))
    scores = np.array([[1.0, 0, 0], [0, 1.0, 0], [1.0, 0, 0]])
    with pytest.raises(TypeError, match=f"users must be integers, got .*{why}"):
        evaluate_scores(scores, truth, ks=(1,), users=users)
    res = evaluate_scores(scores, truth, ks=(1,), users=np.array([0, 2]))
    assert res.in_scope.tolist() == [True, False, True] and res["recall@1"] == 0.5


def test_evaluate_refuses_dense_inputs_and_misshapen_score_matrices() -> None:
    with pytest.raises(TypeError, match="inputs must be a scipy sparse matrix, got ndarray"):
        evaluate(lambda h: SCORES, np.zeros((3, 4)), TRUTH)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"scores have shape \(3, 3\) but truth has \(3, 4\)"):
        evaluate_scores(SCORES[:, :3], TRUTH)
    with pytest.raises(ValueError, match="split matrices must share one users x items shape"):
        EvalTask.validation(TRUTH, TRUTH[:2])


def test_one_scoring_pass_serves_tasks_whose_users_do_not_overlap() -> None:
    # Task "a" holds out items of user 0 only, task "b" of user 2 only; with one user per batch
    # every block is ranked for one task and skipped by the other.
    inputs = _csr([[0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])
    a = EvalTask(inputs, _csr([[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]), inputs)
    b = EvalTask(inputs, _csr([[0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]]), inputs)
    scored: list[int] = []

    def score_fn(rows: sp.csr_matrix) -> np.ndarray:
        scored.append(rows.shape[0])
        return np.tile([0.4, 0.3, 0.2, 0.1], (rows.shape[0], 1))  # prefers low indices

    out = evaluate_many(score_fn, inputs, {"a": a, "b": b}, ks=(1, 2), batch_size=1)
    assert scored == [1, 1]  # users 0 and 2 once each; user 1 has nothing held out anywhere
    # a: user 0 ranks [0, 1] (item 2 masked) -> item 1 at rank 1: recall@1 0, recall@2 1
    np.testing.assert_allclose(out["a"].per_user["recall@2"], [1.0, np.nan, np.nan])
    assert out["a"]["recall@1"] == 0.0 and out["a"]["ndcg@2"] == pytest.approx(D2)
    # b: user 2 ranks [0, 1] (item 3 masked) -> item 0 on top
    np.testing.assert_allclose(out["b"].per_user["recall@1"], [np.nan, np.nan, 1.0])
    for name, task in (("a", a), ("b", b)):
        alone = task.evaluate(score_fn, ks=(1, 2))
        assert out[name].means == alone.means


def test_evaluate_many_refuses_a_task_with_other_inputs() -> None:
    inputs = _csr([[1, 0], [0, 1]])
    other = EvalTask(_csr([[0, 1], [0, 1]]), inputs, inputs)
    with pytest.raises(ValueError, match="task 'test' has other inputs: evaluate it separately"):
        evaluate_many(lambda h: np.zeros((h.shape[0], 2)), inputs, {"test": other})
