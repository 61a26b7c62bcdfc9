"""Validation-selected against test-peak numbers: a next-item model's test curve over training.

The recdiff runs select the epoch on validation and rank test once. Some released code instead
evaluates test at every evaluation and reports it, which invites reading off the best one. This
trains one configuration and, at every evaluation, also ranks test: as ranked, and with the items
that never occur in training excluded (see ``untrained_items.py``), with the share of top-20 slots
those items take. It reports test at the best-validation evaluation beside the best test seen, and
plots the curves. Test never feeds back into training or selection here either: it is only
recorded. Every ranking draws a sampling model's noise as the run's own evaluation does (per row,
from the model's ``sample_seed``), so without ``--eval-dropout`` the valid numbers are the ones
its trainer selects on and the best-valid test is what ``recdiff train`` reports.

Run from the repository root (needs ../shared/datasets or $RECDIFF_DATASETS)::

    python3 benchmarks/test_peaks.py dreamrec-zhihu --set train.seed=1 [--set ...]

Writes ``benchmarks/results/test_peaks_PRESET_seedS.{json,md,png}`` (PRESET: the preset's name
or the YAML file's stem; S: the resolved ``train.seed``); ``--name`` replaces the whole file name
and ``--results-dir`` the folder.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from _common import (
    add_results_dir,
    check_model_kind,
    load_config_or_exit,
    machine,
    markdown_table,
    pct,
    positive_int,
    save_figure,
    write_results,
)
from untrained_items import K, rank_with_and_without_untrained


def keep_dropout_on(net: torch.nn.Module) -> None:
    """Evaluate with dropout active, as released code that never calls ``model.eval()`` does:
    every ``eval()``/``train(False)`` on ``net`` leaves it (and its children) in training mode."""
    net.train = lambda mode=True: torch.nn.Module.train(net, True)


def default_name(preset: str, seed: int) -> str:
    """``test_peaks_PRESET_seedS``: a YAML file is named by its stem (its path would put
    slashes in the file name), ``seed`` is the resolved ``train.seed`` (its default when no
    ``--set train.seed=`` is given)."""
    path = Path(preset)
    label = path.stem if path.suffix in {".yaml", ".yml"} or path.is_file() else preset
    return f"test_peaks_{label}_seed{seed}"


def run(preset: str, overrides: list[str], eval_dropout: bool = False, config=None) -> dict:
    """Train ``preset`` with ``overrides`` (or the already loaded ``config``), ranking valid and
    test at every evaluation."""
    from recdiff.config import load_config
    from recdiff.config.models import build_model
    from recdiff.models.dreamrec import training_items
    from recdiff.train.datasets import load_sequences
    from recdiff.train.run_sequential import validation

    config = config or load_config(preset, overrides)
    data = load_sequences(config.data)[0].with_layout("left")
    n = data.n_items
    untrained = torch.from_numpy(~training_items(data.train, n))
    model = build_model(config.model.name, config.model.params(), config.train)
    # The seed recdiff.train.run_sequential.evaluate_sequential draws every pass's noise from.
    seed = getattr(model.config, "sample_seed", 0)
    ks = tuple(sorted({K, int(config.train.metric.split("@")[1])}))
    curve: list[dict] = []
    epochs: list[int] = []

    def on_event(record: dict) -> None:
        if record.get("event") == "epoch" and "stage" not in record:  # DreamRec's own epochs
            epochs.append(int(record["epoch"]))

    def split_metrics(split: str) -> dict:
        # Drawn per row as the run's evaluation draws (the batch size only sets the blocks), and
        # ranked with the run's exclude_history: these are the metrics its trainer sees.
        both = rank_with_and_without_untrained(
            model,
            getattr(data, split),
            n,
            untrained,
            seed,
            ks,
            config.eval.batch_size,
            config.eval.exclude_history,
        )
        ranked = both["ranked"]
        return {
            "hr": ranked[f"hit_rate@{K}"],
            "ndcg": ranked[f"ndcg@{K}"],
            "hr_excluded": both["masked"][f"hit_rate@{K}"],
            "untrained_top_slots": both["untrained_top_slots"],
            "all": dict(ranked.means),
        }

    stage_validation = validation(model, data, config)

    def evaluate(score) -> dict:
        if getattr(score, "__self__", model) is not model:  # a stage (DreamRec's SASRec
            return stage_validation(score)  # items): selected on its own, not recorded here
        if eval_dropout and not curve:
            keep_dropout_on(model.net)
        point = {"epoch": epochs[-1] if epochs else 0}
        point.update({split: split_metrics(split) for split in ("valid", "test")})
        curve.append(point)
        print(
            f"epoch {point['epoch']}: valid HR@20 {100 * point['valid']['hr']:.2f}% "
            f"test {100 * point['test']['hr']:.2f}% "
            f"(untrained excluded {100 * point['test']['hr_excluded']:.2f}%)",
            flush=True,
        )
        return {"valid": point["valid"]["all"]}  # selection uses the configured metric

    start = time.perf_counter()
    model.fit(data, evaluate=evaluate, on_event=on_event)
    best = next(p for p in curve if p["epoch"] == model.result.best_epoch)
    peak = max(curve, key=lambda p: p["test"]["hr"])
    return {
        "preset": preset,
        "overrides": overrides,
        "seed": config.train.seed,
        "sample_seed": seed,
        "eval_dropout": eval_dropout,
        "metric_note": "the trainer selects on valid (train.metric); test is only recorded",
        # the columns show HR@20; selection follows the config's metric, which may differ
        "selected_on": f"valid {config.train.metric}",
        "untrained_items": int(untrained.sum()),
        "curve": curve,
        "best_valid": best,
        "test_peak": peak,
        "seconds": time.perf_counter() - start,
    }


def plot(result: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [p["epoch"] for p in result["curve"]]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in [
        (("valid", "hr"), "valid HR@20"),
        (("test", "hr"), "test HR@20"),
        (("test", "hr_excluded"), "test HR@20, untrained items excluded"),
    ]:
        ax.plot(epochs, [100 * p[key[0]][key[1]] for p in result["curve"]], marker=".", label=label)
    best = f"best {result['selected_on']}"
    ax.axvline(result["best_valid"]["epoch"], color="grey", ls="--", lw=0.8, label=best)
    ax.set_xlabel("epoch")
    ax.set_ylabel("%")
    ax.set_title(f"{result['preset']} {' '.join(result['overrides'])}", fontsize=8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", help="a next-item preset or YAML file")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override, repeatable (e.g. train.seed=2)",
    )
    parser.add_argument("--threads", type=positive_int, default=1, help="torch intra-op threads")
    parser.add_argument(
        "--name",
        help="results file name (default: test_peaks_PRESET_seedS, PRESET the preset or the "
        "YAML file's stem, S the config's train.seed)",
    )
    add_results_dir(parser)
    parser.add_argument(
        "--eval-dropout",
        action="store_true",
        help="keep dropout on while ranking (as DreamRec's released code evaluates)",
    )
    args = parser.parse_args()
    config = load_config_or_exit(parser, args.preset, args.overrides)  # before any training
    check_model_kind(parser, config.model.name, "preset", args.preset)
    name = args.name or default_name(args.preset, config.train.seed)
    torch.set_num_threads(args.threads)
    result = run(args.preset, args.overrides, args.eval_dropout, config)

    rows = [
        [
            label,
            point["epoch"],
            pct(point["valid"]["hr"]),
            pct(point["test"]["hr"]),
            pct(point["test"]["ndcg"]),
            pct(point["test"]["hr_excluded"]),
            pct(point["test"]["untrained_top_slots"]),
        ]
        for label, point in [
            (f"best {result['selected_on']} (selected)", result["best_valid"]),
            ("best test", result["test_peak"]),
        ]
    ]
    table = markdown_table(
        [
            "evaluation",
            "epoch",
            "valid HR@20 %",
            "test HR@20 %",
            "test NDCG@20 %",
            "test HR@20 %, untrained excluded",
            "top-20 slots untrained %",
        ],
        rows,
    )
    plot(result, args.results_dir / f"{name}.png")
    write_results(name, {**result, **machine(args.threads)}, table, args.results_dir)
    print("\n".join(table))


if __name__ == "__main__":
    main()
