"""Top-K retrieval by inner product: exact (a matmul) or through a faiss index.

DreamRec ranks items by the inner product of a generated embedding with every item embedding.
For catalogues of millions of items a faiss index (HNSW graph on inner product) answers the same
question approximately; :func:`recall_at_k` measures how much of the exact top-K it returns.
faiss is optional (``pip install 'recdiff[ann]'``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch

from recdiff.data.vocab import is_integer
from recdiff.eval.ranking import topk_items

__all__ = ["ExactIndex", "FaissIndex", "ItemIndex", "build_index", "recall_at_k"]


class ExactIndex:
    """Exact top-K by inner product (ties: lower item index first, as in evaluation)."""

    def __init__(self, items: np.ndarray | torch.Tensor) -> None:
        self.items = torch.as_tensor(items, dtype=torch.float32).detach()

    def search(self, queries: np.ndarray | torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
        # On the items' device: numpy queries against CUDA items (or the reverse) are moved.
        queries = torch.as_tensor(queries, dtype=torch.float32, device=self.items.device)
        return topk_items(queries.detach() @ self.items.T, k)

    def vectors(self) -> np.ndarray:
        """The ``[n, dim]`` float32 vectors the index holds."""
        return self.items.cpu().numpy()


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
        _check_queries(vectors, self.index.d)  # faiss itself only asserts, without a message
        scores, ids = self.index.search(vectors, k)
        return ids.astype(np.int64), scores

    def vectors(self) -> np.ndarray:
        """The ``[n, dim]`` float32 vectors the index holds (a copy out of the graph's storage)."""
        return self.index.reconstruct_n(0, self.index.ntotal)


def _host_float32(vectors: np.ndarray | torch.Tensor) -> np.ndarray:
    """A C-contiguous float32 numpy copy of ``vectors`` for faiss, from any device (CUDA
    tensors, bfloat16, tensors that require grad such as embedding weights)."""
    if isinstance(vectors, torch.Tensor):
        vectors = vectors.detach().to(device="cpu", dtype=torch.float32).numpy()
    return np.ascontiguousarray(vectors, dtype=np.float32)


def _check_queries(queries: np.ndarray, dim: int) -> None:
    if queries.ndim != 2 or queries.shape[1] != dim:
        raise ValueError(
            f"queries must be [n_queries, {dim}] (the items' width), got shape "
            f"{tuple(queries.shape)}"
            + (": for one query pass queries[None]" if queries.shape == (dim,) else "")
        )


def build_index(
    items: np.ndarray | torch.Tensor, kind: Literal["exact", "faiss"] = "exact", **options
) -> ExactIndex | FaissIndex:
    """An index of ``kind`` over ``items``."""
    if kind == "exact":
        return ExactIndex(items)
    if kind == "faiss":
        return FaissIndex(items, **options)
    raise ValueError(f"unknown index kind {kind!r}; choose exact or faiss")


#: Rows :meth:`ItemIndex.top_k` ranks exactly at a time when the index came short on them.
_EXACT_ROWS = 64


class ItemIndex:
    """Top-K recommendations through an index over a model's item vectors.

    The index holds the items ``usable`` allows (all by default: a model may leave some
    unranked, e.g. DreamRec's ``exclude_untrained_items``) under their own ids. ``top_k`` skips
    each row's excluded items (a user's seen ones) by asking the index for as many more
    candidates as the row excludes, so an exact index gives exactly the ranking of
    :func:`~recdiff.eval.ranking.topk_items` over the full scores. Candidates are ordered by
    score, then lower item id, whatever order the index found equal scores in. A row the index
    comes short on (an HNSW graph need not reach every item: asked for all of them it returns
    part, so a user who excludes most of the catalogue got fewer than ``k`` though more were
    left) is ranked exactly. NaN in the vectors of usable items or in the queries is refused,
    as :func:`~recdiff.eval.ranking.topk_items` refuses NaN scores (faiss dropped such items
    and rows silently).

    Args:
        items: ``[n_items, dim]`` item vectors.
        kind: ``exact`` or ``faiss`` (see :func:`build_index`); ``options`` go to the index.
        usable: optional ``[n_items]`` bool mask of the items that may be recommended.
    """

    def __init__(
        self,
        items: np.ndarray | torch.Tensor,
        kind: Literal["exact", "faiss"] = "exact",
        usable: np.ndarray | torch.Tensor | None = None,
        **options,
    ) -> None:
        vectors = _host_float32(items)
        if vectors.ndim != 2:
            raise ValueError(f"items must be [n_items, dim] vectors, got shape {vectors.shape}")
        self.n_items, self.dim = vectors.shape
        self.ids = np.arange(self.n_items, dtype=np.int64)
        if usable is not None:
            mask = np.asarray(
                usable.cpu() if isinstance(usable, torch.Tensor) else usable, dtype=bool
            )
            if mask.shape != (self.n_items,):
                raise ValueError(f"usable must be [{self.n_items}] booleans, got {mask.shape}")
            self.ids, vectors = self.ids[mask], vectors[mask]
        if np.isnan(vectors).any():
            rows = self.ids[np.isnan(vectors).any(axis=1)]
            raise ValueError(
                f"item vectors contain NaN (items {rows[:5].tolist()}); check the model "
                "(diverged training?) before ranking"
            )
        self.usable = np.zeros(self.n_items, dtype=bool)
        self.usable[self.ids] = True
        self.kind = kind
        self.index = build_index(vectors, kind, **options) if len(vectors) else None

    def top_k(
        self, queries: np.ndarray | torch.Tensor, k: int, exclude=None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Item ids and scores ``[n_queries, k]``, best first; ``-1`` / ``-inf`` pad rows with
        fewer than ``k`` items to offer. ``exclude``: optional ``[n_queries, n_items]`` CSR
        of items never to return."""
        if not is_integer(k) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        queries = _host_float32(queries)
        _check_queries(queries, self.dim)
        if np.isnan(queries).any():
            raise ValueError("queries contain NaN; check the model (diverged training?) first")
        rows = len(queries)
        if exclude is not None:
            exclude = self._checked_exclude(exclude, rows)
        items = np.full((rows, k), -1, dtype=np.int64)
        scores = np.full((rows, k), -np.inf, dtype=np.float32)
        if rows == 0 or self.index is None:
            return items, scores
        counts = np.zeros(rows, dtype=np.int64)
        if exclude is not None:
            counts = np.diff(exclude.indptr)
        wanted = min(k + int(counts.max()), len(self.ids))
        found, found_scores = self.index.search(queries, wanted)
        allowed = found >= 0  # faiss pads with -1
        ids = np.where(allowed, self.ids[np.maximum(found, 0)], -1)
        found_scores = np.where(allowed, np.asarray(found_scores, dtype=np.float32), -np.inf)
        # score descending, then id ascending (padding last): the exact ranking's tie order
        order = np.lexsort((np.where(allowed, ids, self.n_items), -found_scores), axis=1)
        ids, allowed = np.take_along_axis(ids, order, 1), np.take_along_axis(allowed, order, 1)
        found_scores = np.take_along_axis(found_scores, order, 1)
        offered = len(self.ids)
        if counts.any():  # one isin over all rows: (row, item) pairs as row * n_items + item
            offsets = np.arange(rows, dtype=np.int64)[:, None] * self.n_items
            seen = np.repeat(offsets[:, 0], counts) + exclude.indices[: exclude.indptr[-1]]
            allowed &= ~np.isin(ids + offsets, seen)
            seen = np.unique(seen)
            seen = seen[self.usable[seen % self.n_items]]  # excluded items the index holds
            offered -= np.bincount(seen // self.n_items, minlength=rows)
        rank = np.cumsum(allowed, axis=1) - 1  # each candidate's place among its row's allowed
        row, column = np.nonzero(allowed & (rank < k))
        items[row, rank[row, column]] = ids[row, column]
        scores[row, rank[row, column]] = found_scores[row, column]
        short = np.flatnonzero(allowed.sum(axis=1) < np.minimum(offered, k))
        if len(short):
            self._rank_exactly(queries, k, exclude, short, items, scores)
        return items, scores

    def _rank_exactly(self, queries, k, exclude, rows, items, scores) -> None:
        """Fill ``rows`` of ``items`` and ``scores`` from the full scores of all usable items, a
        few rows at a time (a block is ``rows x n_items``)."""
        vectors = self.index.vectors()
        for start in range(0, len(rows), _EXACT_ROWS):
            part = rows[start : start + _EXACT_ROWS]
            full = np.full((len(part), self.n_items), -np.inf, dtype=np.float32)
            full[:, self.ids] = queries[part] @ vectors.T
            excluded = None if exclude is None else exclude[part]
            items[part], scores[part] = topk_items(full, k, excluded)

    def _checked_exclude(self, exclude, rows: int) -> sp.csr_matrix:
        """``exclude`` as CSR, refused when its entries would be read as other rows' items: its
        items are keyed ``row * n_items + item``, so a wider matrix would spill into the next
        row, and a taller one (say every user's, beside a few users' queries) would pair its
        first rows with queries they do not belong to."""
        if not sp.issparse(exclude):
            raise TypeError(
                f"exclude must be a scipy sparse matrix [n_queries, {self.n_items}], got "
                f"{type(exclude).__name__}: pass scipy.sparse.csr_matrix(exclude)"
            )
        if exclude.shape != (rows, self.n_items):
            raise ValueError(
                f"exclude must have a row per query ({rows}) and a column per item of the index "
                f"({self.n_items}), got shape {exclude.shape}: select the queries' rows "
                "(exclude[rows])"
            )
        return sp.csr_matrix(exclude)


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
