"""ItemIndex in use, through faiss as through the exact index: a row that excludes most of the
catalogue still gets k items, equal scores come in item order, NaN is refused. Expected lists
are the exact ranking of the full scores (topk_items), computed beside the index."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recdiff.eval.ranking import topk_items
from recdiff.retrieval import ItemIndex


def _items_and_queries(n_items: int = 3000, dim: int = 16):
    rng = np.random.default_rng(0)
    items = rng.standard_normal((n_items, dim)).astype(np.float32)
    return items, rng.standard_normal((2, dim)).astype(np.float32)


def test_faiss_index_fills_a_row_that_excludes_most_of_the_catalogue():
    """Asked for all 3000 items, the HNSW graph returns about half; a row excluding 2990 of them
    got 2 items of its 10 left, padded with -1. Row 1 excludes nothing and keeps faiss' list."""
    pytest.importorskip("faiss")
    items, queries = _items_and_queries()
    usable = np.ones(len(items), dtype=bool)
    usable[2995] = False  # never ranked: 9 items are left to row 0
    exclude = sp.lil_matrix((2, len(items)), dtype=np.float32)
    exclude[0, :2990] = 1
    exclude = exclude.tocsr()
    found, scores = ItemIndex(items, "faiss", usable).top_k(queries, 10, exclude)
    unusable = sp.csr_matrix(np.tile(~usable, (2, 1)).astype(np.float32))
    expected, expected_scores = topk_items(queries @ items.T, 10, (exclude + unusable).tocsr())
    np.testing.assert_array_equal(found[0], expected[0])  # 9 items, then padding
    assert found[0, -1] == -1 and (found[0, :9] >= 2990).all()
    np.testing.assert_allclose(scores[0, :9], expected_scores[0, :9], rtol=1e-5)
    assert (found[1] >= 0).all() and np.all(np.diff(scores[1]) <= 0)


def test_faiss_index_orders_equal_scores_by_lower_item_id_as_the_exact_ranking():
    """12 items in three groups of equal vectors: faiss returned each group highest id first."""
    pytest.importorskip("faiss")
    items = np.repeat(np.eye(3, 4, dtype=np.float32) * [[3], [2], [1]], 4, axis=0)
    query = np.ones((1, 4), dtype=np.float32)
    exact, _ = ItemIndex(items, "exact").top_k(query, 12)
    found, _ = ItemIndex(items, "faiss").top_k(query, 12)
    np.testing.assert_array_equal(exact, [np.arange(12)])
    np.testing.assert_array_equal(found, exact)


@pytest.mark.parametrize("kind", ["exact", "faiss"])
def test_item_index_refuses_nan_queries_and_nan_item_vectors(kind):
    """faiss returned an empty list for a NaN query and never ranked a NaN item, silently."""
    if kind == "faiss":
        pytest.importorskip("faiss")
    items, queries = _items_and_queries(50, 4)
    queries[0, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ItemIndex(items, kind).top_k(queries, 3)
    items[7, 2] = np.nan
    with pytest.raises(ValueError, match=r"NaN \(items \[7\]\)"):
        ItemIndex(items, kind)
    usable = np.ones(50, dtype=bool)
    usable[7] = False  # an item never ranked may hold anything
    found, _ = ItemIndex(items, kind, usable).top_k(queries[1:], 50)
    assert 7 not in found and (found[0, :49] >= 0).all()
