"""The prepared GPU check (benchmarks/cuda_check.py) runs its logic on the CPU with --device cpu,
and refuses clearly (exit 2) when asked for CUDA on a machine without it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "cuda_check.py"


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(SCRIPT), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_it_exits_2_with_a_message(tmp_path):
    done = _run("--out", str(tmp_path))
    assert done.returncode == 2
    assert "no CUDA device" in done.stderr and "--device cpu" in done.stderr
    assert not (tmp_path / "cuda_check.json").exists()


def test_on_the_cpu_a_row_model_and_dreamrec_pass_every_check(tmp_path):
    done = _run(
        *("--out", str(tmp_path), "--device", "cpu", "--threads", "1", "--epochs", "1"),
        *("--models", "diffrec", "dreamrec", "--precisions", "fp32"),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "cuda_check.json").read_text())
    assert result["passed"] and result["environment"]["device"] == "cpu"
    names = [row["check"] for row in result["checks"]]
    for expected in (
        "diffrec fp32: seeded evaluation repeats exactly",
        "diffrec fp32: checkpoint reloads (CPU, then cpu) and recommends",
        "dreamrec fp32: ddim per-row CPU generators on cpu",
        "timestep samplers take generators on the CPU and the device",
    ):
        assert expected in names
    ddp = next(row for row in result["checks"] if row["check"].startswith("DDP"))
    assert "skipped" in ddp  # no GPUs here
    assert "all passed" in (tmp_path / "cuda_check.md").read_text()


@pytest.mark.slow
def test_on_the_cpu_every_model_family_and_precision_passes(tmp_path):
    done = _run("--out", str(tmp_path), "--device", "cpu", "--threads", "1", timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "cuda_check.json").read_text())
    trained = {row["check"].split(":")[0] for row in result["checks"] if "train" in row["check"]}
    assert {"diffrec bf16", "ldiffrec-sparse bf16", "multvae fp32", "sasrec bf16"} <= trained
