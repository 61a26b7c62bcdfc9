"""Evaluation: ranking metrics, top-K with seen-item masking, and the full-ranking evaluator.

``metrics``   pure per-user metric functions on ``[users, K]`` hit matrices (edge-case policy)
``ranking``   top-K from a score block, masking, deterministic ties (lower item index first)
``evaluator`` batched full-ranking evaluation -> :class:`EvalResult` (means + per-user values)
``protocol``  :class:`EvalTask` for validation (mask train) and test (mask train + valid)
"""

from recdiff.eval.evaluator import EvalResult, evaluate, evaluate_scores
from recdiff.eval.metrics import (
    ALL_METRICS,
    average,
    coverage_at_k,
    hit_rate_at_k,
    mrr_at_k,
    ndcg_at_k,
    per_user_metrics,
    precision_at_k,
    recall_at_k,
)
from recdiff.eval.protocol import EvalTask
from recdiff.eval.ranking import mask_items, topk_items

__all__ = [
    "ALL_METRICS",
    "EvalResult",
    "EvalTask",
    "average",
    "coverage_at_k",
    "evaluate",
    "evaluate_scores",
    "hit_rate_at_k",
    "mask_items",
    "mrr_at_k",
    "ndcg_at_k",
    "per_user_metrics",
    "precision_at_k",
    "recall_at_k",
    "topk_items",
]
