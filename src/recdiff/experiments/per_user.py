"""Per-user test metrics of a fitted model, for paired significance tests between models.

Runs store them (``test_per_user.npz``); for older run directories they come from scoring the
test split again with the run's model, under the same protocol as :func:`recdiff.train.run.run_training`
(input = train rows, train + valid masked, test as truth). Users without test items get NaN.
Models whose scoring draws noise (DiffRec with T' > 0) give slightly different values on each
scoring; :func:`check_against_run` measures the gap to the run's stored means.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from recdiff.config.schema import RunConfig
from recdiff.eval.metrics import PER_USER_METRICS

__all__ = ["check_against_run", "per_user_test_metrics", "per_user_test_metrics_from_run"]

#: Models that score a user's interaction row (the ones this module can re-score).
ROW_MODELS = frozenset({"diffrec", "ldiffrec", "ease", "multvae", "popularity"})


def per_user_test_metrics(model: Any, config: RunConfig) -> dict[str, np.ndarray]:
    """``{"recall@20": float64 [n_users], ...}`` on the test split; NaN for users without test
    items. ``model`` is the fitted recommender of a run with this ``config``."""
    if config.model.name not in ROW_MODELS:
        raise NotImplementedError(
            f"per-user test metrics of {config.model.name!r} models are not supported yet: "
            f"only models that score user rows ({sorted(ROW_MODELS)})"
        )
    from recdiff.eval.protocol import EvalTask
    from recdiff.train.datasets import load_splits
    from recdiff.train.run_rows import model_inputs

    splits = load_splits(config.data)
    inputs = model_inputs(splits, config)
    task = EvalTask.test(inputs, splits.valid.matrix, splits.test.matrix)
    metrics = [m for m in config.eval.metrics if m in PER_USER_METRICS]
    result = task.evaluate(
        model.score,
        ks=config.eval.ks,
        metrics=metrics,
        batch_size=config.eval.batch_size,
        averaging="test_users",
    )
    return {name: np.asarray(values, dtype=np.float64) for name, values in result.per_user.items()}


def per_user_test_metrics_from_run(run: str | Path) -> dict[str, np.ndarray]:
    """Per-user (per-example for next-item models) test metrics of a run directory: the ones
    the run stored, or, for runs written before runs stored them, :func:`per_user_test_metrics`."""
    from recdiff.serving.predictor import Predictor
    from recdiff.train.run_files import PER_USER_FILE

    stored = Path(run) / PER_USER_FILE
    if stored.is_file():
        with np.load(stored) as saved:
            return {name: saved[name].astype(np.float64) for name in saved.files}

    predictor = Predictor.load(run)  # checks that the directory is complete
    return per_user_test_metrics(predictor.model, predictor.config)


def check_against_run(per_user: dict[str, np.ndarray], metrics: dict[str, Any]) -> float:
    """Largest gap between the per-user means and a run's stored test means (test-users
    averaging); 0 when the model scores deterministically."""
    stored = metrics["by_averaging"]["test_users"]["test"]
    gaps = [
        abs(float(np.nanmean(values)) - stored[name])
        for name, values in per_user.items()
        if name in stored and np.isfinite(values).any()
    ]
    return max(gaps, default=0.0)
