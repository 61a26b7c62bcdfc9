"""Retrieval indexes take item and query embeddings as they come out of a model: tensors that
require grad (an embedding table), bfloat16, on the model's device."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recdiff.retrieval import ExactIndex, build_index


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
