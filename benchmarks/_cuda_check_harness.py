"""What one check of ``cuda_check.py`` is, and how its outcomes are compared: the runner that
records each check without letting a failure stop the rest, the score comparisons, and where a
model's weights live. Kept apart from the checks so that each family's checks read as a list."""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np
import torch


class Checks:
    """Runs named checks, records each one's outcome, and never lets one failure stop the rest."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def run(self, name: str, check: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
        start = time.perf_counter()
        try:
            details = check() or {}
            row = {"check": name, "ok": True, "details": details}
        except Skipped as skip:
            details, row = None, {"check": name, "ok": True, "skipped": str(skip), "details": {}}
        except Exception as error:  # every failure is recorded, then reported
            details = None
            row = {
                "check": name,
                "ok": False,
                "error": f"{type(error).__name__}: {error}",
                "traceback": traceback.format_exc(limit=8)[-3000:],
                "details": {},
            }
        row["seconds"] = round(time.perf_counter() - start, 2)
        self.rows.append(row)
        status = "skip" if row.get("skipped") else ("ok" if row["ok"] else "FAIL")
        print(f"[{status:>4}] {name} ({row['seconds']} s) {row.get('error', '')}", flush=True)
        return details


class Skipped(Exception):
    """A check that does not apply on this machine (e.g. DDP with one GPU)."""


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.equal(a.cpu(), b.cpu())


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().float().cpu() - b.detach().float().cpu()).abs().max())


def close_enough(a, b, what: str, rel: float) -> float:
    """Max abs difference of two score blocks; fails above ``rel`` x their scale."""
    a, b = torch.as_tensor(a).float().cpu(), torch.as_tensor(b).float().cpu()
    if a.shape != b.shape:
        raise AssertionError(f"{what}: shapes {tuple(a.shape)} and {tuple(b.shape)} differ")
    diff = max_diff(a, b)
    scale = max(float(b.abs().max()), 1e-6)
    if not diff <= rel * scale:
        raise AssertionError(f"{what}: max |difference| {diff:.3g} above {rel:g} x {scale:.3g}")
    return diff


def topk_overlap(a, b, k: int = 10) -> float:
    a, b = torch.as_tensor(a).float().cpu(), torch.as_tensor(b).float().cpu()
    top_a, top_b = a.topk(k, dim=1).indices.numpy(), b.topk(k, dim=1).indices.numpy()
    return float(np.mean([np.isin(x, y).mean() for x, y in zip(top_a, top_b, strict=True)]))


def finite_metrics(metrics: dict[str, Any]) -> None:
    for split in ("valid", "test"):
        bad = {k: v for k, v in metrics[split].items() if not math.isfinite(v)}
        if bad:
            raise AssertionError(f"{split} metrics not finite: {bad}")


def on_device(model, device: torch.device) -> dict[str, Any]:
    """Where the trained model's weights (and diffusion tables) are."""
    details = {}
    module = getattr(model, "module", None)
    if module is not None:
        kinds = {p.device.type for p in module.parameters()}
        details["weights"] = sorted(kinds)
        if kinds != {device.type}:
            raise AssertionError(f"weights on {kinds}, not on {device.type}")
    process = getattr(model, "process", None)
    if process is not None:  # DiffRec keeps its CPU process and a copy per device it ran on
        kinds = {process.betas.device.type} | {
            d.type for d in getattr(model, "_process_copies", {})
        }
        details["process"] = sorted(kinds)
        if device.type not in kinds:
            raise AssertionError(f"diffusion tables only on {sorted(kinds)}, not on {device}")
    return details


def moved_to(model, device: torch.device):
    """A loaded model (on the CPU) moved to ``device``."""
    from recdiff.models.multvae import MultVAE
    from recdiff.models.sequential import SequentialRecommender

    if isinstance(model, MultVAE):
        return model.to(device)
    if isinstance(model, SequentialRecommender):
        model.net.to(device)
    else:  # the DiffRec family: the trained module (its process follows the rows)
        model.module.to(device)
    return model
