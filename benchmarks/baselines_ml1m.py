"""Baselines on DiffRec's ML-1M clean split: most-popular, EASE and Mult-VAE.

Protocol (DiffRec, SIGIR 2023): full ranking over all 2,810 items. Hyper-parameters are chosen
on validation only (input = train, train items masked): EASE's lambda from a grid, Mult-VAE's
epoch by early stopping on valid Recall@20. Test: input = train, train + valid items masked.
Every test metric is reported under both averaging modes (``test_users``, ``all_users``; they
agree on this split because every user has test items).

Run from the repository root (about 5-15 minutes on 2 CPU cores, most of it Mult-VAE)::

    PYTHONPATH=src python3 benchmarks/baselines_ml1m.py [--seeds 0 1 2] [--threads 2]

Writes ``benchmarks/results/baselines_ml1m.{json,md}`` and per-user test metrics
``baselines_ml1m_per_user.npz`` (for paired significance tests); ``--out-dir`` changes the folder.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import RESULTS, positive_float, positive_int, write_json

from recdiff.atomic import atomic_path, atomic_write_text
from recdiff.eval import EvalResult, EvalTask
from recdiff.models import MultVAE, Popularity, select_ease_lambda
from recdiff.models.ease import DEFAULT_LAMBDA_GRID

try:  # the public path; fall back while recdiff.data does not re-export it yet
    from recdiff.data import read_diffrec_splits
except ImportError:
    from recdiff.data.readers import read_diffrec_splits

KS = (10, 20)
METRICS = ("recall", "ndcg")
REPORTED = [f"{m}@{k}" for m in METRICS for k in KS]
SPLITS = ("train", "valid", "test")  # DiffRec's {SPLIT}_list.npy files
# DiffRec paper, Table 2 (ML-1M clean), for reference only.
PAPER = {
    "MultVAE": {"recall@10": 0.1007, "recall@20": 0.1726, "ndcg@10": 0.0825, "ndcg@20": 0.1076}
}
TARGETS = {"EASE": 0.180, "MultVAE": 0.170}  # test Recall@20 this benchmark should reach

log = logging.getLogger("baselines_ml1m")


def default_data() -> Path:
    root = os.environ.get("RECDIFF_DATASETS")
    base = Path(root) if root else Path(__file__).resolve().parents[2] / "shared" / "datasets"
    return base / "diffrec" / "ml-1m_clean"


def test_metrics(result: EvalResult) -> dict[str, dict[str, float]]:
    """Means under both averaging modes."""
    return {
        mode: {n: result.with_averaging(mode)[n] for n in REPORTED}  # type: ignore[arg-type]
        for mode in ("test_users", "all_users")
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    start_all = time.perf_counter()
    splits = read_diffrec_splits(args.data)
    train, valid, test = splits.train.matrix, splits.valid.matrix, splits.test.matrix
    log.info("loaded %s: %s", args.data, splits.summary())
    val_task, test_task = EvalTask.validation(train, valid), EvalTask.test(train, valid, test)
    models: dict[str, dict[str, Any]] = {}
    per_user: dict[str, np.ndarray] = {}

    def evaluate(name: str, score_fn: Any) -> dict[str, Any]:
        result = test_task.evaluate(score_fn, ks=KS, metrics=METRICS)
        for metric in REPORTED:
            per_user[f"{name}/{metric}"] = result.per_user[metric]
        valid_r20 = val_task.evaluate(score_fn, ks=(20,), metrics=("recall",))["recall@20"]
        return {"valid_recall@20": valid_r20, "test": test_metrics(result)}

    t = time.perf_counter()
    pop = Popularity().fit(train)
    models["Popularity"] = {**evaluate("Popularity", pop.score), "selection": "none"}
    models["Popularity"]["seconds"] = time.perf_counter() - t
    log.info("Popularity done: %s", models["Popularity"]["test"]["test_users"])

    t = time.perf_counter()
    selection = select_ease_lambda(train, valid, grid=args.lambda_grid)
    models["EASE"] = {
        **evaluate("EASE", selection.model.score),
        "selection": f"lambda={selection.best_lambda:g} by valid recall@20",
        "lambda_grid_valid_recall@20": {str(k): v for k, v in selection.valid_scores.items()},
        "seconds": time.perf_counter() - t,
    }
    log.info(
        "EASE done (lambda %g): %s", selection.best_lambda, models["EASE"]["test"]["test_users"]
    )

    runs = []
    for seed in args.seeds:
        t = time.perf_counter()
        vae = MultVAE(max_epochs=args.max_epochs, patience=args.patience, seed=seed)
        vae.fit(train, valid)
        run_ = {
            **evaluate(f"MultVAE_seed{seed}", vae.score),
            "seed": seed,
            "best_epoch": vae.best_epoch_,
            "epochs_run": len(vae.fit_log_),
            "seconds": time.perf_counter() - t,
        }
        runs.append(run_)
        log.info(
            "MultVAE seed %d done (best epoch %d of %d, %.0f s): %s",
            seed,
            vae.best_epoch_,
            len(vae.fit_log_),
            run_["seconds"],
            run_["test"]["test_users"],
        )
    if runs:
        models["MultVAE"] = {
            "selection": f"epoch by valid recall@20 (patience {args.patience}, "
            f"max {args.max_epochs}); {len(runs)} seed(s)",
            "valid_recall@20": float(np.mean([r["valid_recall@20"] for r in runs])),
            "test": {
                mode: {n: float(np.mean([r["test"][mode][n] for r in runs])) for n in REPORTED}
                for mode in ("test_users", "all_users")
            },
            "test_std": {
                n: float(np.std([r["test"]["test_users"][n] for r in runs])) for n in REPORTED
            },
            "runs": runs,
            "seconds": float(sum(r["seconds"] for r in runs)),
        }

    # An open file, not a path: np.savez would append ".npz" to the temporary file's name.
    with atomic_path(args.out_dir / "baselines_ml1m_per_user.npz") as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **per_user)
    return {
        "benchmark": "baselines_ml1m",
        "data": str(args.data),
        "summary": splits.summary(),
        "protocol": "valid: input train, mask train; test: input train, mask train+valid; "
        "full ranking",
        "models": models,
        "paper": PAPER,
        "targets_test_recall@20": TARGETS,
        "total_seconds": time.perf_counter() - start_all,
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
        },
    }


def markdown(report: dict[str, Any]) -> str:
    """A results table: test metrics under both averaging modes, plus how each was selected."""
    lines = [
        "# Baselines on ML-1M clean (DiffRec split)",
        "",
        f"Total runtime {report['total_seconds']:.0f} s "
        f"({report['machine']['torch_threads']} torch threads).",
        "",
        "| model | averaging | " + " | ".join(REPORTED) + " | valid recall@20 | selection | s |",
        "|---|---|" + "---|" * len(REPORTED) + "---|---|---|",
    ]
    for name, entry in report["models"].items():
        for mode in ("test_users", "all_users"):
            values = " | ".join(f"{entry['test'][mode][n]:.4f}" for n in REPORTED)
            lines.append(
                f"| {name} | {mode} | {values} | {entry['valid_recall@20']:.4f} | "
                f"{entry['selection']} | {entry['seconds']:.0f} |"
            )
    for name, values in report["paper"].items():
        row = " | ".join(f"{values[n]:.4f}" for n in REPORTED)
        lines.append(f"| {name} (paper) | all_users | {row} | | DiffRec Table 2 | |")
    if "MultVAE" in report["models"] and len(report["models"]["MultVAE"]["runs"]) > 1:
        std = report["models"]["MultVAE"]["test_std"]
        lines += [
            "",
            "MultVAE population std over seeds (test_users): "
            + ", ".join(f"{n} {v:.4f}" for n, v in std.items()),
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data(), help="ml-1m_clean folder")
    parser.add_argument("--threads", type=positive_int, default=2, help="torch intra-op threads")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0], help="MultVAE seeds")
    parser.add_argument("--max-epochs", type=positive_int, default=200, help="MultVAE epoch cap")
    parser.add_argument(
        "--patience", type=positive_int, default=20, help="MultVAE early-stop patience"
    )
    parser.add_argument(
        "--lambda-grid",
        type=positive_float,
        nargs="+",
        default=list(DEFAULT_LAMBDA_GRID),
        metavar="LAMBDA",
        help="EASE L2 penalties tried, the best on valid Recall@20 kept (default: "
        + " ".join(f"{x:g}" for x in DEFAULT_LAMBDA_GRID)
        + ")",
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=RESULTS,
        help="folder for the results files (default: benchmarks/results)",
    )
    args = parser.parse_args()
    missing = [f"{n}_list.npy" for n in SPLITS if not (args.data / f"{n}_list.npy").is_file()]
    if missing:  # before any work, as a usage message: where the data was looked for
        parser.error(
            f"--data {args.data} holds no {', '.join(missing)}: pass DiffRec's ml-1m_clean "
            "folder with --data, or set RECDIFF_DATASETS to the folder above diffrec/ml-1m_clean"
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("recdiff").setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)

    report = run(args)
    write_json(args.out_dir / "baselines_ml1m.json", report)
    table = markdown(report)
    atomic_write_text(args.out_dir / "baselines_ml1m.md", table)
    print(table)


if __name__ == "__main__":
    main()
