"""DreamRec inference: full-step DDPM against DDIM / respaced sampling, and the guidance sweep.

From one trained DreamRec run directory (`recdiff train dreamrec-zhihu`), on its own data:

1. test (and valid) HR@20 / NDCG@20 and the wall time of sampling every example, for DDPM over
   all T steps (the paper) and for each ``--fast`` sampler (e.g. ``ddim:50``, ``ddpm:50``);
2. HR@20 for each guidance weight in ``--weights`` (default 0 2 4 6) with the configured sampler,
   plotted to ``benchmarks/results/dreamrec_guidance.png`` (``NAME_guidance.png`` with ``--name``);
3. with faiss installed, the recall of an HNSW index's top-20 against the exact top-20 of the
   generated embeddings, and both search times.

Every evaluation samples with a generator seeded by ``--seed``, so reruns agree. Run from the
repository root::

    python3 benchmarks/dreamrec_sampling.py RUN_DIR [--fast ddim:50 ddpm:50] [--weights 0 2 4 6]

Writes ``benchmarks/results/NAME.json`` and ``.md``; ``--name`` (default ``dreamrec_sampling``)
keeps runs on different data apart.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"


def _evaluate(model, data, split, seed, **sampling) -> tuple[dict[str, float], float]:
    from recdiff.eval.next_item import evaluate_next_item

    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    result = evaluate_next_item(
        lambda h, n: model.score_with(h, generator, **sampling),
        getattr(data, split),
        data.n_items,
        ks=(20,),
        metrics=("hit_rate", "ndcg"),
        batch_size=4096,
    )
    return result.means, time.perf_counter() - start


def _oracles(model, data, seed) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
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
    parser.add_argument("--fast", nargs="*", default=["ddim:50", "ddpm:50"])
    parser.add_argument("--weights", nargs="*", type=float, default=[0, 2, 4, 6])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--name", default="dreamrec_sampling", help="results file name")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from recdiff.config import load_config
    from recdiff.models.base import SavedModel
    from recdiff.train.datasets import load_sequences

    config = load_config(str(args.run / "config.yaml"), [])
    model = SavedModel.load(args.run / "model")
    data = load_sequences(config.data)[0].with_layout("left")
    steps = model.config.diffusion.steps
    rows = []
    for spec in [f"ddpm:{steps}", *args.fast]:
        kind, count = spec.split(":")
        for split in ("valid", "test"):
            means, seconds = _evaluate(
                model, data, split, args.seed, sampler=kind, sampling_steps=int(count)
            )
            rows.append(
                {
                    "sampler": kind,
                    "steps": int(count),
                    "split": split,
                    **means,
                    "seconds": seconds,
                    "examples": len(getattr(data, split)),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    sweep = []
    for w in args.weights:
        means, seconds = _evaluate(model, data, "test", args.seed, guidance_weight=w)
        valid, _ = _evaluate(model, data, "valid", args.seed, guidance_weight=w)
        sweep.append({"w": w, "test": means, "valid": valid, "seconds": seconds})
        print(json.dumps(sweep[-1]), flush=True)
    chosen = max(sweep, key=lambda row: row["valid"]["hit_rate@20"])  # validation only
    print(
        f"w chosen on validation HR@20: {chosen['w']:g} -> test HR@20 "
        f"{100 * chosen['test']['hit_rate@20']:.2f}%, NDCG@20 {100 * chosen['test']['ndcg@20']:.2f}%"
    )
    faiss_row = _faiss_recall(model, data, args.seed)
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "dreamrec_sampling",
        "run": str(args.run),
        "threads": args.threads,
        "samplers": rows,
        "guidance": sweep,
        "guidance_chosen_on_valid": chosen,
        "faiss": faiss_row,
    }
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    default = args.name == "dreamrec_sampling"  # its plot keeps the name the docs cite
    _plot(sweep, RESULTS / ("dreamrec_guidance.png" if default else f"{args.name}_guidance.png"))
    (RESULTS / f"{args.name}.md").write_text(_markdown(result))
    print(_markdown(result))


def _plot(sweep, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    w = [row["w"] for row in sweep]
    for split in ("valid", "test"):
        ax.plot(w, [100 * row[split]["hit_rate@20"] for row in sweep], marker="o", label=split)
    ax.set_xlabel("guidance weight w")
    ax.set_ylabel("HR@20 (%)")
    ax.set_title("DreamRec: HR@20 against guidance")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
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
