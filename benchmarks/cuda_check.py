"""Everything recdiff runs with ``train.device=cuda``, checked on a CUDA machine in one command.

    python3 benchmarks/cuda_check.py --out DIR            # on a machine with a CUDA GPU
    python3 benchmarks/cuda_check.py --out DIR --device cpu   # the same checks on the CPU

Each model family trains for a couple of epochs on the built-in demo data (the ``demo-*`` presets,
no download) in fp32 and, where the model has the setting, bf16 (autocast), with validation
every epoch; then:

- the weights (and DiffRec's diffusion tables) are on the device;
- evaluation with a fixed seed gives the same metrics twice;
- the run's checkpoint reloads on the CPU (safetensors: no ``map_location``) and scores as the
  model on the device does; moved back to the device it scores identically; the run's
  ``Predictor`` (serving) recommends the same list twice;
- DreamRec samples with DDPM and DDIM, from per-row generators on the device and on the CPU (a
  row scores the same alone as in a batch), and repeats itself when re-seeded;
- timestep sampling (uniform and loss-aware) takes a generator on the device or on the CPU;
- an EMA run, and on machines with two GPUs or more a two-process DDP run over nccl (torchrun).

Writes ``DIR/cuda_check.json`` and ``DIR/cuda_check.md`` (one row per check); exit status 0 only
if every check passed, 1 if one failed, 2 when ``--device cuda`` finds no CUDA device.

This script is the command line and the report; the checks live beside it, in
``_cuda_check_models.py`` (a trained run of each model family), ``_cuda_check_extras.py``
(timesteps, EMA, DDP) and ``_cuda_check_harness.py`` (the check runner and the comparisons).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Any

import _common
import torch
from _cuda_check_extras import check_ddp, check_ema, check_timesteps
from _cuda_check_harness import Checks
from _cuda_check_models import (
    ALL_MODELS,
    HAS_PRECISION,
    SEQUENCE_MODELS,
    check_row_model,
    check_sequence_model,
)


def environment(device: torch.device) -> dict[str, Any]:
    import recdiff

    env = {
        "recdiff": recdiff.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
    }
    if device.type == "cuda":
        env.update(
            cuda=torch.version.cuda,
            gpu=torch.cuda.get_device_name(device),
            gpus=torch.cuda.device_count(),
            bf16_supported=torch.cuda.is_bf16_supported(),
            nccl_available=torch.distributed.is_nccl_available(),
        )
    return env


def write_results(out: Path, env: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    passed = all(row["ok"] for row in rows)
    table = [
        f"# recdiff CUDA check: {'all passed' if passed else 'FAILED'}",
        "",
        ", ".join(f"{k} {v}" for k, v in env.items()),
        "",
    ]
    table += _common.markdown_table(
        ["check", "result", "seconds", "notes"],
        [
            [
                row["check"],
                "skipped" if row.get("skipped") else ("ok" if row["ok"] else "**FAIL**"),
                row["seconds"],
                row.get("error") or row.get("skipped") or _short(row["details"]),
            ]
            for row in rows
        ],
    )
    summary = {"passed": passed, "environment": env, "checks": rows}
    _common.write_results("cuda_check", summary, table, out)


def _short(details: dict[str, Any]) -> str:
    shown = {k: v for k, v in details.items() if k not in ("directory", "stdout")}
    text = json.dumps(shown, default=str)
    return (text[:300] + "...") if len(text) > 300 else text.replace("|", "/")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the results files")
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument(
        "--epochs", type=_common.positive_int, default=2, help="training epochs per run"
    )
    parser.add_argument("--models", nargs="+", choices=ALL_MODELS, default=list(ALL_MODELS))
    parser.add_argument(
        "--precisions", nargs="+", choices=("fp32", "bf16"), default=["fp32", "bf16"]
    )
    parser.add_argument("--skip-extras", action="store_true", help="no timestep/EMA/DDP checks")
    parser.add_argument(
        "--threads", type=_common.positive_int, default=None, help="torch CPU threads"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = _common.parse_device(parser, args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(
            f"cuda_check: --device {args.device} but torch {torch.__version__} sees no CUDA "
            "device (CPU-only build or no GPU): run it on a CUDA machine, or pass --device cpu "
            "to exercise the same checks on the CPU",
            file=sys.stderr,
        )
        return 2
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    args.out.mkdir(parents=True, exist_ok=True)
    checks = Checks()
    env = environment(device)
    print(f"cuda_check on {env}", flush=True)
    for name in args.models:
        for precision in args.precisions:
            if precision != "fp32" and name not in HAS_PRECISION:
                continue
            if name in SEQUENCE_MODELS:
                check_sequence_model(checks, name, precision, args, device)
            else:
                check_row_model(checks, name, precision, args, device)
    if not args.skip_extras:
        check_timesteps(checks, device)
        check_ema(checks, args, device)
        check_ddp(checks, args, device)
    write_results(args.out, env, checks.rows)
    failed = [row["check"] for row in checks.rows if not row["ok"]]
    print(
        f"{len(checks.rows) - len(failed)}/{len(checks.rows)} checks passed; results in "
        f"{args.out / 'cuda_check.md'}"
    )
    if failed:
        print("failed: " + "; ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
