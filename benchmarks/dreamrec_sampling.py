"""DreamRec inference: full-step DDPM against DDIM / respaced sampling, and the guidance sweep.

From one trained DreamRec run directory (`recdiff train dreamrec-zhihu`), on its own data:

1. test (and valid) HR@20 / NDCG@20 and the wall time of sampling every example, for DDPM over
   all T steps (the paper) and for each ``--fast`` sampler (e.g. ``ddim:50``, ``ddpm:50``);
2. HR@20 for each guidance weight in ``--weights`` (default 0 2 4 6) with the configured sampler,
   plotted to ``benchmarks/results/dreamrec_guidance.png`` (``NAME_guidance.png`` with ``--name``);
3. with faiss installed, the recall of an HNSW index's top-20 against the exact top-20 of the
   generated embeddings, and both search times.

Every evaluation draws its noise as the run's own evaluation does: per example, by its row in the
split (:class:`recdiff.diffusion.samplers.RowBlocks`), seeded by ``--seed`` (default: the
model's ``sample_seed``). Reruns agree, and the configured sampler at the configured w gives
the run's ``metrics.json`` exactly. Run from the repository root::

    python3 benchmarks/dreamrec_sampling.py RUN_DIR [--fast ddim:50 ddpm:50] [--weights 0 2 4 6]

Writes ``benchmarks/results/NAME.json`` and ``.md``; ``--name`` (default ``dreamrec_sampling``)
keeps runs on different data apart, ``--results-dir`` changes the folder.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from _common import (
    add_results_dir,
    check_model_kind,
    machine,
    non_negative_float,
    positive_int,
    row_block_scorer,
    run_config,
    save_figure,
    write_json,
)

from recdiff.atomic import atomic_write_text
from recdiff.models.dreamrec_config import SAMPLERS


def sampler_spec(text: str) -> tuple[str, int]:
    """An argparse ``type`` for ``--fast``: ``KIND:N``, KIND ddim or ddpm, N >= 1 steps."""
    kind, sep, count = text.partition(":")
    if not sep or kind not in SAMPLERS or not count.isdigit() or int(count) < 1:
        raise argparse.ArgumentTypeError(
            f"must look like ddim:N or ddpm:N with N >= 1 sampling steps, got {text!r}"
        )
    return kind, int(count)


def _evaluate(model, data, split, seed, config, **sampling) -> tuple[dict[str, float], float]:
    from recdiff.eval.next_item import evaluate_next_item

    start = time.perf_counter()
    result = evaluate_next_item(
        row_block_scorer(model, seed, **sampling),  # the run's own draws: one scorer per split
        getattr(data, split),
        data.n_items,
        ks=(20,),
        metrics=("hit_rate", "ndcg"),
        batch_size=config.eval.batch_size,
        exclude_history=config.eval.exclude_history,
    )
    return result.means, time.perf_counter() - start


def _oracles(model, data, seed) -> torch.Tensor:
    from recdiff.diffusion.samplers import RowBlocks

    generator = RowBlocks(seed, 0, model.device)  # every test row, drawn as evaluation draws it
    history = torch.as_tensor(data.test.history)
    model.net.eval()
    with torch.no_grad():
        return model.generate(history, generator)


def _faiss_recall(model, data, seed) -> dict[str, float] | None:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return None
    from recdiff.retrieval import ExactIndex, FaissIndex, recall_at_k

    queries = _oracles(model, data, seed)
    items = model.net.encoder.items.detach()
    exact_index, approx_index = ExactIndex(items), FaissIndex(items)
    start = time.perf_counter()
    exact, _ = exact_index.search(queries, 20)
    exact_seconds = time.perf_counter() - start
    start = time.perf_counter()
    approx, _ = approx_index.search(queries, 20)
    approx_seconds = time.perf_counter() - start
    return {
        "recall@20_vs_exact": recall_at_k(approx, exact),
        "exact_seconds": exact_seconds,
        "faiss_seconds": approx_seconds,
        "queries": len(queries),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a DreamRec run directory")
    parser.add_argument(
        "--fast",
        nargs="*",
        type=sampler_spec,
        default=[("ddim", 50), ("ddpm", 50)],
        metavar="KIND:N",
        help="samplers timed beside full-step DDPM, each ddim:N or ddpm:N (N respaced steps, "
        "1..the model's T; default: ddim:50 ddpm:50; none: DDPM only)",
    )
    parser.add_argument(
        "--weights",
        nargs="+",
        type=non_negative_float,
        default=[0, 2, 4, 6],
        metavar="W",
        help="guidance weights w swept with the configured sampler (default: 0 2 4 6)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        help="sample seed of every evaluation (default: the model's sample_seed, as its run's "
        "evaluation; another seed measures other noise draws)",
    )
    parser.add_argument("--threads", type=positive_int, default=2, help="torch intra-op threads")
    parser.add_argument("--name", default="dreamrec_sampling", help="results file name")
    add_results_dir(parser)
    args = parser.parse_args()
    config = run_config(parser, args.run)
    check_model_kind(parser, config.model.name, "run", str(args.run), dreamrec_only=True)
    torch.set_num_threads(args.threads)

    from recdiff.models.base import SavedModel
    from recdiff.train.datasets import load_sequences

    model = SavedModel.load(args.run / "model")
    steps = model.config.diffusion.steps
    too_many = [f"{kind}:{count}" for kind, count in args.fast if count > steps]
    if too_many:
        parser.error(f"--fast {' '.join(too_many)}: the model has T = {steps} diffusion steps")
    seed = getattr(model.config, "sample_seed", 0) if args.seed is None else args.seed
    data = load_sequences(config.data)[0].with_layout("left")
    rows = []
    for kind, count in [("ddpm", steps), *args.fast]:
        for split in ("valid", "test"):
            means, seconds = _evaluate(
                model, data, split, seed, config, sampler=kind, sampling_steps=count
            )
            rows.append(
                {
                    "sampler": kind,
                    "steps": count,
                    "split": split,
                    **means,
                    "seconds": seconds,
                    "examples": len(getattr(data, split)),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    sweep = []
    for w in sorted(set(args.weights)):  # in order: the plot joins them by a line
        means, seconds = _evaluate(model, data, "test", seed, config, guidance_weight=w)
        valid, _ = _evaluate(model, data, "valid", seed, config, guidance_weight=w)
        sweep.append({"w": w, "test": means, "valid": valid, "seconds": seconds})
        print(json.dumps(sweep[-1]), flush=True)
    chosen = max(sweep, key=lambda row: row["valid"]["hit_rate@20"])  # validation only
    print(
        f"w chosen on validation HR@20: {chosen['w']:g} -> test HR@20 "
        f"{100 * chosen['test']['hit_rate@20']:.2f}%, NDCG@20 {100 * chosen['test']['ndcg@20']:.2f}%"
    )
    faiss_row = _faiss_recall(model, data, seed)
    result = {
        "benchmark": "dreamrec_sampling",
        "run": str(args.run),
        "threads": args.threads,
        "machine": machine(args.threads),  # what the seconds belong to
        "sample_seed": seed,
        "configured": {
            "sampler": model.config.diffusion.sampler,
            "sampling_steps": model.config.diffusion.sampling_steps or steps,
            "guidance_weight": model.config.guidance_weight,
        },
        "samplers": rows,
        "guidance": sweep,
        "guidance_chosen_on_valid": chosen,
        "faiss": faiss_row,
    }
    folder = args.results_dir
    write_json(folder / f"{args.name}.json", result)
    default = args.name == "dreamrec_sampling"  # its plot keeps the name the docs cite
    plot = folder / ("dreamrec_guidance.png" if default else f"{args.name}_guidance.png")
    _plot(sweep, chosen["w"], plot)
    atomic_write_text(folder / f"{args.name}.md", _markdown(result))
    print(_markdown(result))


def _plot(sweep, chosen_w: float, path: Path) -> None:
    """HR@20 over w, valid solid and test dashed, with the w validation chose marked: test is
    drawn beside it, never used to choose."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    w = [row["w"] for row in sweep]
    for split, style in (("valid", "-"), ("test", "--")):
        values = [100 * row[split]["hit_rate@20"] for row in sweep]
        ax.plot(w, values, marker="o", linestyle=style, label=split)
    ax.axvline(chosen_w, color="grey", linestyle=":", label=f"chosen on valid: w = {chosen_w:g}")
    ax.set_xlabel("guidance weight w")
    ax.set_ylabel("HR@20 (%)")
    ax.set_title("DreamRec: HR@20 against guidance")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def _markdown(result) -> str:
    lines = [
        "| sampler | steps | split | HR@20 (%) | NDCG@20 (%) | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["samplers"]:
        lines.append(
            f"| {r['sampler']} | {r['steps']} | {r['split']} | {100 * r['hit_rate@20']:.2f} | "
            f"{100 * r['ndcg@20']:.2f} | {r['seconds']:.1f} |"
        )
    lines += [
        "",
        "| w | valid HR@20 (%) | test HR@20 (%) | test NDCG@20 (%) |",
        "|---|---|---|---|",
    ]
    for r in result["guidance"]:
        lines.append(
            f"| {r['w']:g} | {100 * r['valid']['hit_rate@20']:.2f} | "
            f"{100 * r['test']['hit_rate@20']:.2f} | {100 * r['test']['ndcg@20']:.2f} |"
        )
    best = result["guidance_chosen_on_valid"]
    lines += [
        "",
        f"w chosen on validation HR@20: {best['w']:g} (test HR@20 "
        f"{100 * best['test']['hit_rate@20']:.2f}%, NDCG@20 {100 * best['test']['ndcg@20']:.2f}%)",
    ]
    if result["faiss"]:
        f = result["faiss"]
        lines += [
            "",
            f"faiss HNSW top-20 recall against exact: {f['recall@20_vs_exact']:.4f} "
            f"({f['queries']} queries; exact {f['exact_seconds']:.3f} s, faiss "
            f"{f['faiss_seconds']:.3f} s)",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
