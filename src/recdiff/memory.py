"""Refusing work that cannot fit in memory before it starts.

Some steps allocate in one go an array whose size follows from the data's shape alone (EASE's
dense items x items matrices). On a catalogue too large for them, the allocation fails after
the data is read and split, or the kernel's OOM killer ends the process without a word; both
are worse than an error up front that says how much memory the step needs and what to change.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["NotEnoughMemory", "available_bytes", "format_bytes", "require_memory"]

_MEMINFO = Path("/proc/meminfo")


class NotEnoughMemory(ValueError):
    """A step would need more memory than the machine has available. A ValueError, as any
    other problem with the input's size: the CLI prints it as ``error: ...``."""


def available_bytes() -> int | None:
    """Memory the system can give a new allocation without swapping (Linux's MemAvailable),
    or None where it cannot be read (not Linux): callers then skip the check."""
    try:
        lines = _MEMINFO.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024  # reported in kB
    return None


def format_bytes(count: float) -> str:
    """``1.6 TB``, ``7.5 GB``, ``300 MB``: decimal units, as memory is usually quoted."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if count >= size:
            return f"{count / size:,.1f} {unit}"
    return f"{count / 1e3:,.0f} kB"


def require_memory(needed: int, what: str, fix: str) -> None:
    """Raise :class:`NotEnoughMemory` when ``needed`` bytes exceed the memory available.

    ``what`` says which step needs them and why (``"EASE on 300,000 items (dense items x items
    matrices)"``), ``fix`` what the user can change."""
    available = available_bytes()
    if available is not None and needed > available:
        raise NotEnoughMemory(
            f"{what} needs about {format_bytes(needed)} of memory, and this machine has "
            f"{format_bytes(available)} available: {fix}"
        )
