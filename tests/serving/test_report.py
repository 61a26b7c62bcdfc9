"""`recdiff report`: a self-contained HTML page with the run's numbers and same-data runs."""

from __future__ import annotations

import base64
import json
import re
import shutil

import pytest
from typer.testing import CliRunner

from recdiff.cli.main import app
from recdiff.config import load_config
from recdiff.serving.report import build_report
from recdiff.train.run import run_training

runner = CliRunner()


@pytest.fixture(scope="module")
def runs(run_dir, tmp_path_factory):
    """The DiffRec run, an EASE run on the same data and one on other data, in one folder, and
    a SASRec run whose data section equals theirs but whose data (sequences) differ."""
    folder = tmp_path_factory.mktemp("report-runs")
    diffrec = folder / run_dir.name
    shutil.copytree(run_dir, diffrec)
    ease = run_training(load_config("demo-ease", []), folder, progress=False).directory
    other = run_training(load_config("demo-ease", ["data.seed=1"]), folder, progress=False)
    fast = ["train.epochs=1", "train.eval_every=1", "model.dim=8"]
    sasrec = run_training(load_config("demo-sasrec", fast), folder, progress=False).directory
    return diffrec, ease, other.directory, sasrec


def test_report_holds_the_metrics_data_config_and_curves(runs, tmp_path):
    diffrec, _, _, _ = runs
    out = tmp_path / "out" / "report.html"
    result = runner.invoke(app, ["report", str(diffrec), "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    metrics = json.loads((diffrec / "metrics.json").read_text())
    for split in ("valid", "test"):
        for name in ("recall@20", "ndcg@10"):
            assert f"<td>{metrics[split][name]:.4f}</td>" in page
    assert f"<td>{metrics['data']['train']:,}</td>" in page  # data statistics
    assert "hidden_dims:" in page and "- 32" in page  # the config, as YAML
    image = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert image is not None
    assert base64.b64decode(image.group(1)) == (diffrec / "curves.png").read_bytes()
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # written atomically


def test_comparison_lists_only_runs_on_the_same_data(runs):
    diffrec, ease, other, sasrec = runs
    page = build_report(diffrec)
    table = page.split("Runs on the same data (2)")[1].split("<h2>")[0]
    assert ease.name in table and diffrec.name in table
    assert other.name not in table and sasrec.name not in table
    assert "<tr class=this><td>" + diffrec.name in table
    assert "2 other run(s)" in table
    # The demo sequences and the demo matrix share a data section, not their items or targets.
    alone = build_report(sasrec).split("Runs on the same data (1)")[1].split("<h2>")[0]
    assert sasrec.name in alone and diffrec.name not in alone and "3 other run(s)" in alone
    assert "<th>test hit_rate@10</th>" in alone  # the metric the run was selected on
    # One target per example: no averaging to name (both give the same number).
    assert "every run's metrics, as this run reports them" in alone and "averaging" not in alone
    assert "every run's metrics under all_users averaging" in table
    # EASE is fitted in closed form: no epochs, shown as "-" rather than "None".
    overview = build_report(ease).split("<h2>")[0]
    assert "<th>best epoch</th><td>-</td>" in overview and "None" not in overview
    # Its lambda, chosen from a grid, reads as train printed it (300, not 300.0000).
    assert "recall@20 (l2_lambda 300)</td>" in overview
    ease_test = json.loads((ease / "metrics.json").read_text())["test"]["recall@20"]
    assert f"<td>{ease_test:.4f}</td>" in table
    # --compare points at another folder: only the run itself is left.
    assert "Runs on the same data (1)" in build_report(diffrec, compare=diffrec / "model")


def test_next_item_metrics_are_one_table_averaged_over_examples(runs):
    """A next-item run has one target per example: its all_users and test_users means are the
    same numbers, shown before as two tables, "all_users averaging (reported)" and "test_users
    averaging"."""
    diffrec, sasrec = runs[0], runs[3]
    metrics = json.loads((sasrec / "metrics.json").read_text())
    assert metrics["by_averaging"]["all_users"] == metrics["by_averaging"]["test_users"]
    page = build_report(sasrec)
    tables = page.split("<h2>Metrics</h2>")[1].split("<h2>")[0]
    assert re.findall(r"<h3>[^<]*</h3>", tables) == [
        "<h3>averaged over examples, one target each</h3>"
    ]
    test = metrics["test"]["hit_rate@10"]
    assert tables.count(f"<td>{test:.4f}</td>") == 1
    overview = page.split("<h2>")[0]
    assert "<th>averaging</th><td>over examples, one target each</td>" in overview
    assert "user averaging" not in overview and "all_users" not in overview
    # Runs of interaction rows keep a table per averaging, the reported one named.
    rows = build_report(diffrec).split("<h2>Metrics</h2>")[1].split("<h2>")[0]
    assert re.findall(r"<h3>[^<]*</h3>", rows) == [
        "<h3>all_users averaging (reported)</h3>",
        "<h3>test_users averaging</h3>",
    ]
    assert "<th>user averaging</th><td>all_users</td>" in build_report(diffrec).split("<h2>")[0]


def test_damaged_runs_are_left_out_of_the_comparison_and_named_when_reported(runs, tmp_path):
    diffrec = runs[0]
    folder = tmp_path / "runs"
    shutil.copytree(diffrec, folder / diffrec.name)
    for name, config, metrics in [("list-metrics", None, "[]"), ("list-config", "- a\n", "{}")]:
        (folder / name).mkdir()
        (folder / name / "config.yaml").write_text(config or (diffrec / "config.yaml").read_text())
        (folder / name / "metrics.json").write_text(metrics)
    assert "Runs on the same data (1)" in build_report(folder / diffrec.name)
    result = runner.invoke(app, ["report", str(folder / "list-metrics")])
    assert result.exit_code == 2 and "metrics.json holds a list, not the mapping" in result.output
    result = runner.invoke(app, ["report", str(folder / "list-config")])
    assert result.exit_code == 2 and "config.yaml holds a list, not the mapping" in result.output


def test_default_output_is_in_the_run_and_errors_are_clear(runs, tmp_path):
    _, ease, _, _ = runs
    result = runner.invoke(app, ["report", str(ease)])
    assert result.exit_code == 0 and (ease / "report.html").is_file()
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "not a complete run directory" in result.output
    # a missing folder was "not a complete run directory (missing [...])" too
    result = runner.invoke(app, ["report", str(tmp_path / "nope")])
    assert result.exit_code == 2 and f"{tmp_path / 'nope'} does not exist" in result.output
    # an experiment's (or tune's) output folder points at its runs
    shutil.copytree(ease, tmp_path / "experiment" / "runs" / ease.name)
    result = runner.invoke(app, ["report", str(tmp_path / "experiment")])
    assert result.exit_code == 2, result.output
    assert f"its runs are in {tmp_path / 'experiment' / 'runs'}: pass one" in result.output
    result = runner.invoke(app, ["report", str(ease), "--compare", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "not a folder of run directories" in result.output


def test_a_run_given_as_dot_is_named_and_compared_with_its_neighbours(runs, monkeypatch):
    """`recdiff report .` from inside the run folder (or `..` from one of its subfolders) named
    the run "" (the title read ": diffrec") and compared it with the folders inside it instead
    of the runs beside it."""
    diffrec, ease, _, _ = runs
    expected = build_report(diffrec)
    for where, given in [(diffrec, "."), (diffrec / "data", "..")]:
        monkeypatch.chdir(where)
        page = build_report(given)
        assert f"<title>{diffrec.name}: diffrec</title>" in page
        table = _comparison_table(page)
        assert table == _comparison_table(expected) and ease.name in table
        assert "<tr class=this><td>" + diffrec.name in table


def _comparison_table(page: str) -> str:
    return page.split("<h2>Runs on the same data")[1].split("<h2>")[0]


def test_next_item_runs_ranked_another_way_are_left_out(runs, tmp_path):
    """eval.exclude_history decides which items a next-item run ranks (demo SASRec: test HR@10
    0.81 with the past ranked, 0.61 without): runs that differ in it are not one ranking; nor is
    a run that did not compute the metric this run is selected on."""
    sasrec = runs[3]
    folder = tmp_path / "runs"
    shutil.copytree(sasrec, folder / sasrec.name)
    fast = ["train.epochs=1", "train.eval_every=1", "model.dim=8", "eval.exclude_history=true"]
    masked = run_training(load_config("demo-sasrec", fast), folder, progress=False).directory
    fewer = folder / "fewer-cutoffs"
    shutil.copytree(sasrec, fewer)
    metrics = json.loads((fewer / "metrics.json").read_text())
    for splits in [metrics, *metrics["by_averaging"].values()]:
        for values in (splits["valid"], splits["test"]):
            values.pop("hit_rate@10")
    (fewer / "metrics.json").write_text(json.dumps(metrics))

    page = build_report(folder / sasrec.name)
    table = _comparison_table(page)
    assert "Runs on the same data (1)" in page
    assert masked.name not in table.split("</table>")[0]
    assert "fewer-cutoffs" not in table.split("</table>")[0]
    assert (
        f"<li>eval.exclude_history: false here, true in {masked.name} (another evaluation "
        "protocol)</li>"
    ) in table
    assert "<li>fewer-cutoffs did not compute validation hit_rate@10" in table
    # From the masked run's side, the same difference the other way round.
    other = _comparison_table(build_report(masked))
    assert f"eval.exclude_history: true here, false in {sasrec.name}" in other


@pytest.fixture(scope="module")
def averaging_runs(tmp_path_factory):
    """EASE on a user-temporal split of a small table where 7 of 80 users have no test items,
    once under all_users averaging and once under test_users (the same model: EASE's lambda is
    fixed)."""
    import numpy as np

    folder = tmp_path_factory.mktemp("averaging")
    rng = np.random.default_rng(0)
    lines = ["user,item,time"]
    for user in range(80):
        for t, item in enumerate(rng.choice(30, size=rng.integers(1, 12), replace=False)):
            lines.append(f"u{user},i{item},{t}")
    (folder / "log.csv").write_text("\n".join(lines) + "\n")
    data = [f"data.source={folder / 'log.csv'}", "data.format=csv", "data.time_col=time"]
    data += ["data.split=user_temporal", "model.l2_lambda=100"]
    return [
        run_training(load_config("demo-ease", [*data, f"eval.averaging={averaging}"]), folder)
        for averaging in ("all_users", "test_users")
    ]


def test_runs_are_compared_under_this_runs_averaging(averaging_runs):
    """A test_users run beside an all_users one shows its all_users numbers (it recorded both),
    not its own: the same model then scores the same."""
    all_users, test_users = averaging_runs
    assert test_users.metrics["data"]["test_users"] < test_users.metrics["data"]["n_users"]
    own = test_users.metrics["test"]["recall@20"]
    assert own != pytest.approx(all_users.metrics["test"]["recall@20"], abs=1e-3)  # precondition
    for this, other in ((all_users, test_users), (test_users, all_users)):
        table = _comparison_table(build_report(this.directory))
        assert "Runs on the same data (2)" in build_report(this.directory)
        averaging = this.metrics["averaging"]
        assert f"every run's metrics under {averaging} averaging" in table
        rows = re.findall(r"<tr[^>]*><td>([^<]+)</td>((?:<td>[^<]*</td>)+)</tr>", table)
        cells = {name: re.findall(r"<td>([^<]*)</td>", rest)[:-1] for name, rest in rows}
        # model, best epoch, valid recall@20, then the test metrics (fit seconds dropped)
        expected = [
            "ease",
            "-",
            f"{this.metrics['valid']['recall@20']:.4f}",
            *(f"{this.metrics['test'][n]:.4f}" for n in ("recall@10", "recall@20")),
            *(f"{this.metrics['test'][n]:.4f}" for n in ("ndcg@10", "ndcg@20")),
        ]
        assert cells[this.directory.name] == expected
        assert cells[other.directory.name] == expected


def test_next_item_data_counts_examples_and_every_interaction(runs, tmp_path):
    """A next-item run records (history, next item) examples: a user's first item is never a
    target, so the data hold one interaction per user more than the examples (demo: 19,238
    interactions, 18,238 examples)."""
    from recdiff.train.datasets import load_sequences

    sasrec = runs[3]
    stats = json.loads((sasrec / "metrics.json").read_text())["data"]
    _, sequences = load_sequences(load_config(str(sasrec / "config.yaml")).data)
    interactions = int(sequences.indptr[-1])
    users, items = stats["n_users"], stats["n_items"]
    assert interactions == stats["train"] + stats["valid"] + stats["test"] + users
    page = build_report(sasrec).split("<h2>Data</h2>")[1].split("<h2>")[0]
    assert "train interactions" not in page
    assert f"<th>train examples (history, next item)</th><td>{stats['train']:,}</td>" in page
    assert f"<th>test examples (history, next item)</th><td>{stats['test']:,}</td>" in page
    assert f"<td>{interactions:,}</td>" in page
    assert f"<th>density</th><td>{interactions / (users * items):.4%}</td>" in page
    assert f"<th>interactions per user</th><td>{interactions / users:.1f}</td>" in page
    # Without the saved sequences (DreamRec's files hold examples, no users): examples only.
    bare = tmp_path / sasrec.name
    shutil.copytree(sasrec, bare)
    (bare / "data" / "sequences.npz").unlink()
    page = build_report(bare).split("<h2>Data</h2>")[1].split("<h2>")[0]
    assert "density" not in page and "interactions" not in page
    assert f"<th>train examples (history, next item)</th><td>{stats['train']:,}</td>" in page


#: Data settings the built-in demo loader reads no part of (it draws its data from data.seed).
IGNORED_ON_DEMO = ["data.ratios=[0.5,0.2,0.3]", "data.user_col=u", "data.duplicates=last"]


def test_settings_the_demo_ignores_do_not_make_other_data(runs, tmp_path):
    """On the demo data only data.seed (and a next-item model's data.max_len) changes the data:
    runs that differ in settings the demo loader ignores are on the same data, and their
    identical numbers prove it. Before, such a run was left out as "other data"."""
    _, ease, other, sasrec = runs
    folder = tmp_path / "runs"
    for run in (ease, other, sasrec):
        shutil.copytree(run, folder / run.name)
    rows = ["data.split=random", "data.min_rating=4", "data.k_core=3", "data.time_col=t"]
    tweaked = run_training(
        load_config("demo-ease", [*IGNORED_ON_DEMO, *rows]), folder, progress=False
    ).directory
    fast = ["train.epochs=1", "train.eval_every=1", "model.dim=8"]
    sequences = run_training(
        # (a next-item config refuses data.duplicates: it keeps repeated rows in a sequence)
        load_config("demo-sasrec", [*fast, *IGNORED_ON_DEMO[:2]]),
        folder,
        progress=False,
    ).directory
    for run, same in ((ease, tweaked), (sasrec, sequences)):
        metrics = [json.loads((r / "metrics.json").read_text()) for r in (run, same)]
        assert metrics[0]["data"] == metrics[1]["data"]
        assert metrics[0]["test"] == metrics[1]["test"]
        page = build_report(folder / run.name)
        table = _comparison_table(page).split("</table>")[0]
        assert "Runs on the same data (2)" in page, _comparison_table(page)
        assert run.name in table and same.name in table
        assert "3 other run(s)" in _comparison_table(page)  # data.seed=1; the other kind
    assert "Runs on the same data (2)" in build_report(tweaked)


def test_only_what_the_demo_loader_reads_decides_demo_data():
    """The demo's examples depend on data.seed alone (data.max_len only cuts next-item models'
    histories, on any data); a file is read with every setting, so there the same change still
    makes other data."""
    from recdiff.experiments.comparable import difference

    def apart(preset: str, a: list[str], b: list[str]) -> tuple | None:
        dumped = [load_config(preset, sets).model_dump(mode="json") for sets in (a, b)]
        found = difference(dumped[0], None, dumped[1], None)
        return None if found is None else (found.setting, found.a, found.b)

    assert apart("demo-ease", [], [*IGNORED_ON_DEMO, "data.split=random"]) is None
    assert apart("demo-sasrec", [], IGNORED_ON_DEMO[:2]) is None  # duplicates: refused
    assert apart("demo-ease", [], ["data.seed=3"]) == ("data.seed", 0, 3)
    assert apart("demo-sasrec", [], ["data.max_len=5"]) is None
    table = ["data.format=csv", "data.source=log.csv", "data.split=random"]
    ratios = [*table, "data.ratios=[0.5,0.2,0.3]"]
    assert apart("demo-ease", table, ratios) == ("data.ratios", [0.7, 0.1, 0.2], [0.5, 0.2, 0.3])


def test_only_what_a_diffrec_folder_reads_decides_its_data():
    """A DiffRec folder holds its own split: data.split, ratios, seed and filters are unread."""
    from recdiff.experiments.comparable import difference

    def dumped(sets: list[str]) -> dict:
        return load_config("diffrec-ml1m", sets).model_dump(mode="json")

    unread = ["data.seed=9", "data.ratios=[0.5,0.2,0.3]", "data.split=random", "data.min_rating=4"]
    assert difference(dumped([]), None, dumped(unread), None) is None
    found = difference(dumped([]), None, dumped(["data.duplicates=last"]), None)
    assert (found.setting, found.b) == ("data.duplicates", "last")
    found = difference(dumped([]), None, dumped(["data.source=/elsewhere/ml-1m"]), None)
    assert found.setting == "data.source"
