"""Speed of every trainer-trained model on the shared datasets, in one command.

For DiffRec (preset ``diffrec-ml1m``) and L-DiffRec (``ldiffrec-ml1m``) on
``../shared/datasets/diffrec/ml-1m_clean``, and DreamRec (``dreamrec-zhihu``) on
``../shared/datasets/dreamrec/zhihu`` when ``recdiff.models.dreamrec`` exists (skipped otherwise):

- the machine's matmul peak first: the best GFLOP/s of a large ``torch.mm`` in float32 and bfloat16;
- per model, in a fresh process: seconds per training epoch (median after a warm-up epoch, no
  evaluation; L-DiffRec's autoencoder and diffusion stages apart), seconds for one validation
  pass (full ranking of every validation user / example), and peak RSS;
- achieved GFLOP/s of training and of evaluation: the matmul FLOPs that torch's FlopCounterMode
  counts in one more epoch (and in one evaluation block, scaled to the pass) over the measured
  seconds, and that as a share of the matmul peak of the precision used;
- DDP throughput: examples per second of the training epochs after the first under
  ``torchrun --nproc_per_node=1`` and ``=2`` (``--threads`` split between the processes, at least
  one each), global batch as configured.

Run from the repository root::

    python3 benchmarks/run_all.py                       # --epochs 3 --threads 2 --precision fp32
    python3 benchmarks/run_all.py --models diffrec --precision bf16

``--set KEY=VALUE`` overrides every model's config, ``--set MODEL:KEY=VALUE`` one model's (e.g.
``--set data.format=demo --set ldiffrec:model.latent.item_embeddings=null`` for a smoke run).
Writes ``benchmarks/results/run_all.json`` and ``.md`` (``--name`` changes the name).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import sys
import time
from typing import Any

import numpy as np
from _common import (
    add_results_dir,
    count_flops,
    int_at_least,
    machine,
    markdown_table,
    matmul_peak_gflops,
    median_after_warmup,
    peak_rss_mib,
    positive_int,
    python_child,
    run_child,
    write_results,
)

PRESETS = {"diffrec": "diffrec-ml1m", "ldiffrec": "ldiffrec-ml1m", "dreamrec": "dreamrec-zhihu"}
SEQUENTIAL = {"dreamrec"}


def _split_override(override: str) -> tuple[str, str]:
    """``MODEL:KEY=VALUE`` -> (MODEL, KEY=VALUE); ``KEY=VALUE`` (every model) -> ("", itself).
    Only a colon before the ``=`` names a model: values may hold colons."""
    if ":" not in override.split("=", 1)[0]:
        return "", override
    target, setting = override.split(":", 1)
    return target, setting


def _config(args: argparse.Namespace, model: str, epochs: int):
    from recdiff.config import load_config

    overrides = [
        f"train.epochs={epochs}",
        "train.progress=false",
        f"train.precision={args.precision}",
        *_user_overrides(args, model),
    ]
    if model == "ldiffrec":
        overrides.append(f"model.latent.epochs={epochs}")
    return load_config(PRESETS[model], overrides)


def _user_overrides(args: argparse.Namespace, model: str) -> list[str]:
    """The ``--set`` settings that reach ``model``: KEY=VALUE for every model, MODEL:KEY=VALUE
    for one."""
    settings = []
    for override in args.set:
        target, setting = _split_override(override)
        if target in ("", model):
            settings.append(setting)
    return settings


class _Workload:
    """A model's training data, fit and validation pass, as the benchmark drives them."""

    def __init__(self, args: argparse.Namespace, model: str) -> None:
        self.args, self.model = args, model
        config = _config(args, model, 1)
        if model in SEQUENTIAL:
            from recdiff.train.datasets import load_sequences

            data, _ = load_sequences(config.data)
            self.data = data.with_layout("left")
            self.n_examples, self.n_evaluated = len(self.data.train), len(self.data.valid)
        else:
            from recdiff.eval.protocol import EvalTask
            from recdiff.train.batches import RowBatches
            from recdiff.train.datasets import load_splits
            from recdiff.train.run_rows import model_inputs

            splits = load_splits(config.data)
            self.item_ids = splits.items.ids  # L-DiffRec matches an id-keyed embedding table
            self.inputs = model_inputs(splits, config)
            self.valid = EvalTask.validation(self.inputs, splits.valid.matrix)
            self.n_examples = len(RowBatches(self.inputs))
            self.n_evaluated = int((np.diff(self.valid.truth.indptr) > 0).sum())

    def fit(self, epochs: int, on_event=lambda record: None):
        """A fresh model trained for ``epochs`` (each stage), without evaluation."""
        from recdiff.config.models import build_model

        config = _config(self.args, self.model, epochs)
        model = build_model(config.model.name, config.model.params(), config.train)
        if self.model in SEQUENTIAL:
            return model.fit(self.data, on_event=on_event), config
        if hasattr(model, "item_ids"):
            model.item_ids = self.item_ids
        return model.fit(self.inputs, on_event=on_event), config

    def evaluate(self, model, config, limit: int | None = None) -> None:
        """One validation pass (of the first ``limit`` users / examples)."""
        if self.model in SEQUENTIAL:
            from recdiff.train.run_sequential import evaluate_sequential

            data = self.data
            if limit is not None:
                data = dataclasses.replace(data, valid=data.valid.take(np.arange(limit)))
            evaluate_sequential(model, data, config, ("valid",))
            return
        if limit is not None:  # the model's share only: one block of validation users scored
            users = np.flatnonzero(np.diff(self.valid.truth.indptr) > 0)[:limit]
            model.score(self.inputs[users])
            return
        from recdiff.eval.multi import evaluate_many

        ev = config.eval
        evaluate_many(
            model.score,
            self.inputs,
            {"valid": self.valid},
            ks=ev.ks,
            metrics=("recall", "ndcg"),
            batch_size=ev.batch_size,
        )


