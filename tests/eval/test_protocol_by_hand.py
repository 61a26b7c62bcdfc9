"""Known-answer tests of the evaluation protocol.

Every expected number is worked out by hand in a comment next to it, from the definitions in
``recdiff.eval.metrics`` / README "Evaluation protocol" / PAPERS.md (DiffRec's released
evaluation): Recall@K = hits / |held-out|, NDCG@K with discount 1 / log2(rank + 2) (0-based
rank) and an ideal DCG over min(|held-out|, K) positions, all-users averaging counting users
without held-out items as 0, ties broken by the lower item index.

Discounts used below: d0 = 1, d1 = 1/log2(3) = 0.6309298, d2 = 1/log2(4) = 0.5,
d3 = 1/log2(5) = 0.4306766.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from recdiff.data.batches import SequenceExamples
from recdiff.eval import EvalTask, evaluate_scores, topk_items
from recdiff.eval.metrics import (
    average,
    hit_rate_at_k,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)
from recdiff.eval.multi import evaluate_many
from recdiff.eval.next_item import evaluate_next_item

D0, D1, D2, D3 = 1.0, 1.0 / math.log2(3), 0.5, 1.0 / math.log2(5)
ALL = ("recall", "ndcg", "precision", "mrr", "hit_rate")


def csr(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    """A 0/1 users x items CSR with a 1 at every listed item of each row."""
    dense = np.zeros((len(rows), n_items), dtype=np.float32)
    for u, items in enumerate(rows):
        dense[u, items] = 1.0
    return sp.csr_matrix(dense)


# Hit matrix shared by the pure-metric tests (rank 0 first):
#   u0: hits [1, 0, 1, 0], 3 relevant items
#   u1: hits [0, 0, 0, 0], 1 relevant item
#   u2: hits [0, 1, 0, 0], 1 relevant item
#   u3: hits [0, 0, 0, 0], no relevant item (NaN for every per-user metric)
HITS = np.array([[1, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]], dtype=bool)
N_REL = np.array([3, 1, 1, 0])


def test_recall_divides_by_all_held_out_items_not_by_min_k():
    # recall@2: u0 has 1 hit in its top 2 and 3 relevant items -> 1/3 (a min(K, |rel|)
    # denominator would give 1/2); u1 0/1 = 0; u2 1/1 = 1; u3 NaN.
    got = recall_at_k(HITS, N_REL, 2)
    np.testing.assert_allclose(got[:3], [1 / 3, 0.0, 1.0])
    assert np.isnan(got[3])
    # recall@4: u0 2/3.
    assert recall_at_k(HITS, N_REL, 4)[0] == pytest.approx(2 / 3)


def test_ndcg_ideal_dcg_runs_over_min_relevant_and_k():
    # ndcg@4, u0: DCG = d0 + d2 = 1.5; 3 relevant < 4, so IDCG = d0 + d1 + d2 = 2.1309298
    #   -> 0.7039180.
    # ndcg@2, u0: DCG = d0 = 1; IDCG over min(3, 2) = 2 positions = d0 + d1 = 1.6309298
    #   -> 0.6131472 (an IDCG over all 3 relevant items would give 1 / 2.1309 = 0.4693).
    # ndcg@2, u2: DCG = d1; IDCG over 1 position = 1 -> 0.6309298.
    at4 = ndcg_at_k(HITS, N_REL, 4)
    at2 = ndcg_at_k(HITS, N_REL, 2)
    assert at4[0] == pytest.approx(1.5 / (D0 + D1 + D2))
    assert at4[0] == pytest.approx(0.7039180, abs=1e-7)
    assert at2[0] == pytest.approx(1.0 / (D0 + D1))
    assert at2[0] == pytest.approx(0.6131472, abs=1e-7)
    assert at2[1] == 0.0
    assert at2[2] == pytest.approx(D1)
    assert np.isnan(at2[3])


def test_ndcg_of_a_perfect_list_is_one_even_with_more_relevant_than_k():
    # 5 relevant items, k = 3, all three top slots hit: DCG = IDCG = d0 + d1 + d2 -> 1.
    hits = np.ones((1, 3), dtype=bool)
    assert ndcg_at_k(hits, np.array([5]), 3)[0] == pytest.approx(1.0)
    # ...while recall@3 is 3/5 (DiffRec's denominator).
    assert recall_at_k(hits, np.array([5]), 3)[0] == pytest.approx(0.6)


def test_precision_hit_rate_and_mrr_by_hand():
    # precision@2 = hits in top 2 / 2: u0 1/2, u1 0, u2 1/2.
    np.testing.assert_allclose(precision_at_k(HITS, N_REL, 2)[:3], [0.5, 0.0, 0.5])
    # precision@4: u0 2/4, u1 0, u2 1/4.
    np.testing.assert_allclose(precision_at_k(HITS, N_REL, 4)[:3], [0.5, 0.0, 0.25])
    # hit_rate@1: u0 1 (hit at rank 0), u1 0, u2 0 (its hit is at rank 1).
    np.testing.assert_allclose(hit_rate_at_k(HITS, N_REL, 1)[:3], [1.0, 0.0, 0.0])
    # hit_rate@2: u2 becomes 1.
    np.testing.assert_allclose(hit_rate_at_k(HITS, N_REL, 2)[:3], [1.0, 0.0, 1.0])
    # mrr@4 = 1 / (1 + rank of first hit): u0 1/1, u1 0 (no hit), u2 1/2.
    np.testing.assert_allclose(mrr_at_k(HITS, N_REL, 4)[:3], [1.0, 0.0, 0.5])
    # mrr@1 cuts u2's hit at rank 1 off -> 0.
    assert mrr_at_k(HITS, N_REL, 1)[2] == 0.0
    for fn in (precision_at_k, hit_rate_at_k, mrr_at_k):
        assert np.isnan(fn(HITS, N_REL, 2)[3])


def test_all_users_counts_empty_users_as_zero_test_users_drops_them():
    # recall@2 per user: [1/3, 0, 1, NaN].
    # all_users: (1/3 + 0 + 1 + 0) / 4 = 0.3333333; test_users: (1/3 + 0 + 1) / 3 = 0.4444444.
    per_user = recall_at_k(HITS, N_REL, 2)
    assert average(per_user, "all_users") == pytest.approx(1 / 3)
    assert average(per_user, "test_users") == pytest.approx(4 / 9)
    # No user with held-out items at all: NaN under test_users, 0 under all_users.
    assert math.isnan(average(np.array([np.nan, np.nan]), "test_users"))
    assert average(np.array([np.nan, np.nan]), "all_users") == 0.0


def _four_users():
    """5 items. Scores, train (masked), held-out truth:

    u0: [.9 .8 .7 .6 .5], train {0}, truth {2, 4}
    u1: [.1 .2 .3 .4 .5], train {4}, truth {3}
    u2: [.3 .3 .3 .3 .3], train {1}, no truth
    u3: [.5 .5 .5 .5 .5], train {},  truth {1}
    """
    scores = np.array(
        [
            [0.9, 0.8, 0.7, 0.6, 0.5],
            [0.1, 0.2, 0.3, 0.4, 0.5],
            [0.3, 0.3, 0.3, 0.3, 0.3],
            [0.5, 0.5, 0.5, 0.5, 0.5],
        ]
    )
    train = csr([[0], [4], [1], []], 5)
    truth = csr([[2, 4], [3], [], [1]], 5)
    return scores, train, truth


def test_full_ranking_evaluation_by_hand_under_both_averagings():
    # u0: 0 masked -> list [1, 2, 3, 4]; top 2 = [1, 2], hits [0, 1]
    #     recall@2 = 1/2; ndcg@2 = d1 / (d0 + d1) = 0.3868528.
    # u1: 4 masked -> list [3, 2, 1, 0]; hit at rank 0: recall@2 = 1, ndcg@2 = 1.
    # u2: no truth -> NaN (0 under all_users).
    # u3: all tied -> lower index first: [0, 1, ...]; hit at rank 1: recall@2 = 1, ndcg = d1.
    # all_users recall@2 = (0.5 + 1 + 0 + 1) / 4 = 0.625; test_users = 2.5 / 3 = 0.8333333.
    # all_users ndcg@2 = (0.3868528 + 1 + 0 + 0.6309298) / 4 = 0.5044457.
    scores, train, truth = _four_users()
    seen_rows: list[int] = []

    def score_rows(rows):
        seen_rows.extend(rows.tolist())
        return scores[rows]

    res = evaluate_scores(score_rows, truth, exclude=train, ks=[2], averaging="all_users")
    np.testing.assert_allclose(res.per_user["recall@2"][[0, 1, 3]], [0.5, 1.0, 1.0])
    np.testing.assert_allclose(
        res.per_user["ndcg@2"][[0, 1, 3]], [D1 / (D0 + D1), 1.0, D1], rtol=1e-12
    )
    assert np.isnan(res.per_user["recall@2"][2])
    assert res["recall@2"] == pytest.approx(0.625)
    assert res["ndcg@2"] == pytest.approx((D1 / (D0 + D1) + 1 + D1) / 4)
    assert res["ndcg@2"] == pytest.approx(0.5044457, abs=1e-7)
    assert res.with_averaging("test_users")["recall@2"] == pytest.approx(2.5 / 3)
    # u2, without held-out items, is never scored; 3 users are evaluated.
    assert sorted(seen_rows) == [0, 1, 3]
    assert res.n_users_evaluated == 3


def test_result_does_not_depend_on_batch_size_or_item_chunk():
    # Same data as above, ranked in batches of one user and in item chunks of 2 (ties in u3
    # cross a chunk boundary): the lists, hence every metric, are identical.
    scores, train, truth = _four_users()
    kw = dict(exclude=train, ks=[1, 2, 4], metrics=ALL, averaging="all_users")
    whole = evaluate_scores(scores, truth, batch_size=64, item_chunk=None, **kw)
    split = evaluate_scores(scores, truth, batch_size=1, item_chunk=2, **kw)
    for name, value in whole.means.items():
        assert split.means[name] == pytest.approx(value), name


def test_validation_masks_train_and_test_masks_train_and_valid_with_train_input():
    # One user, 4 items: train {0}, valid {1}, test {2}. The model scores [3, 4, 1, 2].
    # Validation: 0 masked -> list [1, 3, 2]; valid item 1 at rank 0 -> recall@1 = 1.
    # Test: 0 and 1 masked -> list [3, 2]; test item 2 at rank 1 -> recall@1 = 0,
    #   recall@2 = 1, ndcg@2 = d1 = 0.6309298.
    # The model's input is the train row [1, 0, 0, 0] in both (valid is not fed back).
    train, valid, test = csr([[0]], 4), csr([[1]], 4), csr([[2]], 4)
    inputs_seen = []

    def score_fn(rows: sp.csr_matrix):
        inputs_seen.append(rows.toarray())
        return np.array([[3.0, 4.0, 1.0, 2.0]])

    val = EvalTask.validation(train, valid).evaluate(score_fn, ks=[1])
    tst = EvalTask.test(train, valid, test).evaluate(score_fn, ks=[1, 2])
    assert val["recall@1"] == 1.0
    assert tst["recall@1"] == 0.0
    assert tst["recall@2"] == 1.0
    assert tst["ndcg@2"] == pytest.approx(D1)
    for row in inputs_seen:
        np.testing.assert_array_equal(row, [[1, 0, 0, 0]])
    # evaluate_many (one scoring pass for both tasks) agrees with the separate runs.
    tasks = {"valid": EvalTask.validation(train, valid), "test": EvalTask.test(train, valid, test)}
    many = evaluate_many(score_fn, train, tasks, ks=[1, 2])
    assert many["valid"]["recall@1"] == 1.0
    assert many["test"]["recall@1"] == 0.0
    assert many["test"]["ndcg@2"] == pytest.approx(D1)


def test_ties_go_to_the_lower_item_index_and_never_look_at_the_targets():
    # A constant model (all scores 0) over 5 items recommends [0, 1, 2, ...] to everyone.
    # u0's target is item 0 -> hit@1; u1's target is item 4 -> no hit in the top 2. A
    # tie-break that preferred held-out items would give u1 a hit; it must not.
    truth = csr([[0], [4]], 5)
    zeros = np.zeros((2, 5))
    for chunk in (None, 2):
        res = evaluate_scores(zeros, truth, ks=[1, 2], metrics=ALL, item_chunk=chunk)
        np.testing.assert_array_equal(res.per_user["hit_rate@1"], [1.0, 0.0])
        np.testing.assert_array_equal(res.per_user["hit_rate@2"], [1.0, 0.0])
        items, _ = topk_items(zeros, 3, item_chunk=chunk)
        np.testing.assert_array_equal(items, [[0, 1, 2], [0, 1, 2]])


def test_ties_with_masked_items_skip_to_the_next_lowest_index():
    # Scores [1, 2, 2, 2, 2], items 1 and 3 masked: the 2s left are items 2 and 4 (in that
    # order), then item 0 with 1 -> list [2, 4, 0].
    scores = np.array([[1.0, 2.0, 2.0, 2.0, 2.0]])
    exclude = csr([[1, 3]], 5)
    for chunk in (None, 1, 2, 3):
        items, values = topk_items(scores, 3, exclude, item_chunk=chunk)
        np.testing.assert_array_equal(items, [[2, 4, 0]])
        np.testing.assert_array_equal(values, [[2.0, 2.0, 1.0]])


def test_minus_inf_scores_are_never_recommended_and_precision_divides_by_k():
    # Scores [-inf, 1, -inf, 0], truth {0, 3}, k = 4: list [1, 3, -1, -1] (padding).
    # hits [0, 1, 0, 0]: recall@4 = 1/2, precision@4 = 1/4, mrr@4 = 1/2,
    # ndcg@4 = d1 / (d0 + d1) = 0.3868528 (item 0, at -inf, is never reached).
    scores = np.array([[-np.inf, 1.0, -np.inf, 0.0]])
    items, _ = topk_items(scores, 4)
    np.testing.assert_array_equal(items, [[1, 3, -1, -1]])
    res = evaluate_scores(scores, csr([[0, 3]], 4), ks=[4], metrics=ALL)
    assert res["recall@4"] == pytest.approx(0.5)
    assert res["precision@4"] == pytest.approx(0.25)
    assert res["mrr@4"] == pytest.approx(0.5)
    assert res["ndcg@4"] == pytest.approx(D1 / (D0 + D1))


def test_nan_scores_are_refused_where_ranked_and_ignored_where_not():
    truth = csr([[0], []], 3)
    with pytest.raises(ValueError, match="NaN"):
        evaluate_scores(np.array([[np.nan, 1.0, 0.0], [0.0, 0.0, 0.0]]), truth, ks=[1])
    # A NaN at a masked item of a ranked user is still refused (documented).
    with pytest.raises(ValueError, match="NaN"):
        evaluate_scores(
            np.array([[1.0, np.nan, 0.0], [0.0, 0.0, 0.0]]), truth, csr([[1], []], 3), ks=[1]
        )
    # u1 has no held-out item: its row is never ranked, so its NaN does no harm.
    # u0: list [0, ...] -> hit at rank 0, recall@1 = 1.
    res = evaluate_scores(np.array([[1.0, 0.0, 0.0], [np.nan] * 3]), truth, ks=[1])
    assert res["recall@1"] == 1.0


def test_k_larger_than_the_unmasked_items():
    # 3 items, item 0 masked, truth {1, 2}, k = 5: list [1, 2, -1, -1, -1] (scores [9, 2, 1]).
    # recall@5 = 2/2 = 1; precision@5 = 2/5 = 0.4; ndcg@5 = (d0 + d1) / (d0 + d1) = 1;
    # coverage@5 = 2 of 3 items shown = 0.6666667.
    scores = np.array([[9.0, 2.0, 1.0]])
    res = evaluate_scores(
        scores,
        csr([[1, 2]], 3),
        exclude=csr([[0]], 3),
        ks=[5],
        metrics=(*ALL, "coverage"),
    )
    assert res["recall@5"] == 1.0
    assert res["precision@5"] == pytest.approx(0.4)
    assert res["ndcg@5"] == pytest.approx(1.0)
    assert res["coverage@5"] == pytest.approx(2 / 3)


def test_a_held_out_item_that_is_also_masked_still_counts_as_relevant():
    # Truth {0, 1}, item 0 also masked, scores [5, 4, 3]: list [1, 2].
    # hits [1, 0]: recall@2 = 1/2 (denominator keeps item 0); ndcg@2 = d0 / (d0 + d1) = 0.6131472.
    res = evaluate_scores(
        np.array([[5.0, 4.0, 3.0]]), csr([[0, 1]], 3), exclude=csr([[0]], 3), ks=[2]
    )
    assert res["recall@2"] == pytest.approx(0.5)
    assert res["ndcg@2"] == pytest.approx(1.0 / (D0 + D1))


def test_user_with_every_item_masked_scores_zero_not_nan():
    # 2 items, both masked, truth {0}: empty list -> 0 for every metric, under both averagings
    # (the user has a held-out item, so it is not a NaN "no test items" user).
    res = evaluate_scores(
        np.array([[1.0, 2.0]]), csr([[0]], 2), exclude=csr([[0, 1]], 2), ks=[2], metrics=ALL
    )
    for name in ("recall@2", "ndcg@2", "precision@2", "mrr@2", "hit_rate@2"):
        assert res.per_user[name][0] == 0.0, name
        assert res.with_averaging("test_users")[name] == 0.0


def test_users_subset_with_all_users_averaging():
    # Same four users as above, users = [1, 2]: u1 recall@2 = 1, u2 has no truth.
    # all_users over the subset: (1 + 0) / 2 = 0.5; test_users: 1 / 1 = 1.
    scores, train, truth = _four_users()
    res = evaluate_scores(
        scores, truth, exclude=train, ks=[2], averaging="all_users", users=np.array([1, 2])
    )
    assert res["recall@2"] == pytest.approx(0.5)
    assert res.with_averaging("test_users")["recall@2"] == pytest.approx(1.0)


def _examples():
    """Three next-item examples over 5 items (pad id 5, left padding):

    e0: history [pad, 3, 1], target 0
    e1: history [pad, 0, 1], target 2
    e2: history [4, 3, 2],   target 4   (a repeat of item 4)
    """
    history = np.array([[5, 3, 1], [5, 0, 1], [4, 3, 2]], dtype=np.int64)
    return SequenceExamples(
        history, np.array([2, 2, 3], dtype=np.int64), np.array([0, 2, 4], dtype=np.int64)
    )


def _by_index(history, lengths):
    # Item i scores 5 - i: the ranking of all items is [0, 1, 2, 3, 4] for every example.
    return np.tile(np.array([5.0, 4.0, 3.0, 2.0, 1.0]), (len(history), 1))


def test_next_item_ranks_everything_by_default():
    # Nothing masked (DreamRec): target ranks e0: 0, e1: 2, e2: 4.
    # hit_rate@3 = [1, 1, 0] -> 2/3; ndcg@3 = [d0, d2, 0] = [1, 0.5, 0] -> 0.5;
    # recall@3 equals hit_rate@3 with one relevant item; mrr@3 = [1, 1/3, 0] -> 4/9.
    res = evaluate_next_item(
        _by_index, _examples(), 5, ks=[3], metrics=("hit_rate", "ndcg", "recall", "mrr")
    )
    np.testing.assert_allclose(res.per_user["ndcg@3"], [1.0, 0.5, 0.0])
    assert res["hit_rate@3"] == pytest.approx(2 / 3)
    assert res["recall@3"] == pytest.approx(2 / 3)
    assert res["ndcg@3"] == pytest.approx(0.5)
    assert res["mrr@3"] == pytest.approx(4 / 9)


def test_next_item_exclude_history_masks_the_past_and_a_repeated_target():
    # exclude_history: e0 masks {1, 3} -> list [0, 2, 4]: target 0 at rank 0 (ndcg 1).
    # e1 masks {0, 1} -> list [2, 3, 4]: target 2 at rank 0 (ndcg 1; it was rank 2 before).
    # e2 masks {4, 3, 2} (its whole window, the oldest slot included) -> list [0, 1, -1]:
    #   its target 4 is masked, a miss even at k = 3 (ndcg 0).
    # hit_rate@1 = hit_rate@3 = [1, 1, 0] -> 2/3; ndcg@1 mean 2/3.
    res = evaluate_next_item(
        _by_index, _examples(), 5, ks=[1, 3], metrics=("hit_rate", "ndcg"), exclude_history=True
    )
    np.testing.assert_array_equal(res.per_user["hit_rate@1"], [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(res.per_user["hit_rate@3"], [1.0, 1.0, 0.0])
    assert res["ndcg@1"] == pytest.approx(2 / 3)


def test_coverage_counts_only_the_lists_of_users_with_held_out_items():
    # 2 users, 3 items, nothing masked. Scores: u0 [0, 0, 1] -> top 1 = item 2;
    # u1 [1, 0, 0] -> top 1 = item 0. Valid truth: u0 {1} only; test truth: u1 {2} only.
    # One scoring pass (evaluate_many) ranks both users, but each task's coverage@1 is over
    # its own evaluated users: valid shows {2}, test shows {0} -> 1/3 each (not 2/3).
    # recall@1: valid u0 misses (0), test u1 misses (0).
    empty = csr([[], []], 3)
    valid, test = csr([[1], []], 3), csr([[], [2]], 3)
    tasks = {
        "valid": EvalTask.validation(empty, valid),
        "test": EvalTask.test(empty, valid, test),
    }
    scores = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    calls = []

    def score_fn(rows):
        calls.append(rows.shape[0])
        return scores

    res = evaluate_many(score_fn, empty, tasks, ks=[1], metrics=("recall", "coverage"))
    assert calls == [2]
    assert res["valid"]["coverage@1"] == pytest.approx(1 / 3)
    assert res["test"]["coverage@1"] == pytest.approx(1 / 3)
    assert res["valid"]["recall@1"] == 0.0
    assert res["test"]["recall@1"] == 0.0


def test_items_never_seen_in_training_are_still_ranked():
    # Full ranking runs over the whole catalogue, not only the items train holds. 4 items;
    # item 3 has no train interaction (column 3 of train is empty). u0: train {0}, truth {3},
    # scores [0, .1, .2, .9] -> list [3, 2, 1] (0 masked): hit at rank 0, recall@1 = 1.
    # u1: train {1}, truth {2}, all scores 0 -> list [0, 2, 3]: item 2 at rank 1,
    # recall@1 = 0, ndcg@2 = d1. Means (test_users): recall@1 = 1/2, ndcg@2 = (1 + d1) / 2.
    train = csr([[0], [1]], 4)
    truth = csr([[3], [2]], 4)
    scores = np.array([[0.0, 0.1, 0.2, 0.9], [0.0, 0.0, 0.0, 0.0]])
    res = evaluate_scores(scores, truth, exclude=train, ks=[1, 2])
    assert res["recall@1"] == pytest.approx(0.5)
    assert res["ndcg@2"] == pytest.approx((1.0 + D1) / 2)
