"""What a user types (`recdiff train --set`, `recommend`, `export`, `evaluate`) or sends
(``POST /recommend``) is read as meant, or refused with an error that names what to fix: never
silently read as something else (a float k truncated, true read as 1, 010 read as octal)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from recdiff.cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    result = runner.invoke(app, ["train", "demo-popularity", "--runs-dir", str(runs), "--quiet"])
    assert result.exit_code == 0, result.output
    (path,) = list(runs.iterdir())
    return path


def _refused(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return result.output


# --- recdiff train --set ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "override", "message"),
    [
        (
            "demo-diffrec",
            "train.epochs=2.5",
            "train.epochs: Input should be a valid integer, got a",
        ),
        ("demo-diffrec", "eval.ks=[10.5]", "eval.ks.0: Input should be a valid integer, got a"),
        ("demo-diffrec", "train.seed=true", "train.seed: expected a number, not true/false"),
        (
            "demo-diffrec",
            "model.hidden_dims=200",
            "model.hidden_dims: Input should be a valid list",
        ),
        ("demo-diffrec", "eval.ks=20", "eval.ks: Input should be a valid list"),
        (
            "demo-sasrec",
            "data.max_len=0",
            "data.max_len: Input should be greater than or equal to 1",
        ),
        ("demo-diffrec", "train.lr=-1", "train.lr: Input should be greater than 0"),
        (
            "demo-diffrec",
            "model.diffusion.noise_min=0.02",
            "model.diffusion: noise_min (0.02) must be smaller than noise_max (0.01)",
        ),
        ("demo-diffrec", "eval.ks=[true, 20]", "eval.ks.0: expected a number, not true/false"),
        ("demo-diffrec", "train.nosuch=1", "train.nosuch: unknown key (this section takes: batch"),
        ("demo-diffrec", "train.epochs", "override 'train.epochs' must look like key.path=value"),
    ],
)
def test_train_refuses_a_set_value_it_cannot_use(tmp_path, preset, override, message):
    args = ["train", preset, "--set", override, "--runs-dir", str(tmp_path), "--quiet"]
    output = _refused(runner.invoke(app, args))
    assert output.startswith("error: ")
    assert message in output
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_a_boolean_alone_in_eval_ks_is_named(tmp_path):
    args = ["train", "demo-diffrec", "--set", "eval.ks=[true]", "--runs-dir", str(tmp_path)]
    output = _refused(runner.invoke(app, args))
    # Named first: pydantic read true as 1, so the missing cut-off below is its consequence.
    named = output.index("eval.ks.0: expected a number, not true/false")
    assert named < output.index("train.metric 'recall@20' selects the epoch")


def test_set_values_read_numbers_as_yaml_1_2(tmp_path):
    # YAML 1.1 (PyYAML's) read eval.ks=[010, 20] as recall@8 (octal) and [1:30, 20] as
    # recall@90 (base 60), without a word.
    from recdiff.config import load_config

    assert load_config("demo-popularity", ["eval.ks=[010, 20]"]).eval.ks == [10, 20]
    assert load_config("demo-diffrec", ["train.lr=1e-3"]).train.lr == 0.001
    args = ["train", "demo-popularity", "--set", "eval.ks=[1:30, 20]"]
    output = _refused(runner.invoke(app, [*args, "--runs-dir", str(tmp_path), "--quiet"]))
    assert "eval.ks.0: Input should be a valid integer" in output


def test_a_key_written_twice_in_a_config_file_is_refused(tmp_path):
    from recdiff.config import ConfigError, load_config

    path = tmp_path / "twice.yaml"
    path.write_text("name: twice\nmodel:\n  name: popularity\ntrain:\n  epochs: 3\n  epochs: 5\n")
    with pytest.raises(ConfigError, match="key 'epochs' appears twice"):
        load_config(str(path))


def test_an_integral_float_is_read_as_its_integer(tmp_path):
    from recdiff.config import load_config

    assert load_config("demo-diffrec", ["train.epochs=2.0"]).train.epochs == 2


# --- recdiff recommend / export / evaluate ----------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user", "3", "--k", "2.5"], "Invalid value for '--k'"),
        (["--user", "3", "--k", "0"], "Input should be greater than or equal to 1"),
        (["--user", "3", "--k", "10000"], "error: k must lie in 1..500 (the catalogue size), got"),
        (["--user", "3.0"], "error: user ids of this run are integers, got '3.0'"),
        (["--user", "true"], "error: user ids of this run are integers, got 'true'"),
        (["--history", "1.5"], "(item ids of this run are integers, got ['1.5'])"),
        (["--history", "[1,2]"], "2 item id(s) not in the catalogue: ['[1', '2]']"),
        (["--history", ",,,"], "error: history is empty"),
    ],
)
def test_recommend_refuses_what_it_cannot_read(run_dir, args, message):
    assert message in _refused(runner.invoke(app, ["recommend", str(run_dir), *args]))


def _recommended(run_dir, *args: str) -> list:
    result = runner.invoke(app, ["recommend", str(run_dir), *args, "--k", "5", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["items"]


def test_recommend_reads_padded_ids_and_repeated_history_items(run_dir):
    assert _recommended(run_dir, "--user", " 3 ") == _recommended(run_dir, "--user", "3")
    repeated = _recommended(run_dir, "--history", "1,1,2")
    assert repeated == _recommended(run_dir, "--history", "1,2")
    assert not {1, 2} & set(repeated)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "o.txt", "--users", "1,2"], "error: o.txt must end in .parquet or .csv"),
        (["--out", "o.csv", "--users", ""], "error: no user ids in ''"),
        (["--out", "o.csv", "--users", "1.5"], "error: user ids of this run are integers, got"),
        (["--out", "o.csv", "--users", "true"], "error: user ids of this run are integers, got"),
        (["--out", "o.csv", "--k", "0"], "Input should be greater than or equal to 1"),
        (["--out", "o.csv", "--users", "1", "--k", "10000"], "error: k must lie in 1..500"),
    ],
)
def test_export_refuses_what_it_cannot_read(run_dir, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    assert message in _refused(runner.invoke(app, ["export", str(run_dir), *args]))
    assert list(tmp_path.iterdir()) == []


def test_export_lists_a_repeated_user_once(run_dir, tmp_path):
    out = tmp_path / "o.csv"
    args = ["export", str(run_dir), "--out", str(out), "--users", "1,1,2", "--k", "2"]
    result = runner.invoke(app, [*args, "--quiet"])
    assert result.exit_code == 0, result.output
    assert f"wrote 4 rows for 2 users to {out}" in result.output
    assert [line.split(",")[:2] for line in out.read_text().splitlines()[1:]] == [
        ["1", "1"],
        ["1", "2"],
        ["2", "1"],
        ["2", "2"],
    ]


def test_evaluate_names_the_averagings_it_knows(run_dir):
    output = _refused(runner.invoke(app, ["evaluate", str(run_dir), "--averaging", "nosuch"]))
    assert "error: averaging must be one of ('test_users', 'all_users'), got 'nosuch'" in output


# --- POST /recommend ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(run_dir):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from recdiff.serving.service import create_app

    with TestClient(create_app(run_dir), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"user": 3, "k": 2.5}, "k: Input should be a valid integer"),
        ({"user": 3, "k": "10"}, "k: Input should be a valid integer"),
        ({"user": 3, "k": True}, "k: Input should be a valid integer"),
        ({"user": 3, "k": 0}, "k: Input should be greater than or equal to 1"),
        ({"user": 3, "k": 10000}, "k: Input should be less than or equal to 500"),
        ({"history": "123"}, "history: Input should be a valid list"),
        ({"history": {"a": 1}}, "history: Input should be a valid list"),
        ({"history": None}, 'give exactly one of "user" (a known user id) or "history"'),
        ({"history": [10**30]}, "1 history item id(s) not in the catalogue: [10000000000"),
        ({"user": 3, "nosuch": 1}, "nosuch: Extra inputs are not permitted"),
        ({"user": 3, "exclude_seen": "false"}, "exclude_seen: Input should be a valid boolean"),
    ],
)
def test_a_body_it_cannot_read_is_a_422_that_says_why(client, body, message):
    response = client.post("/recommend", json=body)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]


def test_an_empty_history_is_a_400(client):
    response = client.post("/recommend", json={"history": []})
    assert response.status_code == 400
    assert response.json() == {
        "detail": "history is empty: give at least one item id, oldest first"
    }


def test_ids_as_text_and_repeated_items_are_read_as_meant(client):
    def items(body):
        response = client.post("/recommend", json={**body, "k": 5})
        assert response.status_code == 200, response.text
        return response.json()["items"]

    assert items({"user": "3"}) == items({"user": 3})
    assert items({"history": [" 1 "]}) == items({"history": [1]})
    assert items({"history": [1, 1, 2]}) == items({"history": [1, 2]})


def test_recommend_answers_get_with_405(client):
    response = client.request("GET", "/recommend", json={"user": 3})
    assert response.status_code == 405


@pytest.mark.parametrize(
    ("body", "sent"),
    [
        ({"history": [1.5]}, "1.5"),
        ({"history": [True]}, "true"),
        ({"history": [[1, 2]]}, "[1, 2]"),
        ({"user": True}, "true"),
        ({"user": 3.5}, "3.5"),
    ],
)
def test_a_wrongly_typed_id_is_named_in_one_sentence(client, body, sent):
    response = client.post("/recommend", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert ".int:" not in detail and ".str:" not in detail
    assert sent in detail
