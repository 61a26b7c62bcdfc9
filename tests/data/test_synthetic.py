"""The synthetic dataset: deterministic, fast, and a learned model beats popularity by far."""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from recdiff.data import demo_splits, make_synthetic


def recall_at_k(scores: np.ndarray, train: sp.csr_matrix, test: sp.csr_matrix, k: int) -> float:
    """Mean over users with test items of |top-k ∩ test| / |test|, train items masked."""
    scores = np.where(train.toarray() > 0, -np.inf, scores)
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    truth = test.toarray() > 0
    hits = np.take_along_axis(truth, top, axis=1).sum(axis=1)
    n_test = truth.sum(axis=1)
    has = n_test > 0
    return float((hits[has] / n_test[has]).mean())


def test_deterministic_by_seed() -> None:
    a, b = make_synthetic(seed=5), make_synthetic(seed=5)
    assert (a.matrix != b.matrix).nnz == 0
    np.testing.assert_array_equal(a.timestamps.data, b.timestamps.data)
    np.testing.assert_array_equal(a.ratings.data, b.ratings.data)
    assert (make_synthetic(seed=6).matrix != a.matrix).nnz > 0


def test_fast_and_well_formed() -> None:
    start = time.perf_counter()
    data = make_synthetic(n_users=2000, n_items=1000, seed=0)
    assert time.perf_counter() - start < 1.0
    assert data.shape == (2000, 1000)
    assert data.user_counts().min() >= 5
    assert 20 <= data.user_counts().mean() <= 40
    assert set(np.unique(data.ratings.data)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert data.timestamps.data.min() >= 1.6e9
    counts = np.sort(data.item_counts())[::-1]
    assert counts[:100].sum() > 3 * counts[-100:].sum()  # popularity skew


def test_learned_model_beats_popularity_by_a_wide_margin() -> None:
    splits = demo_splits(seed=0)
    assert splits.train.users is splits.test.users
    train = splits.train.binarize().matrix
    x = train.toarray()
    popularity = np.broadcast_to(x.sum(axis=0), x.shape)
    # Item-item cosine kNN (full neighbourhood), computed here with numpy.
    norms = np.sqrt(x.sum(axis=0)) + 1e-9
    similarity = (x.T @ x) / norms[:, None] / norms[None, :]
    np.fill_diagonal(similarity, 0.0)
    knn = x @ similarity
    # Closed-form EASE (Steck 2019) as a second learned model.
    gram = x.T @ x + 50.0 * np.eye(x.shape[1])
    p = np.linalg.inv(gram)
    weights = -p / np.diag(p)[None, :]  # B_ij = -P_ij / P_jj, with a zero diagonal
    np.fill_diagonal(weights, 0.0)
    ease = x @ weights
    pop_recall = recall_at_k(popularity, train, splits.test.matrix, 20)
    knn_recall = recall_at_k(knn, train, splits.test.matrix, 20)
    ease_recall = recall_at_k(ease, train, splits.test.matrix, 20)
    print(f"recall@20 popularity {pop_recall:.3f} kNN {knn_recall:.3f} EASE {ease_recall:.3f}")
    assert pop_recall > 0.05  # popularity is not useless: the skew is real
    assert knn_recall > 2.0 * pop_recall
    assert ease_recall > 2.0 * pop_recall
