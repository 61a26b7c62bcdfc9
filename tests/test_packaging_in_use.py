"""recdiff as a user gets it: a built wheel, installed away from the checkout, and the optional
extras (serve, tune, tensorboard, ann) absent. Each command that needs a missing extra ends in
one ``error:`` line that names it, exit code 2, before it writes or announces anything."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from fnmatch import fnmatch
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

_REPO = Path(__file__).resolve().parents[1]
_PACKAGE = _REPO / "src" / "recdiff"


def _pyproject() -> dict:
    return tomllib.loads((_REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _data_files() -> list[str]:
    """Every file of the package the code reads at run time (presets, search spaces, py.typed):
    all but the Python sources."""
    return sorted(
        path.relative_to(_PACKAGE).as_posix()
        for path in _PACKAGE.rglob("*")
        if path.is_file() and path.suffix not in {".py", ".pyc"} and "__pycache__" not in path.parts
    )


def test_package_data_globs_cover_every_data_file():
    globs = _pyproject()["tool"]["setuptools"]["package-data"]["recdiff"]
    missing = [name for name in _data_files() if not any(fnmatch(name, g) for g in globs)]
    assert not missing, f"not in the wheel (add to [tool.setuptools.package-data]): {missing}"


def test_typer_minimum_runs_the_command_line():
    # typer < 0.12.4 cannot build options typed `list[str] | None` (every command fails at
    # start-up), and typer < 0.16 breaks `--help` with click >= 8.2, which pip installs beside it.
    (spec,) = [d for d in _pyproject()["project"]["dependencies"] if d.startswith("typer")]
    low = re.fullmatch(r"typer>=([\d.]+)", spec.split(";")[0].strip())
    assert low is not None, spec
    assert tuple(int(part) for part in low.group(1).split(".")) >= (0, 16), spec


# One interpreter (importing torch takes seconds) where the extras' packages cannot be imported,
# as on an install without them; each command's exit code and output come back as JSON.
_SCRIPT = """
import contextlib, io, json, sys
for name in ("tensorboard", "optuna", "fastapi", "faiss"):
    sys.modules[name] = None
from recdiff.cli.main import app

results = []
for args in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            app(args)
            code = 0
        except SystemExit as stop:
            code = stop.code
        except Exception as error:
            code = repr(error)
    results.append({"code": code, "out": out.getvalue(), "err": err.getvalue()})
print(json.dumps(results))
"""


def _run_without_extras(*commands: list[str]) -> list[dict]:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, json.dumps(commands)],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def _one_error_line(result: dict, extra: str) -> str:
    lines = result["err"].strip().splitlines()
    assert result["code"] == 2, result
    assert len(lines) == 1 and lines[0].startswith("error: "), result
    assert "Traceback" not in result["err"]
    assert lines[0].count(f"pip install 'recdiff[{extra}]'") == 1, lines[0]
    return lines[0]


def test_a_missing_extra_ends_each_command_with_one_error_line(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    tensorboard = ["--set", "train.tensorboard=true"]
    train, experiment, tune_tb, tune, serve = _run_without_extras(
        ["train", "demo-popularity", "--quiet", "--runs-dir", str(runs), *tensorboard],
        ["experiment", "demo-popularity", "--seeds", "1", "--out", str(out), *tensorboard],
        ["tune", "demo-popularity", "--space", "diffrec-paper", "--out", str(out), *tensorboard],
        ["tune", "demo-popularity", "--space", "diffrec-paper", "--out", str(out)],
        ["serve", str(tmp_path)],  # the extra is checked before the run is read
    )
    for result in (train, experiment, tune_tb):
        assert "train.tensorboard" in _one_error_line(result, "tensorboard")
    # Nothing trained or written: the check comes before the first run starts.
    assert not runs.exists() and not out.exists()
    _one_error_line(tune, "tune")
    assert "searching" not in tune["out"]  # no study announced that will never exist
    assert "fastapi" in _one_error_line(serve, "serve")  # named once, with the missing module


@pytest.mark.slow
def test_an_installed_wheel_runs_from_another_folder(tmp_path):
    """Build the wheel from a copy of the working tree (no build/ or egg-info left in the
    checkout), install it in a venv that sees the system's torch, and run the first commands
    of the README from a folder outside the checkout."""
    tree = tmp_path / "tree"
    listed = ["git", "-C", str(_REPO), "ls-files", "-z", "--cached", "--others"]
    listed += ["--exclude-standard"]
    names = subprocess.run(listed, capture_output=True, check=True).stdout.decode()
    for name in filter(None, names.split("\0")):
        if (_REPO / name).is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(_REPO / name, tree / name)
    dist = tmp_path / "dist"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*build, "-w", str(dist), str(tree)], check=True, timeout=300)
    (wheel,) = dist.glob("recdiff-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
    missing = [name for name in _data_files() if f"recdiff/{name}" not in names]
    assert not missing, missing
    assert b"License-Expression: MIT" in metadata

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", wheel],
        check=True,
        timeout=300,
    )
    cwd = tmp_path / "cwd"
    cwd.mkdir()

    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    environment.pop("PYTHONPATH", None)

    def run(*args: str | Path) -> str:
        done = subprocess.run(
            args, cwd=cwd, capture_output=True, text=True, timeout=300, env=environment
        )
        assert done.returncode == 0, (args, done.stderr)
        return done.stdout

    where = run(python, "-c", "import recdiff; print(recdiff.__file__, recdiff.__version__)")
    assert where.startswith(str(venv)), where  # the wheel's copy, not the checkout's
    recdiff = venv / "bin" / "recdiff"
    assert run(python, "-m", "recdiff", "--version").strip() == where.split()[1]
    assert "demo-diffrec" in run(recdiff, "presets").split()
    trained = run(recdiff, "train", "demo-popularity", "--quiet")
    (run_dir,) = (cwd / "runs").iterdir()
    assert run_dir.name in trained
    assert run(recdiff, "recommend", run_dir, "--user", "3", "-k", "3").strip()
