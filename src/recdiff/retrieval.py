"""Top-K retrieval by inner product: exact (a matmul) or through a faiss index.

DreamRec ranks items by the inner product of a generated embedding with every item embedding.
For catalogues of millions of items a faiss index (HNSW graph on inner product) answers the same
question approximately; :func:`recall_at_k` measures how much of the exact top-K it returns.
faiss is optional (``pip install 'recdiff[ann]'``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from recdiff.eval.ranking import topk_items

__all__ = ["ExactIndex", "FaissIndex", "build_index", "recall_at_k"]


class ExactIndex:
    """Exact top-K by inner product (ties: lower item index first, as in evaluation)."""

    def __init__(self, items: np.ndarray | torch.Tensor) -> None:
        self.items = torch.as_tensor(items, dtype=torch.float32).detach()

    def search(self, queries: np.ndarray | torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
        # On the items' device: numpy queries against CUDA items (or the reverse) are moved.
        queries = torch.as_tensor(queries, dtype=torch.float32, device=self.items.device)
        return topk_items(queries.detach() @ self.items.T, k)


class FaissIndex:
    """Approximate top-K by inner product with a faiss HNSW index.

    Args:
        items: ``[n_items, dim]`` item embeddings.
        neighbors: HNSW graph degree (M); more = better recall, more memory.
        ef_search: candidates explored per query; more = better recall, slower.
    """

    def __init__(
        self, items: np.ndarray | torch.Tensor, neighbors: int = 32, ef_search: int = 128
    ) -> None:
        try:
            import faiss
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError(
                "the faiss index needs faiss: pip install 'recdiff[ann]' (or use exact retrieval)"
            ) from error
        vectors = _host_float32(items)
        self.index = faiss.IndexHNSWFlat(vectors.shape[1], neighbors, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efSearch = ef_search
        self.index.add(vectors)

    def search(self, queries: np.ndarray | torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
        vectors = _host_float32(queries)
        scores, ids = self.index.search(vectors, k)
        return ids.astype(np.int64), scores


def _host_float32(vectors: np.ndarray | torch.Tensor) -> np.ndarray:
    """A C-contiguous float32 numpy copy of ``vectors`` for faiss, from any device (CUDA
    tensors, bfloat16, tensors that require grad such as embedding weights)."""
    if isinstance(vectors, torch.Tensor):
        vectors = vectors.detach().to(device="cpu", dtype=torch.float32).numpy()
    return np.ascontiguousarray(vectors, dtype=np.float32)


def build_index(
    items: np.ndarray | torch.Tensor, kind: Literal["exact", "faiss"] = "exact", **options
) -> ExactIndex | FaissIndex:
    """An index of ``kind`` over ``items``."""
    if kind == "exact":
        return ExactIndex(items)
    if kind == "faiss":
        return FaissIndex(items, **options)
    raise ValueError(f"unknown index kind {kind!r}; choose exact or faiss")


def recall_at_k(approximate: np.ndarray, exact: np.ndarray) -> float:
    """Mean over rows of the fraction of a row's exact top-K ids that its approximate top-K also
    holds.

    Ids below 0 are padding (``-1``, as :func:`~recdiff.eval.ranking.topk_items` and faiss pad
    rows with fewer than K results). A row whose exact results are all padding has nothing to
    recall: it is left out of the mean, not counted as 0 or 1 (the policy of
    :mod:`recdiff.eval.metrics` for users without test items). When no row has an exact result
    (no rows, or a catalogue without items) the recall is undefined: NaN, without a warning.

    Args:
        approximate: ``[n_queries, K]`` ids an approximate index returned.
        exact: ``[n_queries, K]`` ids of the exact top-K, for the same queries.
    """
    approximate, exact = np.asarray(approximate), np.asarray(exact)
    if approximate.shape != exact.shape:
        raise ValueError(f"shapes differ: {approximate.shape} vs {exact.shape}")
    if exact.ndim != 2:
        raise ValueError(f"expected [n_queries, K] id arrays, got shape {exact.shape}")
    valid = exact >= 0
    counts = valid.sum(axis=1)
    if not counts.any():
        return float("nan")
    # Offset each row's ids into a range of its own, so that one np.isin over all rows matches
    # ids within a row only. Padding (any negative id) maps to a key no real id takes.
    width = max(int(exact.max()), int(approximate.max()), 0) + 2
    offsets = np.arange(len(exact), dtype=np.int64)[:, None] * width
    exact_keys = np.maximum(exact.astype(np.int64), -1) + 1 + offsets
    approximate_keys = np.maximum(approximate.astype(np.int64), -1) + 1 + offsets
    found = np.isin(exact_keys, approximate_keys) & valid
    rows = counts > 0
    return float(np.mean(found.sum(axis=1)[rows] / counts[rows]))
