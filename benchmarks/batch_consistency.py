"""Whether a saved run gives a user the same list in a batch as alone.

Serving scores each history as if it were alone (DreamRec draws each row's noise from a generator
seeded as a lone request's), so a user's list does not depend on the other rows of a batch, up
to float rounding: matrix products over batches of other sizes round differently, and a rounding
can swap two near-tied items. This measures how often it does.

For each run given (any run with user ids), it takes the first ``--users`` known users (default:
all), builds each one's query as ``recdiff recommend RUN --user ID`` does, and ranks top
``--k`` through ``Predictor.recommend_queries`` two ways: the queries in batches of
``--batch-size`` (1,024, as ``recdiff export`` scores them) and each query alone. It reports:

- the users whose two lists differ, split into those that differ only in the order of the same
  items and those that hold other items, with a histogram of the first position that differs;
- the largest absolute difference of the model's raw scores (every item, as the model returned
  them to ``top_k``) between the two ways, and the largest relative to the user's largest absolute
  score; the users whose scores are not identical to the bit; the largest difference between
  the listed scores position by position.

Run from the repository root::

    python3 benchmarks/batch_consistency.py RUN [RUN ...] --k 20 --threads 1

Writes ``benchmarks/results/batch_consistency.{json,md}`` (``--name`` changes the file name,
``--results-dir`` the folder).
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from _common import (
    add_results_dir,
    machine,
    markdown_table,
    positive_int,
    run_config,
    write_results,
)

#: Users scored per model call by ``recdiff export`` (its ``--batch-size``).
EXPORT_BATCH = 1024
#: Differing users whose two lists the JSON shows.
EXAMPLES = 10


def _as_array(block) -> np.ndarray:
    """A score block (a tensor or an array) as a float64 array."""
    if isinstance(block, torch.Tensor):
        block = block.detach().cpu().numpy()
    return np.asarray(block, dtype=np.float64)


@contextlib.contextmanager
def recorded_scores(model):
    """Keep a copy of every score block ``model.score`` returns while inside (the predictor's
    ``top_k`` ranks those), so the lists and the scores compared come from the same calls."""
    blocks: list[np.ndarray] = []
    score = model.score

    def recording(*args, **kwargs):
        block = score(*args, **kwargs)
        blocks.append(_as_array(block))
        return block

    model.score = recording
    try:
        yield blocks
    finally:
        del model.score  # the class's method again


def first_difference(batched: list, alone: list) -> int | None:
    """The first position (1-based) where two lists differ; None when they are equal."""
    for position, (a, b) in enumerate(zip(batched, alone, strict=False), start=1):
        if a != b:
            return position
    if len(batched) != len(alone):
        return min(len(batched), len(alone)) + 1
    return None


def rank_both_ways(predictor, users, k: int, batch_size: int) -> dict:
    """Top ``k`` of ``users`` (external ids) in batches of ``batch_size`` and each alone, and how
    the two differ."""
    queries = [predictor.query(user=user) for user in users]  # as `recommend --user` builds it
    differ = order_only = other_items = identical_scores = 0
    first: Counter[int] = Counter()
    examples: list[dict] = []
    largest = {"abs": 0.0, "rel": 0.0, "listed_abs": 0.0}
    seconds = {"batched": 0.0, "alone": 0.0}
    for start in range(0, len(queries), batch_size):
        block = queries[start : start + batch_size]
        began = time.perf_counter()
        with recorded_scores(predictor.model) as scored:
            batched = predictor.recommend_queries(block, [k] * len(block))
        seconds["batched"] += time.perf_counter() - began
        batch_scores = np.concatenate(scored)
        began = time.perf_counter()
        with recorded_scores(predictor.model) as scored:
            alone = [predictor.recommend_queries([query], [k])[0] for query in block]
        seconds["alone"] += time.perf_counter() - began
        alone_scores = np.concatenate(scored)
        # equal entries (infinities too) differ by nothing
        gap = np.where(batch_scores == alone_scores, 0.0, np.abs(batch_scores - alone_scores))
        scale = np.maximum(np.abs(batch_scores), np.abs(alone_scores)).max(axis=1, keepdims=True)
        largest["abs"] = max(largest["abs"], float(gap.max(initial=0.0)))
        relative = np.divide(gap, scale, out=np.zeros_like(gap), where=scale > 0)
        largest["rel"] = max(largest["rel"], float(relative.max(initial=0.0)))
        identical_scores += int((gap == 0).all(axis=1).sum())
        for offset, (a, b) in enumerate(zip(batched, alone, strict=True)):
            shared = min(len(a.scores), len(b.scores))
            listed = np.abs(np.subtract(a.scores[:shared], b.scores[:shared]))
            largest["listed_abs"] = max(largest["listed_abs"], float(listed.max(initial=0.0)))
            position = first_difference(a.items, b.items)
            if position is None:
                continue
            differ += 1
            same_items = set(a.items) == set(b.items)
            order_only += same_items
            other_items += not same_items
            first[position] += 1
            if len(examples) < EXAMPLES:
                examples.append(
                    {
                        "user": users[start + offset],
                        "first_difference": position,
                        "batched": a.items[position - 1 :],
                        "alone": b.items[position - 1 :],
                    }
                )
    return {
        "users": len(users),
        "lists_differ": differ,
        "order_only": order_only,
        "other_items": other_items,
        "first_difference": dict(sorted(first.items())),
        "examples": examples,
        "identical_score_rows": identical_scores,
        "max_abs_score_diff": largest["abs"],
        "max_rel_score_diff": largest["rel"],
        "max_abs_listed_score_diff": largest["listed_abs"],
        "seconds": seconds,
    }


def check_run(parser: argparse.ArgumentParser, run: Path, k: int) -> None:
    """A usage message (exit 2) unless ``run`` has user ids and at least ``k`` items."""
    from recdiff.config.models import SEQUENTIAL_MODELS
    from recdiff.serving.run_files import read_vocabulary
    from recdiff.serving.sequence_predictor import has_user_ids

    config = run_config(parser, run)
    if config.model.name in SEQUENTIAL_MODELS and not has_user_ids(config):
        parser.error(
            f"needs a run with user ids, got {run} (data.format={config.data.format} holds "
            "next-item examples only)"
        )
    items = run / "data/items.json"
    if items.is_file() and k > len(read_vocabulary(items)):
        parser.error(f"--k {k} exceeds the {len(read_vocabulary(items))} items of {run}")


def analyse(run: Path, k: int, users: int | None, batch_size: int) -> dict:
    """One run's row."""
    from recdiff.serving.predictor import Predictor

    predictor = Predictor.load(run)  # a SequencePredictor for a next-item run, as the CLI's
    ids = predictor.users.ids[:users].tolist()
    return {
        "run": str(run),
        "model": predictor.config.model.name,
        "n_items": len(predictor.items),
        "k": k,
        "batch_size": batch_size,
        **rank_both_ways(predictor, ids, k, batch_size),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run directories with user ids")
    parser.add_argument("--k", type=positive_int, default=20, help="items per list")
    parser.add_argument(
        "--users", type=positive_int, help="the first N known users (default: every user)"
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=EXPORT_BATCH,
        help=f"users per batched model call (default {EXPORT_BATCH}, as recdiff export)",
    )
    parser.add_argument("--threads", type=positive_int, default=2, help="torch intra-op threads")
    parser.add_argument("--name", default="batch_consistency", help="results file name")
    add_results_dir(parser)
    args = parser.parse_args()
    for run in args.runs:  # every run checked before any work
        check_run(parser, run, args.k)
    torch.set_num_threads(args.threads)
    rows = [analyse(run, args.k, args.users, args.batch_size) for run in args.runs]

    def histogram(counts: dict) -> str:
        return ", ".join(f"{position}: {n}" for position, n in counts.items()) or "-"

    table = markdown_table(
        [
            "run",
            "model",
            "users",
            f"top-{args.k} lists differ",
            "same items, other order",
            "other items",
            "first differing position: users",
            "max abs score diff",
            "max rel score diff",
            "identical score rows",
            "s batched / alone",
        ],
        [
            [
                Path(row["run"]).name,
                row["model"],
                row["users"],
                row["lists_differ"],
                row["order_only"],
                row["other_items"],
                histogram(row["first_difference"]),
                f"{row['max_abs_score_diff']:.2e}",
                f"{row['max_rel_score_diff']:.2e}",
                row["identical_score_rows"],
                f"{row['seconds']['batched']:.2f} / {row['seconds']['alone']:.2f}",
            ]
            for row in rows
        ],
    )
    write_results(args.name, {"rows": rows, **machine(args.threads)}, table, args.results_dir)
    print("\n".join(table))


if __name__ == "__main__":
    main()
