"""What a ranker that only returns never-trained items scores, and what epoch selection adds.

Companion to ``untrained_items.py``. When a model's top-20 is filled by 20 never-trained items
(their random embeddings outrank the shrunk trained ones) and its guidance carries little user
information, the 20 items are nearly the same for every user, and they change from one
evaluation to the next as training moves the oracle embedding. Each evaluation then scores the
combined target share of a (roughly) random 20-subset of the untrained items. Choosing the
evaluation with the best validation HR@20 among several picks the subset whose items are most
frequent on validation; as the same new items trend in both later periods, that also raises
test HR@20.

This simulates it from the split alone (no model): it draws ``--draws`` random 20-subsets of the
untrained items, reports their test HR@20 distribution, and, for ``--evaluations`` E, the mean test
HR@20 of the subset with the best validation HR@20 among E draws, and of the best test HR@20
among them (what reporting the test peak of a run would show), over ``--trials`` repetitions.

Run from the repository root (needs ../shared/datasets or $RECDIFF_DATASETS)::

    python3 benchmarks/untrained_selection.py [--preset dreamrec-zhihu]

Writes ``benchmarks/results/untrained_selection.{json,md}`` (``--name`` changes the file name,
``--results-dir`` the folder).
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import (
    add_results_dir,
    check_model_kind,
    load_config_or_exit,
    machine,
    markdown_table,
    pct,
    positive_int,
    write_results,
)

K = 20


def load_split(preset: str, config=None) -> dict:
    """Per split: targets and whether each history holds an untrained item; the untrained mask
    and each item's most-popular rank (by training targets). ``config``: ``preset`` loaded."""
    from recdiff.config import load_config
    from recdiff.models.dreamrec import training_items
    from recdiff.train.datasets import load_sequences

    config = config or load_config(preset, [])
    data = load_sequences(config.data)[0].with_layout("left")
    n = data.n_items
    untrained = ~training_items(data.train, n)
    order = np.argsort(-np.bincount(np.asarray(data.train.targets), minlength=n), kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    out = {"n_items": n, "untrained": untrained, "rank": rank}
    for split in ("valid", "test"):
        examples = getattr(data, split)
        history = np.asarray(examples.history)  # pads are id n: extend the mask with False
        flags = np.append(untrained, False)[history].any(axis=1)
        targets = np.asarray(examples.targets)
        repeated = (history == targets[:, None]).any(axis=1)  # the target is in its own history
        out[split] = {"targets": targets, "untrained_history": flags, "repeat": repeated}
    return out


def target_shares(split: dict, untrained: np.ndarray) -> np.ndarray:
    """Each untrained item's share of the split's targets."""
    targets = split["targets"]
    return np.bincount(targets, minlength=untrained.size)[untrained] / targets.size


def conditioned_mix(split: dict, untrained: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Expected HR@20 ``[k1, k2]`` of a ranker that returns k1 random untrained items to users
    whose history holds one, k2 to the others, each list filled up with the most popular items."""
    targets, flags = split["targets"], split["untrained_history"]
    hit_untrained = untrained[targets] / untrained.sum()  # per random untrained slot
    grid = np.zeros((K + 1, K + 1))
    for k1 in range(K + 1):
        for k2 in range(K + 1):
            k = np.where(flags, k1, k2)
            popular = ~untrained[targets] & (rank[targets] < K - k)
            grid[k1, k2] = (hit_untrained * k + popular).mean()
    return grid


def simulate(
    valid: np.ndarray, test: np.ndarray, draws: int, evaluations: list[int], trials: int, seed: int
) -> dict:
    rng = np.random.default_rng(seed)
    k = min(K, valid.size)
    subsets = np.argsort(rng.random((draws, valid.size)), axis=1)[:, :k]
    hr_valid, hr_test = valid[subsets].sum(axis=1), test[subsets].sum(axis=1)
    selected = {}
    for e in evaluations:
        picks = rng.integers(0, draws, (trials, e))
        best = picks[np.arange(trials), hr_valid[picks].argmax(axis=1)]
        peak = hr_test[picks].max(axis=1)  # what reporting the best test evaluation shows
        selected[e] = {
            "test_mean": float(hr_test[best].mean()),
            "test_std": float(hr_test[best].std()),
            "test_peak_mean": float(peak.mean()),
            "test_peak_std": float(peak.std()),
        }
    return {
        "untrained_items": int(valid.size),
        "valid_share": float(valid.sum()),
        "test_share": float(test.sum()),
        "test_top5_item_shares": np.sort(test)[::-1][:5].tolist(),
        "subset_valid_mean": float(hr_valid.mean()),
        "subset_test_mean": float(hr_test.mean()),
        "subset_test_std": float(hr_test.std()),
        "subset_test_p95": float(np.quantile(hr_test, 0.95)),
        "subset_test_max": float(hr_test.max()),
        "valid_test_correlation": float(np.corrcoef(hr_valid, hr_test)[0, 1]),
        "selected_by_valid": selected,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--preset",
        default="dreamrec-zhihu",
        help="next-item preset (or YAML file) naming the split",
    )
    parser.add_argument(
        "--draws", type=positive_int, default=200_000, help="random 20-subsets drawn"
    )
    parser.add_argument(
        "--evaluations",
        type=positive_int,
        nargs="+",
        default=[1, 10, 20, 40],
        help="evaluations chosen among",
    )
    parser.add_argument(
        "--trials", type=positive_int, default=5000, help="repetitions of each choice"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random draws")
    parser.add_argument("--name", default="untrained_selection", help="results file name")
    add_results_dir(parser)
    args = parser.parse_args()
    config = load_config_or_exit(parser, args.preset, [])
    # A row model's preset (DiffRec) has no next-item split: the table would be all zeros.
    check_model_kind(parser, config.model.name, "preset", args.preset)
    data = load_split(args.preset, config)
    untrained, n = data["untrained"], data["n_items"]
    valid = target_shares(data["valid"], untrained)
    test = target_shares(data["test"], untrained)
    result = simulate(valid, test, args.draws, args.evaluations, args.trials, args.seed)
    result.update({"preset": args.preset, "n_items": n, "draws": args.draws, "trials": args.trials})
    grids = {s: conditioned_mix(data[s], untrained, data["rank"]) for s in ("valid", "test")}
    chosen = np.unravel_index(grids["valid"].argmax(), grids["valid"].shape)
    peak = np.unravel_index(grids["test"].argmax(), grids["test"].shape)
    result["repeat_share"] = {s: float(data[s]["repeat"].mean()) for s in ("valid", "test")}
    result["conditioned_mix"] = {
        "untrained_history_share": {s: float(data[s]["untrained_history"].mean()) for s in grids},
        "chosen_on_valid": {
            "k": [int(x) for x in chosen],
            "valid": float(grids["valid"][chosen]),
            "test": float(grids["test"][chosen]),
        },
        "best_on_test": {"k": [int(x) for x in peak], "test": float(grids["test"][peak])},
    }

    table = markdown_table(
        [
            "evaluations chosen among",
            "test HR@20 %, best valid evaluation",
            "test HR@20 %, best test evaluation",
        ],
        [
            [
                str(e),
                f"{pct(s['test_mean'])} ± {pct(s['test_std'])}",
                f"{pct(s['test_peak_mean'])} ± {pct(s['test_peak_std'])}",
            ]
            for e, s in result["selected_by_valid"].items()
        ],
    )
    summary = (
        f"{result['untrained_items']} untrained items; {pct(result['valid_share'])}% of valid and "
        f"{pct(result['test_share'])}% of test targets. A random 20-subset: test HR@20 "
        f"{pct(result['subset_test_mean'])} ± {pct(result['subset_test_std'])}% (95th percentile "
        f"{pct(result['subset_test_p95'])}, max {pct(result['subset_test_max'])}); correlation of "
        f"its valid and test HR@20 {result['valid_test_correlation']:.2f}."
    )
    mix = result["conditioned_mix"]
    summary += (
        f" History-conditioned mix (k1 untrained items for users with one in their history, k2"
        f" for the others, then most popular): chosen on valid k = {mix['chosen_on_valid']['k']},"
        f" valid {pct(mix['chosen_on_valid']['valid'])}%, test {pct(mix['chosen_on_valid']['test'])}%;"
        f" best on test k = {mix['best_on_test']['k']}, {pct(mix['best_on_test']['test'])}%."
    )
    repeat = result["repeat_share"]
    summary += (
        f" Targets that occur in their own history (which a model could copy, untrained or"
        f" not): {pct(repeat['valid'])}% of valid, {pct(repeat['test'])}% of test."
    )
    payload = {**result, **machine(1)}
    write_results(args.name, payload, [summary, "", *table], args.results_dir)
    print(summary)
    print("\n".join(table))


if __name__ == "__main__":
    main()
