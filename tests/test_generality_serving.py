"""After training, on data no preset was tuned on: what `recommend`, `serve`, `export`,
`evaluate` and `report` say about runs and requests a user gets wrong or cuts short.

Found by an audit of ML-100K and Amazon Toys sequence runs of every model family; each test
failed before its fix.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from recdiff.cli.main import app
from recdiff.config import load_config
from recdiff.data.errors import UnknownIdError
from recdiff.serving.predictor import Predictor
from recdiff.serving.report import build_report
from recdiff.train.run import run_training

runner = CliRunner()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A popularity run (nothing to choose on validation) and a DiffRec run that never
    validated (one epoch, validation every five), both on the demo data."""
    folder = tmp_path_factory.mktemp("generality-serving")
    popularity = run_training(load_config("demo-popularity", []), folder, progress=False)
    quick = ["train.epochs=1", "train.eval_every=5", "model.hidden_dims=[16]"]
    diffrec = run_training(
        load_config("demo-diffrec", [*quick, "model.diffusion.steps=4"]), folder, progress=False
    )
    # Since 2026-11-30 the last epoch is always validated; a run written before, with
    # train.epochs below train.eval_every, recorded that nothing was.
    metrics_path = diffrec.directory / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics_path.write_text(json.dumps({**metrics, "validated": False}))
    return popularity.directory, diffrec.directory


@pytest.mark.parametrize("checkpoint", [True, False])
def test_a_run_not_complete_yet_is_not_called_damaged_but_named_to_wait_for_or_resume(
    tmp_path, checkpoint
):
    # What `train` leaves while it runs, or after an interruption: an empty folder with the
    # run's name, and its files in a hidden folder beside it. `recommend RUN` (and evaluate,
    # export, serve, report) listed eight "missing" files and asked for "a folder written by
    # `recdiff train`", which it is.
    run = tmp_path / "my-diffrec-20261129-120000"
    hidden = tmp_path / f".{run.name}.incomplete"
    run.mkdir()
    hidden.mkdir()
    (hidden / "config.yaml").write_text(load_config("demo-diffrec", []).model_dump_json())
    if checkpoint:
        (hidden / "resume.pt").write_bytes(b"")
    remedy = f"recdiff resume {run}" if checkpoint else f"delete {hidden} and {run}"
    for given in (run, hidden):
        with pytest.raises(FileNotFoundError, match="not complete yet") as error:
            Predictor.load(given)
        assert remedy in str(error.value) and "missing" not in str(error.value)
        with pytest.raises(FileNotFoundError, match="not complete yet"):
            build_report(given)
    result = runner.invoke(app, ["recommend", str(run), "--user", "3"])
    assert result.exit_code == 2
    assert "not complete yet" in result.stderr and remedy in result.stderr


def test_the_report_says_nothing_was_chosen_on_validation_when_nothing_was(runs):
    popularity, unvalidated = runs
    # It said "selected on: validation recall@20" for both, as for a validated run.
    assert "nothing: the model has no setting chosen on validation" in build_report(popularity)
    page = build_report(unvalidated)
    assert "nothing: no validation ran, the last epoch" in page
    assert "validation recall@20</td>" not in page


@pytest.mark.parametrize("stop", [KeyboardInterrupt(), SystemExit(143)])
def test_an_interrupted_export_says_the_file_was_not_written(runs, tmp_path, monkeypatch, stop):
    # Ctrl-C or SIGTERM (raised as SystemExit(143) while the file is open) removes the
    # temporary file, but the command ended without a word: complete file or an old one?
    import recdiff.serving.export as export

    write = export._TableWriter.write

    def interrupted(self, table):  # after the first batch is on disk, in the temporary file
        write(self, table)
        raise stop

    monkeypatch.setattr(export._TableWriter, "write", interrupted)
    out = tmp_path / "recs.csv"
    out.write_text("user,rank,item,score\n")  # an earlier export
    result = runner.invoke(app, ["export", str(runs[0]), "--out", str(out), "--quiet"])
    assert result.exit_code == (130 if isinstance(stop, KeyboardInterrupt) else 143)
    assert f"nothing was written to {out} (the file already there is left as it" in result.stderr
    assert out.read_text() == "user,rank,item,score\n"
    assert [path.name for path in tmp_path.iterdir()] == ["recs.csv"]  # no temporary file left


def test_history_ids_of_the_wrong_type_are_named_with_the_unknown_ones_and_the_remedy(runs):
    # On an integer catalogue, a text id in a history was refused alone ("item ids of this run
    # are integers, got ['nope']"): the other unknown ids came one retry later, and neither the
    # CLI nor the HTTP answer said that --ignore-unknown / "ignore_unknown" drops them.
    predictor = Predictor.load(runs[0])
    known = int(predictor.items.external([0])[0])
    with pytest.raises(UnknownIdError) as error:
        predictor.recommend(history=[known, "nope", 10**9], k=3)
    message = str(error.value)
    assert "2 item id(s) not in the catalogue: ['nope', 1000000000]" in message
    assert "item ids of this run are integers, got ['nope']" in message
    assert "ignore_unknown=True (--ignore-unknown)" in message
    dropped = predictor.recommend(history=[known, "nope", 10**9], k=3, ignore_unknown=True)
    assert dropped.unknown_items == ["nope", 10**9] and len(dropped.items) == 3

    result = runner.invoke(app, ["recommend", str(runs[0]), "--history", f"{known},nope"])
    assert result.exit_code == 2 and "--ignore-unknown" in result.stderr

    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from recdiff.serving.service import create_app

    with TestClient(create_app(predictor)) as http:
        answer = http.post("/recommend", json={"history": [known, "nope"], "k": 3})
    assert answer.status_code == 422
    assert "['nope']" in answer.json()["detail"]
    assert '"ignore_unknown": true' in answer.json()["detail"]
