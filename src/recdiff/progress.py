"""Progress bars: shown when asked for and when they have somewhere to draw.

A bar on a stderr that is not a terminal (a log file, ``nohup``, CI, a scheduler) writes carriage
returns and cursor codes into the log, so there it is hidden (tqdm's ``disable=None``). Notebooks
still get their widget: tqdm.auto's notebook bar treats ``None`` as shown.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm.auto import tqdm

__all__ = ["note", "progress_bar"]


def progress_bar(iterable: Any = None, *, show: bool, **options: Any) -> tqdm:
    """``tqdm(iterable, **options)``, hidden unless ``show`` and stderr is a terminal."""
    return tqdm(iterable, disable=None if show else True, **options)


def note(text: str, *, show: bool) -> None:
    """One line on stderr, where the bars draw, when ``show`` (a run's ``train.progress``):
    said before a long step so that a user sees what it works on. Unlike a bar it is written
    to logs too, once."""
    if show:
        tqdm.write(text, file=sys.stderr)
