"""A small DiffRec run on the demo data, trained once for all serving tests."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from recdiff.config import load_config
from recdiff.train.run import run_training

# Seconds on 2 CPU cores; the serving code only needs a fitted model, not a good one.
FAST = ["train.epochs=4", "train.eval_every=2", "model.hidden_dims=[32]", "model.diffusion.steps=4"]


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    runs = tmp_path_factory.mktemp("serving-runs")
    return run_training(load_config("demo-diffrec", FAST), runs, progress=False).directory


@contextlib.contextmanager
def serving(app):
    """An httpx client of ``app`` served by a real uvicorn on a free loopback port."""
    import httpx
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # the OS picks a free port; uvicorn serves on this socket
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the service did not start"
        time.sleep(0.01)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            yield http
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
    assert not thread.is_alive(), "the service did not shut down"


@pytest.fixture(scope="session")
def serve_app():
    """``with serve_app(app) as http:`` serves ``app`` for the block."""
    return serving


@pytest.fixture(scope="session")
def named_predictor(run_dir):
    """The run's predictor with string ids: users u0000..u0999, items i000..i499."""
    from recdiff.data import Vocabulary
    from recdiff.serving.predictor import Predictor

    loaded = Predictor.load(run_dir)
    return Predictor(
        loaded.model,
        Vocabulary.from_ids([f"u{i:04d}" for i in range(len(loaded.users))]),
        Vocabulary.from_ids([f"i{i:03d}" for i in range(len(loaded.items))]),
        loaded.inputs,
        loaded.seen,
        loaded.config,
        loaded.metrics,
    )
