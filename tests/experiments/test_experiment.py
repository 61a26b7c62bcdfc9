"""`recdiff experiment`: configs x seeds on the demo data -> results.csv, results.md, p-values."""

import csv
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from recdiff.cli.main import app
from recdiff.config import load_config
from recdiff.experiments.experiment import ExperimentError, SeedRecord, run_experiment
from recdiff.experiments.per_user import per_user_test_metrics_from_run
from recdiff.experiments.report import per_user_over_seeds, render_markdown
from recdiff.experiments.stats import format_mean_std, paired_test

runner = CliRunner()
LABELS = ["demo-diffrec-tiny", "demo-ease", "demo-popularity"]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """Tiny DiffRec (a YAML file), EASE and popularity over 2 seeds, then resumed to 3 seeds."""
    folder = tmp_path_factory.mktemp("experiment")
    tiny = load_config(
        "demo-diffrec",
        ["name=demo-diffrec-tiny", "model.hidden_dims=[32]", "model.diffusion.steps=4"],
    )
    config_path = folder / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(tiny.model_dump(mode="json"), sort_keys=False))
    out = folder / "out"
    command = ["experiment", str(config_path), "demo-ease", "demo-popularity", "--out", str(out)]
    command += ["--set", "train.epochs=2", "--quiet"]
    first = runner.invoke(app, [*command, "--seeds", "2"])
    assert first.exit_code == 0, first.output
    rows_before = _rows(out / "results.csv")
    second = runner.invoke(app, [*command, "--seeds", "3"])
    assert second.exit_code == 0, second.output
    return {"out": out, "before": rows_before, "output": second.output}


def test_results_csv_has_one_row_per_config_and_seed(experiment):
    rows = _rows(experiment["out"] / "results.csv")
    assert [(r["label"], r["seed"]) for r in rows] == [
        (label, str(seed)) for label in LABELS for seed in (1, 2, 3)
    ]
    for row in rows:
        assert row["run_dir"].startswith("runs/")  # relative to OUT, as trials.csv's
        metrics = json.loads((experiment["out"] / row["run_dir"] / "metrics.json").read_text())
        assert float(row["test/recall@20"]) == metrics["test"]["recall@20"]
        assert float(row["valid/recall@20"]) == metrics["valid"]["recall@20"]


def test_resuming_trains_only_the_new_seeds(experiment):
    before = {(r["label"], r["seed"]): r for r in experiment["before"]}
    after = {(r["label"], r["seed"]): r for r in _rows(experiment["out"] / "results.csv")}
    assert len(before) == 6 and all(after[key] == row for key, row in before.items())
    assert experiment["output"].count("done before") == 6
    # DiffRec's 3 seeds; EASE and popularity are deterministic: one run for all their seeds
    assert len(list((experiment["out"] / "runs").iterdir())) == 5
    assert experiment["output"].count("seed 3: same as seed 1: deterministic") == 2


def test_markdown_means_and_stds_match_the_csv(experiment, markdown_tables):
    out = experiment["out"]
    rows = _rows(out / "results.csv")
    text = (out / "results.md").read_text()
    assert "sample standard deviation (ddof = 1)" in text
    summary = markdown_tables(text)[0]
    header = summary[0]
    assert header[:4] == ["config", "model", "seeds", "valid recall@20"]
    assert "test recall@20" in header and "test ndcg@20" in header
    for line in summary[1:]:
        label = line[0]
        mine = [r for r in rows if r["label"] == label]
        assert line[2] == "3"
        for column, cell in zip(header[3:], line[3:], strict=True):
            split, metric = column.split(" ")
            expected = format_mean_std([float(r[f"{split}/{metric}"]) for r in mine])
            assert cell == expected
            mean, std = (float(x) for x in cell.split(" ± "))
            values = np.array([float(r[f"{split}/{metric}"]) for r in mine])
            assert mean == pytest.approx(values.mean(), abs=5e-5)
            assert std == pytest.approx(values.std(ddof=1), abs=5e-5)


