"""Measurement helpers shared by the benchmarks: child processes (each measurement in a fresh
process, so peak memory is its own), peak RSS, FLOP counts, the machine's matmul peak, and the
results files (JSON plus a Markdown table) under ``benchmarks/results/``."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median_after_warmup(seconds: Sequence[float]) -> float:
    """Median of the timings after the first (warm-up) one; the only one if there is one."""
    return statistics.median(seconds[1:] if len(seconds) > 1 else seconds)


def run_child(command: Sequence[str], timeout: float | None = None, **env: str) -> dict[str, Any]:
    """Run ``command`` (extra environment ``env``) and parse the last line of its stdout as JSON.

    A failing child raises with its stderr, so a benchmark never reports half a measurement.
    """
    done = subprocess.run(
        list(command),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-4000:]}"
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def python_child(script: str | Path, *args: str, timeout: float | None = None) -> dict[str, Any]:
    """:func:`run_child` of ``python3 script args``."""
    return run_child([sys.executable, str(script), *args], timeout=timeout)


def count_flops(fn: Callable[[], Any]) -> int:
    """Floating-point operations of the matmuls/convolutions ``fn`` runs (forward and backward);
    torch's FlopCounterMode, so elementwise work and sparse products are not counted."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def matmul_peak_gflops(dtype: str, size: int = 4096, repeats: int = 3) -> float:
    """Best GFLOP/s of a ``size`` x ``size`` torch.mm on the CPU in ``dtype`` (float32/bfloat16)."""
    import torch

    a = torch.randn(size, size).to(getattr(torch, dtype))
    b = torch.randn(size, size).to(getattr(torch, dtype))
    torch.mm(a, b)  # warm-up: thread pool, packing buffers
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def machine(threads: int | None = None) -> dict[str, Any]:
    """What the numbers belong to."""
    import torch

    return {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "threads": threads,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def pct(value: float) -> str:
    """A fraction as a percentage with two decimals (0.0165 -> "1.65")."""
    return f"{100 * value:.2f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A Markdown table; the first column left-aligned, the others right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def write_results(
    name: str, payload: dict[str, Any], table: Sequence[str], folder: Path = RESULTS
) -> Path:
    """``NAME.json`` and ``NAME.md`` in ``folder`` (``results/``); returns the JSON path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")  # paths, devices
    (folder / f"{name}.md").write_text("\n".join(table) + "\n")
    return path
