"""The batched evaluator against hand-computed cases and a brute-force per-user reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recdiff.eval import ALL_METRICS, EvalTask, evaluate, evaluate_scores


def _csr(dense: list[list[int]] | np.ndarray) -> sp.csr_matrix:
    return sp.csr_matrix(np.asarray(dense, dtype=np.float32))


def brute_force(
    scores: np.ndarray, truth: np.ndarray, exclude: np.ndarray, k: int
) -> dict[str, list[float]]:
    """Independent per-user reference written straight from the definitions."""
    names = ("recall", "precision", "ndcg", "mrr", "hit_rate")
    out: dict[str, list[float]] = {m: [] for m in names}
    n_items = scores.shape[1]
    for u in range(scores.shape[0]):
        relevant = {i for i in range(n_items) if truth[u, i]}
        if not relevant:
            for values in out.values():
                values.append(math.nan)
            continue
        allowed = [i for i in range(n_items) if not exclude[u, i]]
        ranked = sorted(allowed, key=lambda i: (-scores[u, i], i))[:k]
        gains = [1.0 if i in relevant else 0.0 for i in ranked]
        dcg = sum(g / math.log2(r + 2) for r, g in enumerate(gains))
        idcg = sum(1 / math.log2(r + 2) for r in range(min(len(relevant), k)))
        first = next((r for r, g in enumerate(gains) if g), None)
        out["recall"].append(sum(gains) / len(relevant))
        out["precision"].append(sum(gains) / k)
        out["ndcg"].append(dcg / idcg)
        out["mrr"].append(0.0 if first is None else 1 / (first + 1))
        out["hit_rate"].append(1.0 if first is not None else 0.0)
    return out


@st.composite
def problems(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    n_users = draw(st.integers(1, 8))
    n_items = draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # Few distinct score values so ties are common.
    scores = rng.integers(0, draw(st.integers(1, 4)), size=(n_users, n_items)).astype(np.float32)
    state = rng.integers(0, 3, size=(n_users, n_items))  # 0 nothing, 1 truth, 2 excluded
    k = draw(st.integers(1, n_items + 3))  # may exceed the catalogue
    return scores, state == 1, state == 2, k


@pytest.mark.filterwarnings("ignore:truth holds no held-out item")  # a drawn empty truth
@settings(max_examples=150, deadline=None)
@given(
    problems(),
    st.sampled_from(["test_users", "all_users"]),
    st.integers(1, 5),
    st.one_of(st.none(), st.integers(1, 5)),
)
def test_matches_brute_force(problem, averaging, batch_size, item_chunk) -> None:
    scores, truth, exclude, k = problem
    result = evaluate_scores(
        scores,
        _csr(truth),
        _csr(exclude),
        ks=(k,),
        metrics=ALL_METRICS,
        batch_size=batch_size,
        averaging=averaging,
        item_chunk=item_chunk,
    )
    reference = brute_force(scores, truth, exclude, k)
    for metric, values in reference.items():
        expected = np.array(values)
        np.testing.assert_allclose(result.per_user[f"{metric}@{k}"], expected, atol=1e-12)
        if averaging == "all_users":
            mean = np.nan_to_num(expected).mean()
        else:
            mean = expected[~np.isnan(expected)].mean() if (~np.isnan(expected)).any() else np.nan
        np.testing.assert_allclose(result[f"{metric}@{k}"], mean, atol=1e-12)


def test_hand_computed_end_to_end() -> None:
    scores = np.array([[0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.5, 0.5]])
    truth = _csr([[0, 1, 0, 1], [1, 0, 0, 0], [0, 0, 0, 0]])
    exclude = _csr([[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    res = evaluate_scores(scores, truth, exclude, ks=(1, 2), metrics=ALL_METRICS)
    # u0: item 0 masked -> ranking [1, 2, 3]; hits [1, 0]; 2 relevant
    #     recall@1 = 1/2, recall@2 = 1/2, ndcg@2 = 1 / (1 + 1/log2 3) = 0.61315
    # u1: ranking [3, 2, 1, 0]; relevant item 0 is last -> all zeros
    # u2: no relevant items -> NaN, not scored at all
    np.testing.assert_allclose(res.per_user["recall@1"], [0.5, 0.0, np.nan])
    np.testing.assert_allclose(res.per_user["ndcg@2"], [1 / (1 + 1 / np.log2(3)), 0.0, np.nan])
    assert res["recall@2"] == pytest.approx(0.25)  # test_users: (0.5 + 0) / 2
    assert res.with_averaging("all_users")["recall@2"] == pytest.approx(0.5 / 3)
    # coverage@2 over the evaluated users' lists {1, 2} and {3, 2}: 3 of 4 items
    assert res["coverage@2"] == pytest.approx(0.75)
    assert res.n_users_evaluated == 2
    assert list(res.means) == [f"{m}@{k}" for m in ALL_METRICS for k in (1, 2)]


def test_evaluate_batches_histories_through_score_fn() -> None:
    rng = np.random.default_rng(0)
    inputs = sp.random(30, 15, density=0.3, format="csr", random_state=1, dtype=np.float32)
    truth = sp.random(30, 15, density=0.2, format="csr", random_state=2, dtype=np.float32)
    weights = rng.random((15, 15)).astype(np.float32)
    seen_batches: list[int] = []

    def score_fn(history: sp.csr_matrix) -> torch.Tensor:
        seen_batches.append(history.shape[0])
        return torch.from_numpy(np.asarray(history @ weights))

    full = evaluate_scores(np.asarray(inputs @ weights), truth, inputs, ks=(5,))
    batched = evaluate(score_fn, inputs, truth, inputs, ks=(5,), batch_size=7)
    assert max(seen_batches) <= 7
    for name in full.per_user:
        np.testing.assert_allclose(batched.per_user[name], full.per_user[name], rtol=1e-6)


def test_callable_scores_subset_and_empty_truth() -> None:
    scores = np.arange(12, dtype=np.float32).reshape(3, 4)
    truth = _csr([[0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 1]])
    truth = _csr([[0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 1]])
    scores = np.vstack([scores, scores[:1]])
    res = evaluate_scores(lambda rows: scores[rows], truth, ks=(1,), users=np.array([0, 2, 3]))
    np.testing.assert_allclose(res.per_user["recall@1"], [1.0, np.nan, np.nan, 1.0])
    # user 2 is in scope but has no truth: skipped by test_users, a 0 for all_users;
    # user 1 is out of scope and counts for neither.
    assert res["recall@1"] == 1.0
    assert res.with_averaging("all_users")["recall@1"] == pytest.approx(2 / 3)
    assert res.n_users_evaluated == 2
    with pytest.warns(UserWarning, match="no held-out item for any user") as caught:
        empty = evaluate_scores(scores, sp.csr_matrix((4, 4)), ks=(1,))
    assert caught[0].filename == __file__
    with pytest.warns(UserWarning, match="no held-out item for the users given"):
        evaluate_scores(scores, truth, ks=(1,), users=np.array([2]))
    assert np.isnan(empty["recall@1"])
    assert empty.with_averaging("all_users")["recall@1"] == 0.0


def test_errors_say_what_to_fix() -> None:
    truth = _csr([[1, 0]])
    with pytest.raises(ValueError, match="expected"):
        evaluate(lambda h: np.zeros((1, 3)), truth, truth)
    with pytest.raises(ValueError, match="same users"):
        evaluate(lambda h: np.zeros((1, 2)), sp.csr_matrix((2, 2)), truth)
    with pytest.raises(ValueError, match="averaging"):
        evaluate_scores(np.zeros((1, 2)), truth, averaging="everyone")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sparse"):
        evaluate_scores(np.zeros((1, 2)), np.ones((1, 2)))  # type: ignore[arg-type]


def test_eval_task_masks_train_and_valid() -> None:
    train = _csr([[1, 0, 0, 0]])
    valid = _csr([[0, 1, 0, 0]])
    test = _csr([[0, 0, 1, 0]])
    scores = np.array([[4.0, 3.0, 2.0, 1.0]])  # prefers seen items
    val_task, test_task = EvalTask.validation(train, valid), EvalTask.test(train, valid, test)
    assert val_task.evaluate(lambda h: scores, ks=(1,))["recall@1"] == 1.0  # item 1 after masking 0
    assert test_task.evaluate(lambda h: scores, ks=(1,))["recall@1"] == 1.0  # item 2 after 0, 1
    np.testing.assert_array_equal(test_task.exclude.toarray(), [[1, 1, 0, 0]])


def test_dense_tensor_scores_match_numpy() -> None:
    rng = np.random.default_rng(5)
    scores = rng.random((12, 9)).astype(np.float32)
    truth = sp.random(12, 9, density=0.3, format="csr", random_state=3, dtype=np.float32)
    a = evaluate_scores(scores, truth, ks=(3,), metrics=ALL_METRICS, batch_size=5)
    b = evaluate_scores(torch.from_numpy(scores), truth, ks=(3,), metrics=ALL_METRICS)
    assert a.means == b.means
