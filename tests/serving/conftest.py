"""A small DiffRec run on the demo data, trained once for all serving tests."""

from __future__ import annotations

import pytest

from recdiff.config import load_config
from recdiff.train.run import run_training

# Seconds on 2 CPU cores; the serving code only needs a fitted model, not a good one.
FAST = ["train.epochs=4", "train.eval_every=2", "model.hidden_dims=[32]", "model.diffusion.steps=4"]


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    runs = tmp_path_factory.mktemp("serving-runs")
    return run_training(load_config("demo-diffrec", FAST), runs, progress=False).directory
