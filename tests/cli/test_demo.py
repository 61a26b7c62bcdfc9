"""The ``recdiff demo ddpm`` command writes its picture and rejects bad options clearly."""

import pytest
from typer.testing import CliRunner

import recdiff
from recdiff.cli.main import app

runner = CliRunner()


def test_demo_writes_a_png(tmp_path):
    out = tmp_path / "pictures" / "ddpm.png"
    result = runner.invoke(app, ["demo", "ddpm", "--out", str(out), "--iterations", "200"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "energy distance" in result.output
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]  # atomic write


def test_demo_rejects_unknown_options(tmp_path):
    result = runner.invoke(
        app, ["demo", "ddpm", "--out", str(tmp_path / "x.png"), "--prediction", "score"]
    )
    assert result.exit_code != 0
    assert "eps, x0 or v" in result.output
    result = runner.invoke(app, ["demo", "ddpm", "--out", str(tmp_path / "x.txt")])
    assert result.exit_code != 0
    assert ".png" in result.output
    assert not (tmp_path / "x.txt").exists()


@pytest.mark.parametrize("args", [["version"], ["--version"], ["--version", "train"]])
def test_version(args):
    """The command and the eager option print the package's version; the option stops there."""
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and result.output == f"{recdiff.__version__}\n"
