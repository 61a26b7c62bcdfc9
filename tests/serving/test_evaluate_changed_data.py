"""`Predictor.evaluate` on a run whose data file was moved or changed after training: each
case is refused with what happened and what to do, never evaluated on other data. And a query
that names both a user and a history, or neither."""

from __future__ import annotations

import numpy as np
import pytest

from recdiff.config import load_config
from recdiff.serving.predictor import Predictor
from recdiff.train.run import run_training


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A popularity run on a CSV of 20 users x 15 items (6 each), and that CSV's lines."""
    folder = tmp_path_factory.mktemp("coverage-serving")
    rng = np.random.default_rng(0)
    lines = ["user,item"] + [
        f"{u},{i}" for u in range(20) for i in sorted(rng.choice(15, 6, replace=False))
    ]
    data = folder / "data.csv"
    data.write_text("\n".join(lines) + "\n")
    config = load_config(
        "demo-popularity", ["data.format=csv", "data.split=random", f"data.source={data}"]
    )
    run = run_training(config, folder / "runs", progress=False)
    return run.directory, data, lines


@pytest.fixture
def run(trained):
    """The run directory and its data file, put back as trained after the test."""
    directory, data, lines = trained
    yield directory, data, lines
    data.write_text("\n".join(lines) + "\n")


def test_the_unchanged_data_evaluates(run) -> None:
    directory, _, _ = run
    metrics = Predictor.load(directory).evaluate()
    assert set(metrics) == {"valid", "test"}
    assert 0.0 <= metrics["test"]["recall@10"] <= metrics["test"]["recall@20"] <= 1.0


def test_a_moved_data_file_names_the_setting_to_change(run) -> None:
    directory, data, _ = run
    data.unlink()
    with pytest.raises(FileNotFoundError) as error:
        Predictor.load(directory).evaluate()
    message = str(error.value)
    assert f"{data} not found; the run was trained on it" in message
    assert f"data.source in {directory / 'config.yaml'}" in message
    assert "put the data back, or set data.source there to where it is now" in message


def test_a_new_user_in_the_data_is_a_changed_vocabulary(run) -> None:
    directory, data, lines = run
    data.write_text("\n".join([*lines, "99,0"]) + "\n")
    with pytest.raises(ValueError, match="data changed since training: its vocabularies differ"):
        Predictor.load(directory).evaluate()


def test_a_changed_interaction_is_refused_whichever_split_it_falls_in(run) -> None:
    directory, data, lines = run
    user = int(lines[-1].split(",")[0])
    held = {int(line.split(",")[1]) for line in lines[1:] if int(line.split(",")[0]) == user}
    other = min(set(range(15)) - held)  # same users and items, one interaction moved
    data.write_text("\n".join([*lines[:-1], f"{user},{other}"]) + "\n")
    with pytest.raises(
        ValueError,
        match=r"data changed since training: (its train interactions differ|.* are new to the run)",
    ):
        Predictor.load(directory).evaluate()


@pytest.mark.parametrize("given", [{}, {"user": 3, "history": [1, 2]}])
def test_a_query_takes_a_user_or_a_history_not_both(run, given) -> None:
    directory, _, _ = run
    with pytest.raises(ValueError, match="give exactly one of user= or history="):
        Predictor.load(directory).query(**given)