def test_significance_against_the_best_baseline_chosen_on_validation(experiment, markdown_tables):
    out = experiment["out"]
    rows = _rows(out / "results.csv")
    valid = {
        label: np.mean([float(r["valid/recall@20"]) for r in rows if r["label"] == label])
        for label in ("demo-ease", "demo-popularity")
    }
    best = max(valid, key=valid.get)
    text = (out / "results.md").read_text()
    assert f"Best baseline: **{best}**" in text
    tests = {line[0]: line for line in markdown_tables(text)[1][1:]}
    assert set(tests) == set(LABELS) - {best}

    def per_user(label):
        arrays = []
        for seed in (1, 2, 3):
            with np.load(out / "records" / label / f"seed-{seed}.npz") as data:
                arrays.append(data["recall@20"])
        return per_user_over_seeds(arrays)

    for label, line in tests.items():
        expected = paired_test(per_user(label), per_user(best), "wilcoxon")
        assert line[1] == str(expected.n)
        assert line[5] == (
            f"{expected.p_value:.2e}" if expected.p_value < 1e-3 else f"{expected.p_value:.4f}"
        )
        assert line[6] == best  # the last column names the baseline of the row
    assert float(tests["demo-popularity"][5]) < 1e-3  # 0.14 vs 0.42 Recall@20 on 1,000 users


def test_per_user_values_reproduce_the_runs_means(experiment):
    rows = _rows(experiment["out"] / "results.csv")
    for row in rows[::3]:
        run = experiment["out"] / row["run_dir"]
        stored = json.loads((run / "metrics.json").read_text())["by_averaging"]["test_users"]
        per_user = per_user_test_metrics_from_run(run)
        for name in ("recall@20", "ndcg@10"):
            assert np.nanmean(per_user[name]) == pytest.approx(stored["test"][name], abs=1e-12)


def _record(tmp_path, label, model, seed, valid, values):
    path = tmp_path / f"{label}-{seed}.npz"
    np.savez(path, **{"recall@20": np.asarray(values, dtype=np.float64)})
    return SeedRecord(
        label, model, seed, "", {"recall@20": valid}, {"recall@20": float(np.nanmean(values))},
        per_user_path=str(path),
    )  # fmt: skip


def test_hand_made_significance_cases(tmp_path):
    configs = [
        ("twin", load_config("demo-diffrec")),
        ("ease", load_config("demo-ease")),
        ("pop", load_config("demo-popularity")),
    ]
    users = np.linspace(0, 1, 40)
    records = [
        _record(tmp_path, "twin", "diffrec", 1, 0.1, users),  # the same per-user values as ease
        _record(tmp_path, "ease", "ease", 1, 0.5, users),
        _record(tmp_path, "pop", "popularity", 1, 0.2, users / 4),
    ]
    text, best, tests = render_markdown(configs, records, "recall@20", "wilcoxon")
    assert best == "ease"  # by validation, although popularity's test values differ
    assert tests["twin"].p_value == 1.0
    assert tests["pop"].p_value < 1e-6
    assert "| twin | 40 |" in text and "| 1.0000 |" in text
    no_baseline, best, _ = render_markdown(configs[:1], records[:1], "recall@20", "ttest")
    assert best is None and "no significance test" in no_baseline
    # most-popular is a baseline of next-item runs like SASRec
    mostpop = load_config("mostpop-zhihu", ["data.format=demo", "data.source=null"])
    sequential = [("sas", load_config("demo-sasrec")), ("top", mostpop)]
    records = [
        _record(tmp_path, "sas", "sasrec", 1, 0.1, users),
        _record(tmp_path, "top", "mostpop", 1, 0.3, users / 2),
    ]
    _, best, tests = render_markdown(sequential, records, "recall@20", "wilcoxon")
    assert best == "top" and tests["sas"].p_value < 1e-6


