"""Progress bars: shown when asked for and when they have somewhere to draw.

A bar on a stderr that is not a terminal (a log file, ``nohup``, CI, a scheduler) writes carriage
returns and cursor codes into the log, so there it is hidden (tqdm's ``disable=None``). Notebooks
still get their widget: tqdm.auto's notebook bar treats ``None`` as shown.
"""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm

__all__ = ["progress_bar"]


def progress_bar(iterable: Any = None, *, show: bool, **options: Any) -> tqdm:
    """``tqdm(iterable, **options)``, hidden unless ``show`` and stderr is a terminal."""
    return tqdm(iterable, disable=None if show else True, **options)
