"""`recdiff reproduce`: a seed that fails after others finished, and a seed given by hand."""

from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from recdiff.cli.main import app

runner = CliRunner()


@pytest.fixture
def seeds_run(monkeypatch, tmp_path):
    """run_training replaced: each call records its seed and fails at seed ``fail_at``."""
    from recdiff.train import run

    calls: list[int] = []
    failure: dict[str, object] = {"at": None, "error": None}

    def fake_run(config, *args, **kwargs):
        calls.append(config.train.seed)
        if config.train.seed == failure["at"]:
            raise failure["error"]
        metrics = {"test": {"recall@20": 0.1 * len(calls), "ndcg@20": 0.05}, "best_epoch": 5}
        return SimpleNamespace(metrics=metrics, directory=tmp_path / f"seed{len(calls)}")

    monkeypatch.setattr(run, "run_training", fake_run)
    return calls, failure


def test_a_seed_failing_after_others_says_which_seed_and_what_is_complete(seeds_run, tmp_path):
    calls, failure = seeds_run
    failure["at"] = 3
    failure["error"] = ValueError("training diverged in epoch 7 (mean loss nan)")
    args = ["reproduce", "diffrec-ml1m", "--seeds", "4", "--runs-dir", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and calls == [1, 2, 3]
    assert result.stderr == (
        "error: seed 3 of 4 failed: training diverged in epoch 7 (mean loss nan); seeds 1-2 "
        f"are complete runs (in {tmp_path})\n"
    )


def test_a_first_seed_failing_keeps_the_plain_message(seeds_run, tmp_path):
    calls, failure = seeds_run
    failure["at"] = 1
    failure["error"] = ValueError("the validation split is empty")
    args = ["reproduce", "diffrec-ml1m", "--seeds", "2", "--runs-dir", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and calls == [1]
    assert result.stderr == "error: the validation split is empty\n"


def test_a_bug_in_a_later_seed_keeps_its_traceback(seeds_run, tmp_path):
    calls, failure = seeds_run
    failure["at"] = 2
    failure["error"] = RuntimeError("a bug")
    args = ["reproduce", "diffrec-ml1m", "--seeds", "2", "--runs-dir", str(tmp_path)]
    result = runner.invoke(app, args)
    assert isinstance(result.exception, RuntimeError) and str(result.exception) == "a bug"
    assert calls == [1, 2]


def test_all_seeds_print_the_mean_and_std(seeds_run, tmp_path):
    calls, _ = seeds_run
    args = ["reproduce", "diffrec-ml1m", "--seeds", "2", "--runs-dir", str(tmp_path)]
    args += ["--set", "eval.ks=[20]"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert calls == [1, 2]
    table = [line.split() for line in result.stdout.splitlines()[2:]]
    assert table == [
        ["recall@20", "ndcg@20"],
        ["paper", "0.1787", "0.1148"],
        ["recdiff", "(n=2)", "0.1500", "0.0500"],
        ["std", "0.0707", "0.0000"],
    ]


def test_a_train_seed_override_is_refused_rather_than_ignored(seeds_run, tmp_path):
    """Seeds are 1..--seeds: a --set train.seed used to be replaced without a word."""
    calls, _ = seeds_run
    args = ["reproduce", "diffrec-ml1m", "--seeds", "2", "--runs-dir", str(tmp_path)]
    result = runner.invoke(app, [*args, "--set", " train.seed = 7"])
    assert result.exit_code == 2 and calls == []
    assert result.stderr == (
        "error: reproduce trains with train.seed 1 to --seeds (now 2), so --set train.seed "
        "would be ignored: remove it (train one seed with `recdiff train PRESET --set "
        "train.seed=N`)\n"
    )


def test_table_rows_keep_long_labels_whole_and_columns_aligned():
    from recdiff.cli.results import metrics_table

    text = metrics_table(
        {"paper": {"recall@20": 0.1787}, "recdiff (n=100)": {"recall@20": 0.17}}, ["recall@20"]
    )
    lines = text.splitlines()
    assert lines[2].startswith("recdiff (n=100) ")  # was cut to "recdiff (n=100"
    assert len({len(line) for line in lines}) == 1  # every row as wide as the header
    assert lines[1].split() == ["paper", "0.1787"]


def test_a_table_of_many_metrics_continues_in_blocks_that_fit_a_terminal():
    from recdiff.cli.results import metrics_table

    names = [
        f"{m}@{k}" for m in ("recall", "ndcg", "hit_rate", "precision", "mrr") for k in (10, 20)
    ]
    values = {name: i / 100 for i, name in enumerate(names)}
    text = metrics_table({"valid": values, "test": values}, names)
    first, second = (block.splitlines() for block in text.split("\n\n"))
    assert first[0].split() == names[:5] and second[0].split() == names[5:]
    assert first[2].split() == ["test", "0.0000", "0.0100", "0.0200", "0.0300", "0.0400"]
    assert second[1].split() == ["valid", "0.0500", "0.0600", "0.0700", "0.0800", "0.0900"]
    assert max(len(line) for line in text.splitlines()) <= 80


def test_a_reference_row_that_is_not_a_papers_is_labelled_by_its_source(monkeypatch, tmp_path):
    """Most-popular on Zhihu is in no paper's table: its reference row is PAPERS.md's
    measurement, so it is not labelled "paper"."""
    from recdiff.train import run

    def fake_run(config, *args, **kwargs):
        metrics = {"test": {"hit_rate@20": 0.0143, "ndcg@20": 0.0054}, "best_epoch": None}
        return SimpleNamespace(metrics=metrics, directory=tmp_path / "run")

    monkeypatch.setattr(run, "run_training", fake_run)
    args = ["reproduce", "mostpop-zhihu", "--seeds", "1", "--runs-dir", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    assert "PAPERS.md" in rows and "paper" not in rows
