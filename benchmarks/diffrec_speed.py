"""Speed and memory of DiffRec on the ML-1M clean split, in float32 and bfloat16 autocast.

For each precision, in a fresh subprocess (so peak memory is that precision's own):

- seconds per training epoch (released settings: batch 400, dims [600, 200, 600], T = 40),
  median over ``--epochs`` epochs after one warm-up epoch;
- seconds for one evaluation pass: the T = 40-step reverse process for all 5,949 users, chained
  in the first hidden layer's width (the default, ``model.chain_inference``) and step by step over
  all items, with how far the two score matrices differ and the share of users whose top-20
  (training items masked, as evaluation ranks) is the same;
- peak resident memory of the process.

With ``--reproduce`` it also times the whole `recdiff reproduce diffrec-ml1m` run (one seed).

Run from the repository root (needs ../shared/datasets or $RECDIFF_DATASETS)::

    python3 benchmarks/diffrec_speed.py [--epochs 3] [--threads 2] [--reproduce] [--device cuda]

Writes ``benchmarks/results/diffrec_speed.json`` and ``.md`` (``--name`` changes the file name,
``--results-dir`` the folder, where ``--reproduce`` also puts its runs). Targets (issue 4):
epoch <= 0.5 s, evaluation pass <= 2 s. With ``--device cuda`` everything runs on the GPU
(``train.device=cuda``), timings wait for the GPU to finish, and the peak GPU memory that torch
allocated is reported beside the process's resident memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from _common import (
    add_results_dir,
    machine,
    markdown_table,
    median_after_warmup,
    parse_device,
    peak_rss_mib,
    positive_int,
    python_child,
    write_results,
)


def measure(precision: str, epochs: int, threads: int, device: str) -> dict:
    """Runs inside the subprocess: one precision's timings and peak memory."""
    import torch

    from recdiff.config import load_config
    from recdiff.config.sources import resolve_source
    from recdiff.data import read_diffrec_splits
    from recdiff.models.diffrec import DiffRec, DiffRecConfig
    from recdiff.train.config import TrainConfig

    torch.set_num_threads(threads)
    config = load_config(
        "diffrec-ml1m",
        [f"train.precision={precision}", f"train.device={device}", "train.progress=false"],
    )
    splits = read_diffrec_splits(resolve_source(config.data.source))
    train = splits.train.matrix
    seconds: list[float] = []
    model = DiffRec(
        DiffRecConfig(**config.model.params()),
        config.train.model_copy(update={"epochs": epochs + 1}),
    )
    model.fit(train, on_event=lambda r: seconds.append(r["seconds"]))
    passes = {}
    for chain in (True, False):  # the chained reverse process, then step by step over all items
        model.config.chain_inference = chain
        start = time.perf_counter()
        # .cpu() waits for the device, so a GPU pass is timed to its end.
        scores = [model.score(train[i : i + 1024]).cpu() for i in range(0, train.shape[0], 1024)]
        passes[chain] = (time.perf_counter() - start, torch.cat(scores))
        if chain:  # training plus one pass holding its scores; the comparison holds two
            peak = peak_rss_mib()
    # Compare the lists evaluation ranks: the users' own training items masked out.
    seen = torch.from_numpy(train.toarray() > 0)
    chained, stepwise = (passes[c][1].masked_fill(seen, float("-inf")) for c in (True, False))
    top_chained = chained.topk(20).indices.sort().values
    top_stepwise = stepwise.topk(20).indices.sort().values
    finite = ~seen
    assert isinstance(model.training, TrainConfig)
    where = torch.device(device)
    on_gpu = where.type == "cuda"
    return {
        "precision": precision,
        "device": torch.cuda.get_device_name(where) if on_gpu else "cpu",
        "epoch_seconds": median_after_warmup(seconds),
        "epoch_seconds_all": seconds,
        "eval_pass_seconds": passes[True][0],
        "eval_pass_seconds_stepwise": passes[False][0],
        "max_abs_score_difference": float((chained - stepwise)[finite].abs().max()),
        "max_abs_score": float(stepwise[finite].abs().max()),
        "users_with_same_top20": float((top_chained == top_stepwise).all(dim=1).float().mean()),
        "peak_rss_mib": peak,
        # training and both passes (the RSS above: training and the chained pass)
        "peak_gpu_mib": torch.cuda.max_memory_allocated(where) / 2**20 if on_gpu else None,
    }


def reproduce_wall_time(precision: str, device: str, folder: Path) -> dict:
    """Seconds of a whole `recdiff reproduce diffrec-ml1m` (one seed), its runs under
    ``folder/runs``."""
    start = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "recdiff",
            "reproduce",
            "diffrec-ml1m",
            "--quiet",
            "--runs-dir",
            str(folder / "runs"),
            "--set",
            f"train.precision={precision}",
            "--set",
            f"train.device={device}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return {"seconds": time.perf_counter() - start, "output": out.stdout}


def _check_device(parser: argparse.ArgumentParser, name: str) -> None:
    """A usage message for a device this machine cannot run, before any data is read."""
    import torch

    if parse_device(parser, name).type == "cuda" and not torch.cuda.is_available():
        parser.error(
            f"--device {name}: torch {torch.__version__} sees no CUDA device here; run it on a "
            "CUDA machine, or leave --device at cpu"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--epochs", type=positive_int, default=3, help="timed epochs after one warm-up"
    )
    parser.add_argument("--threads", type=positive_int, default=2, help="torch intra-op threads")
    parser.add_argument("--reproduce", action="store_true", help="also time a full reproduction")
    parser.add_argument("--device", default="cpu", help="torch device: cpu or cuda")
    parser.add_argument("--name", default="diffrec_speed", help="results file name")
    add_results_dir(parser)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    _check_device(parser, args.device)
    if args.child:
        print(json.dumps(measure(args.child, args.epochs, args.threads, args.device)))
        return
    rows = []
    for precision in ("fp32", "bf16"):
        row = python_child(
            __file__,
            "--child",
            precision,
            "--epochs",
            str(args.epochs),
            "--threads",
            str(args.threads),
            "--device",
            args.device,
        )
        if args.reproduce:
            row["reproduce"] = reproduce_wall_time(precision, args.device, args.results_dir)
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "reproduce"}), flush=True)
    result = {
        "benchmark": "diffrec_speed",
        "dataset": "diffrec/ml-1m_clean",
        **machine(args.threads),
        "rows": rows,
    }
    table = markdown_table(
        [
            "precision",
            "device",
            "s / epoch",
            "s / eval pass (T=40), chained",
            "same, step by step",
            "users with the same top-20",
            "peak RSS MiB",
            "peak GPU MiB",
            "reproduce wall s",
        ],
        [
            [
                row["precision"],
                row["device"],
                f"{row['epoch_seconds']:.2f}",
                f"{row['eval_pass_seconds']:.2f}",
                f"{row['eval_pass_seconds_stepwise']:.2f}",
                f"{100 * row['users_with_same_top20']:.1f}%",
                f"{row['peak_rss_mib']:.0f}",
                "-" if row["peak_gpu_mib"] is None else f"{row['peak_gpu_mib']:.0f}",
                f"{row['reproduce']['seconds']:.0f}" if "reproduce" in row else "-",
            ]
            for row in rows
        ],
    )
    write_results(args.name, result, table, args.results_dir)
    print("\n".join(table))


if __name__ == "__main__":
    main()
