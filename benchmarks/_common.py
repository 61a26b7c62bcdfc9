"""Measurement helpers shared by the benchmarks: child processes (each measurement in a fresh
process, so peak memory is its own), peak RSS, FLOP counts, the machine's matmul peak, the
results files (JSON plus a Markdown table) under ``benchmarks/results/`` or ``--results-dir``,
argument checks, and scoring a next-item model's splits as its run's evaluation draws."""

from __future__ import annotations

import argparse
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

from recdiff.atomic import atomic_path, atomic_write_text
from recdiff.train.run_files import json_text

RESULTS = Path(__file__).parent / "results"


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median_after_warmup(seconds: Sequence[float]) -> float:
    """Median of the timings after the first (warm-up) one. With one timing there is none after
    the warm-up, and reporting the warm-up (first-touch allocations, lazy imports) as the steady
    state would be wrong: that raises, and the scripts check their epoch counts up front."""
    if len(seconds) < 2:
        raise ValueError(f"need a warm-up and at least one more timing, got {len(seconds)}")
    return statistics.median(seconds[1:])


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


def forwarded_options(args: argparse.Namespace) -> list[str]:
    """The parsed options as ``--name=value`` for a child process of the same script (all but
    ``--child``, ``--name`` and ``--results-dir``, which only the parent uses)."""
    return [
        f"--{name.replace('_', '-')}={value}"
        for name, value in vars(args).items()
        if name not in ("child", "name", "results_dir")
    ]


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


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    """``payload`` as indented strict JSON at ``path`` (NaN written as null, as run folders
    write it), written atomically: a reader (or a run stopped half-way) sees the previous file
    or the whole new one, never a truncated one."""
    atomic_write_text(path, json_text(payload, indent=2, default=str) + "\n")  # paths, devices
    return path


def write_results(
    name: str, payload: dict[str, Any], table: Sequence[str], folder: Path = RESULTS
) -> Path:
    """``NAME.json`` and ``NAME.md`` in ``folder`` (``results/``), each written atomically;
    returns the JSON path."""
    path = write_json(folder / f"{name}.json", payload)
    atomic_write_text(folder / f"{name}.md", "\n".join(table) + "\n")
    return path


def save_figure(fig: Any, path: Path, dpi: int = 120) -> None:
    """Save a matplotlib figure as PNG at ``path`` atomically (the temporary name has no
    ``.png`` suffix, so the format is named)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")


def add_results_dir(parser: argparse.ArgumentParser) -> None:
    """``--results-dir``: where the results files go (default ``benchmarks/results``), so that a
    check or a second machine need not overwrite the recorded ones."""
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS,
        help="folder for the results files (default: benchmarks/results)",
    )


def parse_device(parser: argparse.ArgumentParser, name: str) -> Any:
    """``--device`` as a torch device, cuda[:N] or cpu; anything else ends in a usage message
    (torch's own for a bad string is a traceback listing every device type)."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        parser.error(f"--device must be cuda[:N] or cpu, got {name}")
    if device.type not in ("cuda", "cpu"):
        parser.error(f"--device must be cuda[:N] or cpu, got {name}")
    return device


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer >= ``minimum``. A bad value ends in a usage message
    (exit 2) before any work, not in a traceback minutes later."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def positive_float(text: str) -> float:
    """An argparse ``type``: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """An argparse ``type``: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def check_model_kind(
    parser: argparse.ArgumentParser, name: str, kind: str, label: str, dreamrec_only: bool = False
) -> None:
    """Exit with a usage message (2) unless model ``name`` fits: a next-item model, or DreamRec
    alone. Checked before any work, since a row model (DiffRec) fails deep inside otherwise (a
    TypeError, a "damaged run", or a silently empty table). ``kind`` is "run" or "preset",
    ``label`` names it."""
    from recdiff.config.models import SEQUENTIAL_MODELS

    if dreamrec_only and name != "dreamrec":
        parser.error(f"needs a DreamRec {kind}, got {label} (model {name!r})")
    if name not in SEQUENTIAL_MODELS:
        models = ", ".join(sorted(SEQUENTIAL_MODELS))
        parser.error(f"needs a next-item {kind} ({models}), got {label} (model {name!r})")


def load_config_or_exit(parser: argparse.ArgumentParser, preset: str, overrides: Sequence[str]):
    """``recdiff.config.load_config``, a bad preset, file or override ending in a usage message
    (exit 2) rather than a traceback."""
    from recdiff.config import load_config

    try:
        return load_config(preset, list(overrides))
    except ValueError as error:  # ConfigError and the model settings' errors
        parser.error(str(error))


def run_config(parser: argparse.ArgumentParser, run: Path):
    """The resolved config of run directory ``run``, or a usage message (exit 2) when ``run``
    is not one."""
    if not (run / "config.yaml").is_file():
        parser.error(f"{run} is not a run directory (no config.yaml)")
    return load_config_or_exit(parser, str(run / "config.yaml"), [])


def row_block_scorer(model: Any, seed: int, **options: Any) -> Callable[..., Any]:
    """The run's own evaluation scorer (:func:`recdiff.train.run_sequential.row_block_scorer`):
    scores of the same run then reproduce its ``metrics.json``. One per split."""
    from recdiff.train.run_sequential import row_block_scorer as scorer

    return scorer(model, seed, **options)
