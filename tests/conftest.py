"""Shared fixtures: the location of the papers' datasets, and seeding."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[1]


def _datasets_root() -> Path:
    env = os.environ.get("RECDIFF_DATASETS")
    return Path(env) if env else _REPO.parent / "shared" / "datasets"


def pytest_collection_modifyitems(config, items):
    """Skip ``data`` tests cleanly when the shared datasets are not on this machine."""
    if _datasets_root().is_dir():
        return
    skip = pytest.mark.skip(
        reason=f"datasets folder {_datasets_root()} not found (set RECDIFF_DATASETS)"
    )
    for item in items:
        if item.get_closest_marker("data") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def datasets_root() -> Path:
    """Root of the read-only real datasets (``../shared/datasets`` or ``$RECDIFF_DATASETS``)."""
    return _datasets_root()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one intra-op thread for a module of tiny matrices, where thread hand-offs cost
    more than they save (worst on a busy machine); the count is restored after it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def torchrun_failing_job(tmp_path):
    """Run ``torchrun --standalone --nproc_per_node=2 ARGS...`` that is expected to fail, and
    return its output. The test fails if the job is still running after ``timeout`` seconds: a
    failed process must end the job at once, not leave the others waiting in a collective."""
    import subprocess
    import sys

    def run(*args: str, timeout: float = 90) -> str:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command += ["--nproc_per_node=2", *args]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        log = tmp_path / "torchrun.log"  # a file, not a pipe: hung workers would hold a pipe
        with log.open("w") as sink:
            job = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
            try:
                job.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                job.terminate()  # torchrun stops its workers (SIGTERM, then SIGKILL after 30 s)
                job.wait(timeout=90)
                pytest.fail(f"the job was still running after {timeout:.0f} s: {args}")
        assert job.returncode != 0, log.read_text()[-2000:]
        return log.read_text()

    return run
