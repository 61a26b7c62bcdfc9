"""The HTTP service against bodies a client may send by mistake: a JSON object naming a key twice,
JSON that Python's reader gives up on, and its own failures, all answered as JSON that says what
happened; and the note of a list that request rules left empty."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.sparse as sp
import torch

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from recdiff.config import load_config
from recdiff.data import Vocabulary
from recdiff.models.popularity import Popularity
from recdiff.serving.predictor import Predictor
from recdiff.serving.service import create_app

JSON = {"content-type": "application/json"}
# Users a, b, c; items i0..i4 seen by 3, 2, 1, 1 and 0 users: popularity scores 3, 2, 1, 1, 0.
TRAIN = np.array([[1, 1, 0, 0, 0], [1, 0, 1, 0, 0], [1, 1, 0, 1, 0]], dtype=np.float32)
# What user b (who has i0 and i2) and user c (i0, i1, i3) get, best first.
USER_B = {"items": ["i1", "i3", "i4"], "scores": [2.0, 1.0, 0.0]}
USER_C = {"items": ["i2", "i4"], "scores": [1.0, 0.0]}


def popularity_predictor() -> Predictor:
    train = sp.csr_matrix(TRAIN)
    return Predictor(
        Popularity().fit(train),
        Vocabulary.from_ids(["a", "b", "c"]),
        Vocabulary.from_ids([f"i{i}" for i in range(5)]),
        train,
        train,
        load_config("demo-popularity"),
        {"model": "popularity"},
    )


@pytest.fixture(scope="module")
def http(serve_app):
    with serve_app(create_app(popularity_predictor())) as client:
        yield client


def answer(response) -> dict:
    assert response.status_code == 200, response.text
    body = response.json()
    return {"items": body["items"], "scores": body["scores"]}


@pytest.mark.parametrize(
    ("body", "key", "times"),
    [
        (b'{"user": "b", "user": "c", "k": 3}', "user", "twice"),  # answered for c before
        (b'{"user": "b", "k": 3, "k": 2}', "k", "twice"),
        (b'{"history": ["i0"], "history": ["i1"], "history": ["i2"]}', "history", "3 times"),
        # an escaped spelling is the same key once read
        (b'{"user": "b", "\\u0075ser": "c", "k": 3}', "user", "twice"),
        (b'{"user": "b", "exclude_seen": true, "exclude_seen": false}', "exclude_seen", "twice"),
    ],
    ids=["user", "k", "history-3-times", "escaped-key", "exclude_seen"],
)
def test_a_body_naming_a_key_twice_is_refused_with_the_key_named(http, body, key, times):
    """Python's JSON reader kept the last of two equal keys without a word: {"user": "b",
    "user": "c"} was answered for c, while a proxy or a log reading the first one saw b."""
    response = http.post("/recommend", content=body, headers=JSON)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith(
        f'invalid request: the body names the key "{key}" {times}; a JSON reader keeps only one '
        "of them (which one differs between readers): send each key once. Send a JSON object"
    ), detail
    assert response.json()["errors"][0]["loc"] == ["body", key]
    assert response.json()["errors"][0]["type"] == "duplicate_key"


def test_keys_named_once_are_answered_as_before(http):
    # one key each, in any spelling: the answers of the Python API
    assert answer(http.post("/recommend", json={"user": "b", "k": 3})) == USER_B
    assert answer(http.post("/recommend", content=b'{"user": "c", "k": 3}', headers=JSON)) == USER_C
    # a body that is not read as JSON still says so (not a duplicate key)
    form = http.post(
        "/recommend",
        content=b'{"user": "b", "user": "c"}',
        headers={"content-type": "text/plain"},
    )
    assert form.status_code == 422 and "not as JSON" in form.json()["detail"]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        # Python reads integers of at most 4300 digits: FastAPI answered a 400 "There was an
        # error parsing the body", unlike any other malformed body (422 saying why)
        (
            b'{"user": "b", "k": ' + b"1" * 5000 + b"}",
            "the body cannot be read as JSON (a number in it has more than the 4300 digits "
            "Python reads); no id or k is that long",
        ),
        (
            b'{"history": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            "the body cannot be read as JSON (its arrays or objects nest too deeply); ids are "
            "integers or strings in a flat list",
        ),
    ],
    ids=["5000-digit-k", "deep-nesting"],
)
def test_json_that_python_cannot_read_gets_a_422_that_says_why(serve_app, body, why):
    app = create_app(popularity_predictor(), max_body_bytes=1_000_000)
    with serve_app(app) as client:
        response = client.post("/recommend", content=body, headers=JSON)
        assert response.status_code == 422, response.text
        assert response.json()["detail"].startswith(f"invalid request: {why}. Send a JSON"), (
            response.json()["detail"]
        )
        assert answer(client.post("/recommend", json={"user": "b", "k": 3})) == USER_B


def test_the_services_own_failure_is_a_json_500_and_it_keeps_serving(serve_app):
    """A model that scores NaN (a diverged run) made POST /recommend answer the text "Internal
    Server Error", the one answer of the service that was not JSON."""
    predictor = popularity_predictor()
    score = predictor.model.score
    app = create_app(predictor)
    with serve_app(app) as client:
        predictor.model.score = lambda rows: torch.full((rows.shape[0], 5), float("nan"))
        failed = client.post("/recommend", json={"user": "b", "k": 3})
        assert failed.status_code == 500
        assert failed.headers["content-type"] == "application/json"
        assert failed.json() == {
            "detail": "internal error (ValueError) answering POST /recommend; the service's log "
            "holds the traceback"
        }
        predictor.model.score = score
        assert answer(client.post("/recommend", json={"user": "b", "k": 3})) == USER_B


