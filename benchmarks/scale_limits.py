"""What the catalogue-wide steps cost on a catalogue far larger than the papers': each in a fresh
process, so its peak memory is its own.

Data: :func:`recdiff.data.synthetic.make_large_synthetic` (log-normal activity, Zipf(1) item
popularity), ``--users`` x ``--items``. Measured:

- ``popularity_topk``: Popularity's top 20 for ``--rank-users`` users, the score block ranked in
  chunks of 8,192 items (the default since 2026-11-30) and whole (``item_chunk=None``, as every
  ranking did before); popularity's counts tie at almost every cut, the ranking's worst case;
- ``shortlist``: the same users' top 20 among ``--candidates`` items, the rest ruled out as
  one list of columns (what ``recommend``/``export --candidates`` do now) and as a CSR row per
  user (what they did before);
- ``ease_refusal``: how long EASE takes to refuse a catalogue whose dense items x items
  matrices exceed the memory available, and its message (none: it fits, and is not fitted);
- ``sasrec_loss``: one forward and backward pass of SASRec's all-positions loss over the whole
  catalogue, for ``--windows`` windows of ``--max-len`` positions, summed over checkpointed
  chunks of at most 2^28 logits (all at once would hold positions x items logits several times).

Run from the repository root::

    python3 benchmarks/scale_limits.py                                  # 100k x 286,099, 1 thread
    python3 benchmarks/scale_limits.py --users 2000 --items 20000       # seconds

Writes ``benchmarks/results/scale_limits.{json,md}`` (``--name``, ``--results-dir``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time

from _common import (
    add_results_dir,
    forwarded_options,
    machine,
    markdown_table,
    peak_rss_mib,
    positive_int,
    python_child,
    write_results,
)

CHILDREN = ("popularity_topk", "popularity_whole", "shortlist_columns", "shortlist_rows")
CHILDREN += ("ease_refusal", "sasrec_loss")


def _train(args: argparse.Namespace):
    from recdiff.data.synthetic import make_large_synthetic

    return make_large_synthetic(args.users, args.items, seed=args.seed)


def _ranked(items, start: float, before: float) -> dict:
    """A ranking step's figures: seconds since ``start``, peak memory (``before`` it), and the
    lists' hash, which the old and the new way of a step must share."""
    return {
        "seconds": time.perf_counter() - start,
        "peak_rss_mib": peak_rss_mib(),
        "rss_before_mib": before,
        "listed": int((items >= 0).sum()),
        "lists_sha256": hashlib.sha256(items.tobytes()).hexdigest(),
    }


def _popularity(args: argparse.Namespace, chunked: bool) -> dict:
    from recdiff.eval.ranking import ITEM_CHUNK, topk_items
    from recdiff.models.popularity import Popularity

    train = _train(args)
    model = Popularity().fit(train)
    history = train[: args.rank_users]
    before = peak_rss_mib()
    start = time.perf_counter()
    chunk = ITEM_CHUNK if chunked else None
    items, _ = topk_items(model.score(history), 20, history, item_chunk=chunk)
    return _ranked(items, start, before)


def _shortlist(args: argparse.Namespace, as_columns: bool) -> dict:
    import numpy as np
    import scipy.sparse as sp

    from recdiff.eval.ranking import topk_items
    from recdiff.models.popularity import Popularity
    from recdiff.serving.recommendations import Query, mask_ruled_items

    train = _train(args)
    model = Popularity().fit(train)
    history = train[: args.rank_users]
    rng = np.random.default_rng(args.seed)
    allowed = np.zeros(args.items, dtype=bool)
    allowed[rng.choice(args.items, size=args.candidates, replace=False)] = True
    ruled = np.flatnonzero(~allowed)
    query = Query(history, history).ruling_out(ruled)
    before = peak_rss_mib()
    start = time.perf_counter()
    if as_columns:
        items, _ = topk_items(mask_ruled_items(model.score(history), [query]), 20, history)
    else:
        exclude = sp.csr_matrix(query.never_returned())
        items, _ = topk_items(model.score(history), 20, exclude)
    return _ranked(items, start, before)


def _ease_refusal(args: argparse.Namespace) -> dict:
    from recdiff.memory import NotEnoughMemory
    from recdiff.models.ease import SELECT_BYTES_PER_PAIR, check_ease_memory

    train = _train(args)
    start = time.perf_counter()
    try:  # the check a run's lambda search makes before building the Gram matrix
        check_ease_memory(train.shape[1], SELECT_BYTES_PER_PAIR)
    except NotEnoughMemory as refused:
        return {"seconds": time.perf_counter() - start, "refused": str(refused)}
    return {"seconds": time.perf_counter() - start, "refused": None}


