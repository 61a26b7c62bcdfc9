"""``recdiff export | serve | report``: getting recommendations and results out of a run."""

from __future__ import annotations

import enum
import errno
import socket
from pathlib import Path
from typing import Annotated

import typer

from recdiff.cli.errors import fail, stopped, user_errors
from recdiff.cli.options import (
    CandidatesOption,
    ExcludeItemsOption,
    ItemFieldsOption,
    ItemIdColOption,
    ItemInfoOption,
    item_info,
    item_rules,
    top_k_option,
)

__all__ = ["register"]

RunArgument = Annotated[
    Path, typer.Argument(help="A run directory written by `recdiff train`.", show_default=False)
]


class IndexKind(str, enum.Enum):
    """How a next-item run finds its top items: every item scored, or a faiss index."""

    exact = "exact"
    faiss = "faiss"


IndexOption = Annotated[
    IndexKind,
    typer.Option(
        help="Next-item runs: rank through a faiss HNSW index over the item vectors "
        "(approximate, for large catalogues; needs the ann extra) instead of scoring every item. "
        "Its recall@20 against the exact lists is measured and printed at start.",
    ),
]


def load_with_index(run: Path, index: IndexKind, **options):
    """The run's predictor, ranking through ``index`` (``options``: the index's, e.g.
    ``ef_search``), echoing the index's measured recall."""
    from recdiff.serving.predictor import Predictor

    predictor = Predictor.load(run)
    if index is not IndexKind.exact:
        recall = predictor.use_index(index.value, **options)
        measured = "not measured: the run has no users" if recall is None else f"{recall:.4f}"
        held = len(predictor.index.ids)  # the items the model may recommend
        of = "" if held == len(predictor.items) else f" (of {len(predictor.items)})"
        typer.echo(
            f"{index.value} index over {held} items{of}; recall@20 against the exact top-20: "
            f"{measured}",
            err=True,
        )
    return predictor


