"""Every metric of the evaluator against values worked out by hand on tiny cases: both
averagings, users without held-out items, users with every item masked, cut-offs beyond the
catalogue, ties, ``-inf`` and ``NaN`` scores, held-out items that are also masked, repeated and
stored-zero truth entries, the EvalTask masks, batching, and per-user values against the means."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recdiff.data.batches import SequenceExamples
from recdiff.eval import ALL_METRICS, EvalTask, evaluate, evaluate_scores
from recdiff.eval.multi import evaluate_many
from recdiff.eval.next_item import evaluate_next_item

D1, D2, D3, D4 = 1.0, 1 / math.log2(3), 1 / math.log2(4), 1 / math.log2(5)  # 1, .631, .5, .431
INF = math.inf
NAN = math.nan


def _csr(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    """0/1 CSR with ``rows[u]`` the stored items of user ``u``."""
    dense = np.zeros((len(rows), n_items), dtype=np.float32)
    for u, items in enumerate(rows):
        dense[u, items] = 1.0
    return sp.csr_matrix(dense)


# 5 users x 6 items, ranked at K = 1, 3 and 8 (8 > the 6-item catalogue).
SCORES = np.array(
    [
        [0.9, 0.8, 0.8, 0.1, 0.5, 0.5],  # u0: ties 1 = 2 and 4 = 5
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # u1: every item tied
        [0.3, -INF, 0.7, 0.2, 0.1, 0.6],  # u2: the model never recommends item 1
        [0.5, 0.4, 0.3, 0.2, 0.1, 0.0],  # u3: no held-out items (never ranked)
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],  # u4: every item masked
    ]
)
TRUTH = [[2, 5], [3], [1, 2, 4], [], [0]]
EXCLUDE = [[0], [0, 1], [0], [1], [0, 1, 2, 3, 4, 5]]
KS = (1, 3, 8)
# Lists by hand (score descending, lower index first on ties, masked and -inf items dropped,
# padded with -1):
#   u0 [1, 2, 4, 5, 3, -1, -1, -1]  hits at ranks 1, 3      |rel| 2, ideal DCG@3,8 = 1 + D2
#   u1 [2, 3, 4, 5, -1, ...]         hit at rank 1           |rel| 1, ideal = 1
#   u2 [2, 5, 3, 4, -1, ...]         hits at ranks 0, 3      |rel| 3 (item 1 is never ranked)
#   u4 [-1] * 8                      no hit                  |rel| 1 (item 0 is masked)
PER_USER = {
    "recall@1": [0, 0, 1 / 3, NAN, 0],
    "recall@3": [1 / 2, 1, 1 / 3, NAN, 0],
    "recall@8": [1, 1, 2 / 3, NAN, 0],
    "precision@1": [0, 0, 1, NAN, 0],
    "precision@3": [1 / 3, 1 / 3, 1 / 3, NAN, 0],
    "precision@8": [2 / 8, 1 / 8, 2 / 8, NAN, 0],  # divided by k = 8, not by the 4 ranked items
    "ndcg@1": [0, 0, 1, NAN, 0],
    "ndcg@3": [D2 / (1 + D2), D2 / 1, 1 / (1 + D2 + D3), NAN, 0],  # u2 ideal: min(3, 3) hits
    "ndcg@8": [(D2 + D4) / (1 + D2), D2, (1 + D4) / (1 + D2 + D3), NAN, 0],
    "mrr@1": [0, 0, 1, NAN, 0],
    "mrr@3": [1 / 2, 1 / 2, 1, NAN, 0],
    "mrr@8": [1 / 2, 1 / 2, 1, NAN, 0],
    "hit_rate@1": [0, 0, 1, NAN, 0],
    "hit_rate@3": [1, 1, 1, NAN, 0],
    "hit_rate@8": [1, 1, 1, NAN, 0],
}
# Means: "test_users" over u0, u1, u2, u4 (4 users); "all_users" over all 5, u3 counted as 0.
MEANS = {
    "test_users": {
        "recall@1": (1 / 3) / 4,  # 0.08333
        "recall@3": (1 / 2 + 1 + 1 / 3) / 4,  # 0.45833
        "recall@8": (1 + 1 + 2 / 3) / 4,  # 0.66667
        "ndcg@3": (D2 / (1 + D2) + D2 + 1 / (1 + D2 + D3)) / 4,  # (.38685 + .63093 + .46928) / 4
        "mrr@8": (1 / 2 + 1 / 2 + 1) / 4,  # 0.5
        "precision@8": (2 / 8 + 1 / 8 + 2 / 8) / 4,  # 0.15625
    },
    "all_users": {
        "recall@1": (1 / 3) / 5,  # 0.06667
        "recall@3": (1 / 2 + 1 + 1 / 3) / 5,  # 0.36667
        "recall@8": (1 + 1 + 2 / 3) / 5,  # 0.53333
        "ndcg@3": (D2 / (1 + D2) + D2 + 1 / (1 + D2 + D3)) / 5,
        "mrr@8": (1 / 2 + 1 / 2 + 1) / 5,  # 0.4
        "precision@8": (2 / 8 + 1 / 8 + 2 / 8) / 5,  # 0.125
    },
}
# Coverage over the lists of ranked users (u3, whose top item would be 0, is not ranked):
# @1 {1, 2} -> 2/6; @3 {1, 2, 4} | {2, 3, 4} | {2, 5, 3} = {1..5} -> 5/6; @8 the same 5/6.
COVERAGE = {"coverage@1": 2 / 6, "coverage@3": 5 / 6, "coverage@8": 5 / 6}


@pytest.mark.parametrize("averaging", ["test_users", "all_users"])
@pytest.mark.parametrize(("batch_size", "item_chunk"), [(5, None), (1, None), (2, 2), (3, 4)])
def test_every_metric_matches_the_hand_computed_case(averaging, batch_size, item_chunk) -> None:
    result = evaluate_scores(
        SCORES,
        _csr(TRUTH, 6),
        _csr(EXCLUDE, 6),
        ks=KS,
        metrics=ALL_METRICS,
        batch_size=batch_size,
        averaging=averaging,
        item_chunk=item_chunk,
    )
    assert set(result.per_user) == set(PER_USER)
    for name, expected in PER_USER.items():
        np.testing.assert_allclose(result.per_user[name], expected, rtol=1e-12, err_msg=name)
    for name, expected in MEANS[averaging].items():
        assert result[name] == pytest.approx(expected, rel=1e-12), name
    for name, expected in COVERAGE.items():
        assert result[name] == pytest.approx(expected, rel=1e-12), name
    assert result.n_relevant.tolist() == [2, 1, 3, 0, 1]
    assert result.n_users_evaluated == 4


@pytest.mark.parametrize("averaging", ["test_users", "all_users"])
def test_per_user_values_reproduce_the_means_for_paired_tests(averaging) -> None:
    result = evaluate_scores(
        SCORES, _csr(TRUTH, 6), _csr(EXCLUDE, 6), ks=KS, metrics=ALL_METRICS, averaging=averaging
    )
    for name, values in result.per_user.items():
        if averaging == "all_users":
            mean = np.nan_to_num(values, nan=0.0).sum() / 5  # u3 read as 0
        else:
            mean = np.nansum(values) / 4  # u3 skipped
        assert result[name] == pytest.approx(mean, rel=1e-12), name
    # Switching the averaging afterwards gives what evaluating that way gives.
    other = "all_users" if averaging == "test_users" else "test_users"
    switched = result.with_averaging(other)
    for name, expected in MEANS[other].items():
        assert switched[name] == pytest.approx(expected, rel=1e-12), name


def _in_order(scores: torch.Tensor, batch_size: int):
    """A next-item scorer that returns the rows of ``scores`` batch after batch."""
    starts = iter(range(0, len(scores), batch_size))

    def score(history: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        start = next(starts)
        return scores[start : start + len(history)]

    return score


def test_tie_order_is_the_same_on_the_row_and_next_item_paths_for_any_batch() -> None:
    # One target per row; all-tied and partly tied rows. Lower item index first:
    #   row 0 all 0.5 -> [0, 1, 2, 3, 4], target 3 at rank 3: ndcg@5 = D4 (1/log2(5)), mrr 1/4
    #   row 1 [0.1, .9, .9, .9, .2] -> [1, 2, 3, 4, 0], target 3 at rank 2: ndcg D3, mrr 1/3
    #   row 2 [2, 1, 1, 1, 1] -> [0, 1, 2, 3, 4], target 1 at rank 1: ndcg D2, mrr 1/2
    scores = torch.tensor(
        [[0.5] * 5, [0.1, 0.9, 0.9, 0.9, 0.2], [2.0, 1.0, 1.0, 1.0, 1.0]], dtype=torch.float64
    )
    targets = np.array([3, 3, 1])
    expected_ndcg = [D4, D3, D2]
    expected_mrr = [1 / 4, 1 / 3, 1 / 2]
    examples = SequenceExamples(np.full((3, 1), 5), np.zeros(3, dtype=np.int64), targets)
    for batch_size in (1, 2, 3):
        for item_chunk in (None, 2):
            seq = evaluate_next_item(
                _in_order(scores, batch_size), examples, 5, ks=(5,), metrics=("ndcg", "mrr"),
                batch_size=batch_size, item_chunk=item_chunk,
            )  # fmt: skip
            rows = evaluate_scores(
                scores, _csr([[3], [3], [1]], 5), ks=(5,), metrics=("ndcg", "mrr"),
                batch_size=batch_size, item_chunk=item_chunk,
            )  # fmt: skip
            for result in (seq, rows):
                np.testing.assert_allclose(result.per_user["ndcg@5"], expected_ndcg, rtol=1e-12)
                np.testing.assert_allclose(result.per_user["mrr@5"], expected_mrr, rtol=1e-12)


def test_eval_task_masks_and_held_out_items_that_are_also_seen() -> None:
    # 3 users x 4 items. u0's test item 0 is also in train: masked, yet it stays in |rel|.
    train = _csr([[0], [1], []], 4)
    valid = _csr([[2], [], [3]], 4)
    test = _csr([[0, 3], [2, 3], [2, 3]], 4)
    scores = np.array([[0.9, 0.1, 0.5, 0.3], [0.2, 0.8, 0.4, 0.6], [0.1, 0.2, 0.3, 0.4]])
    by_history = {(0,): scores[0], (1,): scores[1], (): scores[2]}  # train rows tell users apart

    def score_fn(rows: sp.csr_matrix) -> np.ndarray:
        return np.stack([by_history[tuple(rows[u].indices)] for u in range(rows.shape[0])])

    task = EvalTask.test(train, valid, test)
    assert task.exclude.toarray().tolist() == [[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]]
    result = task.evaluate(score_fn, ks=(1, 2), metrics=("recall", "ndcg"), batch_size=2)
    # Lists: u0 [3, 1] (0, 2 masked), u1 [3, 2] (1 masked), u2 [2, 1] (3 masked)
    # recall@2: u0 1/2 (item 0 can never be hit), u1 2/2, u2 1/2 (item 3 masked)
    np.testing.assert_allclose(result.per_user["recall@2"], [1 / 2, 1, 1 / 2])
    # ndcg@2: ideal 1 + D2 for everyone; u0 hit at 0 -> 1/(1+D2); u1 both -> 1; u2 at 0
    np.testing.assert_allclose(result.per_user["ndcg@2"], [1 / (1 + D2), 1, 1 / (1 + D2)])
    assert result["recall@2"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)  # 0.66667
    # Validation masks train only: u0's list is [2, 3] (valid item 2 is ranked, hit at 0).
    validation = EvalTask.validation(train, valid)
    assert validation.exclude.toarray().tolist() == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    v = validation.evaluate(score_fn, ks=(1,), metrics=("recall",))
    # u0 top [2] hits valid {2}; u1 has no valid item; u2 top [3] hits valid {3}
    np.testing.assert_allclose(v.per_user["recall@1"], [1, NAN, 1])
    # One scoring pass for both tasks gives the same numbers.
    both = evaluate_many(
        score_fn, train, {"valid": validation, "test": task}, ks=(1, 2),
        metrics=("recall", "ndcg"), batch_size=2,
    )  # fmt: skip
    np.testing.assert_allclose(both["test"].per_user["recall@2"], [1 / 2, 1, 1 / 2])
    np.testing.assert_allclose(both["valid"].per_user["recall@1"], [1, NAN, 1])


def test_repeated_and_stored_zero_truth_entries_count_once() -> None:
    # u0 holds item 2 twice and item 0 once; u1 holds item 1 as a stored 0.0 (still relevant).
    truth = sp.csr_matrix(
        (np.array([1.0, 1.0, 1.0, 0.0]), np.array([2, 2, 0, 1]), np.array([0, 3, 4])),
        shape=(2, 4),
    )
    scores = np.array([[0.9, 0.1, 0.5, 0.3], [0.1, 0.9, 0.5, 0.3]])
    result = evaluate_scores(scores, truth, ks=(2,), metrics=("recall", "precision", "ndcg"))
    assert result.n_relevant.tolist() == [2, 1]  # |{0, 2}| = 2, |{1}| = 1
    # u0 list [0, 2]: 2 hits / 2 relevant; u1 list [1, 2]: 1 hit / 1 relevant
    np.testing.assert_allclose(result.per_user["recall@2"], [1, 1])
    np.testing.assert_allclose(result.per_user["precision@2"], [2 / 2, 1 / 2])
    np.testing.assert_allclose(result.per_user["ndcg@2"], [(1 + D2) / (1 + D2), 1])


def test_nan_scores_are_refused_where_ranked_even_when_masked() -> None:
    truth = _csr([[1], [], [2]], 3)
    scores = np.array([[NAN, 0.5, 0.1], [0.2, 0.3, 0.4], [0.1, 0.2, 0.3]])
    # Masking the NaN item does not hide it: NaN never silently ranks first or last.
    with pytest.raises(ValueError, match="NaN"):
        evaluate_scores(scores, truth, exclude=_csr([[0], [], []], 3), ks=(1,))
    # A NaN in a row that is never ranked (u1 has no held-out item) is not looked at.
    scores[0, 0], scores[1, 0] = 0.0, NAN
    result = evaluate_scores(scores, truth, ks=(1,), batch_size=3)
    np.testing.assert_allclose(result.per_user["recall@1"], [1, NAN, 1])  # u0 [1], u2 [2]


def test_score_fn_gets_the_input_rows_of_the_ranked_users_only() -> None:
    # evaluate() hands the model the history rows of users with held-out items, batch by batch.
    inputs = _csr([[0], [1], [2], [3]], 4)
    truth = _csr([[1], [], [3], [0]], 4)
    seen = []

    def score_fn(rows: sp.csr_matrix) -> np.ndarray:
        seen.append(rows.indices.tolist())
        return rows.toarray()[:, ::-1] + np.arange(4)

    result = evaluate(score_fn, inputs, truth, ks=(1,), batch_size=2, averaging="all_users")
    assert seen == [[0, 2], [3]]  # users 0, 2 then 3; user 1 has nothing to rank
    # scores = reversed history row + [0, 1, 2, 3]:
    #   u0 [0, 0, 0, 1] + .. = [0, 1, 2, 4] -> top item 3, truth {1}: miss
    #   u2 [0, 1, 0, 0] + .. = [0, 2, 2, 3] -> top item 3, truth {3}: hit
    #   u3 [1, 0, 0, 0] + .. = [1, 1, 2, 3] -> top item 3, truth {0}: miss
    # recall@1 under all_users = (0 + 0 [u1] + 1 + 0) / 4
    np.testing.assert_allclose(result.per_user["recall@1"], [0, NAN, 1, 0])
    assert result["recall@1"] == pytest.approx(1 / 4)
