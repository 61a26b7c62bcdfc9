"""The run of a next-item model (SASRec, DreamRec): examples -> fit -> valid/test -> files.

It writes the same run directory as the user-row models (see :mod:`recdiff.train.run`), with the
sequence data inference needs under ``data/``::

    data/items.json         item vocabulary
    data/users.json         user vocabulary      (when the data has users)
    data/sequences.npz      users' full sequences (indptr, items; oldest first)
    test_per_user.npz       per-example test metrics (for paired significance tests)

The epoch is selected on validation only; test is ranked once, after training. Diffusion models
sample with a generator seeded by ``model.sample_seed`` at every evaluation pass, so re-evaluating
a checkpoint gives the same metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from recdiff.atomic import atomic_path, atomic_write_text
from recdiff.config.models import build_model
from recdiff.config.schema import RunConfig
from recdiff.data.sequences import SequenceDataset, UserSequences
from recdiff.diffusion.samplers import RowBlocks
from recdiff.eval.evaluator import EvalResult
from recdiff.eval.next_item import evaluate_next_item
from recdiff.models.sequential import SequentialRecommender
from recdiff.train.datasets import load_sequences
from recdiff.train.trainer import selection_summary, stage_summaries

__all__ = ["evaluate_sequential", "row_block_scorer", "run_sequential_into", "validation"]


def row_block_scorer(model: SequentialRecommender, seed: int, **options: Any) -> Callable[..., Any]:
    """A ``score(history, lengths)`` for one pass over one split, in order (as
    evaluate_next_item takes the batches). A sampling model (DreamRec) draws each example's
    noise by its row in the split, from its :class:`RowBlocks` block seeded with ``seed``, so
    metrics do not depend on eval.batch_size and every row's draws are its own; the benchmarks
    score with it too, to reproduce a run's metrics. ``options`` go to ``model.score``."""
    scored = [0]  # rows scored so far

    def score(history, lengths=None):
        generator = RowBlocks(seed, scored[0], model.device)  # drawn where it samples
        scored[0] += len(history)
        return model.score(history, lengths, generator=generator, **options)

    return score


def evaluate_sequential(
    model: SequentialRecommender,
    data: SequenceDataset,
    config: RunConfig,
    splits: tuple[str, ...] = ("valid", "test"),
) -> dict[str, EvalResult]:
    """Full-ranking metrics of ``model`` on the named splits of (left-padded) ``data``."""
    seed = getattr(model.config, "sample_seed", 0)
    results = {}
    for split in splits:
        results[split] = evaluate_next_item(
            row_block_scorer(model, seed),
            getattr(data, split),
            data.n_items,
            ks=config.eval.ks,
            metrics=config.eval.metrics,
            batch_size=config.eval.batch_size,
            exclude_history=config.eval.exclude_history,
            progress=config.train.progress,
        )
    return results


def validation(
    model: SequentialRecommender, data: SequenceDataset, config: RunConfig
) -> Callable[[Callable[..., Any]], dict[str, dict[str, float]]]:
    """The ``evaluate`` callback of ``model.fit``: validation metrics of the model whose
    ``score`` the trainer hands over. That is ``model``, or a stage it trains first (DreamRec's
    SASRec items), which must be selected on its own scores."""

    def evaluate(score: Callable[..., Any]) -> dict[str, dict[str, float]]:
        scored = getattr(score, "__self__", None)
        if not isinstance(scored, SequentialRecommender):
            scored = model
        return {"valid": evaluate_sequential(scored, data, config, ("valid",))["valid"].means}

    return evaluate


def run_sequential_into(
    config: RunConfig, work: Path | None, log
) -> tuple[dict[str, Any], SequentialRecommender]:
    """Train and evaluate as configured, writing into the run folder ``work``; ``None``: a
    torchrun process other than rank 0, which only trains."""
    started = time.perf_counter()
    data, sequences = load_sequences(config.data)
    from recdiff.train.run import require_held_out

    require_held_out(len(data.valid), len(data.test), "next-item examples")
    data = data.with_layout("left")
    model = build_model(config.model.name, config.model.params(), config.train)

    fit_start = time.perf_counter()
    model.fit(data, evaluate=validation(model, data, config), on_event=log)
    fit_seconds = time.perf_counter() - fit_start
    if work is None:
        return {}, model
    eval_start = time.perf_counter()
    final = evaluate_sequential(model, data, config)
    valid, test = final["valid"].means, final["test"].means
    metrics = {
        "name": config.name,
        "model": config.model.name,
        "averaging": config.eval.averaging,
        "exclude_history": config.eval.exclude_history,  # whether each past was masked
        "valid": valid,
        "test": test,
        # one target per example: both averagings agree
        "by_averaging": {a: {"valid": valid, "test": test} for a in ("all_users", "test_users")},
        **selection_summary(model.result),
        "stages": stage_summaries(model),  # pre-training stages, each selected on its own
        "seconds": {
            "fit": fit_seconds,
            "final_eval": time.perf_counter() - eval_start,
            "total": time.perf_counter() - started,
        },
        "data": {
            "n_users": len(sequences.users) if sequences is not None else None,
            "n_items": data.n_items,
            "train": len(data.train),
            "valid": len(data.valid),
            "test": len(data.test),
            "max_len": data.max_len,
        },
    }
    model.save(work / "model")
    _save_sequence_data(work / "data", data, sequences)
    from recdiff.train.run import PER_USER_FILE, save_per_user

    save_per_user(work / PER_USER_FILE, final["test"])
    return metrics, model


def _save_sequence_data(
    folder: Path, data: SequenceDataset, sequences: UserSequences | None
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "items.json", data.items.to_json())
    if sequences is None:
        return
    atomic_write_text(folder / "users.json", sequences.users.to_json())
    with atomic_path(folder / "sequences.npz") as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, indptr=sequences.indptr, items=sequences.item_idx)