def _sasrec_loss(args: argparse.Namespace) -> dict:
    import torch

    from recdiff.models.sasrec import LOSS_BLOCK, position_loss_sum

    generator = torch.Generator().manual_seed(args.seed)
    positions = args.windows * args.max_len
    states = torch.randn(positions, args.dim, generator=generator, requires_grad=True)
    items = torch.randn(args.items, args.dim, generator=generator, requires_grad=True)
    targets = torch.randint(args.items, (positions,), generator=generator)
    before = peak_rss_mib()
    start = time.perf_counter()
    position_loss_sum(states, items, targets).backward()
    return {
        "seconds": time.perf_counter() - start,
        "peak_rss_mib": peak_rss_mib(),
        "rss_before_mib": before,
        "logits": positions * args.items,
        "chunks": -(-positions // max(1, LOSS_BLOCK // args.items)),
        "all_at_once_gib": positions * args.items * 4 / 2**30,
    }


def measure(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    child = args.child
    if child.startswith("popularity"):
        return _popularity(args, chunked=child == "popularity_topk")
    if child.startswith("shortlist"):
        return _shortlist(args, as_columns=child == "shortlist_columns")
    if child == "ease_refusal":
        return _ease_refusal(args)
    return _sasrec_loss(args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=positive_int, default=100_000, help="users")
    parser.add_argument("--items", type=positive_int, default=286_099, help="items")
    parser.add_argument("--rank-users", type=positive_int, default=1024, help="users ranked")
    parser.add_argument("--candidates", type=positive_int, default=10, help="shortlist size")
    parser.add_argument("--windows", type=positive_int, default=256, help="SASRec windows")
    parser.add_argument("--max-len", type=positive_int, default=50, help="positions a window")
    parser.add_argument("--dim", type=positive_int, default=64, help="SASRec's width")
    parser.add_argument("--threads", type=positive_int, default=1, help="torch threads")
    parser.add_argument("--seed", type=int, default=0, help="data seed")
    parser.add_argument("--name", default="scale_limits", help="results file name")
    add_results_dir(parser)
    parser.add_argument("--child", choices=CHILDREN, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rank_users > args.users or args.candidates > args.items:
        parser.error("--rank-users must be <= --users and --candidates <= --items")
    if args.child:
        print(json.dumps(measure(args)))
        return
    forwarded = forwarded_options(args)
    rows = {}
    for child in CHILDREN:
        rows[child] = python_child(__file__, *forwarded, "--child", child)
        print(child, json.dumps(rows[child]), flush=True)
    result = {
        "benchmark": "scale_limits",
        "sizes": {k: getattr(args, k) for k in ("users", "items", "rank_users", "candidates")},
        **machine(args.threads),
        "rows": rows,
    }
    size = f"{args.users:,} x {args.items:,}"

    def ranked(row: dict) -> list:
        return [f"{row['seconds']:.2f}", f"{row['peak_rss_mib']:.0f} ({row['rss_before_mib']:.0f})"]

    table = [
        f"On {size} (synthetic, Zipf(1) popularity), {args.threads} thread(s); peak RSS in MiB,",
        "before the step in brackets.",
        "",
        *markdown_table(
            ["step", "s", "peak RSS MiB"],
            [
                [
                    f"popularity top 20 of {args.rank_users:,} users, 8,192 items at a time",
                    *ranked(rows["popularity_topk"]),
                ],
                ["the same, the block ranked whole", *ranked(rows["popularity_whole"])],
                [
                    f"top 20 of {args.candidates} candidates, ruled out as columns",
                    *ranked(rows["shortlist_columns"]),
                ],
                ["the same, ruled out as a CSR row per user", *ranked(rows["shortlist_rows"])],
                [
                    f"SASRec loss, {args.windows} x {args.max_len} positions, forward + backward "
                    f"({rows['sasrec_loss']['chunks']} chunks)",
                    *ranked(rows["sasrec_loss"]),
                ],
            ],
        ),
        "",
        f"EASE: {rows['ease_refusal']['refused'] or 'fits (no refusal)'} "
        f"({rows['ease_refusal']['seconds']:.3f} s)",
    ]
    for fast, slow in (
        ("popularity_topk", "popularity_whole"),
        ("shortlist_columns", "shortlist_rows"),
    ):
        if rows[fast]["lists_sha256"] != rows[slow]["lists_sha256"]:
            raise SystemExit(f"{fast} and {slow} ranked different lists: a ranking bug")
    write_results(args.name, result, table, args.results_dir)
    print("\n".join(table))


if __name__ == "__main__":
    main()
