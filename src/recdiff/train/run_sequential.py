"""The run of a next-item model (SASRec, DreamRec): examples -> fit -> valid/test -> files.

It writes the same run directory as the user-row models (see :mod:`recdiff.train.run`), with the
sequence data inference needs under ``data/``::

    data/items.json         item vocabulary
    data/trained_items.npy  which items the training examples hold (serving reads histories
                            through these only)
    data/users.json         user vocabulary      (when the data has users)
    data/sequences.npz      users' full sequences (indptr, items; oldest first)
    data/low_ratings.npz    users x items, 1 where a rating fell under data.min_rating (when set)
    test_per_user.npz       per-example test metrics (for paired significance tests)

The epoch is selected on validation only; test is ranked once, after training. Diffusion models
sample with a generator seeded by ``model.sample_seed`` at every evaluation pass, so re-evaluating
a checkpoint gives the same metrics.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recdiff._warnings import warn
from recdiff.atomic import atomic_path, atomic_write_text
from recdiff.config.models import build_model
from recdiff.config.schema import RunConfig
from recdiff.data import Interactions
from recdiff.data.sequences import SequenceDataset, UserSequences
from recdiff.diffusion.samplers import row_block_pass
from recdiff.eval.evaluator import EvalResult
from recdiff.eval.next_item import evaluate_next_item
from recdiff.models.sequential import SequentialRecommender, training_items
from recdiff.progress import note
from recdiff.train.checkpoint import check_run_data
from recdiff.train.config import selection_summary, stage_summaries
from recdiff.train.datasets import load_sequences_and_low_ratings, require_held_out
from recdiff.train.run_files import PER_USER_FILE, save_per_user, sequence_fingerprint

__all__ = ["evaluate_sequential", "row_block_scorer", "run_sequential_into", "validation"]


def row_block_scorer(model: SequentialRecommender, seed: int, **options: Any) -> Callable[..., Any]:
    """A ``score(history, lengths)`` for one pass over one split, in order (as
    evaluate_next_item takes the batches). A sampling model (DreamRec) draws each example's
    noise by its row in the split, from its :class:`~recdiff.diffusion.RowBlocks` block seeded
    with ``seed``, so metrics do not depend on eval.batch_size and every row's draws are its
    own; the benchmarks score with it too, to reproduce a run's metrics. ``options`` go to
    ``model.score``."""
    return row_block_pass(functools.partial(model.score, **options), seed, model.device)


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
    data, sequences, low_ratings = load_sequences_and_low_ratings(config.data)
    # a resumed run must go on with the data it began with
    arrays = [data.items.ids]
    for examples in (data.train, data.valid, data.test):
        arrays += [value for value in vars(examples).values() if isinstance(value, np.ndarray)]
    if sequences is not None:
        arrays += [sequences.users.ids, sequences.indptr, sequences.item_idx]
    check_run_data(*arrays, source=config.data.source)
    _require_leave_one_out_examples(data, sequences)
    require_held_out(len(data.valid), len(data.test), "next-item examples")
    data = data.with_layout("left")
    users = f"{sequences.n_users:,} users, " if sequences is not None else ""
    note(
        f"data: {users}{data.n_items:,} items; next-item examples {len(data.train):,} train / "
        f"{len(data.valid):,} valid / {len(data.test):,} test, histories of {data.max_len}",
        show=config.train.progress and work is not None,
    )
    model = build_model(config.model.name, config.model.params(), config.train)

    fit_start = time.perf_counter()
    model.fit(data, evaluate=validation(model, data, config), on_event=log)
    fit_seconds = time.perf_counter() - fit_start
    if work is None:
        return {}, model
    _warn_untrained_targets(model, data)
    eval_start = time.perf_counter()
    final = evaluate_sequential(model, data, config)
    valid, test = final["valid"].means, final["test"].means
    metrics = {
        "name": config.name,
        "model": config.model.name,
        "averaging": config.eval.averaging,
        # the setting above: its means are over examples, where both averagings agree
        "averaged_over": "examples",
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
            # the same sequences, whatever file held them (a DreamRec folder holds none)
            **({"fingerprint": sequence_fingerprint(sequences)} if sequences is not None else {}),
        },
    }
    model.save(work / "model")
    _save_sequence_data(work / "data", data, sequences, low_ratings)
    save_per_user(work / PER_USER_FILE, final["test"])
    return metrics, model


def _require_leave_one_out_examples(data: SequenceDataset, sequences: UserSequences | None) -> None:
    """Refuse users' sequences too short to give every split an example, saying how long a
    sequence must be (the shared message's data.ratios and time splits do not apply)."""
    names = {"train": "training", "valid": "validation", "test": "test"}
    empty = [names[split] for split in names if not len(getattr(data, split))]
    if sequences is None or not empty:
        return
    longest = int(sequences.lengths().max(initial=0))
    raise ValueError(
        f"no next-item examples for {' and '.join(empty)}: leave-one-out makes each user's last "
        "item a test target, the one before it a validation target and every earlier item but "
        "the first a training target, so a user needs 2 items to count in test, 3 in "
        f"validation and 4 in training; the longest of the {sequences.n_users} users' "
        f"sequences here has {longest}"
    )


def _warn_untrained_targets(model: SequentialRecommender, data: SequenceDataset) -> None:
    """Say when held-out targets include items absent from training that a DreamRec still
    ranks: no example fitted their embeddings (random, in its own table), which can win top-k
    slots and score hits by luck (the Zhihu artefact of the README), on test alone when only
    test has such items, where validation cannot show it."""
    if getattr(model.config, "exclude_untrained_items", True):
        return
    untrained = ~model.net.trained.cpu().numpy()
    hit = {name: untrained[getattr(data, name).targets] for name in ("valid", "test")}
    if not any(h.any() for h in hit.values()):  # (none when every item trained)
        return
    n = int(untrained.sum())
    items = f"{n} items never occur" if n > 1 else "1 item never occurs"
    # counts, not only shares: one target in 6,040 would read "0.0%"
    share = {name: f"{int(h.sum()):,} of {h.size:,} ({h.mean():.1%})" for name, h in hit.items()}
    warn(
        f"{items} in the training examples, yet {'they are' if n > 1 else 'it is'} the target "
        f"of {share['valid']} validation and {share['test']} test examples: no example fitted "
        "those embeddings, which can fill top-k slots and score those hits by luck (set "
        "model.exclude_untrained_items=true to rank trained items only)"
    )


def _save_sequence_data(
    folder: Path,
    data: SequenceDataset,
    sequences: UserSequences | None,
    low_ratings: Interactions | None,
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "items.json", data.items.to_json())
    # which items the training examples hold: serving leaves the others out of a history
    with atomic_path(folder / "trained_items.npy") as tmp, open(tmp, "wb") as fh:
        np.save(fh, training_items(data.train, data.n_items))
    if sequences is None:
        return
    atomic_write_text(folder / "users.json", sequences.users.to_json())
    with atomic_path(folder / "sequences.npz") as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, indptr=sequences.indptr, items=sequences.item_idx)
    if low_ratings is not None:  # serving excludes them with the sequence's own items
        with atomic_path(folder / "low_ratings.npz") as tmp, open(tmp, "wb") as fh:
            sp.save_npz(fh, low_ratings.binarize().matrix.astype(np.float32))