def test_table_shows_the_selection_metric_on_test(tmp_path):
    # next-item runs compute hit rate, not recall: the table must still show test hit rate
    configs = [("sas", load_config("demo-sasrec"))]
    record = SeedRecord(
        "sas", "sasrec", 1, "", {"hit_rate@20": 0.3},
        {"hit_rate@10": 0.2, "hit_rate@20": 0.25, "ndcg@10": 0.1, "ndcg@20": 0.12},
    )  # fmt: skip
    text, _, _ = render_markdown(configs, [record], "hit_rate@20", "wilcoxon")
    header = next(line for line in text.splitlines() if line.startswith("| config | model"))
    assert "test hit_rate@10 | test hit_rate@20 | test ndcg@10 | test ndcg@20" in header
    assert "| sas | sasrec | 1 | 0.3000 | 0.2000 | 0.2500 | 0.1000 | 0.1200 |" in text


def test_parallel_jobs_and_bad_requests(tmp_path):
    configs = [load_config("demo-popularity")]
    result = run_experiment(configs, 2, tmp_path / "out", jobs=2)
    assert [r.seed for r in result.records] == [1, 2]
    assert all(Path(r.per_user_path).is_file() for r in result.records)
    with pytest.raises(ValueError, match="not computed"):
        run_experiment(configs, 1, tmp_path / "bad", metric="recall@7")
    result = runner.invoke(app, ["experiment", "demo-ease", "--test", "sign"])
    assert result.exit_code == 2 and "wilcoxon or ttest" in result.output
    result = runner.invoke(app, ["experiment", "demo-ease", "--set", "train.epochz=1"])
    assert result.exit_code == 2 and "train.epochz" in result.output


def test_a_failed_run_is_named_and_the_finished_ones_are_kept(tmp_path):
    """The second config cannot run (a time split of a table without times): the error stops the
    experiment after a line naming that config and seed; the first config's records stay, so
    the same command continues without training them again."""
    table = tmp_path / "log.csv"
    table.write_text("user,item\n1,2\n1,3\n2,3\n")
    broken = load_config(
        "demo-popularity", ["name=no-times", "data.format=csv", f"data.source={table}"]
    )
    configs = [load_config("demo-popularity"), broken]
    lines: list[str] = []
    with pytest.raises(ValueError, match="needs timestamps"):
        run_experiment(configs, 1, tmp_path / "out", report=lines.append)
    assert lines[0].startswith("demo-popularity seed 1: valid recall@20")
    assert lines[1].startswith("no-times seed 1: failed;")
    assert (tmp_path / "out" / "records" / "demo-popularity" / "seed-1.json").is_file()
    lines.clear()
    with pytest.raises(ValueError, match="needs timestamps"):
        run_experiment(configs, 1, tmp_path / "out", report=lines.append)
    assert lines[0].startswith("demo-popularity seed 1: done before")


@pytest.mark.slow  # moved out of the default run (~10 min on 2 cores); CI runs it
def test_under_torchrun_only_rank_0_writes_and_reports(tmp_path):
    """``torchrun --nproc_per_node=2 -m recdiff experiment``: both processes train each run (the
    DiffRec one through DDP), but rank 0 alone writes the records and tables and prints, so each
    line of the report comes once."""
    tiny = load_config(
        "demo-diffrec",
        ["name=tiny", "model.hidden_dims=[32]", "model.diffusion.steps=4", "train.epochs=2"],
    )
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(tiny.model_dump(mode="json"), sort_keys=False))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += ["-m", "recdiff", "experiment", str(config_path), "demo-popularity", "--seeds", "1"]
    command += ["--out", str(out), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    records = [
        json.loads((out / "records" / label / "seed-1.json").read_text())
        for label in ("tiny", "demo-popularity")
    ]
    progress = [
        f"{r['label']} seed 1: valid recall@20 {r['valid']['recall@20']:.4f}, "
        f"test recall@20 {r['test']['recall@20']:.4f} ({out / r['run_dir']})"
        for r in records
    ]
    markdown = (out / "results.md").read_text()
    wrote = f"wrote {out / 'results.csv'} and {out / 'results.md'}"
    assert done.stdout == "\n".join([*progress, "", markdown, wrote]) + "\n"
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert runs == sorted(Path(r["run_dir"]).name for r in records)  # one run each
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if "runs" not in p.parts) == [
        "records",
        "records/demo-popularity",
        "records/demo-popularity/seed-1.json",
        "records/demo-popularity/seed-1.npz",
        "records/tiny",
        "records/tiny/seed-1.json",
        "records/tiny/seed-1.npz",
        "results.csv",
        "results.md",
    ]


