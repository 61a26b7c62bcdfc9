"""Options that several commands take, written once so that they read and behave alike."""

from __future__ import annotations

from typing import Annotated, Any

import typer

__all__ = ["CandidatesOption", "ExcludeItemsOption", "SetOption", "item_rules", "top_k_option"]

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
