"""The hold-out protocol of DiffRec-style splits: which rows go in, which are masked.

- Validation: input = train rows, truth = valid, exclude = train.
- Test: input = train rows (DiffRec does not feed valid items back in), truth = test,
  exclude = train + valid (nothing the user is known to have seen is ranked).

``EvalTask`` bundles the three matrices so that a caller cannot mix them up::

    task = EvalTask.test(train, valid, test)
    result = task.evaluate(model.score, ks=(10, 20))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import scipy.sparse as sp

from recdiff.eval.evaluator import EvalResult, as_binary_csr, evaluate
from recdiff.eval.ranking import ScoreBlock


def _same_shape(**matrices: sp.spmatrix) -> None:
    shapes = {name: m.shape for name, m in matrices.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"split matrices must share one users x items shape, got {shapes}")


@dataclass(frozen=True)
class EvalTask:
    """Inputs, held-out truth and exclusion mask of one evaluation stage (all users x items)."""

    inputs: sp.csr_matrix
    truth: sp.csr_matrix
    exclude: sp.csr_matrix

    @classmethod
    def validation(cls, train: sp.spmatrix, valid: sp.spmatrix) -> EvalTask:
        """Rank with train as input, train masked, valid as truth."""
        _same_shape(train=train, valid=valid)
        train_bin = as_binary_csr(train, "train")
        return cls(
            inputs=sp.csr_matrix(train), truth=as_binary_csr(valid, "valid"), exclude=train_bin
        )

    @classmethod
    def test(cls, train: sp.spmatrix, valid: sp.spmatrix, test: sp.spmatrix) -> EvalTask:
        """Rank with train as input, train + valid masked, test as truth."""
        _same_shape(train=train, valid=valid, test=test)
        seen = as_binary_csr(as_binary_csr(train, "train") + as_binary_csr(valid, "valid"), "seen")
        return cls(inputs=sp.csr_matrix(train), truth=as_binary_csr(test, "test"), exclude=seen)

    def evaluate(
        self, score_fn: Callable[[sp.csr_matrix], ScoreBlock], **kwargs: Any
    ) -> EvalResult:
        """:func:`recdiff.eval.evaluate` on this task; keyword arguments pass through."""
        return evaluate(score_fn, self.inputs, self.truth, self.exclude, **kwargs)