def test_parallel_jobs_are_refused_under_torchrun(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError) as caught:
        run_experiment([load_config("demo-popularity")], 1, tmp_path / "out", jobs=2)
    assert str(caught.value) == (
        "jobs=2 trains in processes of its own, but under torchrun (WORLD_SIZE=2) the processes "
        "train each run together: leave jobs (--jobs) at 1"
    )
    assert list(tmp_path.iterdir()) == []


_RANK_0_FAILS_SCORING = """
import sys
from recdiff.cli.main import app
from recdiff.experiments import per_user

def failing(run_dir):
    raise OSError("rank 0 fails scoring users")

per_user.per_user_test_metrics_from_run = failing
app(sys.argv[1:])
"""


def test_under_torchrun_a_rank_0_failure_after_training_ends_the_job_at_once(
    tmp_path, torchrun_failing_job
):
    """Rank 0 alone scores users and writes records after each run; if that fails, rank 0 must
    exit at once (torchrun then stops rank 1, which waits for it in a collective) instead of both
    waiting for the 2-hour collective timeout."""
    script = tmp_path / "rank0_fails.py"
    script.write_text(_RANK_0_FAILS_SCORING)
    out = tmp_path / "out"
    log = torchrun_failing_job(
        str(script), "experiment", "demo-popularity", "--seeds", "1", "--out", str(out), "--quiet"
    )
    assert "rank 0 fails scoring users" in log
    assert not (out / "results.csv").exists()


def test_a_scoped_set_reaches_only_the_config_it_names(tmp_path):
    """`--set CONFIG:key=value` overrides one config: popularity has no diffusion settings, so
    the DiffRec-only key would fail it if applied to both."""
    from recdiff.cli.experiments import overrides_for

    out = tmp_path / "out"
    command = ["experiment", "demo-diffrec", "demo-popularity", "--seeds", "1", "--out", str(out)]
    command += ["--set", "train.epochs=1", "--set", "train.eval_every=1"]
    command += ["--set", "demo-diffrec:model.diffusion.steps=3"]
    result = runner.invoke(app, [*command, "--quiet"])
    assert result.exit_code == 0, result.output
    steps = {}
    for row in _rows(out / "results.csv"):
        config = yaml.safe_load((out / row["run_dir"] / "config.yaml").read_text())
        assert config["train"]["epochs"] == 1
        steps[row["label"]] = config["model"].get("diffusion", {}).get("steps")
    assert steps == {"demo-diffrec": 3, "demo-popularity": None}
    # ':' in a value is not a scope; a scope naming no compared config is refused.
    configs = ["a.yaml", "demo-ease"]
    assert overrides_for("demo-ease", ["data.source=datasets:x", "a.yaml:k=1"], configs) == [
        "data.source=datasets:x"
    ]
    assert overrides_for("a.yaml", ["a.yaml:model.k=v:w"], configs) == ["model.k=v:w"]
    result = runner.invoke(app, ["experiment", "demo-ease", "--set", "demo-eas:train.epochs=1"])
    assert result.exit_code == 2
    assert "'demo-eas' is not one of the configs compared (demo-ease)" in result.output


