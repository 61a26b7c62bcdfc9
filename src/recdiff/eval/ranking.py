"""Top-K selection from a block of scores, with seen-item masking and deterministic ties.

Shared by the evaluator and by :meth:`recdiff.models.Recommender.recommend`, so that what is
measured is exactly what is served.

Policy:

- **Masking.** Items in the ``exclude`` CSR row of a user get score ``-inf``. A ``-inf`` score
  means "never recommend": such items are not returned even when fewer than ``k`` items are
  left; the list is padded with item ``-1`` and score ``-inf`` instead.
- **K larger than the catalogue** is allowed and padded the same way.
- **Ties** are broken by the lower item index first, independent of hardware and of the
  order in which a top-k kernel happens to return equal values.
- ``NaN`` scores are rejected: they have no place in a ranking and usually mean a diverged model.

Works on numpy arrays and torch tensors (any device; the work stays on that device and only
the ``[batch, k]`` result comes back to the host as numpy).

Memory: ranking a ``[batch, n_items]`` block whole needs about three to five times the block in
temporaries (the masked copy, comparison masks, their int64 counts). ``item_chunk`` (by default
:data:`ITEM_CHUNK`) ranks the items in column chunks and merges the per-chunk top-k lists, so the
temporaries are ``batch x item_chunk``; the result is the same.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

ScoreBlock = np.ndarray | torch.Tensor

#: Items ranked at a time unless the caller says: the same lists, with the ranking's temporaries
#: ``batch x ITEM_CHUNK`` rather than a few times the score block. At 4,096 examples x 100,000
#: items (a 1.6 GB block), evaluation peaks at 2.3 GB instead of 5.5 (7.1 with seen items
#: masked); Popularity's top 20 of 1,024 users x 286,099 items (a 1.1 GB block) peaks at 1.8 GB
#: instead of 4.0, in 4.1 s against 3.7 (``benchmarks/scale_limits.py``, one thread).
ITEM_CHUNK = 8192


def as_score_tensor(scores: ScoreBlock) -> torch.Tensor:
    """View a score block as a floating torch tensor (zero-copy for numpy on the CPU)."""
    if isinstance(scores, np.ndarray):
        scores = torch.from_numpy(np.ascontiguousarray(scores))
    elif not isinstance(scores, torch.Tensor):
        raise TypeError(
            f"scores must be a numpy array or torch tensor, got {type(scores).__name__}"
        )
    if scores.ndim != 2:
        raise ValueError(
            f"scores must be a [batch, n_items] block, got shape {tuple(scores.shape)}"
        )
    if scores.dtype in (torch.bfloat16, torch.float16):
        scores = scores.to(torch.float32)  # half precision: numpy cannot hold bfloat16
    elif not torch.is_floating_point(scores):  # counts: float64 holds them exactly to 2**53
        scores = scores.to(torch.float64)
    return scores.detach()


def mask_items(scores: ScoreBlock, exclude: sp.csr_matrix, copy: bool = True) -> torch.Tensor:
    """Set ``scores[u, i] = -inf`` for every stored entry ``(u, i)`` of ``exclude``.

    ``exclude`` must have the same shape as ``scores`` (one row per score row). Only the sparsity
    pattern counts, not the stored values. ``scores`` may be a numpy array or a torch tensor;
    the result is a tensor. With ``copy=False`` a float32/float64 block is changed in place (a
    numpy one through the tensor that shares its memory).
    """
    if isinstance(scores, np.ndarray):
        scores = as_score_tensor(scores)
    elif not isinstance(scores, torch.Tensor):
        raise TypeError(
            f"scores must be a numpy array or torch tensor, got {type(scores).__name__}"
        )
    rows, cols = _excluded_entries(exclude, scores)
    if copy:
        scores = scores.clone()
    scores[rows, cols] = float("-inf")
    return scores


def _excluded_entries(
    exclude: sp.csr_matrix, scores: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column indices (on the scores' device) of the stored entries of ``exclude``."""
    if not sp.issparse(exclude):
        raise TypeError(f"exclude must be a scipy sparse matrix, got {type(exclude).__name__}")
    if tuple(exclude.shape) != tuple(scores.shape):
        raise ValueError(
            f"exclude has shape {exclude.shape} but scores have shape {tuple(scores.shape)}: "
            "pass the exclude rows of exactly the users that were scored"
        )
    exclude = exclude.tocsr()
    rows = np.repeat(np.arange(exclude.shape[0]), np.diff(exclude.indptr))
    rows_t = torch.from_numpy(rows).to(scores.device)
    cols_t = torch.from_numpy(exclude.indices.astype(np.int64)).to(scores.device)
    return rows_t, cols_t


