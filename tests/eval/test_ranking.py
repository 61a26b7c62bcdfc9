"""Top-K selection: masking, padding beyond the catalogue, deterministic ties."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recdiff.eval import mask_items, topk_items


def test_orders_by_score_then_lower_index() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.9, 0.5]], dtype=np.float32)
    items, values = topk_items(scores, 4)
    # 0.9 tie (items 1, 3) -> 1 first; 0.5 tie (items 2, 4) -> 2 first
    np.testing.assert_array_equal(items, [[1, 3, 2, 4]])
    np.testing.assert_allclose(values, [[0.9, 0.9, 0.5, 0.5]])


def test_ties_at_the_cut_keep_lowest_indices() -> None:
    scores = np.zeros((2, 1000), dtype=np.float32)
    scores[1, 700] = 1.0
    items, _ = topk_items(scores, 3)
    np.testing.assert_array_equal(items, [[0, 1, 2], [700, 0, 1]])


def test_masking_and_padding_beyond_catalogue() -> None:
    scores = torch.tensor([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    exclude = sp.csr_matrix(np.array([[1, 0, 0], [0, 0, 0]], dtype=np.float32))
    items, values = topk_items(scores, 5, exclude=exclude)
    # user 0: item 0 masked, 2 items left, then padding; user 1: 3 items, then padding
    np.testing.assert_array_equal(items, [[1, 2, -1, -1, -1], [2, 1, 0, -1, -1]])
    assert np.isneginf(values[0, 2:]).all() and np.isneginf(values[1, 3:]).all()
    assert scores[0, 0] == 3.0, "the caller's scores must not be modified"


def test_neg_inf_scores_are_never_recommended() -> None:
    items, _ = topk_items(np.array([[-np.inf, 0.0, -np.inf]]), 2)
    np.testing.assert_array_equal(items, [[1, -1]])


def test_numpy_and_torch_agree_and_float64_kept() -> None:
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 4, size=(7, 30)).astype(np.float64)
    a = topk_items(scores, 10)
    b = topk_items(torch.from_numpy(scores), 10)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1].dtype == np.float64


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_scores_rank_like_their_float32_values(dtype) -> None:
    scores = torch.tensor([[0.5, 2.0, 1.0, 2.0]], dtype=dtype)  # a tie: lower index first
    items, values = topk_items(scores, 3)
    assert items.tolist() == [[1, 3, 2]] and values.dtype == np.float32


def test_rejects_nan_bad_k_and_bad_mask_shape() -> None:
    with pytest.raises(ValueError, match="NaN"):
        topk_items(np.array([[0.0, np.nan]]), 1)
    with pytest.raises(ValueError, match="k must be"):
        topk_items(np.zeros((1, 3)), 0)
    with pytest.raises(ValueError, match="exclude rows"):
        mask_items(torch.zeros(2, 3), sp.csr_matrix((1, 3)))


def test_empty_batch() -> None:
    items, values = topk_items(np.zeros((0, 4), dtype=np.float32), 2)
    assert items.shape == (0, 2) and values.shape == (0, 2)


@pytest.mark.parametrize("item_chunk", [1, 2, 3, 7, 64, 1000])
@pytest.mark.parametrize("k", [1, 5, 20, 90])
def test_item_chunks_rank_exactly_like_one_pass(item_chunk: int, k: int) -> None:
    rng = np.random.default_rng(item_chunk * 100 + k)
    scores = rng.integers(0, 3, size=(6, 80)).astype(np.float32)  # many ties across chunks
    scores[0] = -np.inf  # a row with nothing to recommend
    exclude = sp.random(6, 80, density=0.3, format="lil", random_state=k)
    exclude[1] = 1.0  # a fully masked row
    exclude = exclude.tocsr()
    whole = topk_items(scores, k, exclude)
    chunked = topk_items(scores, k, exclude, item_chunk=item_chunk)
    np.testing.assert_array_equal(chunked[0], whole[0])
    np.testing.assert_array_equal(chunked[1], whole[1])
    assert (whole[0][:2] == -1).all()


def test_item_chunks_keep_the_lowest_index_on_ties_across_chunks() -> None:
    scores = np.array([[0.5, 0.9, 0.5, 0.9, 0.9, 0.5]], dtype=np.float32)
    items, _ = topk_items(scores, 4, item_chunk=2)  # chunks [0, 1], [2, 3], [4, 5]
    np.testing.assert_array_equal(items, [[1, 3, 4, 0]])
    with pytest.raises(ValueError, match="item_chunk"):
        topk_items(scores, 4, item_chunk=0)