def test_configs_on_other_data_or_protocols_are_not_paired(tmp_path):
    """Per-user arrays of one length do not make one test set: next-item examples of the demo
    sequences beside users of the demo rows, two demo datasets, runs whose data statistics
    differ, or next-item runs that rank different items are never paired. A baseline on other
    data is the best of its own group; a config without a baseline on its data says why. Time
    weights only reweight the model's input, so T-DiffRec is still paired."""
    users = np.linspace(0, 1, 40)
    statistics = {"n_users": 40, "n_items": 500, "train": 900, "valid": 40, "test": 80}

    def record(label, model, valid, values, **data):
        made = _record(tmp_path, label, model, 1, valid, values)
        return replace(made, data={**statistics, **data})

    tdiffrec = ["data.time_weights={w_min: 0.5, w_max: 1.0}"]
    configs = [
        ("ease", load_config("demo-ease")),
        ("sas", load_config("demo-sasrec")),
        ("pop7", load_config("demo-popularity", ["data.seed=7"])),
        ("other-items", load_config("demo-diffrec")),
        ("tdiffrec", load_config("demo-diffrec", tdiffrec)),
    ]
    records = [
        record("ease", "ease", 0.5, users),
        record("sas", "sasrec", 0.1, users / 2),
        record("pop7", "popularity", 0.2, users / 4),
        record("other-items", "diffrec", 0.3, users / 3, n_items=400),
        record("tdiffrec", "diffrec", 0.3, users / 3),
    ]
    text, best, tests = render_markdown(configs, records, "recall@20", "wilcoxon")
    assert best == "ease"
    assert list(tests) == ["other-items", "tdiffrec"]  # sas and pop7: their groups' best
    assert tests["other-items"] == (
        "no baseline on the same data and protocol: data statistic n_items: 400 here, 500 in "
        "ease (different data); test targets: users' interaction rows here, next-item examples "
        "in sas (different data); data.seed: 0 here, 7 in pop7 (different data)"
    )
    assert tests["tdiffrec"] == paired_test(users / 3, users, "wilcoxon")
    assert "- Best baseline: **pop7** (highest mean validation recall@20 among pop7 " in text
    assert "| other-items | | | | | no baseline on the same data and protocol: " in text
    # Next-item runs: eval.exclude_history decides which items are ranked.
    mostpop = load_config("mostpop-zhihu", ["data.format=demo", "data.source=null"])
    masked = load_config("demo-dreamrec", ["eval.exclude_history=true"])
    configs = [("top", mostpop), ("sas", load_config("demo-sasrec")), ("masked", masked)]
    records = [
        record("top", "mostpop", 0.3, users / 2),
        record("sas", "sasrec", 0.1, users),
        record("masked", "dreamrec", 0.1, users),
    ]
    _, best, tests = render_markdown(configs, records, "recall@20", "wilcoxon")
    assert best == "top" and tests["sas"].p_value < 1e-6
    assert tests["masked"] == (
        "no baseline on the same data and protocol: eval.exclude_history: true here, false in "
        "top (another evaluation protocol); eval.exclude_history: true here, false in sas "
        "(another evaluation protocol)"
    )