def measure(args: argparse.Namespace, model: str) -> dict[str, Any]:
    """Runs in its own process: one model's epoch, evaluation, memory and FLOP rates."""
    import torch

    torch.set_num_threads(args.threads)
    work = _Workload(args, model)
    epochs: dict[str, list[float]] = {}

    def on_event(record: dict) -> None:
        if record["event"] == "epoch":
            epochs.setdefault(record.get("stage", _last_stage(model)), []).append(record["seconds"])

    fitted, config = work.fit(args.epochs + 1, on_event)
    start = time.perf_counter()
    work.evaluate(fitted, config)
    eval_seconds = time.perf_counter() - start
    rss = peak_rss_mib()
    epoch_seconds = {stage: median_after_warmup(s) for stage, s in epochs.items()}
    train_flops = count_flops(lambda: work.fit(1))  # one epoch of each stage
    block = min(config.eval.batch_size, work.n_evaluated)
    with torch.no_grad():
        eval_flops = count_flops(lambda: work.evaluate(fitted, config, block))
    eval_flops *= work.n_evaluated / block
    return {
        "model": model,
        "preset": PRESETS[model],
        "overrides": _user_overrides(args, model),  # the --set settings it ran with
        "precision": args.precision,
        "examples": work.n_examples,
        "evaluated": work.n_evaluated,
        "epoch_seconds": epoch_seconds,
        "eval_seconds": eval_seconds,
        "peak_rss_mib": rss,
        "train_gflops": train_flops / 1e9,
        "eval_gflops": eval_flops / 1e9,
        "train_gflop_per_s": train_flops / 1e9 / sum(epoch_seconds.values()),
        "eval_gflop_per_s": eval_flops / 1e9 / eval_seconds,
    }


