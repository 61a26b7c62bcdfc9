"""Warnings that point at the caller's line, not at recdiff's.

A fixed ``stacklevel`` is right for one call path only: ``DiffRec.fit`` and ``DiffRec.score``
reach the same check at different depths, and a split function warns from two frames down
inside ``prepare``. :func:`warn` walks up to the first frame outside the package instead, so
the warning names the line of the user's script (or of the ``recdiff`` entry point), and
Python's once-per-location filter counts that line.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import warnings

__all__ = ["warn"]

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep

# Decorators' frames between a recdiff method and its caller (``torch.no_grad`` on ``score``,
# ``functools.wraps`` wrappers): passed over as part of the call into recdiff.
_WRAPPERS = {os.path.abspath(contextlib.__file__), os.path.abspath(functools.__file__)}
_WRAPPER_SUFFIX = os.path.join("torch", "utils", "_contextlib.py")


def _inside(filename: str) -> bool:
    path = os.path.abspath(filename)
    return path.startswith(_PACKAGE) or path in _WRAPPERS or path.endswith(_WRAPPER_SUFFIX)


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)`` attributed to the first caller outside recdiff."""
    frame = sys._getframe(0)
    level = 1
    while frame is not None and _inside(frame.f_code.co_filename):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