def test_history_length_does_not_make_other_test_examples(tmp_path):
    """`data.max_len` only cuts a next-item model's input: SASRec reading 50 items and
    most-popular reading 10, on the same sequence file, are tested on the same (history, next
    item) examples and are paired, also when their metrics.json recorded their max_len among the
    data statistics. Another sequence file still is not paired."""
    from recdiff.experiments.comparable import difference

    users = np.linspace(0, 1, 40)
    source = ["data.format=sequences", f"data.source={tmp_path / 'seqs.txt'}"]
    long = load_config("demo-sasrec", [*source, "data.max_len=50"]).model_dump(mode="json")
    short = load_config("mostpop-zhihu", [*source, "data.max_len=10"]).model_dump(mode="json")
    other = load_config("mostpop-zhihu", ["data.format=sequences", "data.source=/elsewhere.txt"])
    statistics = {"n_users": 40, "n_items": 30, "train": 200, "valid": 40, "test": 40}
    assert difference(long, statistics, short, statistics) is None
    recorded = {**statistics, "max_len": 50}, {**statistics, "max_len": 10}
    assert difference(long, recorded[0], short, recorded[1]) is None
    found = difference(long, statistics, other.model_dump(mode="json"), statistics)
    assert found is not None and found.setting == "data.source"
    # A DreamRec folder holds histories only: with eval.exclude_history the cut one is masked.
    masked = ["eval.exclude_history=true"]
    cut = load_config("sasrec-zhihu", [*masked, "data.max_len=3"]).model_dump(mode="json")
    whole = load_config("mostpop-zhihu", masked).model_dump(mode="json")
    found = difference(cut, None, whole, None)
    assert (found.kind, found.setting, found.a, found.b) == ("data", "data.max_len", 3, 10)
    unmasked = load_config("sasrec-zhihu", ["data.max_len=3"]).model_dump(mode="json")
    assert (
        difference(unmasked, None, load_config("mostpop-zhihu").model_dump(mode="json"), None)
        is None
    )
    configs = [("top", load_config("mostpop-zhihu", [*source, "data.max_len=10"]))]
    configs.append(("sas", load_config("demo-sasrec", [*source, "data.max_len=50"])))
    records = [
        replace(_record(tmp_path, "top", "mostpop", 1, 0.3, users / 2), data={**statistics, "max_len": 10}),
        replace(_record(tmp_path, "sas", "sasrec", 1, 0.1, users), data={**statistics, "max_len": 50}),
    ]  # fmt: skip
    _, best, tests = render_markdown(configs, records, "recall@20", "wilcoxon")
    assert best == "top" and tests["sas"].p_value < 1e-6


def test_two_demo_datasets_are_not_paired(tmp_path, markdown_tables):
    """`--set demo-popularity:data.seed=7` gives popularity other demo data of the same size:
    results.md makes each the best baseline of its own data instead of pairing them."""
    command = ["experiment", "demo-ease", "demo-popularity", "--seeds", "1", "--quiet"]
    command += ["--set", "demo-popularity:data.seed=7", "--set", "demo-ease:model.l2_lambda=500"]
    result = runner.invoke(app, [*command, "--out", str(tmp_path / "exp")])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "exp" / "results.md").read_text()
    # nothing left to test: a line says so, where an empty table of tests stood (Yelp trial)
    assert len(markdown_tables(text)) == 1 and "Two-sided" not in text
    assert text.rstrip().endswith(
        "No other config to test: each config is the best baseline of its group."
    )
    for label in ("demo-ease", "demo-popularity"):
        alone = f"- Best baseline: **{label}** (highest mean validation recall@20 among {label} "
        line = next(line for line in text.splitlines() if line.startswith(alone))
        assert line.endswith("); no other config is comparable with it.")


