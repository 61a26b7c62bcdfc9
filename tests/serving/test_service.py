"""The real HTTP service (uvicorn on a loopback port) against the Python API, and its 4xx answers."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.sparse as sp

httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from recdiff.serving.predictor import Predictor  # noqa: E402
from recdiff.serving.service import create_app  # noqa: E402

MAX_HISTORY, MAX_K, MAX_BODY = 50, 100, 2_000


@pytest.fixture(scope="module")
def predictor(run_dir):
    return Predictor.load(run_dir)


@pytest.fixture(scope="module")
def client(run_dir, serve_app):
    """A client of the service of ``run_dir``, served by uvicorn in a background thread."""
    app = create_app(run_dir, max_history=MAX_HISTORY, max_k=MAX_K, max_body_bytes=MAX_BODY)
    with serve_app(app) as http:
        yield http


def test_health_and_model_describe_the_run(client, run_dir, predictor):
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["scored"]["model_calls"] <= health["scored"]["requests"]
    info = client.get("/model").json()
    stored = json.loads((run_dir / "metrics.json").read_text())
    assert info["model"] == "diffrec" and info["run"] == run_dir.name
    assert info["n_items"] == len(predictor.items) == 500
    assert info["n_users"] == len(predictor.users) == 1000
    assert info["metrics"]["test"] == stored["test"]
    assert info["metrics"]["valid"]["recall@20"] == stored["valid"]["recall@20"]


@pytest.mark.parametrize(
    ("body", "call"),
    [
        ({"user": 3, "k": 7}, {"user": 3, "k": 7}),
        ({"user": 3}, {"user": 3, "k": 10}),  # k defaults to 10
        ({"user": "3", "k": 5}, {"user": 3, "k": 5}),  # ids typed as text still match
        ({"user": 3, "k": 5, "exclude_seen": False}, {"user": 3, "k": 5, "exclude_seen": False}),
        ({"history": [4, 17, 230], "k": 8}, {"history": [4, 17, 230], "k": 8}),
        (
            {"history": [4, 17, 99999], "k": 8, "ignore_unknown": True},
            {"history": [4, 17, 99999], "k": 8, "ignore_unknown": True},
        ),
    ],
)
def test_answers_equal_the_python_api(client, predictor, body, call):
    response = client.post("/recommend", json=body)
    assert response.status_code == 200, response.text
    expected = predictor.recommend(**call)
    answer = response.json()
    assert answer["items"] == expected.items and len(answer["items"]) == call["k"]
    assert answer["scores"] == pytest.approx(expected.scores, rel=1e-6, abs=1e-7)
    assert answer["unknown_items"] == expected.unknown_items
    if call.get("ignore_unknown"):
        assert answer["unknown_items"] == [99999]
    if call.get("exclude_seen", True) and "history" in call:
        assert not set(answer["items"]) & set(call["history"])


def test_concurrent_requests_are_batched_without_changing_answers(client, predictor):
    users = predictor.users.external(list(range(0, 1000, 41))).tolist()

    def ask(user):
        return client.post("/recommend", json={"user": user, "k": 4 + user % 5}).json()

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, users))
    for user, answer in zip(users, answers, strict=True):
        expected = predictor.recommend(user=user, k=4 + user % 5)
        assert answer["items"] == expected.items
        assert answer["scores"] == pytest.approx(expected.scores, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"user": 99999}, 404, "user 99999 is not among the 1000 users"),
        # Ids beyond int64 are in no vocabulary (numpy cannot even look them up).
        ({"user": 10**30}, 404, f"user {10**30} is not among the 1000 users"),
        (
            {"history": [4, -(10**30)]},
            422,
            f"1 history item id(s) not in the catalogue: [{-(10**30)}]",
        ),
        ({"user": "abc"}, 422, "integers"),
        ({"history": [4, 99999, 99998]}, 422, "2 history item id(s) not in the catalogue"),
        ({"history": [4, 99999]}, 422, '"ignore_unknown": true'),
        (
            {"history": [4, "nope", 99999]},
            422,
            "2 history item id(s) not in the catalogue: ['nope', 99999] (item ids of this run are "
            "integers, got ['nope']); remove them",
        ),
        (
            {"history": [99999], "ignore_unknown": True},
            422,
            "none of the history's 1 item id(s) is in the catalogue ([99999])",
        ),
        ({"history": []}, 400, "history is empty"),
        ({"history": [1] * (MAX_HISTORY + 1)}, 413, f"limit of {MAX_HISTORY}"),
        ({"user": 3, "k": 0}, 422, "k: Input should be greater than or equal to 1"),
        ({"user": 3, "k": MAX_K + 1}, 422, f"k: Input should be less than or equal to {MAX_K}"),
        ({"user": 3, "k": "ten"}, 422, "k: Input should be a valid integer"),
        ({"k": 3}, 422, 'exactly one of "user"'),
        ({"user": 3, "history": [4]}, 422, 'exactly one of "user"'),
        ({"usr": 3}, 422, "usr: Extra inputs are not permitted"),
        ({"history": [4, [5]]}, 422, "history.1"),
        ([3], 422, "valid dictionary"),
    ],
)
def test_bad_requests_get_a_4xx_that_says_what_to_fix(client, body, status, message):
    response = client.post("/recommend", json=body)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]


def test_history_ids_beyond_int64_are_dropped_as_unknown(client, predictor):
    body = {"history": [4, 10**30, 17], "k": 5, "ignore_unknown": True}
    response = client.post("/recommend", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["unknown_items"] == [10**30]
    assert response.json()["items"] == predictor.recommend(history=[4, 17], k=5).items


def test_malformed_or_missing_json(client):
    response = client.post(
        "/recommend", content=b'{"user": 3,', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert "the body is not valid JSON" in response.json()["detail"]
    assert '{"user": 3, "k": 10}' in response.json()["detail"]  # shows what a good body is
    response = client.post("/recommend")
    assert response.status_code == 422 and "no JSON body" in response.json()["detail"]
    # curl -d without -H 'content-type: application/json' sends a form: FastAPI reads no JSON.
    for media, sent in [
        ("application/x-www-form-urlencoded", "as application/x-www-form-urlencoded"),
        (None, "without a Content-Type"),
    ]:
        headers = {"content-type": media} if media else {}
        response = client.post("/recommend", content=b'{"user": 3}', headers=headers)
        assert response.status_code == 422
        assert f"the body was sent {sent}, not as JSON" in response.json()["detail"]
        assert "Content-Type: application/json" in response.json()["detail"]
    response = client.post(
        "/recommend",
        content=b'{"user": 3}',
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200


def test_oversized_bodies_are_refused(client):
    padded = json.dumps({"user": 3, "k": 5}) + " " * MAX_BODY  # valid JSON, over the limit
    response = client.post(
        "/recommend", content=padded, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert f"limit of {MAX_BODY} bytes" in response.json()["detail"]

    def chunks():  # no Content-Length: the limit holds on the bytes that arrive
        yield b'{"user": 3, "k": 5'
        for _ in range(MAX_BODY // 100 + 1):
            yield b" " * 100
        yield b"}"

    response = client.post(
        "/recommend", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413 and "exceeds" in response.json()["detail"]
    # A body just under the limit still works.
    response = client.post("/recommend", json={"user": 3, "k": 5})
    assert response.status_code == 200


def test_k_is_capped_at_the_catalogue_size(run_dir, predictor):
    app = create_app(predictor, max_k=10**6)
    assert app.state.predictor is predictor  # a loaded predictor is served as is
    schema = app.openapi()["components"]["schemas"]["RecommendRequest"]
    assert schema["properties"]["k"]["maximum"] == len(predictor.items)
    with pytest.raises(ValueError, match="max_history must be >= 1"):
        create_app(predictor, max_history=0)


def test_ids_lose_surrounding_whitespace_and_errors_name_them_as_sent(named_predictor, serve_app):
    with serve_app(create_app(named_predictor)) as http:

        def answer(body):
            response = http.post("/recommend", json=body)
            return response.status_code, response.json()

        assert answer({"user": " u0003 ", "k": 4}) == answer({"user": "u0003", "k": 4})
        assert answer({"history": [" i004", "i017 "]}) == answer({"history": ["i004", "i017"]})
        assert answer({"user": " u9999 "}) == (
            404,
            {
                "detail": "user ' u9999 ' is not among the 1000 users of this model; send "
                'their items instead: {"history": [...]}'
            },
        )
        assert answer({"history": ["i004", " i999 "]}) == (
            422,
            {
                "detail": "1 history item id(s) not in the catalogue: [' i999 ']; remove them, "
                'or send "ignore_unknown": true to drop them'
            },
        )


def test_a_run_given_as_dot_is_described_by_its_folders_name(run_dir, serve_app, monkeypatch):
    """`recdiff serve .` from inside the run folder described the run as "" (GET /model's
    "run", the API's title)."""
    monkeypatch.chdir(run_dir)
    app = create_app(".")
    assert app.title == f"recdiff: {run_dir.name}"
    with serve_app(app) as http:
        assert http.get("/model").json()["run"] == run_dir.name


def test_ids_that_are_not_unicode_text_get_a_422(named_predictor, serve_app):
    """JSON may escape a lone UTF-16 surrogate ("\\ud800"), which is no Unicode text: echoed
    back among a 200's unknown_items, it could not be encoded, and the client got a bare
    500 Internal Server Error."""
    dropped = b'{"history": ["i004", "\\ud800"], "ignore_unknown": true}'
    unknown_user = b'{"user": "u\\udfff3"}'
    with serve_app(create_app(named_predictor)) as http:
        for body, what, shown in [
            (dropped, "history item", "'\\ud800'"),
            (unknown_user, "user", "'u\\udfff3'"),
        ]:
            response = http.post(
                "/recommend", content=body, headers={"content-type": "application/json"}
            )
            assert response.status_code == 422, response.text
            assert response.json()["detail"].startswith(
                f"invalid request: {what} id {shown} is not Unicode text (it holds a lone "
                "surrogate, written \\ud800 to \\udfff in JSON); send ids as the data writes "
                "them."
            ), response.json()["detail"]
        fine = http.post("/recommend", json={"history": ["i004", "i999"], "ignore_unknown": True})
        assert fine.status_code == 200 and fine.json()["unknown_items"] == ["i999"]


def test_a_history_that_leaves_fewer_than_k_items_is_answered_with_a_note(
    named_predictor, serve_app
):
    everything = named_predictor.items.ids.tolist()
    with serve_app(create_app(named_predictor)) as http:
        response = http.post("/recommend", json={"history": everything, "k": 5})
        assert response.status_code == 200
        assert response.json() == {
            "items": [],
            "scores": [],
            "unknown_items": [],
            "note": 'every catalogue item is already in the history; send "exclude_seen": false '
            "to rank them",
        }
        response = http.post("/recommend", json={"history": everything[:-3], "k": 5})
        expected = named_predictor.recommend(history=everything[:-3], k=5)
        assert response.status_code == 200
        assert response.json()["items"] == expected.items and len(expected.items) == 3
        assert response.json()["note"] == (
            'only 3 catalogue items are not already in the history; send "exclude_seen": false '
            "to rank the others too"
        )
        response = http.post("/recommend", json={"history": everything[:-3], "k": 3})
        assert response.json()["note"] is None  # k came back
    schema = create_app(named_predictor).openapi()["components"]["schemas"]["RecommendResponse"]
    assert "note" not in schema["required"]  # optional: clients that ignore it keep working
    assert schema["properties"]["note"]["description"].startswith("why fewer than k items came")


def test_model_says_how_the_metrics_were_averaged(client, run_dir):
    metrics = client.get("/model").json()["metrics"]
    assert json.loads((run_dir / "metrics.json").read_text())["averaging"] == "all_users"
    assert metrics["averaging"] == "all_users"
    assert metrics["averaging_description"] == (
        "over every user, those without test items counted as 0"
    )


def test_a_user_id_of_the_wrong_type_gets_a_422_that_says_what_to_send(client):
    # 422, not 404 (unknown user): text where the ids are integers names no user of this run
    response = client.post("/recommend", json={"user": "abc"})
    assert response.status_code == 422
    assert response.json() == {
        "detail": "user ids of this run are integers, got 'abc'; send the id of one of its 1000 "
        'users, or their items instead: {"history": [...]}'
    }
    assert client.post("/recommend", json={"user": " 3 "}).status_code == 200  # digits are ids


def test_a_history_of_items_never_trained_on_gets_a_note_that_fits_it(predictor, serve_app):
    """Items without a training interaction are left out of the input: a history of only such
    items is an empty input, whose note said the user's interactions were "all held out, or left
    out by the split", which a history's are not."""
    untrained = predictor.items.index([4, 17])
    keep = np.ones(len(predictor.items), dtype=np.float32)
    keep[untrained] = 0
    inputs = sp.csr_matrix(predictor.inputs @ sp.diags(keep))
    inputs.eliminate_zeros()  # items 4 and 17: empty columns, as items only held out have
    cold = Predictor(
        predictor.model,
        predictor.users,
        predictor.items,
        inputs,
        predictor.seen,
        predictor.config,
        predictor.metrics,
        known_inputs=predictor.known_inputs,
    )
    with serve_app(create_app(cold)) as http:
        response = http.post("/recommend", json={"history": [4, 17], "k": 5})
        assert response.status_code == 200, response.text
        assert response.json()["note"] == (
            "this user has no interactions in the model's input (their items are all held out, "
            "left out by the split, or items the model never trained on), so the list is the "
            "model's answer to an empty history, not personalised"
        )
        assert not {4, 17} & set(response.json()["items"])
        response = http.post("/recommend", json={"history": [4, 17, 230], "k": 5})
        assert response.json()["note"] is None  # item 230 was trained on: a personal list