def test_the_openapi_document_describes_the_error_bodies(http):
    """The documented errors had no body at all, while every one answers {"detail": ...}."""
    responses = http.get("/openapi.json").json()["paths"]["/recommend"]["post"]["responses"]
    for code in ("400", "404", "413", "422", "500"):
        schema = responses[code]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorBody"}, code
    error_body = http.get("/openapi.json").json()["components"]["schemas"]["ErrorBody"]
    assert error_body["required"] == ["detail"]
    assert error_body["properties"]["detail"]["type"] == "string"


def test_a_list_that_the_requests_rules_leave_empty_says_no_item_is_left(http):
    """The note read "only 0 catalogue items are left to recommend ..."."""
    # user c has i0, i1, i3: i2 and i4 are left, and the request excludes both
    response = http.post("/recommend", json={"user": "c", "k": 2, "exclude_items": ["i2", "i4"]})
    assert response.status_code == 200
    assert response.json()["items"] == []
    assert response.json()["note"] == (
        "no catalogue item is left to recommend once the request's excluded items, the items "
        "outside its candidates and the history's items are left out"
    )
    one = popularity_predictor().recommend(user="c", k=2, exclude_items=["i4"])
    assert one.items == ["i2"] and one.scores == [1.0]
    assert one.note.startswith("only 1 catalogue item is left to recommend once")


def test_a_request_that_fails_to_score_fails_alone_not_its_batch(serve_app):
    """Requests scored together in one model call all got the 500 of the one whose row scored
    NaN, though each of the others is answered when it comes alone."""
    predictor = popularity_predictor()
    score, started, release = predictor.model.score, threading.Event(), threading.Event()

    def nan_for_item_3(rows):
        if not started.is_set():  # the first call holds the worker while the others queue
            started.set()
            release.wait(30)
        scores = torch.as_tensor(np.asarray(score(rows)), dtype=torch.float32).clone()
        scores[torch.from_numpy(rows[:, 3].toarray().ravel() > 0)] = float("nan")
        return scores

    predictor.model.score = nan_for_item_3
    app = create_app(predictor, max_wait_ms=0)
    with serve_app(app) as client, ThreadPoolExecutor(3) as pool:
        first = pool.submit(client.post, "/recommend", json={"user": "a", "k": 3})
        assert started.wait(30)
        fine = pool.submit(client.post, "/recommend", json={"user": "b", "k": 3})
        poisoned = pool.submit(client.post, "/recommend", json={"history": ["i3"], "k": 3})
        while app.state.batcher._queue.qsize() < 2:  # both wait for the next model call
            threading.Event().wait(0.01)
        release.set()
        assert answer(first.result()) == {"items": ["i2", "i3", "i4"], "scores": [1.0, 1.0, 0.0]}
        assert answer(fine.result()) == USER_B
        assert poisoned.result().status_code == 500
        assert client.get("/health").json()["scored"]["model_calls"] == 4  # 1, 2 together, 1+1


@pytest.mark.parametrize(
    ("method", "path", "hint"),
    [
        ("post", "/recommend/", " (without the trailing slash: /recommend)"),
        ("get", "/health/", " (without the trailing slash: /health)"),
        ("get", "/recommendations", ""),
    ],
)
def test_a_path_the_service_has_not_is_a_404_naming_its_paths(http, method, path, hint):
    """Not a 307 to the path without the slash: behind a proxy that ends TLS, Starlette's
    redirect pointed the client at plain http."""
    kwargs = {"json": {"user": "b"}} if method == "post" else {}
    response = getattr(http, method)(path, follow_redirects=False, **kwargs)
    assert response.status_code == 404
    assert response.json() == {
        "detail": f"no path {path} here{hint}: the service answers GET /health, GET /model, "
        "POST /recommend"
    }


def test_an_unknown_user_is_still_its_own_404(http):
    response = http.post("/recommend", json={"user": "z"})
    assert response.status_code == 404 and "no path" not in response.json()["detail"]
