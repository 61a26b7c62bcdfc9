"""What resume checkpoints (``train.checkpoint_every``) cost a training run.

Trains the same preset for ``--epochs`` epochs twice in this process (no early stop; validation
as the preset sets it): without checkpoints, then with one every ``--every`` epochs, both after a
two-epoch untimed fit that carries the process's one-time costs (the first fit of a process is
slower, which would show as a negative cost). Reports
the fit seconds of each, the number of checkpoints written, the median seconds of one write and
the checkpoint's size (weights, optimizer moments, best weights, generator states). The cost
is the time spent writing, as a share of the fit without checkpoints: the difference of the two
fit times is also reported, but on a shared machine it is as much noise as cost.

Run from the repository root::

    python3 benchmarks/checkpoint_cost.py                          # DiffRec ML-1M, bf16, 2 threads
    python3 benchmarks/checkpoint_cost.py --preset demo-diffrec    # no data needed

Writes ``benchmarks/results/checkpoint_cost.{json,md}`` (``--results-dir`` changes the folder).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import (
    add_results_dir,
    int_at_least,
    load_config_or_exit,
    machine,
    markdown_table,
    write_results,
)

from recdiff.train import checkpoint
from recdiff.train.run import run_training


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="diffrec-ml1m")
    parser.add_argument("--epochs", type=int_at_least(2), default=20)
    parser.add_argument("--every", type=int_at_least(1), default=1)
    parser.add_argument("--threads", type=int_at_least(1), default=2)
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], help="key=value, repeatable"
    )
    add_results_dir(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    fixed = [f"train.epochs={args.epochs}", f"train.patience={args.epochs}"]
    fixed += ["train.precision=bf16", *args.overrides]
    config = load_config_or_exit(parser, args.preset, fixed)  # a bad setting: usage, exit 2
    precision = config.train.precision  # bf16 unless --set changes it

    writes: list[tuple[float, int]] = []
    original = checkpoint.Checkpoints._write

    def timed_write(self, progress):
        start = time.perf_counter()
        original(self, progress)
        writes.append((time.perf_counter() - start, self.path.stat().st_size))

    checkpoint.Checkpoints._write = timed_write
    # The first fit of a process pays one-time costs (kernel selection, first-touch allocations,
    # lazy imports): a short untimed fit carries them, not the timed fit without checkpoints.
    short = ["train.epochs=2", "train.eval_every=1"]
    warm_up = load_config_or_exit(parser, args.preset, [*fixed, *short])
    with tempfile.TemporaryDirectory() as folder:
        run_training(warm_up, Path(folder), progress=False)
    rows, runs = [], {}
    for every in (None, args.every):
        setting = [] if every is None else [f"train.checkpoint_every={every}"]
        config = load_config_or_exit(parser, args.preset, [*fixed, *setting])
        writes.clear()
        with tempfile.TemporaryDirectory() as folder:
            done = run_training(config, Path(folder), progress=False)
        fit = done.metrics["seconds"]["fit"]
        write_seconds = statistics.median(w for w, _ in writes) if writes else None
        size_mib = max(size for _, size in writes) / 2**20 if writes else None
        runs[str(every)] = {
            "checkpoint_every": every,
            "fit_seconds": fit,
            "checkpoints": len(writes),
            "write_seconds_total": sum(w for w, _ in writes),
            "write_seconds_median": write_seconds,
            "checkpoint_mib": size_mib,
            "valid": done.metrics["valid"],
        }
        rows.append(
            [
                "none" if every is None else f"every {every} epoch(s)",
                f"{fit:.2f}",
                len(writes),
                "-" if write_seconds is None else f"{write_seconds * 1000:.1f}",
                "-" if size_mib is None else f"{size_mib:.1f}",
            ]
        )
    base, with_checkpoints = runs["None"], runs[str(args.every)]
    # Two fits differ by a few percent from run to run on a shared machine; the time spent
    # writing is measured directly, and its share of the fit is the cost.
    overhead = with_checkpoints["fit_seconds"] / base["fit_seconds"] - 1
    writing = with_checkpoints["write_seconds_total"] / base["fit_seconds"]
    header = ["checkpoints", "fit s", "written", "ms a write (median)", "MiB a checkpoint"]
    table = [f"{args.preset}, {args.epochs} epochs, {precision}, {args.threads} threads", ""]
    table += markdown_table(header, rows)
    table += [
        "",
        f"time spent writing checkpoints: {writing:.1%} of the fit without them "
        f"(the two fits differ by {overhead:+.1%}, which includes run-to-run noise)",
    ]
    payload = {
        "preset": args.preset,
        "epochs": args.epochs,
        "overrides": args.overrides,
        "precision": precision,
        "runs": runs,
        "writing_share": writing,
        "fit_difference": overhead,
        "machine": machine(args.threads),
    }
    path = write_results("checkpoint_cost", payload, table, args.results_dir)
    print("\n".join(table))
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
