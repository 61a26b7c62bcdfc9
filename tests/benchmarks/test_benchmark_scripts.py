"""The speed benchmarks run end to end at small sizes and write their results files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _run(script: str, *args: str, timeout: float = 240) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(BENCHMARKS / script), *args]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    assert done.returncode == 0, done.stderr[-4000:]


def test_large_catalog_at_a_small_size(tmp_path):
    _run(
        "large_catalog.py",
        *("--users", "1500", "--items", "4000", "--eval-users", "200", "--item-chunk", "1000"),
        *("--diffrec-steps", "2", "--threads", "1", "--results-dir", str(tmp_path)),
    )
    result = json.loads((tmp_path / "large_catalog.json").read_text())
    ldiffrec, diffrec = result["rows"]
    assert result["sizes"]["users"] == 1500 and result["sizes"]["items"] == 4000
    assert ldiffrec["autoencoder_epoch_seconds"] > 0 and ldiffrec["diffusion_epoch_seconds"] > 0
    assert ldiffrec["peak_rss_mib"] >= ldiffrec["rss_after_imports_mib"] > 0
    # DiffRec's [4000 + 10 -> 600 -> 200 -> 600 -> 4000] MLP, counted by hand.
    n = 4000
    assert diffrec["computed"]["parameters"] == (
        (n + 10) * 600 + 600 + 600 * 200 + 200 + 200 * 600 + 600 + 600 * n + n
    )
    assert "L-DiffRec" in (tmp_path / "large_catalog.md").read_text()


@pytest.mark.slow
def test_run_all_on_the_demo_data(tmp_path):
    _run(
        "run_all.py",
        *("--models", "diffrec", "ldiffrec", "--epochs", "1", "--ddp-epochs", "2"),
        *("--threads", "1", "--peak-size", "256", "--results-dir", str(tmp_path)),
        *("--set", "data.format=demo", "--set", "data.source=null"),
        *("--set", "ldiffrec:model.latent.item_embeddings=null"),
    )
    result = json.loads((tmp_path / "run_all.json").read_text())
    diffrec, ldiffrec = result["rows"]
    assert set(ldiffrec["epoch_seconds"]) == {"autoencoder", "diffusion"}
    assert diffrec["train_gflop_per_s"] > 0 and diffrec["eval_gflop_per_s"] > 0
    assert set(diffrec["ddp"]) == {"1", "2"} and diffrec["ddp"]["2"]["train"] > 0
    assert result["matmul_peak"]["fp32"] > 0 and result["matmul_peak"]["bf16"] > 0
