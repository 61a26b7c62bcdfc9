"""Retrieval indexes take item and query embeddings as they come out of a model: tensors that
require grad (an embedding table), bfloat16, on the model's device. Recall against the exact
top-K, computed by hand on tiny id arrays."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from recdiff.retrieval import ExactIndex, build_index, recall_at_k


def _embeddings():
    generator = torch.Generator().manual_seed(0)
    items = torch.randn(50, 8, generator=generator).requires_grad_()
    queries = torch.randn(4, 8, generator=generator).requires_grad_()
    return items, queries


def test_exact_index_takes_trained_embeddings_and_numpy_queries():
    items, queries = _embeddings()
    index = ExactIndex(items)
    found, scores = index.search(queries, 5)
    again, _ = index.search(queries.detach().numpy(), 5)
    np.testing.assert_array_equal(found, again)
    expected = torch.topk(queries.detach() @ items.detach().T, 5).indices.numpy()
    np.testing.assert_array_equal(found, expected)
    assert scores.dtype == np.float32


def test_faiss_index_takes_tensors_that_require_grad_or_are_bfloat16():
    pytest.importorskip("faiss")
    items, queries = _embeddings()
    index = build_index(items, "faiss")  # .numpy() on a tensor that requires grad raises
    found, _ = index.search(queries.to(torch.bfloat16), 5)
    exact, _ = ExactIndex(items).search(queries, 5)
    assert found.shape == exact.shape == (4, 5)
    assert np.mean([np.isin(e, f).mean() for e, f in zip(exact, found, strict=True)]) > 0.6


def test_recall_at_k_counts_each_rows_share_of_its_exact_ids():
    exact = np.array([[1, 2, 3, 4], [5, 6, -1, -1]])  # row 1: two results, then padding
    approximate = np.array([[4, 9, 1, -1], [6, 7, 8, 9]])
    assert recall_at_k(approximate, exact) == pytest.approx((2 / 4 + 1 / 2) / 2)
    # Ids match within a row only: row 0's 5 and 6 do not count for row 1.
    assert recall_at_k(np.array([[5, 6], [1, 2]]), np.array([[1, 2], [5, 6]])) == 0.0


def test_recall_at_k_leaves_rows_without_exact_results_out_of_the_mean():
    """Before, one all-padding row made the whole recall NaN, with numpy's warnings."""
    exact = np.array([[1, 2], [-1, -1], [3, 4]])
    approximate = np.array([[1, 5], [3, 4], [3, 4]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert recall_at_k(approximate, exact) == pytest.approx((1 / 2 + 1) / 2)
        # Nothing to recall in any row (or no rows): undefined, NaN, still without a warning.
        assert np.isnan(recall_at_k(approximate[1:2], exact[1:2]))
        assert np.isnan(recall_at_k(np.empty((0, 5), int), np.empty((0, 5), int)))
        assert np.isnan(recall_at_k(np.empty((3, 0), int), np.empty((3, 0), int)))


def test_recall_at_k_refuses_arrays_of_different_shapes():
    with pytest.raises(ValueError, match="shapes differ"):
        recall_at_k(np.zeros((2, 3), int), np.zeros((2, 4), int))


def test_item_index_skips_excluded_and_unusable_items_as_full_ranking_does():
    """Items (1-D vectors) 0..5 with values [5, 4, 3, 2, 1, 0]; one query of 1 ranks them 0..5.
    Row 0 excludes items 0 and 2; item 1 is not usable (never ranked)."""
    import scipy.sparse as sp

    from recdiff.eval.ranking import topk_items
    from recdiff.retrieval import ItemIndex

    items = np.array([[5.0], [4.0], [3.0], [2.0], [1.0], [0.0]], dtype=np.float32)
    usable = np.array([True, False, True, True, True, True])
    queries = np.array([[1.0], [-1.0]], dtype=np.float32)
    exclude = sp.csr_matrix(([1.0, 1.0], ([0, 0], [0, 2])), shape=(2, 6))
    found, scores = ItemIndex(items, "exact", usable).top_k(queries, 3, exclude)
    np.testing.assert_array_equal(found, [[3, 4, 5], [5, 4, 3]])
    np.testing.assert_allclose(scores, [[2, 1, 0], [0, -1, -2]])
    # The same as ranking full scores with the unusable item excluded too.
    unusable = sp.csr_matrix(np.tile(~usable, (2, 1)).astype(np.float32))
    full, _ = topk_items(queries @ items.T, 3, (exclude + unusable).tocsr())
    np.testing.assert_array_equal(found, full)
    # Fewer items than k: padding.
    short, short_scores = ItemIndex(items, "exact", usable).top_k(queries[:1], 6, exclude[:1])
    np.testing.assert_array_equal(short, [[3, 4, 5, -1, -1, -1]])
    assert np.isneginf(short_scores[0, 3:]).all()


def test_item_index_through_faiss_finds_the_exact_lists_on_a_small_catalogue():
    pytest.importorskip("faiss")
    from recdiff.retrieval import ItemIndex

    items, queries = _embeddings()
    exact, _ = ItemIndex(items, "exact").top_k(queries, 5)
    found, _ = ItemIndex(items, "faiss").top_k(queries, 5)
    assert recall_at_k(found, exact) == 1.0  # 50 items: HNSW visits them all


def test_faiss_missing_says_which_extra_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'recdiff\[ann\]'"):
        build_index(np.eye(3, dtype=np.float32), "faiss")
