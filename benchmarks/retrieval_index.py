"""Top-K retrieval for next-item models: exact inner product against a faiss HNSW index.

Measures :class:`recdiff.retrieval.ItemIndex` (what ``SequencePredictor.use_index`` serves
through) with ``kind="exact"`` (a matmul over all items, then top-K) and ``kind="faiss"`` (an HNSW
graph on inner product, ``--neighbors`` = M), each catalogue in a fresh process:

- build seconds of both indexes, and the faiss index's memory: the process's RSS growth over
  the build, beside the size computed from its arrays (vectors + graph links);
- seconds for the batch of ``--queries`` queries (passed in blocks of ``--query-block`` rows,
  which bounds the exact index's ``block x n_items`` score matrix), median of ``--repeats``;
- per-query latency of single-query calls (median of ``--singles`` calls, in ms);
- faiss recall@K against the exact top-K (:func:`recdiff.retrieval.recall_at_k`) for each
  ``--ef-search`` (64, 128, 256; set on the built graph, which does not depend on it);
- all of it again with an exclusion matrix of seen items, as serving passes one.

The synthetic catalogue (random vectors are the worst case for HNSW: no neighbourhoods to walk;
trained item vectors cluster) is drawn with ``--seed``: ``--clusters`` centres ~ N(0, I) in
dim 64, cluster sizes Zipf-like (weight of the r-th cluster ~ r^-0.7); an item's direction is its
centre plus N(0, 0.6^2 I) noise, normalised (items of a cluster: cosine ~0.73); its norm is
log-normal (sigma 0.3; 5-95% range 0.61-1.64), as trained embeddings of popular items are longer.
Each query is a random item's direction plus noise of norm ~0.5 (cosine ~0.9 to that item). Its
seen items are ``--exclude-items`` draws: half from the query item's cluster (a history sits in a
user's tastes, so it competes with the top-K), half from the whole catalogue; repeats dropped.

``--from-run RUN`` measures a trained next-item run's vectors instead: ``item_vectors()`` (with
its mask of usable items), and ``query_vectors`` of the first ``--queries`` users' windows, as
``use_index`` builds them; the exclusion is those users' own seen items.

Run from the repository root (another job on the machine inflates the times: the results
record the load average before and after)::

    python3 benchmarks/retrieval_index.py                       # 100k and 1M items, 2 threads
    python3 benchmarks/retrieval_index.py --items 100000        # one size, ~20 s
    python3 benchmarks/retrieval_index.py --from-run runs/RUN   # a trained SASRec/DreamRec run

Writes ``benchmarks/results/retrieval_index.{json,md}`` (``retrieval_index_run`` with
``--from-run``; ``--name`` changes the file name, ``--results-dir`` the folder).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from _common import (
    add_results_dir,
    check_model_kind,
    machine,
    markdown_table,
    non_negative_int,
    pct,
    peak_rss_mib,
    positive_int,
    python_child,
    run_config,
    write_results,
)

DIM = 64


def rss_mib() -> float:
    """This process's resident memory now (not the peak), from /proc."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def structured_catalogue(
    n_items: int, n_queries: int, n_clusters: int, n_excluded: int, seed: int
) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
    """Item vectors ``[n_items, 64]``, queries ``[n_queries, 64]`` and each query's seen items
    (CSR), drawn as the module docstring says."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, DIM), dtype=np.float32)
    weights = 1.0 / np.arange(1, n_clusters + 1) ** 0.7
    cluster = rng.choice(n_clusters, n_items, p=weights / weights.sum())
    directions = centres[cluster] + 0.6 * rng.standard_normal((n_items, DIM), dtype=np.float32)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    norms = rng.lognormal(0.0, 0.3, n_items).astype(np.float32)
    items = directions * norms[:, None]

    anchors = rng.integers(0, n_items, n_queries)
    noise = rng.standard_normal((n_queries, DIM), dtype=np.float32) * (0.5 / np.sqrt(DIM))
    queries = directions[anchors] + noise

    # Half of the seen items from the anchor's cluster: items sorted by cluster, a random
    # position within the cluster's run of that order.
    by_cluster = np.argsort(cluster, kind="stable")
    sizes = np.bincount(cluster, minlength=n_clusters)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    near = n_excluded // 2
    own = cluster[anchors][:, None]
    picks = starts[own] + (rng.random((n_queries, near)) * sizes[own]).astype(np.int64)
    seen = np.concatenate(
        [by_cluster[picks], rng.integers(0, n_items, (n_queries, n_excluded - near))], axis=1
    )
    rows = np.repeat(np.arange(n_queries), n_excluded)
    ones = np.ones(seen.size, dtype=np.float32)
    exclude = sp.csr_matrix((ones, (rows, seen.ravel())), shape=(n_queries, n_items))
    exclude.data[:] = 1  # repeats were summed into one entry
    return items, queries, exclude


def run_vectors(run: Path, n_queries: int) -> tuple[np.ndarray, Any, np.ndarray, sp.csr_matrix]:
    """A next-item run's item vectors and usable mask, the query vectors of its first
    ``n_queries`` users (whole sequences, as ``use_index`` queries them) and their seen items."""
    from recdiff.serving.predictor import Predictor

    predictor = Predictor.load(run)
    users = predictor.users.external(np.arange(min(n_queries, len(predictor.users))))
    windows = predictor.query_users(users, exclude_seen=False).inputs
    exclude = predictor.query_users(users, exclude_seen=True).exclude
    vectors, usable = predictor.model.item_vectors()
    queries = predictor.model.query_vectors(windows)
    host = vectors.detach().float().cpu().numpy()
    mask = None if usable is None else usable.cpu().numpy()
    return host, mask, queries.detach().float().cpu().numpy(), exclude.tocsr()


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


class Timer:
    """Batch and single-query timings of one index over fixed queries and exclusions."""

    def __init__(self, queries, exclude, k: int, block: int, repeats: int, singles: int):
        self.queries, self.exclude, self.k = queries, exclude, k
        self.block, self.repeats, self.singles = block, repeats, min(singles, len(queries))

    def batch(self, index, exclude: bool) -> tuple[float, np.ndarray]:
        """Median seconds of answering every query, in blocks; the ids found."""

        def run() -> np.ndarray:
            found = []
            for start in range(0, len(self.queries), self.block):
                rows = slice(start, start + self.block)
                seen = self.exclude[rows] if exclude else None
                found.append(index.top_k(self.queries[rows], self.k, seen)[0])
            return np.concatenate(found)

        index.top_k(self.queries[:8], self.k)  # warm-up: thread pools, lazy imports
        seconds, found = zip(*(timed(run) for _ in range(self.repeats)), strict=True)
        return statistics.median(seconds), found[0]

    def single_ms(self, index, exclude: bool) -> dict[str, float]:
        """Milliseconds of a one-query call: the median, and the minimum (what a quiet machine
        approaches when another job shares the cores)."""
        seconds = []
        for row in range(self.singles):
            one = slice(row, row + 1)
            seen = self.exclude[one] if exclude else None
            start = time.perf_counter()
            index.top_k(self.queries[one], self.k, seen)
            seconds.append(time.perf_counter() - start)
        return {
            "single_ms": 1000 * statistics.median(seconds),
            "single_ms_min": 1000 * min(seconds),
        }


def faiss_bytes(item_index) -> int:
    """Bytes of the faiss HNSW index's arrays: stored vectors, graph links, their offsets and
    each node's level."""
    index = item_index.index.index
    hnsw = index.hnsw
    return (
        index.ntotal * index.d * 4
        + hnsw.neighbors.size() * 4
        + hnsw.offsets.size() * 8
        + hnsw.levels.size() * 4
    )


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement on one catalogue (this process: a child of :func:`main`)."""
    import faiss
    import torch

    from recdiff.retrieval import ItemIndex, recall_at_k

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    start = time.perf_counter()
    if args.from_run:
        items, usable, queries, exclude = run_vectors(args.from_run, args.queries)
        source = {"run": str(args.from_run)}
    else:
        n_items = int(args.child)
        items, queries, exclude = structured_catalogue(
            n_items, args.queries, args.clusters, args.exclude_items, args.seed
        )
        usable = None
        source = {"clusters": args.clusters, "seed": args.seed}
    row: dict[str, Any] = {
        **source,
        "items": len(items),
        "usable_items": len(items) if usable is None else int(np.sum(usable)),
        "dim": items.shape[1],
        "queries": len(queries),
        "excluded_per_query": float(np.diff(exclude.indptr).mean()),
        "data_seconds": time.perf_counter() - start,
    }
    timer = Timer(queries, exclude, args.k, args.query_block, args.repeats, args.singles)

    # faiss first, while the process holds the data alone: its RSS growth is the index's.
    before = rss_mib()
    options = {"neighbors": args.neighbors, "ef_search": args.ef_search[0]}
    build, approximate = timed(lambda: ItemIndex(items, "faiss", usable, **options))
    row["faiss_build"] = {
        "seconds": build,
        "rss_growth_mib": rss_mib() - before,
        "computed_mib": faiss_bytes(approximate) / 2**20,
        "neighbors": args.neighbors,
        "ef_construction": approximate.index.index.hnsw.efConstruction,
    }
    row["exact_build_seconds"], exact_index = timed(lambda: ItemIndex(items, "exact", usable))

    exact: dict[str, Any] = {}
    ids = {}
    for excluded in (False, True):
        key = "excluded" if excluded else "plain"
        seconds, ids[key] = timer.batch(exact_index, excluded)
        exact[key] = {"batch_seconds": seconds, **timer.single_ms(exact_index, excluded)}
    row["exact"] = exact
    # Top-K slots the seen items took from the exact lists: what the exclusion changes.
    row["exact_slots_freed_by_exclusion"] = 1 - recall_at_k(ids["excluded"], ids["plain"])

    row["faiss"] = []
    for ef in args.ef_search:
        # The graph does not depend on efSearch: set it on the built index, not a rebuild.
        approximate.index.index.hnsw.efSearch = ef
        entry: dict[str, Any] = {"ef_search": ef}
        for excluded in (False, True):
            key = "excluded" if excluded else "plain"
            seconds, found = timer.batch(approximate, excluded)
            entry[key] = {
                "batch_seconds": seconds,
                **timer.single_ms(approximate, excluded),
                "recall": recall_at_k(found, ids[key]),
            }
        row["faiss"].append(entry)
    row["peak_rss_mib"] = peak_rss_mib()
    return row


def tables(rows: list[dict[str, Any]], k: int, queries_label: str) -> list[str]:
    """The Markdown: builds, then queries per index and ef_search."""

    def catalogue(row) -> str:
        usable = "" if row["usable_items"] == row["items"] else f" ({row['usable_items']:,} usable)"
        return f"{row['items']:,} x {row['dim']}{usable}"

    lines = markdown_table(
        ["catalogue", "exact build s", "faiss build s", "faiss RSS growth MiB", "computed MiB"],
        [
            [
                catalogue(row),
                f"{row['exact_build_seconds']:.3f}",
                f"{row['faiss_build']['seconds']:.1f}",
                f"{row['faiss_build']['rss_growth_mib']:.0f}",
                f"{row['faiss_build']['computed_mib']:.0f}",
            ]
            for row in rows
        ],
    )
    header = [
        "catalogue",
        "index",
        f"batch s ({queries_label})",
        "single ms, median (min)",
        f"recall@{k}",
        "batch s, excl.",
        "single ms, excl., median (min)",
        f"recall@{k}, excl.",
    ]

    def cells(stats: dict[str, Any], recall: str) -> list[str]:
        single = f"{stats['single_ms']:.2f} ({stats['single_ms_min']:.2f})"
        return [f"{stats['batch_seconds']:.3f}", single, recall]

    body = []
    for row in rows:
        plain, excluded = row["exact"]["plain"], row["exact"]["excluded"]
        body.append([catalogue(row), "exact", *cells(plain, "1"), *cells(excluded, "1")])
        for entry in row["faiss"]:
            plain, excluded = entry["plain"], entry["excluded"]
            body.append(
                [
                    "",
                    f"faiss ef={entry['ef_search']}",
                    *cells(plain, f"{plain['recall']:.4f}"),
                    *cells(excluded, f"{excluded['recall']:.4f}"),
                ]
            )
    lines += ["", *markdown_table(header, body), ""]
    lines += [
        f"{catalogue(row)}: {row['queries']:,} queries, {row['excluded_per_query']:.1f} "
        f"excluded items per query, taking {pct(row['exact_slots_freed_by_exclusion'])}% of "
        f"the exact top-{k} slots; peak RSS {row['peak_rss_mib']:.0f} MiB."
        for row in rows
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--items",
        type=positive_int,
        nargs="+",
        help="catalogue sizes of the synthetic data, each in its own process "
        "(default: 100000 1000000)",
    )
    parser.add_argument(
        "--from-run",
        type=Path,
        help="a trained SASRec or DreamRec run: measure its item and query vectors instead",
    )
    parser.add_argument("--queries", type=positive_int, default=1000, help="queries per batch")
    parser.add_argument("--k", type=positive_int, default=20, help="list length K")
    parser.add_argument(
        "--threads", type=positive_int, default=2, help="torch and faiss (OpenMP) threads"
    )
    parser.add_argument("--neighbors", type=positive_int, default=32, help="HNSW graph degree M")
    parser.add_argument(
        "--ef-search",
        type=positive_int,
        nargs="+",
        default=[64, 128, 256],
        help="HNSW candidates explored per query, each measured (default: 64 128 256)",
    )
    parser.add_argument(
        "--exclude-items", type=non_negative_int, default=50, help="seen items per query"
    )
    parser.add_argument("--clusters", type=positive_int, default=1000, help="synthetic clusters")
    parser.add_argument(
        "--query-block", type=positive_int, default=256, help="queries per top_k call in a batch"
    )
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed batches (median)")
    parser.add_argument(
        "--singles", type=positive_int, default=50, help="single-query calls timed (median)"
    )
    parser.add_argument("--seed", type=int, default=0, help="synthetic data seed")
    parser.add_argument(
        "--name", help="results file name (default: retrieval_index, retrieval_index_run)"
    )
    add_results_dir(parser)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return

    if args.from_run and args.items:
        parser.error("--items sizes a synthetic catalogue; --from-run measures the run's own")
    if args.from_run:
        config = run_config(parser, args.from_run)
        name = config.model.name
        check_model_kind(parser, name, "run", str(args.from_run))
        from recdiff.serving.sequence_predictor import has_user_ids

        if name not in ("sasrec", "dreamrec"):  # the ones with ranks_by_inner_product
            parser.error(f"needs a run that ranks by inner product, got {name!r}")
        if not has_user_ids(config):
            parser.error(f"{args.from_run} has no users to draw query windows from")
    elif not args.items:
        args.items = [100_000, 1_000_000]
    if not args.from_run and args.exclude_items >= min(args.items):
        parser.error("--exclude-items must be below every catalogue size")
    try:
        import faiss  # noqa: F401
    except ImportError:
        parser.error("needs faiss: pip install faiss-cpu (or 'recdiff[ann]')")
    name = args.name or ("retrieval_index_run" if args.from_run else "retrieval_index")

    forwarded = [
        f"--{key.replace('_', '-')}={value}"
        for key, value in vars(args).items()
        if key not in ("child", "name", "results_dir", "items", "ef_search", "from_run")
        and value is not None
    ]
    forwarded += ["--ef-search", *map(str, args.ef_search)]
    if args.from_run:
        forwarded += [f"--from-run={args.from_run}"]
    load_before = os.getloadavg()
    rows = []
    for child in ["run"] if args.from_run else map(str, args.items):
        rows.append(python_child(__file__, *forwarded, f"--child={child}"))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    load_after = os.getloadavg()

    result = {
        "benchmark": "retrieval_index",
        "command": " ".join(["python3", "benchmarks/retrieval_index.py", *sys.argv[1:]]),
        "settings": {
            key: value
            for key, value in vars(args).items()
            if key not in ("child", "name", "results_dir")
        },
        **machine(args.threads),
        "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "rows": rows,
    }
    source = f"run {args.from_run}" if args.from_run else "structured synthetic catalogue"
    lines = [
        f"# Retrieval: exact against faiss HNSW (M = {args.neighbors}), {source}",
        "",
        f"{args.threads} threads, top-{args.k}, batches in blocks of {args.query_block}; "
        f"1-minute load average {load_before[0]:.2f} before, {load_after[0]:.2f} after.",
        "",
        *tables(rows, args.k, f"{rows[0]['queries']:,} queries"),
    ]
    write_results(name, result, lines, args.results_dir)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
