"""User mistakes and damaged run folders give one ``error: ...`` line (exit code 2) naming what to
fix, never a traceback; the library's own bugs still raise."""

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from recdiff.cli.main import app

runner = CliRunner()
SMALL = {
    "demo-diffrec": ["model.hidden_dims=[32]", "model.diffusion.steps=4"],
    "demo-sasrec": ["model.dim=16"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A trained DiffRec and SASRec run (two epochs each)."""
    folder = tmp_path_factory.mktemp("runs")
    found = {}
    for preset, overrides in SMALL.items():
        sets = [
            part
            for item in ["train.epochs=2", "train.eval_every=1", *overrides]
            for part in ("--set", item)
        ]
        args = ["train", preset, *sets, "--runs-dir", str(folder / preset), "--quiet"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        (found[preset],) = list((folder / preset).iterdir())
    return found


def _one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def _damage(run, tmp_path, name, how):
    """A copy of ``run`` whose file ``name`` was changed by ``how(bytes) -> bytes``."""
    copy = shutil.copytree(run, tmp_path / "damaged")
    path = copy / name
    path.write_bytes(how(path.read_bytes()))
    return copy


# ------------------------------------------------------------------------------ train.device
@pytest.mark.parametrize(
    ("device", "gpus", "message"),
    [
        ("cuda", 0, "no CUDA GPU"),
        ("cuda:3", 2, "2 CUDA GPU(s)"),
        ("banana", 0, "not a torch device"),
    ],
)
def test_train_refuses_a_device_the_machine_lacks(tmp_path, monkeypatch, device, gpus, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    args = ["train", "demo-diffrec", "--set", f"train.device={device}"]
    result = runner.invoke(app, [*args, "--runs-dir", str(tmp_path / "runs"), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "train.device" in result.output and message in result.output
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------------ files in the way
def test_train_refuses_a_runs_dir_under_a_file(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    for runs_dir in (blocker, blocker / "sub"):
        args = ["train", "demo-diffrec", "--set", "train.epochs=1"]
        result = runner.invoke(app, [*args, "--runs-dir", str(runs_dir), "--quiet"])
        line = _one_error_line(result)
        assert f"{blocker} is a file where a folder is needed" in line
    assert blocker.read_text() == "not a folder"


def test_report_and_export_refuse_outputs_that_cannot_be_written(runs, tmp_path):
    run = runs["demo-diffrec"]
    folder = tmp_path / "folder"
    folder.mkdir()
    line = _one_error_line(runner.invoke(app, ["report", str(run), "--out", str(folder)]))
    assert f"{folder} is a folder, not a file" in line
    assert list(folder.iterdir()) == []
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    for command in (["report", str(run)], ["export", str(run), "--quiet"]):
        result = runner.invoke(app, [*command, "--out", str(blocker / "out.csv")])
        assert f"{blocker} is a file where a folder is needed" in _one_error_line(result)


# ------------------------------------------------------------------------ damaged run folders
def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


COMMANDS = {
    "evaluate": ["evaluate"],
    "recommend": ["recommend", "--user", "1"],
    "export": ["export", "--quiet", "--out"],  # the output path is appended
    "report": ["report"],
}


def _invoke(command, run, tmp_path):
    name, *options = COMMANDS[command]
    args = [name, str(run), *options]
    if command == "export":
        args.append(str(tmp_path / "recs.csv"))
    return runner.invoke(app, args)


@pytest.mark.parametrize("preset", ["demo-diffrec", "demo-sasrec"])
@pytest.mark.parametrize("command", ["evaluate", "recommend", "export"])
@pytest.mark.parametrize("how", [_truncated, lambda data: data[:100]], ids=["half", "header"])
def test_damaged_weights_are_named(runs, tmp_path, preset, command, how):
    run = _damage(runs[preset], tmp_path, "model/weights.safetensors", how)
    line = _one_error_line(_invoke(command, run, tmp_path))
    assert str(run / "model" / "weights.safetensors") in line
    assert "looks damaged" in line and "re-train" in line


def _append(text: bytes):
    return lambda data: data + text


def _replace(old: bytes, new: bytes):
    def how(data: bytes) -> bytes:
        assert old in data
        return data.replace(old, new)

    return how


def _bad_model_setting(data: bytes) -> bytes:
    meta = json.loads(data)
    meta["config"]["model"]["dropout"] = 5
    return json.dumps(meta).encode()


@pytest.mark.parametrize(
    ("name", "how", "commands", "reason"),
    [
        ("config.yaml", _append(b"train: [1, 2\n"), ["evaluate", "recommend", "report"], "YAML"),
        ("config.yaml", _replace(b"epochs: 2", b"epochs: -1"), ["evaluate"], "train.epochs"),
        ("config.yaml", _append(b"\xff\xfe"), ["evaluate", "report"], "not UTF-8"),
        ("metrics.json", lambda data: b'{"a":\n', ["evaluate", "report"], "JSON"),
        ("model/config.json", lambda data: data[:20], ["evaluate", "recommend"], "JSON"),
        ("model/config.json", _bad_model_setting, ["evaluate"], "dropout: Input should be"),
        ("data/users.json", lambda data: b"", ["evaluate"], "JSON"),
        ("data/inputs.npz", _truncated, ["evaluate"], "cannot be read"),
        ("data/inputs.npz", lambda data: b"\x93NUMPY garbage", ["evaluate"], "cannot be read"),
        # An empty file (a disk that filled up): numpy raises EOFError, which click would turn
        # into a bare "Aborted." with exit code 1.
        ("data/inputs.npz", lambda data: b"", ["evaluate"], "cannot be read"),
        ("data/seen.npz", lambda data: b"", ["evaluate", "recommend"], "cannot be read"),
    ],
    ids=[
        "yaml",
        "invalid-value",
        "encoding",
        "metrics",
        "model-config",
        "model-setting",
        "users",
        "npz",
        "npz-garbage",
        "npz-empty",
        "seen-empty",
    ],
)
def test_damaged_run_files_are_named(runs, tmp_path, name, how, commands, reason):
    run = _damage(runs["demo-diffrec"], tmp_path, name, how)
    for command in commands:
        line = _one_error_line(_invoke(command, run, tmp_path))
        assert f"{run / name}: " in line and reason in line, line
        assert "looks damaged" in line and "pydantic" not in line


# ------------------------------------------------------------------------ model settings
def test_model_errors_name_the_full_key(tmp_path):
    sets = ["model.diffusion.noise_min=0.1", "model.diffusion.noise_max=0.01", "model.foo=1"]
    args = ["train", "demo-diffrec", *(p for s in sets for p in ("--set", s))]
    result = runner.invoke(app, [*args, "--runs-dir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines[1:] == [
        "  model.diffusion: noise_min (0.1) must be smaller than noise_max (0.01)",
        "  model.foo: unknown key (this section takes: chain_inference, diffusion, dropout, "
        "hidden_dims, name, normalize_input, time_dim)",
    ]


# ------------------------------------------------------------------------ no bug is hidden
def test_errors_that_are_not_the_users_keep_their_traceback(tmp_path):
    from recdiff.cli.errors import describe, user_errors

    assert describe(RuntimeError("a bug"), (ValueError,)) is None
    assert describe(FileExistsError(17, "File exists", str(tmp_path))) is None  # a folder
    assert describe(ValueError("no such user"), (ValueError,), run=tmp_path) == "no such user"
    denied = PermissionError(13, "Permission denied", str(tmp_path / "x"))
    assert describe(denied) == f"permission denied: {tmp_path / 'x'}"
    with pytest.raises(KeyError), user_errors(ValueError):
        raise KeyError("a bug")


def test_a_full_or_read_only_disk_is_said_as_such(tmp_path):
    from safetensors import SafetensorError

    from recdiff.cli.errors import describe

    full = OSError(28, "No space left on device", str(tmp_path / "run"))
    assert describe(full) == (
        f"cannot write {tmp_path / 'run'} (No space left on device): free some space, or write "
        "to another folder (--runs-dir, --out)"
    )
    read_only = OSError(30, "Read-only file system", str(tmp_path / "run"))
    assert describe(read_only).endswith(
        "(Read-only file system): write to another folder (--runs-dir, --out)"
    )
    weights = SafetensorError(
        "Error while serializing: I/O error: No space left on device (os error 28)"
    )
    assert describe(weights).startswith("cannot write the model weights (No space left")
    quota = SafetensorError(
        "Error while serializing: I/O error: Disk quota exceeded (os error 122)"
    )
    assert describe(quota).startswith("cannot write the model weights (Disk quota exceeded (os")
    assert describe(OSError(5, "Input/output error")) is None  # not the user's to fix
    # where writing elsewhere is no remedy (resume writes into its run), what to do instead
    again = "resume it again: recdiff resume R"
    assert describe(full, retry=again).endswith("device): free some space, then " + again)
    assert describe(read_only, retry=again).endswith(
        "system): make the folder writable, then " + again
    )
    assert describe(weights, retry=again).endswith("(os error 28)): free some space, then " + again)


def test_warnings_read_as_advice_not_as_python_source(tmp_path):
    """A warning on the command line is one line of advice: no file:line, no source code."""
    import subprocess
    import sys

    args = ["train", "demo-ease", "--quiet", "--set", "model.l2_lambda_grid=[1e9,2e9]"]
    done = subprocess.run(
        [sys.executable, "-m", "recdiff", *args, "--runs-dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "warning: EASE's lambda chosen on validation, " in done.stderr
    assert "UserWarning" not in done.stderr and ".py:" not in done.stderr


def test_a_runs_folder_that_cannot_be_made_says_so(tmp_path):
    from typer.testing import CliRunner

    from recdiff.cli.main import app

    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)  # no writing (root ignores modes: /proc refuses everyone)
    runs = (locked if os.geteuid() != 0 else Path("/proc")) / "runs"
    args = ["train", "demo-ease", "--quiet", "--runs-dir", str(runs)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert f"cannot create the runs folder {runs}" in result.stderr
    assert "choose another --runs-dir" in result.stderr
