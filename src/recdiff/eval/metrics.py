"""Top-K ranking metrics as pure, vectorised functions on hit matrices.

Every metric reads the same two inputs, so one ranking at the largest cut-off ``K`` gives every
``k <= K`` without re-ranking:

- ``hits``: ``[n_users, K]`` boolean (or 0/1 float) matrix; ``hits[u, r]`` is true when the item a
  recommender put at rank ``r`` (0-based, best first) is relevant to user ``u``.
- ``n_relevant``: ``[n_users]`` number of relevant (held-out) items of each user.

Definitions (``rel(u)`` = relevant items, ``L_k(u)`` = top-k list, ``d_r = 1 / log2(r + 2)``):

=================  ===================================================================
recall@k           ``|L_k ∩ rel| / |rel|``  (denominator = all test items, DiffRec's choice,
                   not ``min(|rel|, k)``)
precision@k        ``|L_k ∩ rel| / k``
ndcg@k             ``sum_r hits[u, r] d_r / sum_{r < min(|rel|, k)} d_r`` (binary gain)
mrr@k              ``1 / (1 + rank of the first hit)``, 0 without a hit in the top k
hit_rate@k         1 when the top k holds at least one relevant item, else 0
coverage@k         distinct items in all top-k lists / catalogue size (list level only)
=================  ===================================================================

Edge-case policy (the same everywhere in recdiff):

- A user with no relevant items gets ``NaN`` for every per-user metric: there is nothing to
  recall. :func:`average` then either drops those users (``averaging="test_users"``, these
  functions' default and the honest choice) or counts them as 0 (``averaging="all_users"``,
  as the DiffRec paper averaged; the run configs' ``eval.averaging`` defaults to it, to compare
  with published numbers).
- ``K`` may exceed the number of recommendable items. Ranked lists are then padded with item
  ``-1`` (and a ``False`` hit); precision still divides by ``k`` because the user asked for ``k``.
- Ties in scores are broken by the lower item index first (see :mod:`recdiff.eval.ranking`);
  metrics themselves never see scores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal

import numpy as np

from recdiff.data.vocab import integer_indices

Averaging = Literal["test_users", "all_users"]
AVERAGING_MODES: tuple[str, ...] = ("test_users", "all_users")
PER_USER_METRICS: tuple[str, ...] = ("recall", "precision", "ndcg", "mrr", "hit_rate")
LIST_METRICS: tuple[str, ...] = ("coverage",)
ALL_METRICS: tuple[str, ...] = PER_USER_METRICS + LIST_METRICS


def metric_cutoff(name: str) -> tuple[str, int] | None:
    """``"recall@20"`` -> ``("recall", 20)``, and ``"recall@020"`` too (as the evaluator names
    its results, the cut-off is a number); None unless a name, ``@`` and ASCII digits."""
    kind, _, k = name.partition("@")
    if not kind or not (k.isascii() and k.isdigit()):
        return None
    return kind, int(k)


def canonical_metric(value: str, key: str = "metric") -> str:
    """``value`` as the evaluator names it (``recall@020`` is ``recall@20``), or a ValueError
    naming ``key`` when it is no metric with a cut-off >= 1."""
    parsed = metric_cutoff(value)
    if parsed is None or parsed[1] < 1:
        raise ValueError(f"{key} must look like 'recall@20' (a cut-off >= 1), got {value!r}")
    if parsed[0] not in ALL_METRICS:  # else found only after the first epochs have trained
        raise ValueError(f"{key} {value!r} names no metric; choose from {list(ALL_METRICS)}")
    return f"{parsed[0]}@{parsed[1]}"


def metric_list(metrics: Iterable[str]) -> list[str]:
    """``metrics`` as a list of names; one name given as a string is refused (else it would be
    read letter by letter: unknown metrics r, e, ...)."""
    if isinstance(metrics, (str, bytes)):
        raise TypeError(
            f"metrics must be a sequence of metric names such as ('recall', 'ndcg'), got "
            f"{metrics!r}: for one metric pass metrics=[{metrics!r}]"
        )
    return list(metrics)


def _check(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate shapes and ``k``; return ``hits[:, :k]`` as bool and ``n_relevant`` as int64."""
    hits = np.asarray(hits)
    n_relevant = np.asarray(n_relevant)
    if hits.ndim != 2:
        raise ValueError(f"hits must be a [users, K] matrix, got shape {hits.shape}")
    if n_relevant.shape != (hits.shape[0],):
        raise ValueError(
            f"n_relevant must have one entry per row of hits ({hits.shape[0]}), "
            f"got shape {n_relevant.shape}"
        )
    if not 1 <= k <= hits.shape[1]:
        raise ValueError(
            f"k={k} must lie in [1, {hits.shape[1]}]: rank once with the largest cut-off you need"
        )
    if n_relevant.dtype == bool or n_relevant.dtype.kind not in "iuf":
        raise TypeError(
            f"n_relevant must be counts of relevant items, got dtype {n_relevant.dtype}: pass "
            "np.diff(truth.indptr) for a CSR truth"
        )
    if n_relevant.dtype.kind == "f":
        fractional = n_relevant != np.round(n_relevant)  # NaN counts too
        if fractional.any():
            raise ValueError(
                f"n_relevant must be whole counts, got {n_relevant[fractional][:5].tolist()}: "
                "pass each user's number of relevant items (a fraction would be truncated)"
            )
    if np.any(n_relevant < 0):
        raise ValueError("n_relevant must be non-negative")
    return hits[:, :k].astype(bool, copy=False), n_relevant.astype(np.int64, copy=False)


