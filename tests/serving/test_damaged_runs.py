"""A run folder whose data files do not match its model fails to load, naming the files, instead of
loading fine and failing every request (an IndexError in the CLI, a 500 from the service)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

from recdiff.cli.main import app
from recdiff.serving.predictor import Predictor

DAMAGED = "looks damaged: re-train the run or restore the folder from a backup"


def _cut_ids(n: int):
    def how(run, name):
        vocabulary = json.loads((run / name).read_text())
        vocabulary["ids"] = vocabulary["ids"][:n]
        (run / name).write_text(json.dumps(vocabulary))

    return how


def _resized(rows: int | None, columns: int | None):
    def how(run, name):
        matrix = sp.load_npz(run / name).tocsr()
        shape = (rows or matrix.shape[0], columns or matrix.shape[1])
        sp.save_npz(run / name, sp.csr_matrix(shape, dtype=np.float32))

    return how


def _rewritten(vocabulary):
    def how(run, name):
        (run / name).write_text(json.dumps(vocabulary))

    return how


@pytest.mark.parametrize(
    ("name", "how", "named", "reason"),
    [
        (
            "data/items.json",
            _cut_ids(400),
            ["data/items.json"],
            "holds 400 item ids, but the model (model/config.json) scores 500 items",
        ),
        (
            "data/users.json",
            _cut_ids(900),
            ["data/users.json", "data/inputs.npz"],
            "holds a 1000 x 500 matrix, but the run has 900 users",
        ),
        (
            "data/inputs.npz",
            _resized(None, 400),
            ["data/inputs.npz"],
            "holds a 1000 x 400 matrix, but the run has 1000 users (data/users.json) and 500 items",
        ),
        (
            "data/seen.npz",
            _resized(1200, None),
            ["data/users.json", "data/seen.npz"],
            "holds a 1200 x 500 matrix",
        ),
        (
            "data/users.json",
            _rewritten({"kind": "int", "ids": [1, 2], "extra": 1}),
            ["data/users.json"],
            "a vocabulary JSON must be an object with exactly the keys 'kind' and 'ids'",
        ),
        (
            "data/items.json",
            _rewritten({"kind": "int", "ids": [2, 1]}),
            ["data/items.json"],
            "Vocabulary ids must be sorted and unique",
        ),
    ],
    ids=["items-cut", "users-cut", "inputs-columns", "seen-rows", "users-keys", "items-unsorted"],
)
def test_data_that_does_not_match_the_model_is_named_at_load(
    run_dir, tmp_path, name, how, named, reason
):
    run = shutil.copytree(run_dir, tmp_path / "damaged")
    how(run, name)
    with pytest.raises(ValueError) as caught:
        Predictor.load(run)
    message = str(caught.value)
    assert message.startswith(" and ".join(str(run / n) for n in named) + ": "), message
    assert reason in message and message.endswith(f"the run folder {run} {DAMAGED}")


@pytest.mark.parametrize("command", [["recommend", "--user", "3"], ["serve", "--port", "0"]])
def test_the_cli_and_the_service_refuse_such_a_run_with_one_error_line(
    run_dir, tmp_path, monkeypatch, command
):
    if command[0] == "serve":
        pytest.importorskip("fastapi")
        uvicorn = pytest.importorskip("uvicorn")

        def serve(*args, **kwargs):  # a service that would answer every request with a 500
            raise AssertionError("the damaged run was served")

        monkeypatch.setattr(uvicorn, "run", serve)
        monkeypatch.setattr(uvicorn.Server, "run", serve)
    run = shutil.copytree(run_dir, tmp_path / "damaged")
    _cut_ids(400)(run, "data/items.json")
    result = CliRunner().invoke(app, [command[0], str(run), *command[1:]])
    assert result.exit_code == 2, result.output
    assert result.output.splitlines() == [
        f"error: {run / 'data/items.json'}: holds 400 item ids, but the model "
        f"(model/config.json) scores 500 items; the run folder {run} {DAMAGED}"
    ]


@pytest.mark.parametrize("written", ["[]", "null", '"metrics"'], ids=["list", "null", "text"])
def test_metrics_that_are_not_a_mapping_are_named_at_load(run_dir, tmp_path, written):
    """metrics.json holding JSON that is no object loaded fine, then `recdiff serve` ended in an
    AttributeError traceback (the service reads the metrics for GET /model)."""
    pytest.importorskip("fastapi")
    from recdiff.serving.service import create_app

    run = shutil.copytree(run_dir, tmp_path / "damaged")
    (run / "metrics.json").write_text(written)
    kind = type(json.loads(written)).__name__
    expected = (
        f"{run / 'metrics.json'}: holds a {kind}, not the mapping `recdiff train` writes; the "
        f"run folder {run} {DAMAGED}"
    )
    with pytest.raises(ValueError) as caught:
        create_app(run)
    assert str(caught.value) == expected
    result = CliRunner().invoke(app, ["serve", str(run), "--port", "0"])
    assert result.exit_code == 2, result.output
    assert result.output.splitlines() == [f"error: {expected}"]


def test_a_next_item_runs_metrics_that_are_not_a_mapping_are_named_at_load(tmp_path):
    from recdiff.config import load_config
    from recdiff.train.run import run_training

    config = load_config("demo-sasrec", ["train.epochs=1", "train.eval_every=1"])
    run = run_training(config, tmp_path / "runs", progress=False).directory
    (run / "metrics.json").write_text("[1, 2]")
    with pytest.raises(ValueError) as caught:
        Predictor.load(run)
    assert str(caught.value) == (
        f"{run / 'metrics.json'}: holds a list, not the mapping `recdiff train` writes; the run "
        f"folder {run} {DAMAGED}"
    )


@pytest.mark.parametrize("content", [b"", b"garbage{"], ids=["empty", "not-a-zip"])
def test_an_npz_that_is_no_archive_is_named_without_advising_pickle(run_dir, tmp_path, content):
    # An empty file (a full disk) made numpy raise EOFError, which nothing caught; a garbage one
    # made it suggest loading the file with allow_pickle, unsafe advice for a damaged file.
    run = shutil.copytree(run_dir, tmp_path / "damaged")
    (run / "data/inputs.npz").write_bytes(content)
    with pytest.raises(ValueError) as caught:
        Predictor.load(run)
    message = str(caught.value)
    assert message == (
        f"{run / 'data/inputs.npz'}: cannot be read (not a numpy .npz archive); "
        f"the run folder {run} {DAMAGED}"
    )
