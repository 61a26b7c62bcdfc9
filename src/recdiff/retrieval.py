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
    """Mean fraction of each row's exact top-K ids that the approximate top-K also holds."""
    if approximate.shape != exact.shape:
        raise ValueError(f"shapes differ: {approximate.shape} vs {exact.shape}")
    found = [np.isin(e[e >= 0], a).mean() for a, e in zip(approximate, exact, strict=True)]
    return float(np.mean(found)) if found else float("nan")
