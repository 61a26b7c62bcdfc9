"""How a sampling model's test hit rate moves with its evaluation noise, drawn two ways.

DreamRec samples an oracle embedding per example, so its metrics depend on the noise drawn.
Evaluation used to draw it from one generator per split, consumed batch after batch, so the
numbers also depended on ``eval.batch_size``. It now draws each example's noise by its row
(:class:`recdiff.diffusion.samplers.RowBlocks`), whatever the batching. For one saved run, this
re-scores test with sample seeds ``0..N-1`` both ways and reports HR@10 per seed and its mean and
sample std, so the two spreads can be compared. Run from the repository root::

    python3 benchmarks/sampling_draws.py RUN --seeds 8 --threads 1

Writes ``benchmarks/results/sampling_draws.{json,md}`` (``--name`` changes the file name,
``--results-dir`` the folder).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from _common import (
    add_results_dir,
    check_model_kind,
    int_at_least,
    machine,
    markdown_table,
    pct,
    positive_int,
    row_block_scorer,
    run_config,
    write_results,
)

from recdiff.eval.next_item import evaluate_next_item
from recdiff.serving.sequence_predictor import SequencePredictor
from recdiff.train.datasets import load_sequences


def hit_rates(run: Path, seeds: int) -> dict[str, list[float]]:
    """Test HR@10 for sample seeds 0..seeds-1: one generator per split, and by row."""
    predictor = SequencePredictor.load(run)
    model, config = predictor.model, predictor.config
    data, _ = load_sequences(config.data)
    test = data.with_layout("left").test
    rates: dict[str, list[float]] = {"one generator per split": [], "by row (RowBlocks)": []}
    for seed in range(seeds):
        shared = torch.Generator(model.device).manual_seed(seed)
        by_row = row_block_scorer(model, seed)  # as the run's evaluation draws

        def one_generator(history, lengths, shared=shared):
            return model.score(history, lengths, generator=shared)

        for label, score in zip(rates, (one_generator, by_row), strict=True):
            result = evaluate_next_item(
                score,
                test,
                data.n_items,
                ks=(10,),
                batch_size=config.eval.batch_size,
                exclude_history=config.eval.exclude_history,  # as the run ranks
            )
            rates[label].append(float(result.means["hit_rate@10"]))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a DreamRec run directory")
    parser.add_argument(
        "--seeds",
        type=int_at_least(2),
        default=8,
        help="sample seeds 0..N-1 (N >= 2: the spread is a sample std)",
    )
    parser.add_argument("--threads", type=positive_int, default=2, help="torch intra-op threads")
    parser.add_argument("--name", default="sampling_draws", help="results file name")
    add_results_dir(parser)
    args = parser.parse_args()
    config = run_config(parser, args.run)
    check_model_kind(parser, config.model.name, "run", str(args.run), dreamrec_only=True)
    torch.set_num_threads(args.threads)
    rates = hit_rates(args.run, args.seeds)
    rows = [
        [
            label,
            " / ".join(pct(v) for v in values),
            pct(np.mean(values)),
            pct(np.std(values, ddof=1)),
        ]
        for label, values in rates.items()
    ]
    table = markdown_table(["draws", "test HR@10 % per seed", "mean", "sample std"], rows)
    summary = {"run": str(args.run), "rates": rates, **machine(args.threads)}
    write_results(args.name, summary, table, args.results_dir)


if __name__ == "__main__":
    main()