def test_the_same_out_spelled_another_way_continues_the_experiment(tmp_path, monkeypatch):
    """OUT spelled from another folder or as an absolute path is the same experiment: nothing is
    trained again, also from records written before records named their files relative to OUT
    (from the working folder of the time)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    command = ["experiment", "demo-ease", "demo-popularity", "--seeds", "1", "--quiet"]
    command += ["--set", "demo-ease:model.l2_lambda=500"]
    first = runner.invoke(app, [*command, "--out", "exp"])
    assert first.exit_code == 0, first.output
    record_path = tmp_path / "exp" / "records" / "demo-ease" / "seed-1.json"

    def continued(out: str) -> None:
        again = runner.invoke(app, [*command, "--out", out])
        assert again.exit_code == 0, again.output
        assert again.output.count("done before") == 2
        assert len(list((tmp_path / "exp" / "runs").iterdir())) == 2
        rows = _rows(tmp_path / "exp" / "results.csv")
        # relative to the output folder, however it was spelled
        assert all((tmp_path / "exp" / row["run_dir"]).is_dir() for row in rows)

    monkeypatch.chdir(tmp_path / "elsewhere")
    continued("../exp")
    continued(str(tmp_path / "exp"))
    record = json.loads(record_path.read_text())
    assert record["run_dir"].startswith("runs/demo-ease-seed1-")
    assert record["per_user_path"] == "records/demo-ease/seed-1.npz"
    assert record["data"]["n_users"] == 1000 and record["data"]["n_items"] == 500
    # A record as written before: paths from the working folder of the time, no statistics.
    record["run_dir"] = f"exp/{record['run_dir']}"
    record["per_user_path"] = f"exp/{record['per_user_path']}"
    del record["data"]
    record_path.write_text(json.dumps(record))
    continued("../exp")


def test_a_metric_not_measured_per_user_is_refused_before_training(tmp_path):
    """Coverage is measured over the catalogue, not per user: the paired tests cannot use it.
    Before, every run trained and then the command ended in a KeyError traceback."""
    configs = [load_config("demo-ease"), load_config("demo-popularity")]
    with pytest.raises(ExperimentError) as caught:
        run_experiment(configs, 1, tmp_path / "out", metric="coverage@20")
    assert str(caught.value) == (
        "metric 'coverage@20' is measured over the whole catalogue, not per user, so the paired "
        "tests cannot use it; pick one of recall, precision, ndcg, mrr, hit_rate (e.g. "
        "recall@20)"
    )
    assert not (tmp_path / "out").exists()
    result = runner.invoke(
        app, ["experiment", "demo-popularity", "--metric", "coverage@10", "--out", "x"]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.startswith("error: metric 'coverage@10' is measured over the whole")


def test_a_damaged_record_is_named_with_what_to_do(tmp_path):
    """A record file that cannot be read (edited, truncated, a disk gone wrong) ends the command
    with one line naming it and what to do, rather than a traceback or an error without a file
    name; deleting it trains that run again."""
    configs = [load_config("demo-popularity")]
    out = tmp_path / "out"
    run_experiment(configs, 1, out)
    record = out / "records" / "demo-popularity" / "seed-1.json"
    per_user = record.with_suffix(".npz")
    kept = record.read_text(), per_user.read_bytes()
    no_valid = {k: v for k, v in json.loads(kept[0]).items() if k != "valid"}
    with np.load(per_user) as saved:
        no_recall = {name: saved[name] for name in saved.files if name != "recall@20"}

    def without_recall() -> None:
        with per_user.open("wb") as fh:
            np.savez(fh, **no_recall)

    damages = [
        (lambda: record.write_text('{"label": "demo-popularity", "seed"'), record, "not JSON"),
        (lambda: record.write_text("[1, 2]"), record, "holds a list, not a record"),
        (lambda: record.write_text(json.dumps(no_valid)), record, "lacks 'valid'"),
        (lambda: per_user.write_text("garbage"), per_user, "cannot be read"),
        (without_recall, per_user, "holds no per-user recall@20"),
    ]
    for damage, path, reason in damages:
        record.write_text(kept[0])
        per_user.write_bytes(kept[1])
        damage()
        with pytest.raises(ExperimentError) as caught:
            run_experiment(configs, 1, out)
        message = str(caught.value)
        assert message.startswith(f"{path}: "), message
        assert reason in message, message
        assert message.endswith(
            "the record of demo-popularity seed 1 looks damaged: delete it, and the same "
            "command trains that run again"
        ), message
    command = ["experiment", "demo-popularity", "--seeds", "1", "--out", str(out), "--quiet"]
    result = runner.invoke(app, command)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.startswith(f"error: {per_user}: holds no per-user recall@20")
    per_user.unlink()
    lines: list[str] = []
    result = run_experiment(configs, 1, out, report=lines.append)
    assert lines[0].startswith("demo-popularity seed 1: valid recall@20")  # trained again
    assert len(list((out / "runs").iterdir())) == 2
