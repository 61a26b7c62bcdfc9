"""benchmarks/retrieval_index.py: its synthetic catalogue, a tiny end-to-end run, and its
refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _script(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(BENCHMARKS / "retrieval_index.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


def test_structured_catalogue_is_seeded_and_excludes_distinct_items():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from retrieval_index import structured_catalogue
    finally:
        sys.path.remove(str(BENCHMARKS))
    items, queries, exclude = structured_catalogue(500, 30, 10, 8, seed=3)
    assert items.shape == (500, 64) and queries.shape == (30, 64)
    assert items.dtype == np.float32 and exclude.shape == (30, 500)
    counts = np.diff(exclude.indptr)
    assert (counts >= 1).all() and (counts <= 8).all()  # repeats merged, none added
    assert set(np.unique(exclude.data)) == {1.0}
    again = structured_catalogue(500, 30, 10, 8, seed=3)
    np.testing.assert_array_equal(items, again[0])
    assert (exclude != again[2]).nnz == 0


def test_a_tiny_run_writes_both_results_files(tmp_path):
    pytest.importorskip("faiss")
    done = _script(
        *("--items", "3000", "--queries", "40", "--k", "10", "--singles", "3"),
        *("--repeats", "1", "--threads", "1", "--ef-search", "16", "64"),
        *("--exclude-items", "10", "--clusters", "20", "--results-dir", str(tmp_path)),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "retrieval_index.json").read_text())
    (row,) = result["rows"]
    assert row["items"] == 3000 and row["queries"] == 40 and row["dim"] == 64
    assert row["faiss_build"]["seconds"] > 0 and row["faiss_build"]["computed_mib"] > 0
    assert [entry["ef_search"] for entry in row["faiss"]] == [16, 64]
    for entry in row["faiss"]:
        for key in ("plain", "excluded"):
            assert 0 <= entry[key]["recall"] <= 1 and entry[key]["batch_seconds"] > 0
    assert row["faiss"][-1]["plain"]["recall"] > 0.9  # 3,000 items: ef 64 is nearly exact
    assert row["exact"]["excluded"]["single_ms"] > 0
    assert "faiss ef=64" in (tmp_path / "retrieval_index.md").read_text()


def test_bad_sizes_and_runs_are_refused_before_any_work(tmp_path):
    done = _script("--items", "40", "--exclude-items", "50", "--results-dir", str(tmp_path))
    assert done.returncode == 2 and "--exclude-items must be below" in done.stderr
    run = tmp_path / "diffrec"
    run.mkdir()
    preset = resources.files("recdiff.config") / "presets" / "demo-diffrec.yaml"
    (run / "config.yaml").write_text(preset.read_text())
    done = _script("--from-run", str(run), "--results-dir", str(tmp_path))
    assert done.returncode == 2 and "needs a next-item run" in done.stderr
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.glob("*.json"))
