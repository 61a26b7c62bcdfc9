"""`recdiff serve` says what is wrong, on one ``error:`` line with exit code 2, before it claims to
serve: a port in use, a host this machine cannot listen on, a run folder that does not exist."""

from __future__ import annotations

import socket

import pytest
from typer.testing import CliRunner

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

from recdiff.cli.main import app  # noqa: E402

runner = CliRunner()
TRAIN = "`recdiff train`"


def _one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_a_port_in_use_is_an_error_before_serving(run_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _one_error_line(runner.invoke(app, ["serve", str(run_dir), "--port", str(port)]))
    assert line == (
        f"error: cannot listen on 127.0.0.1:{port}: the port is in use by another program; "
        "choose another --port"
    )


def test_a_host_that_is_no_address_is_an_error(run_dir):
    # .invalid never resolves (RFC 6761).
    result = runner.invoke(app, ["serve", str(run_dir), "--host", "nosuch.invalid"])
    line = _one_error_line(result)
    assert "cannot listen on nosuch.invalid:8000: --host 'nosuch.invalid' is not an address" in line


def test_a_run_folder_that_does_not_exist_says_so(tmp_path):
    missing = tmp_path / "no-such-run"
    line = _one_error_line(runner.invoke(app, ["serve", str(missing)]))
    assert line == f"error: {missing} does not exist: pass a run folder written by {TRAIN}"
    afile = tmp_path / "afile"
    afile.write_text("x")
    line = _one_error_line(runner.invoke(app, ["recommend", str(afile), "--user", "1"]))
    assert line == f"error: {afile} is a file, not a folder: pass a run folder written by {TRAIN}"


def test_serving_announces_the_port_it_listens_on(run_dir, monkeypatch):
    served = []

    def run(server, sockets=None):  # instead of serving until Ctrl-C
        served.append(sockets[0].getsockname())
        server.started = True

    monkeypatch.setattr(uvicorn.Server, "run", run)
    result = runner.invoke(app, ["serve", str(run_dir), "--port", "0"])
    assert result.exit_code == 0, result.output
    ((host, port),) = served
    assert host == "127.0.0.1" and port != 0  # --port 0: the system picked one
    assert result.output.splitlines() == [
        f"serving {run_dir} on http://127.0.0.1:{port} (POST /recommend; Ctrl-C stops)"
    ]
