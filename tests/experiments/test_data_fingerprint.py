"""Runs record a fingerprint of their data, and comparisons (``recdiff report``, an experiment's
baseline groups) take the same interactions read from another file or format as the same data."""

import numpy as np
import pandas as pd
import pytest

from recdiff.config import load_config
from recdiff.data import DatasetSplits, Interactions, Vocabulary
from recdiff.experiments.comparable import difference
from recdiff.experiments.experiment import run_experiment
from recdiff.serving.report import RunSummary, comparable_runs
from recdiff.train.datasets import load_splits
from recdiff.train.run import run_training
from recdiff.train.run_files import split_fingerprint

USERS, ITEMS = Vocabulary([1, 2]), Vocabulary(["a", "b", "c"])


def _part(pairs: list[tuple[int, str]]) -> Interactions:
    users = USERS.index(np.array([u for u, _ in pairs]))
    items = ITEMS.index(np.array([i for _, i in pairs]))
    return Interactions.from_indices(USERS, ITEMS, users, items)


def _splits(train, valid, test) -> DatasetSplits:
    return DatasetSplits(_part(train), _part(valid), _part(test))


def test_the_fingerprint_is_the_pairs_of_each_split_in_any_order():
    train, valid, test = [(1, "a"), (1, "b"), (2, "a")], [(2, "b")], [(1, "c"), (2, "c")]
    fingerprint = split_fingerprint(_splits(train, valid, test))
    assert fingerprint.startswith("v1:") and len(fingerprint) == 3 + 64
    assert split_fingerprint(_splits(train[::-1], valid, test[::-1])) == fingerprint
    # the same six pairs, split otherwise: (2, b) tested, (1, c) validated
    assert split_fingerprint(_splits(train, [(1, "c")], [(2, "b"), (2, "c")])) != fingerprint
    assert split_fingerprint(_splits(train[:2], valid, test)) != fingerprint


def _interactions(n_users: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    pairs = {(int(u), int(rng.integers(30))) for u in range(n_users) for _ in range(8)}
    return pd.DataFrame(sorted(pairs), columns=["user", "item"])


def _copies(tmp_path, frame: pd.DataFrame) -> dict[str, str]:
    """The interactions as CSV (rows shuffled), Parquet and JSON Lines files."""
    paths = {fmt: tmp_path / f"log.{fmt}" for fmt in ("csv", "parquet", "jsonl")}
    frame.sample(frac=1, random_state=1).to_csv(paths["csv"], index=False)
    frame.to_parquet(paths["parquet"])
    frame.to_json(paths["jsonl"], orient="records", lines=True)
    return {fmt: str(path) for fmt, path in paths.items()}


def _config(preset: str, fmt: str, source: str, *more: str):
    settings = [f"data.format={fmt}", f"data.source={source}", "data.split=random"]
    return load_config(preset, [f"name={preset}-{fmt}", *settings, *more])


def test_copies_in_other_formats_are_the_same_data_and_other_data_is_not(tmp_path):
    pytest.importorskip("pyarrow")
    runs = tmp_path / "runs"
    copies = _copies(tmp_path, _interactions())
    trained = {
        fmt: run_training(_config("demo-popularity", fmt, path), runs, progress=False)
        for fmt, path in copies.items()
    }
    fingerprints = {fmt: run.metrics["data"]["fingerprint"] for fmt, run in trained.items()}
    assert len(set(fingerprints.values())) == 1
    summaries = {fmt: RunSummary.read(run.directory) for fmt, run in trained.items()}
    assert summaries["csv"].metrics["data"]["fingerprint"] == fingerprints["csv"]  # on disk
    csv, parquet = summaries["csv"], summaries["parquet"]
    same = difference(csv.config, csv.metrics["data"], parquet.config, parquet.metrics["data"])
    assert same is None

    # One user fewer: other data, in the report and in a comparison.
    fewer = tmp_path / "fewer.csv"
    _interactions(39).to_csv(fewer, index=False)
    other = run_training(_config("demo-popularity", "csv", str(fewer)), runs, progress=False)
    other = RunSummary.read(other.directory)
    found = difference(csv.config, csv.metrics["data"], other.config, other.metrics["data"])
    assert (found.kind, found.setting) == ("data", "data fingerprint")
    comparison = comparable_runs(csv, runs)
    assert sorted(run.directory.name for run in comparison.runs) == sorted(
        run.directory.name for run in trained.values()
    )
    assert comparison.other_data == 1

    # Runs without fingerprints (written before runs recorded them) keep the settings rule.
    before = {k: v for k, v in csv.metrics["data"].items() if k != "fingerprint"}
    found = difference(csv.config, before, parquet.config, parquet.metrics["data"])
    assert (found.setting, found.a, found.b) == ("data.format", "csv", "parquet")


def test_an_experiment_tests_a_config_against_a_baseline_read_from_a_copy(tmp_path):
    """Popularity on the CSV file and EASE on its Parquet copy form one group: one is tested
    against the other (popularity validates better on this data). Before, each was alone on
    "its own" data, with no test."""
    pytest.importorskip("pyarrow")
    copies = _copies(tmp_path, _interactions())
    configs = [
        _config("demo-popularity", "csv", copies["csv"]),
        _config("demo-ease", "parquet", copies["parquet"], "model.l2_lambda=500"),
    ]
    result = run_experiment(configs, 1, tmp_path / "out")
    assert result.baselines == {"demo-ease-parquet": "demo-popularity-csv"}
    assert "no other config is comparable" not in result.markdown
    assert result.records[0].data["fingerprint"] == result.records[1].data["fingerprint"]


def test_next_item_runs_fingerprint_the_sequences_whatever_the_history_length(tmp_path):
    rows = [(u, (3 * u + 5 * j) % 11, 10 * j) for u in range(12) for j in range(6)]
    frame = pd.DataFrame(rows, columns=["user", "item", "time"])
    csv, jsonl = tmp_path / "log.csv", tmp_path / "log.jsonl"
    frame.to_csv(csv, index=False)
    frame.sample(frac=1, random_state=0).to_json(jsonl, orient="records", lines=True)
    metrics = []
    for fmt, path, max_len in (("csv", csv, 10), ("jsonl", jsonl, 3)):
        settings = [f"data.format={fmt}", f"data.source={path}", "data.split=leave_one_out"]
        settings += ["data.time_col=time", f"data.max_len={max_len}"]
        run = run_training(load_config("mostpop-zhihu", settings), tmp_path, progress=False)
        metrics.append(run.metrics["data"])
    assert metrics[0]["fingerprint"] == metrics[1]["fingerprint"]
    assert metrics[0]["fingerprint"].startswith("v1:")


def test_a_run_records_the_fingerprint_of_the_splits_it_trained_on(tmp_path):
    config = load_config("demo-popularity")
    run = run_training(config, tmp_path, progress=False)
    assert run.metrics["data"]["fingerprint"] == split_fingerprint(load_splits(config.data))
