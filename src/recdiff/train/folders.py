"""How a run folder is named while it is written (no torch here: serving reads these names).

``recdiff train`` reserves ``runs/NAME`` (empty until the run completes) and writes into the
hidden ``runs/.NAME.incomplete``, renamed to ``NAME`` once complete; a resume checkpoint
(:data:`CHECKPOINT_FILE`) in it lets ``recdiff resume`` complete an interrupted run.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CHECKPOINT_FILE", "final_and_unfinished", "reserved", "unfinished"]

#: The resume checkpoint's file name in an unfinished run folder.
CHECKPOINT_FILE = "resume.pt"
_SUFFIX = ".incomplete"


def unfinished(final: Path) -> Path:
    """Where the run that will become ``final`` is written until it is complete."""
    return final.parent / f".{final.name}{_SUFFIX}"


def reserved(unfinished_folder: Path) -> Path:
    """The reserved name of the run being written into ``unfinished_folder``
    (:func:`unfinished`'s inverse)."""
    return unfinished_folder.parent / unfinished_folder.name[1:].removesuffix(_SUFFIX)


def final_and_unfinished(run: Path) -> tuple[Path, Path]:
    """The reserved and the unfinished folder of a run given by either of them."""
    if run.name.startswith(".") and run.name.endswith(_SUFFIX):
        return reserved(run), run
    return run, unfinished(run)
