"""A run whose catalogue holds fewer than 10 items, served every way (Python, CLI, HTTP): the
default ``k`` fits it; the service answers ``HEAD`` on its ``GET`` endpoints, names a body that is
not UTF-8 text, and shows an example request its own ``k`` limit accepts."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import scipy.sparse as sp
import yaml
from typer.testing import CliRunner

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from recdiff.cli.main import app as cli
from recdiff.config import load_config
from recdiff.data import Vocabulary
from recdiff.models.popularity import Popularity
from recdiff.serving.predictor import Predictor
from recdiff.serving.service import create_app

runner = CliRunner()

# Users a, b, c; items i0..i4 seen by 3, 2, 1, 1 and 0 users: popularity scores 3, 2, 1, 1, 0.
TRAIN = np.array([[1, 1, 0, 0, 0], [1, 0, 1, 0, 0], [1, 1, 0, 1, 0]], dtype=np.float32)
# User a has i0 and i1: left are i2 and i3 (1 each; the tie goes to the lower index), then i4.
USER_A = {"items": ["i2", "i3", "i4"], "scores": [1.0, 1.0, 0.0]}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A popularity run folder of 3 users and 5 items, written by hand (no training)."""
    run = tmp_path_factory.mktemp("tiny") / "tiny-popularity"
    (run / "data").mkdir(parents=True)
    config = load_config("demo-popularity")
    (run / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json")))
    (run / "metrics.json").write_text(json.dumps({"name": "tiny", "model": "popularity"}))
    train = sp.csr_matrix(TRAIN)
    Popularity().fit(train).save(run / "model")
    (run / "data/users.json").write_text(Vocabulary.from_ids(["a", "b", "c"]).to_json())
    (run / "data/items.json").write_text(Vocabulary.from_ids([f"i{i}" for i in range(5)]).to_json())
    for name in ("inputs", "seen"):
        sp.save_npz(run / f"data/{name}.npz", train)
    return run


@pytest.fixture(scope="module")
def http(tiny_run, serve_app):
    with serve_app(create_app(tiny_run)) as client:
        yield client


def test_the_default_k_fits_a_catalogue_of_fewer_than_10_items_everywhere(tiny_run, http):
    # Before: the CLI and the Python API refused their own default ("k must lie in 1..5 ...,
    # got 10", a k nobody typed), while the service answered.
    answers = {"python": Predictor.load(tiny_run).recommend(user="a").to_dict()}
    result = runner.invoke(cli, ["recommend", str(tiny_run), "--user", "a", "--json"])
    assert result.exit_code == 0, result.output
    answers["cli"] = json.loads(result.stdout)
    answers["http"] = http.post("/recommend", json={"user": "a"}).json()
    for answer in answers.values():
        assert {key: answer[key] for key in USER_A} == USER_A
        assert answer["note"].startswith("only 3 catalogue items are not already in the history")
    # a k given above the catalogue is still the caller's mistake
    result = runner.invoke(cli, ["recommend", str(tiny_run), "--user", "a", "--k", "6"])
    assert result.exit_code == 2 and "k must lie in 1..5" in result.output


def test_export_defaults_to_the_whole_catalogue_when_it_holds_fewer_than_20_items(
    tiny_run, tmp_path
):
    out = tmp_path / "recs.csv"
    result = runner.invoke(cli, ["export", str(tiny_run), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output  # before: "k must lie in 1..5 ..., got 20"
    with out.open() as file:
        rows = [
            (r["user"], int(r["rank"]), r["item"], float(r["score"])) for r in csv.DictReader(file)
        ]
    assert rows == [
        ("a", 1, "i2", 1.0), ("a", 2, "i3", 1.0), ("a", 3, "i4", 0.0),
        ("b", 1, "i1", 2.0), ("b", 2, "i3", 1.0), ("b", 3, "i4", 0.0),
        ("c", 1, "i2", 1.0), ("c", 2, "i4", 0.0),
    ]  # fmt: skip


def test_k_has_the_short_option_k(tiny_run, tmp_path):
    result = runner.invoke(cli, ["recommend", str(tiny_run), "--user", "a", "-k", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["items"] == USER_A["items"][:2]
    out = tmp_path / "recs.csv"
    result = runner.invoke(cli, ["export", str(tiny_run), "--out", str(out), "-k", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    with out.open() as file:
        assert [(r["user"], r["item"]) for r in csv.DictReader(file)] == [
            ("a", "i2"),
            ("b", "i1"),
            ("c", "i2"),
        ]


def test_a_body_that_is_not_utf8_text_gets_a_422_that_says_so(http):
    # Latin-1 "café", as a shell or an editor on another locale writes it: before, a 400 that
    # said only "There was an error parsing the body".
    body = '{"user": "café"}'.encode("latin-1")
    response = http.post("/recommend", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "not UTF-8 text: byte 0xe9 at position 13" in detail
    assert "send the JSON encoded as UTF-8" in detail


def test_get_endpoints_answer_head(http):
    # Monitors probe with HEAD (curl -I): before, 405 Method Not Allowed, as if the service
    # had no /health.
    for path in ("/health", "/model"):
        response = http.head(path)
        assert response.status_code == 200 and response.content == b"", path
    assert http.head("/recommend").status_code == 405  # POST only, as before


def test_the_example_request_in_an_error_is_one_this_service_accepts(http):
    response = http.post("/recommend", json={"user": "a", "k": 6})
    assert response.status_code == 422
    detail = response.json()["detail"]
    # before: "Send a JSON object such as {"user": 3, "k": 10} ...", itself refused here
    assert '"k": 10' not in detail
    assert 'Send a JSON object such as {"user": 3, "k": 5} or {"history": [12, 7, 40], "k": 5}' in (
        detail
    )
    assert http.post("/recommend", json={"user": "a", "k": 5}).status_code == 200


def test_a_wrong_method_gets_a_405_that_names_the_methods_and_shows_a_request(http):
    # before: a bare {"detail": "Method Not Allowed"}, where every other mistake gets a hint
    for method in ("GET", "PUT"):
        response = http.request(method, "/recommend")
        assert response.status_code == 405 and response.headers["allow"] == "POST"
        assert response.json() == {
            "detail": f"{method} /recommend is not allowed: /recommend takes POST. POST "
            '/recommend takes a JSON object such as {"user": 3, "k": 5} or {"history": '
            '[12, 7, 40], "k": 5}'
        }
    base = str(http.base_url).rstrip("/")
    for path in ("/health", "/model"):
        response = http.post(path, json={"user": "a"})
        # GET and HEAD: FastAPI's header named GET only, the first of the path's routes
        assert response.status_code == 405 and response.headers["allow"] == "GET, HEAD"
        assert response.json() == {
            "detail": f"POST {path} is not allowed: {path} takes GET or HEAD. GET {path} takes "
            f"no body, e.g. curl -s {base}{path}"
        }
    nowhere = http.get("/nowhere")  # a path it has not: a 404 naming the paths it has
    assert nowhere.status_code == 404 and nowhere.json()["detail"].startswith("no path /nowhere")
