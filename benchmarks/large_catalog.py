"""L-DiffRec on a large synthetic catalogue: one epoch of each stage in bounded memory, beside
DiffRec's dense MLP on the same catalogue.

Data: :func:`recdiff.data.synthetic.make_large_synthetic` (log-normal activity, Zipf(1) item
popularity). L-DiffRec (C item clusters from a truncated SVD, latent 300, linear autoencoders,
denoiser [300], T = 40) takes its rows as sparse tensors (``latent.sparse_input``), so the
encoders do ``nnz x width`` work; the decoders still produce ``batch x n_items`` logits for the
multinomial likelihood. Measured in a fresh process each:

- L-DiffRec: data generation, item clustering, one autoencoder epoch and one diffusion epoch
  (seconds), scoring + top-20 of ``--eval-users`` users (ranking in item chunks), peak RSS;
- DiffRec ([600, 200, 600], T = 40, dense rows): ``--diffrec-steps`` training steps on the same
  catalogue (seconds per step, peak RSS), and its memory computed: parameters x 4 (weights,
  gradients, two Adam moments) + one batch's activations.

Run from the repository root (sizes configurable; the defaults are the full 1M x 200k)::

    python3 benchmarks/large_catalog.py --users 20000 --items 200000      # ~minutes, 2 cores
    python3 benchmarks/large_catalog.py                                   # 1M x 200k

Writes ``benchmarks/results/large_catalog.{json,md}`` (``--name`` changes the file name,
``--results-dir`` the folder).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

from _common import (
    add_results_dir,
    forwarded_options,
    machine,
    markdown_table,
    non_negative_int,
    peak_rss_mib,
    positive_float,
    positive_int,
    python_child,
    write_results,
)

BYTES = 4  # float32


def _data(args: argparse.Namespace):
    from recdiff.data.synthetic import make_large_synthetic

    start = time.perf_counter()
    train = make_large_synthetic(args.users, args.items, args.mean_items, seed=args.seed)
    return train, time.perf_counter() - start


def measure_ldiffrec(args: argparse.Namespace) -> dict:
    """Runs in its own process: L-DiffRec's stages on the large catalogue."""
    import torch

    from recdiff.eval.ranking import topk_items
    from recdiff.models.diffrec import DiffusionConfig
    from recdiff.models.ldiffrec import LatentConfig, LDiffRec, LDiffRecConfig
    from recdiff.train.config import TrainConfig

    torch.set_num_threads(args.threads)
    baseline = peak_rss_mib()
    train, data_seconds = _data(args)
    config = LDiffRecConfig(
        latent=LatentConfig(
            n_clusters=args.clusters, latent_dim=300, epochs=1, sparse_input=True, svd_dim=32
        ),
        hidden_dims=[300],
        diffusion=DiffusionConfig(steps=40),
    )
    training = TrainConfig(
        batch_size=args.batch_size, epochs=1, progress=False, seed=1, precision=args.precision
    )
    epochs: dict[str, float] = {}

    def on_event(record: dict) -> None:
        if record["event"] == "epoch":
            epochs[record.get("stage", "diffusion")] = record["seconds"]

    model = LDiffRec(config, training)
    start, cpu_start = time.perf_counter(), time.process_time()
    model.fit(train, on_event=on_event)
    fit_seconds = time.perf_counter() - start
    fit_cpu_seconds = time.process_time() - cpu_start
    users = train[: args.eval_users]
    start = time.perf_counter()
    for first in range(0, users.shape[0], args.eval_batch):
        block = users[first : first + args.eval_batch]
        topk_items(model.score(block), 20, block, item_chunk=args.item_chunk)
    eval_seconds = time.perf_counter() - start
    return {
        "model": "ldiffrec",
        "data_seconds": data_seconds,
        "nnz": int(train.nnz),
        "setup_seconds": fit_seconds - sum(epochs.values()),  # SVD, k-means, building
        # CPU time of the whole fit (all threads): with one thread, the compute time, unaffected
        # by other processes taking the core.
        "fit_seconds": fit_seconds,
        "fit_cpu_seconds": fit_cpu_seconds,
        "autoencoder_epoch_seconds": epochs["autoencoder"],
        "diffusion_epoch_seconds": epochs["diffusion"],
        "eval_seconds_per_1k_users": eval_seconds * 1000 / users.shape[0],
        "parameters": model.parameter_count(),
        "rss_after_imports_mib": baseline,
        "peak_rss_mib": peak_rss_mib(),
    }


def diffrec_memory(n_items: int, batch: int, hidden: list[int], time_dim: int = 10) -> dict:
    """DiffRec's training memory by count: parameters x 4 (weights, gradients, Adam's two
    moments) and one batch's activations: ~8 tensors of batch x n_items (x0, noise, x_t, the
    dropout mask and its output, the prediction, the error, its gradient) plus the hidden ones."""
    widths = [n_items + time_dim, *hidden, n_items]
    parameters = sum(a * b + b for a, b in itertools.pairwise(widths))
    activations = batch * (8 * n_items + 2 * sum(hidden))
    return {
        "parameters": parameters,
        "parameter_state_mib": 4 * parameters * BYTES / 2**20,
        "batch_activations_mib": activations * BYTES / 2**20,
        "total_mib": (4 * parameters + activations) * BYTES / 2**20,
    }


