"""The run of a model that scores users' interaction rows (the DiffRec family, Mult-VAE, EASE,
popularity): splits -> model inputs -> validation-selected fit -> valid/test -> files.

It writes the run directory of :mod:`recdiff.train.run` with what inference needs under
``data/``::

    data/users.json, data/items.json   id vocabularies
    data/inputs.npz                    the rows the model scores (time-weighted for T-DiffRec)
    data/known_inputs.npz              each user's whole history (train, valid and test) as the
                                       model reads it: what serving scores a known user from
    data/seen.npz                      every interaction each user had, to exclude at ranking
                                       (ratings under data.min_rating too)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recdiff.atomic import atomic_write_text
from recdiff.config.models import build_model
from recdiff.config.schema import RunConfig
from recdiff.data import DatasetSplits, Interactions, time_weights
from recdiff.eval.multi import evaluate_many
from recdiff.eval.protocol import EvalTask
from recdiff.models.base import Recommender
from recdiff.progress import note
from recdiff.train.checkpoint import check_run_data
from recdiff.train.config import selection_summary, stage_summaries
from recdiff.train.datasets import (
    held_out_left_out,
    left_out_note,
    load_splits,
    require_held_out,
)
from recdiff.train.run_files import PER_USER_FILE, save_per_user, split_fingerprint

__all__ = ["evaluation_scorer", "known_user_inputs", "model_inputs", "run_rows_into"]


def model_inputs(splits: DatasetSplits, config: RunConfig) -> sp.csr_matrix:
    """The rows the model sees: binary train rows, or T-DiffRec's time-weighted ones."""
    weights = config.data.time_weights
    if weights is None:
        return splits.train.binarize().matrix
    return time_weights(splits.train, weights.w_min, weights.w_max, weights.single)


def known_user_inputs(splits: DatasetSplits, config: RunConfig) -> sp.csr_matrix:
    """Each user's whole history as model input, to serve known users from: their train, valid
    and test interactions, and the held-out ones the split dropped (a user who arrived after a
    global time split's cut has only those: served from an empty input, their list was the
    unpersonalised one), not the ratings under ``data.min_rating``; binary or time-weighted
    over the whole history as :func:`model_inputs` weights the train rows. Evaluation scores
    the train rows alone; a deployed model should see what it knows.

    Items without a training interaction are left out: the model learned nothing from them, and
    their input weights were never fitted to a 1 (Mult-VAE's stay at their random start)."""
    parts = [splits.train, splits.valid, splits.test]
    if splits.dropped is not None and splits.dropped.nnz:
        parts.append(splits.dropped)
    trained = splits.train.item_counts() > 0
    rows = np.concatenate([part.user_indices() for part in parts])
    items = np.concatenate([part.matrix.indices for part in parts])
    keep = trained[items]
    weights = config.data.time_weights
    timestamps = None
    if weights is not None:
        times = [part.timestamps.data for part in parts if part.timestamps is not None]
        if len(times) != len(parts):
            raise ValueError("time weights need timestamps on every split")
        if config.data.format == "diffrec":
            # DiffRec's files hold row positions, each from 0: a split's rows follow the
            # earlier split's (the paper's splits are temporal), so order by split first.
            ends = np.cumsum([t.max() + 1 if t.size else 0 for t in times])
            times = [t + start for t, start in zip(times, [0, *ends[:-1]], strict=True)]
        timestamps = np.concatenate(times)[keep]
    history = Interactions.from_indices(
        splits.users,
        splits.items,
        rows[keep],
        items[keep],
        timestamps=timestamps,
        duplicates="last",  # a pair in two splits (data read with allow_overlap): once
    )
    if weights is None:
        return history.matrix
    return time_weights(history, weights.w_min, weights.w_max, weights.single)


def evaluation_scorer(model: Recommender, score: Callable[..., Any]) -> Callable[..., Any]:
    """``score`` as one evaluation pass over the users' rows, in order, calls it: a model that
    draws noise when it scores (DiffRec and L-DiffRec with ``inference_noise_steps`` T' > 0)
    says how through its ``pass_scorer`` (every user draws their own, and the metrics depend
    neither on ``eval.batch_size`` nor on what ran before); other models' ``score`` is returned
    as it is. Make one per pass; ``recdiff evaluate`` scores through it too."""
    pass_scorer = getattr(model, "pass_scorer", None)
    return score if pass_scorer is None else pass_scorer(score)


def _evaluate(model_score, inputs, tasks, config: RunConfig, averaging: str | None = None):
    """One pass of ``model_score`` (made by :func:`evaluation_scorer`) over ``tasks``."""
    ev = config.eval
    return evaluate_many(
        model_score,
        inputs,
        tasks,
        ks=ev.ks,
        metrics=ev.metrics,
        batch_size=ev.batch_size,
        averaging=averaging or ev.averaging,
        progress=config.train.progress,
    )


