"""SIGHUP (a closed terminal, a dropped SSH session) stops a command as SIGTERM does: cleanup
runs, the unfinished run folder goes, and the CLI says so in one line with the status a shell
gives it (129). Under nohup (SIGHUP ignored) nothing changes. Before, a hang-up ended the
process on the spot and left a run's hidden folder behind."""

from __future__ import annotations

import os
import signal
import time

import pytest
from typer.testing import CliRunner

from recdiff.atomic import sigterm_unwinds, stop_signal
from recdiff.cli.main import app
from recdiff.config import load_config
from recdiff.experiments.tune import stop_reason
from recdiff.train.run import run_training

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP here")

FAST = ["train.epochs=10", "train.eval_every=5", "model.hidden_dims=[16]"]


@pytest.fixture
def sighup_default():
    """SIGHUP at its default action for the test (a runner may start the tests under nohup)."""
    before = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, before)


def test_a_hang_up_removes_the_partial_run(tmp_path, sighup_default):
    def hang_up(record):
        if record.get("event") == "epoch":
            os.kill(os.getpid(), signal.SIGHUP)

    with pytest.raises(SystemExit) as stopped:
        run_training(load_config("demo-diffrec", FAST), tmp_path, progress=False, on_event=hang_up)
    assert stopped.value.code == 128 + signal.SIGHUP
    assert stop_signal(stopped.value) == "SIGHUP"
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL  # the handler is gone again


def test_an_ignored_hang_up_stays_ignored(sighup_default):
    """nohup starts a command with SIGHUP ignored: it must go on as before."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    with sigterm_unwinds():
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(0.05)  # a handler would have run by now
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN


def test_the_cli_and_a_search_name_the_signal(monkeypatch, tmp_path):
    from recdiff.train import run

    def hung_up(*args, **kwargs):
        raise SystemExit(128 + signal.SIGHUP)  # what run_training's sigterm_unwinds raises

    monkeypatch.setattr(run, "run_training", hung_up)
    result = CliRunner().invoke(app, ["train", "demo-diffrec", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 129
    assert result.stderr.startswith("error: stopped by SIGHUP; no run was written")
    assert stop_reason(SystemExit(129)) == "stopped by SIGHUP"
    assert stop_reason(SystemExit(143)) == "stopped by SIGTERM"
    assert stop_signal(SystemExit(1)) is None and stop_signal(KeyboardInterrupt()) is None