def measure_diffrec(args: argparse.Namespace) -> dict:
    """Runs in its own process: a few DiffRec training steps on the same catalogue."""
    import torch

    from recdiff.models.diffrec import DiffRec, DiffRecConfig
    from recdiff.train.config import TrainConfig

    torch.set_num_threads(args.threads)
    baseline = peak_rss_mib()
    train, _ = _data(args)
    rows = train[: args.diffrec_steps * args.batch_size]
    seconds: list[float] = []
    training = TrainConfig(
        batch_size=args.batch_size, epochs=1, progress=False, seed=1, precision=args.precision
    )
    model = DiffRec(DiffRecConfig(hidden_dims=[600, 200, 600]), training)
    model.fit(rows, on_event=lambda record: seconds.append(record["seconds"]))
    return {
        "model": "diffrec",
        "steps": args.diffrec_steps,
        "seconds_per_step": seconds[0] / args.diffrec_steps,
        "rss_after_imports_mib": baseline,
        "peak_rss_mib": peak_rss_mib(),
        "computed": diffrec_memory(args.items, args.batch_size, [600, 200, 600]),
    }


def main() -> None:
    # The first paragraph: its first line alone stops mid-sentence.
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--users", type=positive_int, default=1_000_000, help="users in the catalogue"
    )
    parser.add_argument(
        "--items", type=positive_int, default=200_000, help="items in the catalogue"
    )
    parser.add_argument(
        "--mean-items", type=positive_float, default=20.0, help="mean draws per user"
    )
    parser.add_argument(
        "--clusters", type=positive_int, default=2, help="L-DiffRec's item clusters C"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=400, help="users per gradient step"
    )
    parser.add_argument(
        "--eval-users", type=positive_int, default=2048, help="users scored and ranked"
    )
    parser.add_argument(
        "--eval-batch", type=positive_int, default=256, help="users per score block"
    )
    parser.add_argument(
        "--item-chunk", type=positive_int, default=50_000, help="items ranked at a time"
    )
    parser.add_argument(
        "--diffrec-steps", type=non_negative_int, default=3, help="DiffRec steps (0: skip)"
    )
    parser.add_argument("--threads", type=positive_int, default=2, help="torch intra-op threads")
    parser.add_argument("--seed", type=int, default=0, help="data seed")
    parser.add_argument(
        "--precision", choices=["fp32", "bf16"], default="fp32", help="training precision"
    )
    parser.add_argument("--name", default="large_catalog", help="results file name")
    add_results_dir(parser)
    parser.add_argument("--child", choices=["ldiffrec", "diffrec"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure = measure_ldiffrec if args.child == "ldiffrec" else measure_diffrec
        print(json.dumps(measure(args)))
        return
    forwarded = forwarded_options(args)
    rows = [python_child(__file__, *forwarded, "--child", "ldiffrec")]
    print(json.dumps(rows[-1]), flush=True)
    if args.diffrec_steps:
        rows.append(python_child(__file__, *forwarded, "--child", "diffrec"))
        print(json.dumps(rows[-1]), flush=True)
    ldiffrec = rows[0]
    epoch = ldiffrec["autoencoder_epoch_seconds"] + ldiffrec["diffusion_epoch_seconds"]
    scale = 1_000_000 / args.users
    result = {
        "benchmark": "large_catalog",
        "sizes": {k: getattr(args, k) for k in ("users", "items", "mean_items", "batch_size")},
        "precision": args.precision,
        **machine(args.threads),
        "rows": rows,
        # Both stages scale with the number of users (steps); the setup with the data's size.
        "estimate_1m_users_epoch_seconds": epoch * scale,
    }
    steps = -(-args.users // args.batch_size)
    table = markdown_table(
        ["model", "users x items", "s / epoch", "s / step", "peak RSS MiB (after imports)"],
        [
            [
                f"L-DiffRec ({ldiffrec['parameters'] / 1e6:.1f}M params, sparse input, "
                f"{args.precision})",
                f"{args.users:,} x {args.items:,}",
                f"AE {ldiffrec['autoencoder_epoch_seconds']:.1f}, "
                f"diffusion {ldiffrec['diffusion_epoch_seconds']:.1f}",
                f"AE {ldiffrec['autoencoder_epoch_seconds'] / steps:.3f}, "
                f"diffusion {ldiffrec['diffusion_epoch_seconds'] / steps:.3f}",
                f"{ldiffrec['peak_rss_mib']:.0f} ({ldiffrec['rss_after_imports_mib']:.0f})",
            ],
        ]
        + [
            [
                f"DiffRec ({row['computed']['parameters'] / 1e6:.1f}M params, dense rows, "
                f"{args.precision})",
                f"{args.users:,} x {args.items:,}",
                f"{row['seconds_per_step'] * steps:.0f} (from {row['steps']} steps)",
                f"{row['seconds_per_step']:.2f}",
                f"{row['peak_rss_mib']:.0f} ({row['rss_after_imports_mib']:.0f}); computed "
                f"{row['computed']['total_mib']:.0f} = parameter state "
                f"{row['computed']['parameter_state_mib']:.0f} + batch "
                f"{row['computed']['batch_activations_mib']:.0f}",
            ]
            for row in rows[1:]
        ],
    )
    table.append("")
    table.append(
        f"L-DiffRec: data {ldiffrec['data_seconds']:.1f} s, clustering/setup "
        f"{ldiffrec['setup_seconds']:.1f} s, scoring + top-20 {ldiffrec['eval_seconds_per_1k_users']:.2f}"
        f" s per 1,000 users; one epoch at 1M users is about {epoch * scale / 60:.0f} min."
    )
    write_results(args.name, result, table, args.results_dir)
    print("\n".join(table))


if __name__ == "__main__":
    main()