def check_top_k(k: object, n_items: int) -> None:
    """A list length a caller asks of a model: an integer in 1..n_items. (Above the catalogue,
    the list would be padded with item -1, which numpy reads as the last item.)"""
    from recdiff.data.vocab import is_integer

    if not is_integer(k):
        raise TypeError(f"k must be an integer in 1..{n_items}, got {k!r}")
    if not 1 <= k <= n_items:
        raise ValueError(f"k must lie in 1..{n_items} (the catalogue size), got {k}")


def topk_items(
    scores: ScoreBlock,
    k: int,
    exclude: sp.csr_matrix | None = None,
    item_chunk: int | None = ITEM_CHUNK,
) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` items per row, best first.

    Args:
        scores: ``[batch, n_items]`` scores (numpy or torch); larger is better. Not modified.
        k: list length; may exceed ``n_items`` (the rest is padding).
        exclude: optional ``[batch, n_items]`` CSR of items never to recommend (seen items).
        item_chunk: rank at most this many items at a time (None: all at once); bounds the
            temporaries at ``batch x item_chunk`` for wide catalogues. Same result.

    Returns:
        ``(items, item_scores)``: int64 ``[batch, k]`` item indices (``-1`` = padding) and
        ``[batch, k]`` scores as float32/float64 numpy (``-inf`` for padding).
    """
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    if item_chunk is not None and item_chunk < 1:
        raise ValueError(f"item_chunk must be a positive number of items or None, got {item_chunk}")
    tensor = as_score_tensor(scores)
    if torch.isnan(tensor).any():
        raise ValueError("scores contain NaN; check the model (diverged training?) before ranking")
    batch, n_items = tensor.shape
    k_eff = min(k, n_items)
    if batch == 0 or n_items == 0:
        if exclude is not None:
            _excluded_entries(exclude, tensor)  # the same shape check as a non-empty block's
        items = torch.empty((batch, 0), dtype=torch.int64, device=tensor.device)
        values = torch.empty((batch, 0), dtype=tensor.dtype, device=tensor.device)
    elif item_chunk is not None and item_chunk < n_items:
        items, values = _topk_in_item_chunks(tensor, k_eff, exclude, item_chunk)
    else:
        if exclude is not None:
            tensor = mask_items(tensor, exclude, copy=True)
        items, values = _topk_lowest_index_ties(tensor, k_eff)
    items_np = items.cpu().numpy()
    values_np = values.cpu().numpy()
    items_np[np.isneginf(values_np)] = -1
    if k > items_np.shape[1]:
        pad = k - items_np.shape[1]
        items_np = np.pad(items_np, ((0, 0), (0, pad)), constant_values=-1)
        values_np = np.pad(values_np, ((0, 0), (0, pad)), constant_values=-np.inf)
    return items_np, values_np


def _topk_lowest_index_ties(
    scores: torch.Tensor, k: int, floor: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k where equal scores are ordered by ascending item index.

    ``torch.topk`` alone gives no guarantee which of several equal scores survive the cut. Its
    pick is the only possible one when exactly k items score at least the k-th largest value
    ``thr``; only rows with more (ties at the cut) are redone: everything above ``thr`` and, of
    the items equal to it, the lowest-indexed ones until the row has ``k``. Then the ``k`` items
    are stable-sorted by score from ascending index order.

    A cut at ``-inf``, or at or below ``floor`` (per row: a score that k items of lower index,
    in earlier chunks, already reach), is never redone: its tied items cannot be in the overall
    top k (they are padding, or lose to those k), whichever of them are returned. In a ranking
    by counts nearly every chunk ties at its cut, and only the first few can matter.
    """
    values, items = torch.topk(scores, k, dim=1, largest=True, sorted=False)
    thr = values.amin(dim=1, keepdim=True)
    crowded = thr.squeeze(1) > (float("-inf") if floor is None else floor)
    if crowded.any():
        crowded &= (scores >= thr).sum(dim=1, dtype=torch.int32) > k  # int32: half the work
    if crowded.any():
        rows = crowded.nonzero().squeeze(1)
        items[rows] = _lowest_indices_at_the_cut(scores[rows], thr[rows], k)
    items = torch.sort(items, dim=1).values
    values = torch.gather(scores, 1, items)
    order = torch.sort(values, dim=1, descending=True, stable=True).indices
    return torch.gather(items, 1, order), torch.gather(values, 1, order)


def _lowest_indices_at_the_cut(scores: torch.Tensor, thr: torch.Tensor, k: int) -> torch.Tensor:
    """The top k items of rows with ties at the k-th value ``thr``, lowest indices among those."""
    chosen = scores > thr
    need = k - chosen.sum(dim=1, dtype=torch.int32)
    # The tied items keyed by n - index (0 for the others): the k largest keys are the k
    # lowest-indexed ties, of which each row keeps its first ``need``. One top-k instead of a
    # cumulative count along every row: 2-4x faster, at every chunk of a popularity ranking,
    # where counts tie.
    n = scores.shape[1]
    reversed_index = torch.arange(n, 0, -1, dtype=torch.int32, device=scores.device)
    lowest = torch.topk(torch.where(scores == thr, reversed_index, 0), k, dim=1).indices
    keep = torch.arange(k, device=scores.device) < need[:, None]
    rows = torch.arange(scores.shape[0], device=scores.device)[:, None].expand(-1, k)
    chosen[rows[keep], lowest[keep]] = True
    # nonzero() walks row-major, so each row's chosen items come out in ascending index order.
    return chosen.nonzero()[:, 1].reshape(scores.shape[0], k)


def _topk_in_item_chunks(
    scores: torch.Tensor, k: int, exclude: sp.csr_matrix | None, chunk: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_topk_lowest_index_ties` over column chunks, then over the chunks' winners.

    An item in the overall top k under (score descending, index ascending) has fewer than k items
    before it in that order within its own chunk too, so the chunks' top-k lists hold the answer.
    """
    masked = _excluded_entries(exclude, scores) if exclude is not None else None
    found_items, found_values = [], []
    # The k best scores so far; once there are k, their least is the next chunks' floor.
    best: torch.Tensor | None = None
    floor = None
    for start in range(0, scores.shape[1], chunk):
        part = scores[:, start : start + chunk]
        if masked is not None:
            rows, cols = masked
            inside = (cols >= start) & (cols < start + part.shape[1])
            if inside.any():
                part = part.clone()
                part[rows[inside], cols[inside] - start] = float("-inf")
        items, values = _topk_lowest_index_ties(part, min(k, part.shape[1]), floor)
        found_items.append(items + start)
        found_values.append(values)
        best = values if best is None else torch.cat([best, values], dim=1)
        best = torch.topk(best, min(k, best.shape[1]), dim=1, sorted=False).values
        if best.shape[1] == k:
            floor = best.amin(dim=1)
    items, values = torch.cat(found_items, dim=1), torch.cat(found_values, dim=1)
    # Candidates by ascending item, then a stable sort by score: ties stay in item order.
    by_item = torch.argsort(items, dim=1)
    items, values = torch.gather(items, 1, by_item), torch.gather(values, 1, by_item)
    best = torch.sort(values, dim=1, descending=True, stable=True).indices[:, :k]
    return torch.gather(items, 1, best), torch.gather(values, 1, best)