def _fit(
    model: Recommender, inputs, splits: DatasetSplits, tasks, config: RunConfig, log
) -> Recommender:
    """Fit as the model needs (selection always on validation); returns the fitted model."""
    name = config.model.name
    valid = splits.valid.matrix if splits.valid.nnz else None
    if name in ("diffrec", "ldiffrec"):
        selection_tasks = tasks if valid is not None else {}
        if name == "ldiffrec":  # an embedding table keyed by item id is matched through them
            model.item_ids = splits.items.ids

        def evaluate(score_fn):
            # score_fn is the model's own (its trainer's stage decides what it scores).
            results = _evaluate(evaluation_scorer(model, score_fn), inputs, selection_tasks, config)
            return {split: result.means for split, result in results.items()}

        return model.fit(
            inputs, valid, evaluate=evaluate if valid is not None else None, on_event=log
        )
    if valid is not None and _selects_lambda(config):
        from recdiff.models.ease import DEFAULT_LAMBDA_GRID, select_ease_lambda

        grid = config.model.params().get("l2_lambda_grid") or DEFAULT_LAMBDA_GRID
        selection = select_ease_lambda(
            inputs, valid, grid, metric=config.train.metric, averaging=config.eval.averaging
        )
        log(
            {
                "event": "select",
                "l2_lambda": selection.best_lambda,
                "valid": {str(k): v for k, v in selection.valid_scores.items()},
            }
        )
        return selection.model
    if name == "multvae":
        return model.fit(inputs, valid, on_event=log, averaging=config.eval.averaging)
    return model.fit(inputs, valid)


def _selects_lambda(config: RunConfig) -> bool:
    """Whether the run chooses EASE's lambda on validation (no ``model.l2_lambda`` set)."""
    return config.model.name == "ease" and not config.model.params().get("l2_lambda")


def run_rows_into(
    config: RunConfig, work: Path | None, log, started: float
) -> tuple[dict[str, Any], Recommender]:
    """Train and evaluate as configured, writing into the run folder ``work``; ``None``: a
    torchrun process other than rank 0, which only trains. ``started``: when the run began (its
    total seconds count from there)."""
    splits = load_splits(config.data)
    require_held_out(splits.valid.nnz, splits.test.nnz, "interactions", held_out_left_out(splits))
    inputs = model_inputs(splits, config)
    # a resumed run must go on with the data it began with
    data = (splits.users.ids, splits.items.ids, inputs, splits.valid.matrix, splits.test.matrix)
    check_run_data(*data, source=config.data.source)
    tasks = {"valid": EvalTask.validation(inputs, splits.valid.matrix)}
    tasks["test"] = EvalTask.test(inputs, splits.valid.matrix, splits.test.matrix)
    note(
        f"data: {splits.n_users:,} users, {splits.n_items:,} items; interactions "
        f"{splits.train.nnz:,} train / {splits.valid.nnz:,} valid / {splits.test.nnz:,} test"
        f"{left_out_note(splits)}",
        show=config.train.progress and work is not None,
    )
    model = build_model(config.model.name, config.model.params(), config.train)
    fit_start = time.perf_counter()
    model = _fit(model, inputs, splits, tasks, config, log)
    fit_seconds = time.perf_counter() - fit_start
    if work is None:
        return {}, model
    eval_start = time.perf_counter()
    # One scoring pass, averaged both ways: a model whose scoring draws noise (DiffRec with
    # T' > 0) then reports both averagings of the same draws.
    results = _evaluate(evaluation_scorer(model, model.score), inputs, tasks, config)
    final = {
        averaging: {
            split: result.with_averaging(averaging).means for split, result in results.items()
        }
        for averaging in ("all_users", "test_users")
    }
    save_per_user(work / PER_USER_FILE, results["test"])
    trained = getattr(model, "result", None)
    metrics = {
        "name": config.name,
        "model": config.model.name,
        "averaging": config.eval.averaging,
        "valid": final[config.eval.averaging]["valid"],
        "test": final[config.eval.averaging]["test"],
        "by_averaging": final,
        **selection_summary(trained),
        "stages": stage_summaries(model),  # pre-training stages, each selected on its own
        # settings chosen on validation without epochs (EASE's lambda, unless the config set it)
        "selected": {"l2_lambda": model.config.l2_lambda} if _selects_lambda(config) else {},
        "seconds": {
            "fit": fit_seconds,
            "final_eval": time.perf_counter() - eval_start,
            "total": time.perf_counter() - started,
        },
        "data": {
            "n_users": splits.n_users,
            "n_items": splits.n_items,
            "train": splits.train.nnz,
            "valid": splits.valid.nnz,
            "test": splits.test.nnz,
            # users with held-out items: the others count as 0 under all_users averaging
            "valid_users": int((splits.valid.user_counts() > 0).sum()),
            "test_users": int((splits.test.user_counts() > 0).sum()),
            "fingerprint": split_fingerprint(splits),  # the same data, whatever file held it
        },
    }
    model.save(work / "model")
    _save_data(work / "data", splits, inputs, known_user_inputs(splits, config))
    return metrics, model


def _save_data(
    folder: Path, splits: DatasetSplits, inputs: sp.csr_matrix, known_inputs: sp.csr_matrix
) -> None:
    """What inference needs besides the weights: id vocabularies, input rows and seen items."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "users.json", splits.users.to_json())
    atomic_write_text(folder / "items.json", splits.items.to_json())
    # Every interaction the user had: held-out ones a split dropped (their user or item is not
    # in train) and ratings under data.min_rating included. Binary first: a rating of 0 is
    # still one, and sums could cancel.
    parts = (splits.train, splits.valid, splits.test, splits.dropped, splits.filtered)
    seen = sum(part.binarize().matrix for part in parts if part is not None)
    seen = sp.csr_matrix(seen)
    seen.data[:] = 1.0
    sp.save_npz(folder / "inputs.npz", inputs.astype(np.float32))
    sp.save_npz(folder / "known_inputs.npz", known_inputs.astype(np.float32))
    sp.save_npz(folder / "seen.npz", seen.astype(np.float32))
