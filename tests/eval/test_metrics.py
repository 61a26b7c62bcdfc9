"""Hand-computed cases for every metric in recdiff.eval.metrics."""

from __future__ import annotations

import numpy as np
import pytest

from recdiff.eval import metrics as M

D2, D3, D4 = 1 / np.log2(3), 1 / np.log2(4), 1 / np.log2(5)  # 0.63093, 0.5, 0.43068

# Three users ranked 4 items each; the last user has no relevant items at all.
HITS = np.array(
    [
        [1, 0, 1, 0],  # u0: 2 relevant items, both found (ranks 0 and 2)
        [0, 0, 0, 0],  # u1: 3 relevant items, none found
        [0, 1, 1, 1],  # u2: 5 relevant items, 3 found (ranks 1, 2, 3)
        [0, 0, 0, 0],  # u3: no relevant items -> NaN everywhere
    ],
    dtype=bool,
)
N_REL = np.array([2, 3, 5, 0])


def test_recall_hand_computed() -> None:
    # @2: u0 1/2 = 0.5, u1 0/3 = 0, u2 1/5 = 0.2 ; @4: u0 2/2 = 1, u1 0, u2 3/5 = 0.6
    np.testing.assert_allclose(M.recall_at_k(HITS, N_REL, 2), [0.5, 0.0, 0.2, np.nan])
    np.testing.assert_allclose(M.recall_at_k(HITS, N_REL, 4), [1.0, 0.0, 0.6, np.nan])


def test_precision_hand_computed() -> None:
    # @2: 1/2, 0/2, 1/2 ; @4: 2/4, 0/4, 3/4
    np.testing.assert_allclose(M.precision_at_k(HITS, N_REL, 2), [0.5, 0.0, 0.5, np.nan])
    np.testing.assert_allclose(M.precision_at_k(HITS, N_REL, 4), [0.5, 0.0, 0.75, np.nan])


def test_ndcg_hand_computed() -> None:
    # @2: u0 DCG 1, IDCG over min(2,2)=2 slots 1 + 0.63093 -> 0.61315
    #     u2 DCG 0.63093, IDCG 1.63093 -> 0.38685
    # @4: u0 DCG 1 + 0.5 = 1.5, IDCG over min(2,4)=2 slots 1.63093 -> 0.91972
    #     u2 DCG 0.63093 + 0.5 + 0.43068 = 1.56161, IDCG over 4 slots 2.56161 -> 0.60962
    expected_2 = [1 / (1 + D2), 0.0, D2 / (1 + D2), np.nan]
    expected_4 = [1.5 / (1 + D2), 0.0, (D2 + D3 + D4) / (1 + D2 + D3 + D4), np.nan]
    np.testing.assert_allclose(M.ndcg_at_k(HITS, N_REL, 2), expected_2)
    np.testing.assert_allclose(M.ndcg_at_k(HITS, N_REL, 4), expected_4)
    np.testing.assert_allclose(M.ndcg_at_k(HITS, N_REL, 4)[:3], [0.91972, 0, 0.60962], atol=1e-5)


def test_ndcg_is_one_for_a_perfect_list() -> None:
    hits = np.array([[1, 1, 0], [1, 1, 1]], dtype=bool)
    # u0: 2 relevant, both on top -> 1; u1: 7 relevant, top 3 all hits -> ideal over 3 slots -> 1
    np.testing.assert_allclose(M.ndcg_at_k(hits, np.array([2, 7]), 3), [1.0, 1.0])


def test_mrr_hand_computed() -> None:
    # first hits: u0 rank 0 -> 1, u1 none -> 0, u2 rank 1 -> 1/2 ; @1: only u0 has a hit
    np.testing.assert_allclose(M.mrr_at_k(HITS, N_REL, 4), [1.0, 0.0, 0.5, np.nan])
    np.testing.assert_allclose(M.mrr_at_k(HITS, N_REL, 1), [1.0, 0.0, 0.0, np.nan])


def test_hit_rate_hand_computed() -> None:
    np.testing.assert_allclose(M.hit_rate_at_k(HITS, N_REL, 1), [1.0, 0.0, 0.0, np.nan])
    np.testing.assert_allclose(M.hit_rate_at_k(HITS, N_REL, 4), [1.0, 0.0, 1.0, np.nan])


def test_coverage_ignores_padding() -> None:
    items = np.array([[0, 1, -1], [1, 3, -1]])
    # @1: {0, 1} of 5 items = 0.4 ; @3: {0, 1, 3} = 0.6 (the -1 padding is not an item)
    assert M.coverage_at_k(items, 5, 1) == pytest.approx(0.4)
    assert M.coverage_at_k(items, 5, 3) == pytest.approx(0.6)


def test_averaging_modes() -> None:
    recall4 = M.recall_at_k(HITS, N_REL, 4)  # [1, 0, 0.6, nan]
    assert M.average(recall4, "test_users") == pytest.approx(1.6 / 3)
    assert M.average(recall4, "all_users") == pytest.approx(1.6 / 4)
    assert np.isnan(M.average(np.array([np.nan, np.nan]), "test_users"))
    assert M.average(np.array([np.nan, np.nan]), "all_users") == 0.0
    with pytest.raises(ValueError, match="averaging"):
        M.average(recall4, "some_users")  # type: ignore[arg-type]


def test_float_hits_accepted_and_k_validated() -> None:
    hits = HITS.astype(np.float32)
    np.testing.assert_allclose(M.recall_at_k(hits, N_REL, 2), M.recall_at_k(HITS, N_REL, 2))
    with pytest.raises(ValueError, match="k=5"):
        M.recall_at_k(HITS, N_REL, 5)
    with pytest.raises(ValueError, match="k=0"):
        M.ndcg_at_k(HITS, N_REL, 0)
    with pytest.raises(ValueError, match="one entry per row"):
        M.mrr_at_k(HITS, N_REL[:2], 2)


def test_per_user_metrics_names_and_unknown_metric() -> None:
    out = M.per_user_metrics(HITS, N_REL, ks=(1, 4), metrics=("recall", "coverage", "mrr"))
    assert list(out) == ["recall@1", "recall@4", "mrr@1", "mrr@4"]
    with pytest.raises(ValueError, match="unknown metrics"):
        M.per_user_metrics(HITS, N_REL, ks=(1,), metrics=("auc",))