def _with_nan_for_empty(values: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Mark users without relevant items as NaN (see the module's edge-case policy)."""
    values = values.astype(np.float64, copy=False)
    return np.where(n_relevant > 0, values, np.nan)


def recall_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Per-user recall@k = hits in the top k / number of relevant items (NaN if none)."""
    top, n_rel = _check(hits, n_relevant, k)
    n_hits = top.sum(axis=1)
    # np.maximum keeps the division warning-free; those rows are NaN-ed right after.
    return _with_nan_for_empty(n_hits / np.maximum(n_rel, 1), n_rel)


def precision_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Per-user precision@k = hits in the top k / k (NaN for users without relevant items)."""
    top, n_rel = _check(hits, n_relevant, k)
    return _with_nan_for_empty(top.sum(axis=1) / k, n_rel)


def _discounts(k: int) -> np.ndarray:
    """Position discounts ``1 / log2(r + 2)`` for ranks ``r = 0..k-1``."""
    return 1.0 / np.log2(np.arange(k, dtype=np.float64) + 2.0)


def ndcg_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Per-user NDCG@k with binary gain; the ideal list has ``min(|rel|, k)`` hits on top."""
    top, n_rel = _check(hits, n_relevant, k)
    discounts = _discounts(k)
    dcg = top @ discounts
    # ideal_dcg[n] = DCG of a list whose first n items are hits, for n = 0..k.
    ideal_dcg = np.concatenate([[0.0], np.cumsum(discounts)])
    idcg = ideal_dcg[np.minimum(n_rel, k)]
    return _with_nan_for_empty(dcg / np.where(idcg > 0, idcg, 1.0), n_rel)


def mrr_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Per-user reciprocal rank of the first hit within the top k (0 without one)."""
    top, n_rel = _check(hits, n_relevant, k)
    first = top.argmax(axis=1)  # index of the first True; 0 also when there is none
    rr = np.where(top.any(axis=1), 1.0 / (first + 1.0), 0.0)
    return _with_nan_for_empty(rr, n_rel)


def hit_rate_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Per-user 1.0 if any of the top k is relevant, else 0.0 (NaN without relevant items)."""
    top, n_rel = _check(hits, n_relevant, k)
    return _with_nan_for_empty(top.any(axis=1).astype(np.float64), n_rel)


PER_USER_FUNCTIONS: dict[str, Callable[[np.ndarray, np.ndarray, int], np.ndarray]] = {
    "recall": recall_at_k,
    "precision": precision_at_k,
    "ndcg": ndcg_at_k,
    "mrr": mrr_at_k,
    "hit_rate": hit_rate_at_k,
}


def coverage_at_k(items: np.ndarray, n_items: int, k: int) -> float:
    """Fraction of the catalogue that appears in at least one top-k list.

    ``items`` is the ``[n_users, K]`` matrix of recommended item indices; padding ``-1`` entries
    (lists shorter than ``k``) are ignored.
    """
    items = integer_indices(items, "items")
    if items.ndim != 2 or not 1 <= k <= items.shape[1]:
        raise ValueError(f"items must be [users, K] with 1 <= k <= K, got {items.shape}, k={k}")
    if n_items <= 0:
        raise ValueError(f"n_items must be positive, got {n_items}")
    shown = np.zeros(n_items, dtype=bool)
    top = items[:, :k].ravel()
    bad = (top < -1) | (top >= n_items)
    if bad.any():
        raise ValueError(
            f"items must be item indices in [0, {n_items}) or -1 (padding), got "
            f"{top[bad][:5].tolist()}: rank over the same catalogue as n_items"
        )
    shown[top[top >= 0]] = True
    return float(shown.mean())


def average(per_user: np.ndarray, averaging: Averaging = "test_users") -> float:
    """Mean of a per-user metric under an averaging mode (see the module's edge-case policy).

    ``"test_users"`` averages over users whose value is not NaN (users with relevant items);
    ``"all_users"`` counts NaN users as 0. Returns NaN when no user can be averaged.
    """
    if averaging not in AVERAGING_MODES:
        raise ValueError(f"averaging must be one of {AVERAGING_MODES}, got {averaging!r}")
    per_user = np.asarray(per_user, dtype=np.float64)
    if averaging == "all_users":
        return float(np.nan_to_num(per_user, nan=0.0).mean()) if per_user.size else float("nan")
    valid = per_user[~np.isnan(per_user)]
    # Checked explicitly: np.nanmean would warn on an all-NaN input.
    return float(valid.mean()) if valid.size else float("nan")


def metric_names(metrics: Iterable[str], ks: Iterable[int]) -> list[str]:
    """Names such as ``"recall@20"`` for every metric and cut-off, metric-major order."""
    metrics, ks = metric_list(metrics), list(ks)
    unknown = sorted(set(metrics) - set(ALL_METRICS))
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {ALL_METRICS}")
    return [f"{m}@{k}" for m in metrics for k in ks]


def per_user_metrics(
    hits: np.ndarray, n_relevant: np.ndarray, ks: Iterable[int], metrics: Iterable[str]
) -> dict[str, np.ndarray]:
    """Every requested per-user metric at every ``k`` from one hit matrix.

    List-level metrics (``coverage``) are skipped here; they need the item indices.
    """
    out: dict[str, np.ndarray] = {}
    ks = list(ks)
    for name in metric_names(metrics, ks):
        metric, k = name.split("@")
        if metric in PER_USER_FUNCTIONS:
            out[name] = PER_USER_FUNCTIONS[metric](hits, n_relevant, int(k))
    return out
