"""Speed of full-ranking evaluation on an ML-1M-sized score matrix.

Measures :func:`recdiff.eval.evaluate_scores` on a precomputed, random 5,949 x 2,810 float32
score matrix (the DiffRec ML-1M clean split's shape) with random held-out truth of ~10 items per
user and a random train mask of ~68 items per user (the split's averages). Target: < 1 s.

Run from the repository root::

    PYTHONPATH=src python3 benchmarks/eval_speed.py [--threads 2] [--repeats 5]

Writes ``benchmarks/results/eval_speed.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from _common import positive_int, write_json

from recdiff.eval import ALL_METRICS, evaluate_scores

N_USERS, N_ITEMS = 5949, 2810
TRUTH_PER_USER, TRAIN_PER_USER = 10, 68


def random_split(rng: np.random.Generator) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Disjoint random truth and exclude matrices with ML-1M-like row sizes."""
    per_user = TRUTH_PER_USER + TRAIN_PER_USER
    # argsort of random keys = one random permutation per row, without a Python loop over users.
    picks = np.argsort(rng.random((N_USERS, N_ITEMS)), axis=1)[:, :per_user]
    rows = np.repeat(np.arange(N_USERS), per_user).reshape(N_USERS, per_user)

    def csr(cols: np.ndarray, rows_: np.ndarray) -> sp.csr_matrix:
        ones = np.ones(cols.size, dtype=np.float32)
        return sp.csr_matrix((ones, (rows_.ravel(), cols.ravel())), shape=(N_USERS, N_ITEMS))

    truth = csr(picks[:, :TRUTH_PER_USER], rows[:, :TRUTH_PER_USER])
    exclude = csr(picks[:, TRUTH_PER_USER:], rows[:, TRUTH_PER_USER:])
    return truth, exclude


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=positive_int, default=2, help="torch intra-op threads")
    parser.add_argument(
        "--repeats", type=positive_int, default=5, help="timed runs after one warm-up"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=2048, help="users per score block"
    )
    default_out = Path(__file__).parent / "results" / "eval_speed.json"
    parser.add_argument("--out", type=Path, default=default_out, help="results JSON path")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    scores = rng.random((N_USERS, N_ITEMS), dtype=np.float32)
    truth, exclude = random_split(rng)

    def run(metrics: tuple[str, ...]) -> float:
        start = time.perf_counter()
        evaluate_scores(
            scores, truth, exclude, ks=(10, 20), metrics=metrics, batch_size=args.batch_size
        )
        return time.perf_counter() - start

    timings: dict[str, list[float]] = {}
    for label, metrics in (("recall_ndcg", ("recall", "ndcg")), ("all_metrics", ALL_METRICS)):
        run(metrics)  # warm-up: first-touch allocations and lazy imports
        timings[label] = [run(metrics) for _ in range(args.repeats)]

    report = {
        "benchmark": "eval_speed",
        "shape": [N_USERS, N_ITEMS],
        "truth_nnz": int(truth.nnz),
        "exclude_nnz": int(exclude.nnz),
        "ks": [10, 20],
        "batch_size": args.batch_size,
        "torch_threads": args.threads,
        "seconds": {
            k: {"median": float(np.median(v)), "min": float(min(v)), "runs": v}
            for k, v in timings.items()
        },
        "target_seconds": 1.0,
        "machine": {
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "numpy": np.__version__,
            "torch": torch.__version__,
            "processor": platform.processor() or platform.machine(),
        },
    }
    write_json(args.out, report)
    for label, v in timings.items():
        print(f"{label}: median {np.median(v):.3f} s, min {min(v):.3f} s over {len(v)} runs")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
