"""How much of a next-item model's hit rate comes from items it never trained on.

A temporal split leaves some items out of the training data altogether: on DreamRec's Zhihu split,
87 of 4,838 items, which are 2.8% of the validation targets and 7.2% of the test targets. An
embedding model keeps random initial vectors for them. DreamRec's loss shrinks the trained
embeddings, so these random vectors can win every inner product. A ranker that only shuffles
such items then scores ``share x 20 / n_untrained`` HR@20 by luck.

For each run given (any next-item run: DreamRec, SASRec, most-popular), it reports on valid and
test:

- the untrained items and the share of targets they make up, with the expected HR@20 of a ranker
  that returns 20 of them at random;
- item embedding norms, trained against untrained (models with an item table);
- the share of top-20 slots filled by untrained items;
- HR@20 and NDCG@20 as ranked, and with untrained items excluded from ranking.

A sampling model (DreamRec) draws each example's noise as its run's evaluation draws it: from
the model's ``sample_seed`` (or ``--seed``), by the example's row in the split
(:class:`recdiff.diffusion.samplers.RowBlocks`), so "HR@20 as ranked" is the run's own metric
in ``metrics.json``. Run from the repository root::

    python3 benchmarks/untrained_items.py RUN [RUN ...]

Writes ``benchmarks/results/untrained_items.{json,md}`` (``--name`` changes the file name,
``--results-dir`` the folder).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from _common import (
    add_results_dir,
    check_model_kind,
    machine,
    markdown_table,
    pct,
    positive_int,
    row_block_scorer,
    run_config,
    write_results,
)

K = 20


def rank_with_and_without_untrained(
    model,
    examples,
    n_items: int,
    untrained: torch.Tensor,
    seed: int,
    ks=(K,),
    batch_size: int = 1024,
    exclude_history: bool = False,
) -> dict:
    """Score ``examples`` once and rank them twice: as scored, and with ``untrained`` items
    excluded (the same scores replayed masked, so no second sampling). Also the share of top-K
    slots the untrained items take.

    The noise is drawn as an evaluation pass of the run draws it (:func:`row_block_scorer`:
    per row, seeded with ``seed``), so with the model's ``sample_seed`` and the run's
    ``eval.exclude_history`` "as scored" is the run's own metric; ``batch_size`` only sets the
    blocks scored at a time."""
    from recdiff.eval.next_item import evaluate_next_item

    draw = row_block_scorer(model, seed)
    passed: list[torch.Tensor] = []
    slots = [0.0, 0]  # untrained items among top-K slots, slots

    def score(history, lengths):
        scores = draw(history, lengths)
        top = scores.topk(K, dim=1).indices
        slots[0] += float(untrained.to(top.device)[top].sum())
        slots[1] += top.numel()
        passed.append(scores)
        return scores

    def excluded(history, lengths):
        scores = passed.pop(0)
        return scores.masked_fill(untrained.to(scores.device), float("-inf"))

    common = {"batch_size": batch_size, "exclude_history": exclude_history}
    ranked = evaluate_next_item(score, examples, n_items, ks=ks, **common)
    masked = evaluate_next_item(excluded, examples, n_items, ks=(K,), **common)
    return {"ranked": ranked, "masked": masked, "untrained_top_slots": slots[0] / slots[1]}


def analyse(run: Path, config, seed: int | None) -> dict:
    """One run's row; ``seed`` None: the model's own ``sample_seed``, as its evaluation used."""
    from recdiff.models.base import SavedModel
    from recdiff.models.dreamrec import training_items
    from recdiff.train.datasets import load_sequences

    model = SavedModel.load(run / "model")
    if seed is None:
        seed = getattr(model.config, "sample_seed", 0)
    data = load_sequences(config.data)[0].with_layout("left")
    n = data.n_items
    trained = training_items(data.train, n)
    untrained = torch.from_numpy(~trained)
    row: dict = {
        "run": str(run),
        "model": config.model.name,
        "n_items": n,
        "untrained_items": int((~trained).sum()),
        "sample_seed": seed,
    }
    encoder = getattr(getattr(model, "net", None), "encoder", None)
    if encoder is not None:
        norms = encoder.items.detach().float().norm(dim=1).numpy()
        row["norm_trained"] = float(norms[trained].mean())
        row["norm_untrained"] = float(norms[~trained].mean()) if (~trained).any() else None
    for split in ("valid", "test"):
        examples = getattr(data, split)
        share = float((~trained[examples.targets]).mean())
        both = rank_with_and_without_untrained(
            model,
            examples,
            n,
            untrained,
            seed,
            batch_size=config.eval.batch_size,
            exclude_history=config.eval.exclude_history,
        )
        ranked, masked = both["ranked"], both["masked"]
        row[split] = {
            "untrained_target_share": share,
            "random_untrained_hr": share * min(1.0, K / max(1, int((~trained).sum()))),
            "untrained_top_slots": both["untrained_top_slots"],
            "hr": ranked["hit_rate@20"],
            "ndcg": ranked["ndcg@20"],
            "hr_excluded": masked["hit_rate@20"],
            "ndcg_excluded": masked["ndcg@20"],
        }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="next-item run directories")
    parser.add_argument(
        "--seed",
        type=int,
        help="sample seed of the scoring passes (default: each model's sample_seed, as its "
        "run's evaluation; another seed measures other noise draws)",
    )
    parser.add_argument("--threads", type=positive_int, default=2, help="torch intra-op threads")
    parser.add_argument("--name", default="untrained_items", help="results file name")
    add_results_dir(parser)
    args = parser.parse_args()
    configs = [run_config(parser, run) for run in args.runs]  # every run checked before any work
    for run, config in zip(args.runs, configs, strict=True):
        check_model_kind(parser, config.model.name, "run", str(run))
    torch.set_num_threads(args.threads)
    rows = [analyse(run, config, args.seed) for run, config in zip(args.runs, configs, strict=True)]

    table = markdown_table(
        [
            "run",
            "untrained items",
            "norm trained / untrained",
            "split",
            "untrained targets %",
            "random-untrained HR@20 %",
            "top-20 slots untrained %",
            "HR@20 %",
            "HR@20 %, untrained excluded",
            "NDCG@20 %, untrained excluded",
        ],
        [
            [
                Path(row["run"]).name,
                row["untrained_items"],
                f"{row['norm_trained']:.2f} / {row['norm_untrained']:.2f}"
                if row.get("norm_untrained") is not None
                else "",
                split,
                pct(row[split]["untrained_target_share"]),
                pct(row[split]["random_untrained_hr"]),
                pct(row[split]["untrained_top_slots"]),
                pct(row[split]["hr"]),
                pct(row[split]["hr_excluded"]),
                pct(row[split]["ndcg_excluded"]),
            ]
            for row in rows
            for split in ("valid", "test")
        ],
    )
    write_results(args.name, {"rows": rows, **machine(args.threads)}, table, args.results_dir)
    print("\n".join(table))


if __name__ == "__main__":
    main()
