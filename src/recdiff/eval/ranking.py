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
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

ScoreBlock = np.ndarray | torch.Tensor


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
    if not torch.is_floating_point(scores):
        scores = scores.to(torch.float32)
    return scores.detach()


def mask_items(scores: torch.Tensor, exclude: sp.csr_matrix, copy: bool = True) -> torch.Tensor:
    """Set ``scores[u, i] = -inf`` for every stored entry ``(u, i)`` of ``exclude``.

    ``exclude`` must have the same shape as ``scores`` (one row per score row). Only the sparsity
    pattern counts, not the stored values. With ``copy=False`` the tensor is changed in place.
    """
    if not sp.issparse(exclude):
        raise TypeError(f"exclude must be a scipy sparse matrix, got {type(exclude).__name__}")
    if tuple(exclude.shape) != tuple(scores.shape):
        raise ValueError(
            f"exclude has shape {exclude.shape} but scores have shape {tuple(scores.shape)}: "
            "pass the exclude rows of exactly the users that were scored"
        )
    exclude = exclude.tocsr()
    if copy:
        scores = scores.clone()
    rows = np.repeat(np.arange(exclude.shape[0]), np.diff(exclude.indptr))
    rows_t = torch.from_numpy(rows).to(scores.device)
    cols_t = torch.from_numpy(exclude.indices.astype(np.int64)).to(scores.device)
    scores[rows_t, cols_t] = float("-inf")
    return scores


def topk_items(
    scores: ScoreBlock, k: int, exclude: sp.csr_matrix | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` items per row, best first.

    Args:
        scores: ``[batch, n_items]`` scores (numpy or torch); larger is better. Not modified.
        k: list length; may exceed ``n_items`` (the rest is padding).
        exclude: optional ``[batch, n_items]`` CSR of items never to recommend (seen items).

    Returns:
        ``(items, item_scores)``: int64 ``[batch, k]`` item indices (``-1`` = padding) and
        ``[batch, k]`` scores as float32/float64 numpy (``-inf`` for padding).
    """
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    tensor = as_score_tensor(scores)
    if torch.isnan(tensor).any():
        raise ValueError("scores contain NaN; check the model (diverged training?) before ranking")
    if exclude is not None:
        tensor = mask_items(tensor, exclude, copy=True)
    batch, n_items = tensor.shape
    k_eff = min(k, n_items)
    if batch == 0 or n_items == 0:
        items = torch.empty((batch, 0), dtype=torch.int64, device=tensor.device)
        values = torch.empty((batch, 0), dtype=tensor.dtype, device=tensor.device)
    else:
        items, values = _topk_lowest_index_ties(tensor, k_eff)
    items_np = items.cpu().numpy()
    values_np = values.cpu().numpy()
    items_np[np.isneginf(values_np)] = -1
    if k > items_np.shape[1]:
        pad = k - items_np.shape[1]
        items_np = np.pad(items_np, ((0, 0), (0, pad)), constant_values=-1)
        values_np = np.pad(values_np, ((0, 0), (0, pad)), constant_values=-np.inf)
    return items_np, values_np


def _topk_lowest_index_ties(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k where equal scores are ordered by ascending item index.

    ``torch.topk`` alone gives no guarantee which of several equal scores survive the cut, so:
    find each row's k-th largest value ``thr``; keep everything above it and, of the items equal
    to it, the lowest-indexed ones until the row has ``k``; then stable-sort those ``k`` by score.
    """
    thr = torch.topk(scores, k, dim=1, largest=True, sorted=False).values.amin(dim=1, keepdim=True)
    above = scores > thr
    at_thr = scores == thr
    need = k - above.sum(dim=1, keepdim=True)
    chosen = above | (at_thr & (torch.cumsum(at_thr, dim=1) <= need))
    # nonzero() walks row-major, so each row's chosen items come out in ascending index order.
    items = chosen.nonzero()[:, 1].reshape(scores.shape[0], k)
    values = torch.gather(scores, 1, items)
    order = torch.sort(values, dim=1, descending=True, stable=True).indices
    return torch.gather(items, 1, order), torch.gather(values, 1, order)
