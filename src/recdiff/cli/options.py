"""Options that several commands take, written once so that they read and behave alike."""

from __future__ import annotations

from typing import Annotated, Any

import typer

__all__ = ["SetOption", "top_k_option"]

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