def ddp_child(args: argparse.Namespace, model: str) -> None:
    """Runs under torchrun: train ``--ddp-epochs`` epochs, rank 0 prints the epoch times."""
    import torch

    from recdiff.train import distributed

    world = distributed.env_world_size()
    torch.set_num_threads(max(1, args.threads // world))
    work = _Workload(args, model)
    distributed.init_from_env("cpu")
    epochs: dict[str, list[float]] = {}

    def on_event(record: dict) -> None:
        if record["event"] == "epoch":
            epochs.setdefault(record.get("stage", _last_stage(model)), []).append(record["seconds"])

    work.fit(args.ddp_epochs, on_event)
    if distributed.is_main_process():
        rates = {s: work.n_examples / median_after_warmup(t) for s, t in epochs.items()}
        print(json.dumps({"world": world, "examples_per_second": rates}))


def ddp_throughput(args: argparse.Namespace, model: str, processes: int) -> dict[str, float]:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        __file__,
        *_forwarded(args),
        "--ddp-child",
        model,
    ]
    threads = str(max(1, args.threads // processes))
    return run_child(command, OMP_NUM_THREADS=threads)["examples_per_second"]


def _forwarded(args: argparse.Namespace) -> list[str]:
    out = [
        f"--epochs={args.epochs}",
        f"--ddp-epochs={args.ddp_epochs}",
        f"--threads={args.threads}",
        f"--precision={args.precision}",
    ]
    for override in args.set:
        out += ["--set", override]
    return out


def _last_stage(model: str) -> str:
    """The name of the trainer's stage that events carry no name for."""
    return "diffusion" if model == "ldiffrec" else "train"


def _skip_reason(model: str) -> str | None:
    if model == "dreamrec" and importlib.util.find_spec("recdiff.models.dreamrec") is None:
        return "recdiff.models.dreamrec not present"
    return None


def _table(rows: list[dict[str, Any]], peaks: dict[str, float], precision: str) -> list[str]:
    peak = peaks["bf16" if precision == "bf16" else "fp32"]
    lines = []
    for row in rows:
        if "skipped" in row:
            lines.append([row["model"], "skipped", row["skipped"], *["-"] * 6])
            continue
        first = True
        for stage, seconds in row["epoch_seconds"].items():
            ddp = [row["ddp"][str(n)].get(stage) for n in (1, 2)] if "ddp" in row else [None] * 2
            lines.append(
                [
                    row["model"] if first else "",
                    stage,
                    f"{seconds:.2f}",
                    f"{row['eval_seconds']:.2f}" if first else "",
                    f"{row['peak_rss_mib']:.0f}" if first else "",
                    f"{row['train_gflop_per_s']:.1f} ({row['train_gflop_per_s'] / peak:.0%})"
                    if first
                    else "",
                    f"{row['eval_gflop_per_s']:.1f} ({row['eval_gflop_per_s'] / peak:.0%})"
                    if first
                    else "",
                    *[f"{rate:.0f}" if rate else "-" for rate in ddp],
                ]
            )
            first = False
    header = [
        "model",
        "stage",
        "s / epoch",
        "s / valid pass",
        "peak RSS MiB",
        "train GFLOP/s (of peak)",
        "eval GFLOP/s (of peak)",
        "DDP ex/s, 1 proc",
        "DDP ex/s, 2 procs",
    ]
    table = markdown_table(header, lines)
    table += [
        "",
        f"Matmul peak (torch.mm {peaks['size']}^2, {peaks['threads']} threads): fp32 "
        f"{peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s; models run in {precision}.",
    ]
    return table


def _check_overrides(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Every ``--set`` prefix names a model and every model's config loads, checked here, in
    the parent, before any timing: otherwise a typo in a prefix is silently ignored, and a bad
    key fails only after the matmul peak, inside a child's traceback."""
    for override in args.set:
        target, _ = _split_override(override)
        if target and target not in PRESETS:
            parser.error(
                f"--set {override}: unknown model {target!r} (MODEL:KEY=VALUE takes one of "
                f"{', '.join(PRESETS)})"
            )
    for model in args.models:
        if _skip_reason(model):
            continue
        try:
            _config(args, model, args.epochs + 1)
        except ValueError as error:  # ConfigError and the model settings' errors
            parser.error(f"{model} ({PRESETS[model]}) with the --set overrides: {error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument(
        "--epochs", type=positive_int, default=3, help="timed epochs after a warm-up (>= 1)"
    )
    parser.add_argument(
        "--ddp-epochs",
        type=int_at_least(2),
        default=3,
        help="epochs per DDP run (>= 2: the first is a warm-up)",
    )
    parser.add_argument("--threads", type=positive_int, default=2, help="torch threads in all")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument(
        "--peak-size", type=positive_int, default=4096, help="matmul size for the peak"
    )
    parser.add_argument("--no-ddp", action="store_true", help="skip the torchrun runs")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="[MODEL:]KEY=VALUE",
        help="config override, repeatable; MODEL: limits it to one model",
    )
    parser.add_argument("--name", default="run_all", help="results file name")
    add_results_dir(parser)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--ddp-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args, args.child)))
        return
    if args.ddp_child:
        ddp_child(args, args.ddp_child)
        return
    _check_overrides(parser, args)
    import torch

    torch.set_num_threads(args.threads)
    peaks = {
        "fp32": matmul_peak_gflops("float32", args.peak_size),
        "bf16": matmul_peak_gflops("bfloat16", args.peak_size),
        "size": args.peak_size,
        "threads": args.threads,
    }
    print(json.dumps({"matmul_peak_gflop_per_s": peaks}), flush=True)
    rows = []
    for model in args.models:
        reason = _skip_reason(model)
        if reason:
            rows.append({"model": model, "skipped": reason})
            print(json.dumps(rows[-1]), flush=True)
            continue
        row = python_child(__file__, *_forwarded(args), "--child", model)
        if not args.no_ddp:
            row["ddp"] = {str(n): ddp_throughput(args, model, n) for n in (1, 2)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {"benchmark": "run_all", **machine(args.threads), "matmul_peak": peaks, "rows": rows}
    table = _table(rows, peaks, args.precision)
    write_results(args.name, result, table, args.results_dir)
    print("\n".join(table))


if __name__ == "__main__":
    main()
