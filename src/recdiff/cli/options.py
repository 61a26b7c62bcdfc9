"""Options that several commands take, written once so that they read and behave alike."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = [
    "CandidatesOption",
    "ExcludeItemsOption",
    "ItemFieldsOption",
    "ItemIdColOption",
    "ItemInfoOption",
    "SetOption",
    "item_info",
    "item_rules",
    "top_k_option",
]

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a setting, e.g. --set train.epochs=5 (repeatable)."),
]


def top_k_option(what: str, default: int) -> Any:
    """``--k``/``-k``: how many items, ``default`` unless the catalogue holds fewer (None is
    passed on, and the command caps the default at the catalogue's size)."""
    return Annotated[
        int | None,
        typer.Option(
            "--k",
            "-k",
            min=1,
            help=f"{what} Default: {default}, or the catalogue's size when it holds fewer.",
            show_default=False,
        ),
    ]


ExcludeItemsOption = Annotated[
    str | None,
    typer.Option(
        help="Comma-separated item ids never to return, e.g. out of stock (ids the catalogue "
        "lacks are skipped).",
    ),
]

ItemInfoOption = Annotated[
    Path | None,
    typer.Option(
        "--item-info",
        help="An item metadata table (CSV, TSV, Parquet, JSON Lines; MovieLens' movies.dat or "
        "u.item; RecBole's .item) whose fields are shown beside each item: ids in the run's "
        "data.item_col column, else the first.",
    ),
]

ItemIdColOption = Annotated[
    str | None,
    typer.Option(
        help="With --item-info: the column that holds the item ids (default: the run's "
        "data.item_col when the file has it, else the first column).",
    ),
]

ItemFieldsOption = Annotated[
    str | None,
    typer.Option(
        help="With --item-info: the comma-separated columns to show (default: all but the id; "
        "MovieLens' title and genres, or title and release date).",
    ),
]

CandidatesOption = Annotated[
    str | None,
    typer.Option(
        help="Comma-separated item ids: rank only these, a shortlist (ids the catalogue lacks "
        "are skipped).",
    ),
]


def item_rules(exclude_items: str | None, candidates: str | None) -> dict[str, list[str] | None]:
    """``--exclude-items`` and ``--candidates`` as the keyword arguments of
    ``Predictor.recommend`` and ``export_recommendations`` (a ValueError for unreadable lists)."""
    from recdiff.serving.ids import split_id_list

    given = {"exclude_items": exclude_items, "candidates": candidates}
    return {
        name: None if text is None else split_id_list(text, f"--{name.replace('_', '-')}")
        for name, text in given.items()
    }


def item_info(
    path: Path | None, fields: str | None, predictor: Any, id_col: str | None = None
) -> Any:
    """The run's items' metadata table (an ItemInfo), or None without --item-info; --item-fields
    or --item-id-col alone is refused, since it would show nothing. A file that lists none of
    the run's items is refused too: its ids are most likely in another column (the first is
    read when none is named like data.item_col) or written otherwise."""
    if path is None:
        for option, given in (
            ("--item-fields picks columns", fields),
            ("--item-id-col names a column", id_col),
        ):
            if given is not None:
                raise ValueError(f"{option} of --item-info FILE: give that file too")
        return None
    from recdiff.serving.ids import split_id_list
    from recdiff.serving.item_info import ItemInfo

    # names as a header's are read: "title, price" is title and price, spaces dropped
    chosen = None if fields is None else [f.strip() for f in split_id_list(fields, "--item-fields")]
    info = ItemInfo(path, chosen, id_col=id_col, item_col=predictor.config.data.item_col)
    items = predictor.items.ids
    if len(items) and not any(item in info for item in items.tolist()):
        example = ", ".join(repr(str(item)) for item in items[:3])
        raise ValueError(
            f"none of the run's {len(items):,} items (e.g. {example}) is in column "
            f"{info.id_col!r} of {path} (its columns: {info.columns}): name the column of item "
            "ids with --item-id-col, or give the item file of this run's data (ids match as "
            "written: '007' is not '7')"
        )
    return info