def export(
    run: RunArgument,
    out: Annotated[
        Path, typer.Option(help="Output file; .parquet or .csv (the format follows the suffix).")
    ],
    k: top_k_option("Items per user.", 20) = None,  # export's DEFAULT_EXPORT_K
    users: Annotated[
        str | None,
        typer.Option(
            help="Only these users: a comma-separated list, a file with one id per line, or a "
            ".csv/.parquet file with a 'user' column (or one named as the run's data.user_col). "
            "Default: every user of the run."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Users scored per model call.")] = 1024,
    include_seen: Annotated[
        bool, typer.Option("--include-seen", help="Also recommend items the user already has.")
    ] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    index: IndexOption = IndexKind.exact,
    exclude_items: ExcludeItemsOption = None,
    candidates: CandidatesOption = None,
    item_info_file: ItemInfoOption = None,
    item_fields: ItemFieldsOption = None,
    item_id_col: ItemIdColOption = None,
) -> None:
    """Write the top-k items of every (or each listed) user to a file.

    Columns user, rank, item, score, and --item-info's fields."""
    from recdiff.data.errors import UnknownIdError
    from recdiff.serving.export import export_recommendations, read_user_list

    try:
        with user_errors(FileNotFoundError, KeyError, ValueError, ImportError, run=run):
            predictor = load_with_index(run, index)
            info = item_info(item_info_file, item_fields, predictor, item_id_col)
            try:
                ids = (
                    None
                    if users is None
                    else predictor.parse_users(
                        read_user_list(users, predictor.config.data.user_col)
                    )
                )
                result = export_recommendations(
                    predictor,
                    out,
                    k=k,
                    users=ids,
                    batch_size=batch_size,
                    exclude_seen=not include_seen,
                    progress=not quiet,
                    **item_rules(exclude_items, candidates),
                    item_info=info,
                )
            except UnknownIdError as error:  # checked before a file is opened
                raise ValueError(
                    f"{error.n_unknown} listed user id(s) are not among the "
                    f"{len(predictor.users)} users of this model: {error.listed}; remove them "
                    "from --users (export ranks the run's users; score a new user from their "
                    "items with recdiff recommend --history)"
                ) from None
    except (KeyboardInterrupt, SystemExit) as stop:
        # Without a word the user could not tell a complete file from an old one left there.
        kept = " (the file already there is left as it was)" if out.is_file() else ""
        stopped(stop, f"nothing was written to {out}{kept}")
    typer.echo(
        f"wrote {result.rows:,} row{'s' * (result.rows != 1)} for {result.users:,} "
        f"user{'s' * (result.users != 1)} to {result.path} "
        f"in {result.seconds:.1f} s"
    )
    if result.empty:  # absent from the file: say why, or they would read as users left out
        who = f"{result.empty:,} of them" if result.users > 1 else "the user"
        remedy = "" if include_seen else "; --include-seen ranks the items they have too"
        typer.echo(
            f"note: {who} got no row: no item was left to recommend (their history holds "
            f"every item the rules allow){remedy}",
            err=True,
        )


def serve(
    run: RunArgument,
    host: Annotated[
        str, typer.Option(help="Interface to bind; 0.0.0.0 exposes the service to the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
    max_k: Annotated[int, typer.Option(min=1, help="Largest k a request may ask for.")] = 1000,
    max_history: Annotated[
        int, typer.Option(min=1, help="Most history items a request may send.")
    ] = 10_000,
    max_body_bytes: Annotated[
        int, typer.Option(min=64, help="Largest request body, in bytes.")
    ] = 1_000_000,
    max_batch: Annotated[
        int, typer.Option(min=1, help="Most concurrent requests scored in one model call.")
    ] = 32,
    max_wait_ms: Annotated[
        float,
        typer.Option(min=0, help="How long a batch may wait for as many requests as the last."),
    ] = 10.0,
    threads: Annotated[
        int | None,
        typer.Option(min=1, help="Torch threads for scoring. Default: torch's (one per core)."),
    ] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = True,
    index: IndexOption = IndexKind.exact,
    ef_search: Annotated[
        int,
        typer.Option(
            min=1,
            help="With --index faiss: candidates explored per query (more: higher recall, "
            "slower; 128 measured recall@20 0.94 on 1M items, see benchmarks/README.md).",
        ),
    ] = 128,
    item_info_file: ItemInfoOption = None,
    item_fields: ItemFieldsOption = None,
    item_id_col: ItemIdColOption = None,
) -> None:
    """Serve a run over HTTP: GET /health, GET /model, POST /recommend (needs the serve extra).

    With --item-info every answer also carries each item's fields, as "info"."""
    try:
        import uvicorn

        from recdiff.serving.service import create_app
    except ImportError as error:  # the service's own message names the extra too: say it once
        fail(
            f"{error.__cause__ or error}; `recdiff serve` needs the serve extra: "
            "pip install 'recdiff[serve]'"
        )
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    with user_errors(FileNotFoundError, ValueError, ImportError, run=run):
        predictor = load_with_index(run, index, ef_search=ef_search)
        info = item_info(item_info_file, item_fields, predictor, item_id_col)
        app = create_app(
            predictor,
            max_history=max_history,
            max_k=max_k,
            max_body_bytes=max_body_bytes,
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
            item_info=info,
        )
    sock = _bound_socket(host, port)
    port = sock.getsockname()[1]  # the one the system picked for --port 0
    where = f"[{host}]" if ":" in host else host
    typer.echo(f"serving {run} on http://{where}:{port} (POST /recommend; Ctrl-C stops)")
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, access_log=access_log, log_level="info")
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if not server.started:  # what uvicorn.run does (its log says why)
        raise typer.Exit(code=3)


def _bound_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` for uvicorn to serve on: binding it here turns a port in
    use or an address this machine lacks into an error line before "serving ..." is printed
    (uvicorn would log the problem after the model loaded and exit with code 3)."""
    where = f"cannot listen on {host}:{port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as error:  # UnicodeError: no valid host name at all
        fail(f"{where}: --host {host!r} is not an address or a known host name ({error})")
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        fix = {
            errno.EADDRINUSE: "the port is in use by another program; choose another --port",
            errno.EADDRNOTAVAIL: f"{host} is not an address of this machine; choose another "
            "--host (127.0.0.1 serves this machine only, 0.0.0.0 the network)",
            errno.EACCES: "ports below 1024 need administrator rights; choose another --port",
        }.get(error.errno, error.strerror or str(error))
        fail(f"{where}: {fix}")
    return sock


def report(
    run: RunArgument,
    out: Annotated[
        Path | None, typer.Option(help="The HTML file. Default: report.html in the run directory.")
    ] = None,
    compare: Annotated[
        Path | None,
        typer.Option(help="Compare with the runs in this folder. Default: the run's parent."),
    ] = None,
) -> None:
    """Write a self-contained HTML report: config, data, metrics, curves, runs on the same data."""
    from recdiff.serving.report import write_report

    with user_errors(FileNotFoundError, ValueError, run=run):
        path = write_report(run, out, compare)
    typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    for command in (export, serve, report):
        app.command()(command)
