"""Writing on a misbehaving file system, as a user meets it: a disk that fills up while a command
writes (or that has no inode left) ends in one ``error:`` line, leaves nothing half-written, and
the same command run again once there is room completes. The full disk is injected (no mounts):
a writer that takes some bytes and then fails with ENOSPC, as a file on a full disk does."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from typer.testing import CliRunner

from recdiff.cli.main import app
from recdiff.config import load_config
from recdiff.train.run import resumable_from, run_training

runner = CliRunner()
TINY = ["--set", "train.epochs=3", "--set", "train.eval_every=1", "--quiet"]


def _disk_full() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _one_error_line(result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("error: ") and all(w in lines[-1] for w in words), result.output


class _FullDisk:
    """A binary file that takes ``room`` bytes and then fails as a full disk does."""

    def __init__(self, handle, room: int) -> None:
        self.handle, self.room = handle, room

    def write(self, data) -> int:
        data = bytes(data)
        if len(data) > self.room:
            self.handle.write(data[: self.room])
            self.room = 0
            raise _disk_full()
        self.room -= len(data)
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()


def test_a_disk_that_fills_while_a_resume_checkpoint_is_written(monkeypatch, tmp_path):
    """torch words a failed write as a RuntimeError of its own ('unexpected pos ...', or
    'basic_ios::clear' given a path): `train` ended in that traceback. Now it says the disk is
    full and where, removes the run, and trains it once there is room."""
    real_save = torch.save

    def save_on_a_full_disk(obj, f, *args, **kwargs):
        with open(f, "wb") if isinstance(f, str | os.PathLike) else open(os.devnull, "wb") as fh:
            # A file object (the fix writes through one) is wrapped as it is.
            target = f if hasattr(f, "write") else fh
            return real_save(obj, _FullDisk(target, 2048), *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_on_a_full_disk)
    runs = tmp_path / "runs"
    command = ["train", "demo-diffrec", *TINY, "--set", "train.checkpoint_every=1"]
    result = runner.invoke(app, [*command, "--runs-dir", str(runs)])
    _one_error_line(result, "resume.pt", "No space left on device", "free some space")
    assert list(runs.iterdir()) == []  # neither the hidden run nor its reserved name

    monkeypatch.setattr(torch, "save", real_save)  # space freed: the same command completes
    again = runner.invoke(app, [*command, "--runs-dir", str(runs)])
    assert again.exit_code == 0, again.output
    assert [p.name.startswith(".") for p in runs.iterdir()] == [False]


class _CutShort:
    """``events.jsonl`` opened to append on a disk that fills mid-line: half of the line is
    written, then the write fails."""

    def __init__(self, handle) -> None:
        self.handle = handle

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.handle.close()

    def write(self, text: str) -> int:
        self.handle.write(text[: len(text) // 2])
        self.handle.flush()
        raise _disk_full()


def test_a_resume_cut_short_by_a_full_disk_resumes_once_there_is_room(monkeypatch, tmp_path):
    """A resume whose event log append met a full disk keeps the run (to resume again) with a
    torn last line in events.jsonl; the next resume read that line as JSON and failed with
    'error: Unterminated string starting at: line 1 column ...', so the run could never be
    completed. A torn last line is a record logged after the last checkpoint: it is dropped."""
    config = load_config(
        "demo-diffrec", ["train.epochs=4", "train.eval_every=1", "train.checkpoint_every=1"]
    )
    seen = []

    def stop_at_the_third_epoch(record):
        seen.append(record["event"])
        if seen.count("epoch") == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as stopped:
        run_training(config, tmp_path / "runs", progress=False, on_event=stop_at_the_third_epoch)
    run = resumable_from(stopped.value)
    assert run is not None

    real_open = Path.open

    def open_on_a_full_disk(self, mode="r", *args, **kwargs):
        handle = real_open(self, mode, *args, **kwargs)
        return _CutShort(handle) if self.name == "events.jsonl" and "a" in mode else handle

    monkeypatch.setattr(Path, "open", open_on_a_full_disk)
    result = runner.invoke(app, ["resume", str(run), "--quiet"])
    # resuming writes into the run's own folder: "write to another folder" is no remedy there
    _one_error_line(
        result, "No space left on device", f"then resume it again: recdiff resume {run}"
    )
    assert "--runs-dir" not in result.output
    hidden = run.parent / f".{run.name}.incomplete"
    assert not (hidden / "events.jsonl").read_text().endswith("\n")  # the torn line

    monkeypatch.setattr(Path, "open", real_open)
    again = runner.invoke(app, ["resume", str(run), "--quiet"])
    assert again.exit_code == 0, again.output
    records = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["event"] == "epoch"] == [1, 2, 3, 4]
    assert not hidden.exists()


def test_no_inode_left_for_the_hidden_run_folder_leaves_no_reserved_folder(monkeypatch, tmp_path):
    """The reserved RUN folder was created, then the hidden .RUN.incomplete beside it failed (no
    inode or quota left): the empty RUN stayed behind for good (nothing cleans a reserved folder
    without its hidden one)."""
    real_mkdir = Path.mkdir

    def mkdir_without_inodes(self, *args, **kwargs):
        if self.name.endswith(".incomplete"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir_without_inodes)
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["train", "demo-ease", "--quiet", "--runs-dir", str(runs)])
    _one_error_line(result, ".incomplete", "No space left on device", "free some space")
    assert list(runs.iterdir()) == []


# ------------------------------------------------------------------------------- tune's study
def _sqlite_full() -> sqlite3.OperationalError:
    """The error SQLite raises on a full disk (SQLITE_FULL, 'database or disk is full'), from
    a database that may not grow."""
    db = sqlite3.connect(":memory:")
    try:
        db.execute("PRAGMA max_page_count = 1")
        db.execute("CREATE TABLE one (x)")
        db.execute("CREATE TABLE two (x)")
    except sqlite3.OperationalError as error:
        return error
    finally:
        db.close()
    raise AssertionError("SQLite grew a database past its max_page_count")


class _StudyDiskFills:
    """While on, SQLite fails every statement that writes (after the first ``after``) with the
    error a full disk gives it, where SQLAlchemy runs it: Optuna sees what it would see."""

    def __init__(self, after: int = 0) -> None:
        self.after = after

    def execute(self, cursor, statement, parameters, context) -> None:
        if statement.lstrip().split(" ", 1)[0].upper() in {"INSERT", "UPDATE", "CREATE"}:
            if self.after <= 0:
                raise _sqlite_full()
            self.after -= 1

    def __enter__(self):
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        for name in ("do_execute", "do_executemany"):
            event.listen(Engine, name, self.execute)
        return self

    def __exit__(self, *exc) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        for name in ("do_execute", "do_executemany"):
            event.remove(Engine, name, self.execute)


def _tune(out: Path, space: Path, trials: int):
    command = ["tune", "demo-ease", "--space", str(space), "--out", str(out)]
    return runner.invoke(app, [*command, "--trials", str(trials)])


def test_a_full_disk_under_the_study_says_so_and_the_search_continues_after(tmp_path):
    """A new study on a full disk was 'cannot be opened as the search's study ... move it away'
    (it is the search's study), and a full disk during the search a traceback of Optuna's
    'invalid data in the commit'. Both are now the full disk, and the same command continues
    the study once there is room."""
    pytest.importorskip("optuna")
    space = tmp_path / "space.yaml"
    space.write_text("model.l2_lambda: {type: float, low: 10, high: 1000, log: true}\n")
    with _StudyDiskFills():
        fresh = _tune(tmp_path / "fresh", space, 1)
    _one_error_line(fresh, "study", "database or disk is full", "free some space")

    out = tmp_path / "search"
    with _StudyDiskFills(after=40):  # in the middle of the second trial
        full = _tune(out, space, 3)
    assert "trial 0: valid/recall@20" in full.output
    _one_error_line(full, str(out / "study.db"), "database or disk is full", "free some space")

    again = _tune(out, space, 3)
    assert again.exit_code == 0, again.output
    states = [line.split(",")[1] for line in (out / "trials.csv").read_text().splitlines()[1:]]
    assert states.count("COMPLETE") == 3


def test_a_first_save_on_a_full_disk_leaves_no_empty_model_folder(monkeypatch, tmp_path):
    """SavedModel.save made its folder, then the weights met a full disk: the empty folder
    stayed, and looked like a model folder that had lost its files."""
    from recdiff.models import Popularity, base

    model = Popularity().fit(sp.csr_matrix(np.eye(3, dtype=np.float32)))

    def full(*args, **kwargs):
        raise _disk_full()

    monkeypatch.setattr(base, "save_file", full)
    with pytest.raises(OSError, match="No space left"):
        model.save(tmp_path / "new" / "model")
    assert not (tmp_path / "new" / "model").exists()
    saved = tmp_path / "kept"
    monkeypatch.undo()
    model.save(saved)
    monkeypatch.setattr(base, "save_file", full)
    with pytest.raises(OSError):
        model.save(saved)  # a folder that was there before is left, with its model
    assert Popularity.load(saved).n_items == 3
