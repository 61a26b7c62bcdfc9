"""`recdiff train / recommend / evaluate / presets` on the demo data, and their errors."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from recdiff.cli.main import app
from recdiff.data import Vocabulary

runner = CliRunner()
FAST = [
    "--set",
    "train.epochs=5",
    "--set",
    "model.hidden_dims=[32]",
    "--set",
    "model.diffusion.steps=4",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    result = runner.invoke(
        app, ["train", "demo-diffrec", *FAST, "--runs-dir", str(runs), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert "recall@20" in result.output and "run:" in result.output
    (path,) = list(runs.iterdir())
    return path


def test_recommend_known_and_new_user(run_dir):
    result = runner.invoke(app, ["recommend", str(run_dir), "--user", "3", "--k", "4", "--json"])
    assert result.exit_code == 0, result.output
    known = json.loads(result.output)
    assert len(known["items"]) == 4 and known["scores"] == sorted(known["scores"], reverse=True)
    result = runner.invoke(
        app, ["recommend", str(run_dir), "--history", "1,2,3", "--k", "4", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert not {1, 2, 3} & set(json.loads(result.output)["items"])


@pytest.mark.parametrize("who", [["--user", "3"], ["--history", "1,2,3"]])
def test_recommend_can_include_the_seen_items(run_dir, who):
    def ranked(*flags):
        args = ["recommend", str(run_dir), *who, "--k", "500", "--json", *flags]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        return json.loads(result.output)["items"]

    every, unseen = ranked("--include-seen"), ranked()
    assert sorted(every) == list(range(500))  # the whole demo catalogue
    seen = set(every) - set(unseen)
    assert seen and [i for i in every if i not in seen] == unseen  # same order otherwise
    if who[0] == "--history":
        assert seen == {1, 2, 3}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # the remedy in the command's words (it said "pass ignore_unknown=True")
        (["--history", "1,2,99999"], "from --history, or pass --ignore-unknown to drop them"),
        (["--user", "99999"], "99999"),
        (["--user", "99999999999999999999"], "user '99999999999999999999' is not among the 1000"),
        (["--history", "1,99999999999999999999"], "1 item id(s) not in the catalogue"),
        (["--user", "abc"], "integers"),
        ([], "exactly one"),
        (["--user", "1", "--history", "2"], "exactly one"),
    ],
)
def test_recommend_errors_are_clear(run_dir, args, message):
    result = runner.invoke(app, ["recommend", str(run_dir), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_ids_lose_surrounding_whitespace_for_every_id_kind(run_dir, tmp_path):
    named = tmp_path / "named"  # the same run with string ids: u0000..u0999, i000..i499
    shutil.copytree(run_dir, named)
    users = Vocabulary.from_ids([f"u{i:04d}" for i in range(1000)])
    (named / "data" / "users.json").write_text(users.to_json())
    (named / "data" / "items.json").write_text(
        Vocabulary.from_ids([f"i{i:03d}" for i in range(500)]).to_json()
    )

    def recommend(run, *args):
        result = runner.invoke(app, ["recommend", str(run), *args, "--k", "4", "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    assert recommend(run_dir, "--user", " 3 ") == recommend(run_dir, "--user", "3")
    assert recommend(named, "--user", " u0003\t") == recommend(named, "--user", "u0003")
    assert recommend(named, "--history", " i001 , i002") == recommend(
        named, "--history", "i001,i002"
    )
    assert recommend(named, "--user", "u0003")["items"] == [
        f"i{i:03d}" for i in recommend(run_dir, "--user", "3")["items"]
    ]
    padded = tmp_path / "padded"  # the data's item "i001" itself carries a space: " i001"
    shutil.copytree(named, padded)
    item_ids = [f"i{i:03d}" for i in range(500)]
    item_ids[1] = " i001"
    (padded / "data" / "items.json").write_text(Vocabulary.from_ids(item_ids).to_json())
    # " i001" is found as typed and "i002 " once stripped (an unknown id would exit with 2).
    assert recommend(padded, "--history", " i001,i002 ")["unknown_items"] == []
    # An unknown id is dropped under --ignore-unknown and named as typed, padding included.
    dropped = recommend(padded, "--history", " i001, i999x ", "--ignore-unknown")
    assert dropped["unknown_items"] == [" i999x "]
    # the list as text says so too (before: only --json listed them)
    args = ["recommend", str(padded), "--history", " i001, i999x ", "--ignore-unknown"]
    text = runner.invoke(app, args)
    assert text.exit_code == 0 and "note: ignored 1 unknown item(s): [' i999x ']\n" in text.stderr
    for run, user in [(named, " u9999 "), (run_dir, " 99999 ")]:
        result = runner.invoke(app, ["recommend", str(run), "--user", user])
        assert result.exit_code == 2
        assert result.stderr == (
            f"error: user {user!r} is not among the 1000 users of this model; check the id "
            "(the data's user ids; a user data.min_rating, data.k_core or the split left "
            "without training items is not one), or recommend from their items instead: "
            "--history ITEM,ITEM,...\n"
        )


def test_a_history_that_leaves_fewer_than_k_items_gets_a_note(run_dir):
    everything = ",".join(str(i) for i in range(500))
    note = "every catalogue item is already in the history; pass --include-seen to rank them"
    result = runner.invoke(app, ["recommend", str(run_dir), "--history", everything])
    assert result.exit_code == 0
    assert (result.stdout, result.stderr) == ("", f"note: {note}\n")
    result = runner.invoke(app, ["recommend", str(run_dir), "--history", everything, "--json"])
    assert result.exit_code == 0 and result.stderr == ""
    assert json.loads(result.stdout) == {
        "items": [],
        "scores": [],
        "unknown_items": [],
        "note": note,
    }
    # k above the unseen items: the ones there are, in their order among all items, and why.
    most = ",".join(str(i) for i in range(497))
    args = ["recommend", str(run_dir), "--history", most, "--json", "--include-seen", "--k", "500"]
    ranked = json.loads(runner.invoke(app, args).stdout)
    rest = [(i, s) for i, s in zip(ranked["items"], ranked["scores"], strict=True) if i >= 497]
    result = runner.invoke(app, ["recommend", str(run_dir), "--history", most, "--k", "5"])
    assert result.exit_code == 0
    assert result.stdout == "".join(
        f"{rank:>3}  {item!s:<12} {score:.4f}\n" for rank, (item, score) in enumerate(rest, 1)
    )
    assert result.stderr == (
        "note: only 3 catalogue items are not already in the history; pass --include-seen to "
        "rank the others too\n"
    )


def _table_values(text: str) -> dict[str, dict[str, str]]:
    """A printed metrics table, read back: {row label: {metric: value as printed}}, across its
    blocks (a header line, then the rows; blocks a blank line apart)."""
    values: dict[str, dict[str, str]] = {}
    for block in text.split("\n\n"):
        lines = [line for line in block.splitlines() if line.strip()]
        names = lines[0].split()
        for line in lines[1:]:
            label, *cells = line.split()
            if len(cells) == len(names):
                values.setdefault(label, {}).update(zip(names, cells, strict=True))
    return values


def test_evaluate_reproduces_the_run_metrics(run_dir):
    result = runner.invoke(app, ["evaluate", str(run_dir)])
    assert result.exit_code == 0, result.output
    stored = json.loads((run_dir / "metrics.json").read_text())
    shown = _table_values(result.stdout)["test"]
    assert shown["recall@20"] == f"{stored['test']['recall@20']:.4f}"
    assert set(shown) == set(stored["test"])  # every metric the run recorded, none cut off
    as_json = runner.invoke(app, ["evaluate", str(run_dir), "--json"])
    assert as_json.exit_code == 0, as_json.output
    parsed = json.loads(as_json.stdout)  # for scripts: the values unrounded
    assert parsed["averaging"] == stored["averaging"]
    assert parsed["test"] == pytest.approx(stored["test"])
    assert parsed["valid"] == pytest.approx(stored["valid"])
    result = runner.invoke(app, ["evaluate", str(run_dir), "--exclude-history"])
    assert result.exit_code == 2
    assert "--keep-history apply to next-item runs" in result.stderr
    assert "always masked" in result.stderr


def test_evaluate_averages_as_the_run_did_unless_told(tmp_path):
    log = tmp_path / "log.csv"  # few items a user: a random split leaves many without test items
    rows = [(u, (u * 7 + j) % 40) for u in range(60) for j in range(3 + u % 4)]
    log.write_text("user,item\n" + "".join(f"{u},{i}\n" for u, i in rows))
    data = ["data.format=csv", f"data.source={log}", "data.split=random"]
    settings = [arg for key in [*data, "eval.averaging=test_users"] for arg in ("--set", key)]
    runs = tmp_path / "runs"
    trained = runner.invoke(app, ["train", "demo-ease", *settings, "--runs-dir", str(runs)])
    assert trained.exit_code == 0, trained.output
    (run,) = list(runs.iterdir())
    stored = json.loads((run / "metrics.json").read_text())["by_averaging"]
    assert stored["all_users"]["test"]["recall@20"] < stored["test_users"]["test"]["recall@20"]

    def test_recall(*options):
        result = runner.invoke(app, ["evaluate", str(run), *options])
        assert result.exit_code == 0, result.output
        table, last = result.stdout.rsplit("\n", 2)[0], result.stdout.splitlines()[-1]
        return _table_values(table)["test"]["recall@20"], last

    for options, averaging in [((), "test_users"), (("--averaging", "all_users"), "all_users")]:
        value = f"{stored[averaging]['test']['recall@20']:.4f}"
        assert test_recall(*options) == (value, f"averaging: {averaging}")


def test_train_rejects_bad_config(tmp_path):
    result = runner.invoke(
        app, ["train", "demo-diffrec", "--set", "train.epochz=1", "--runs-dir", str(tmp_path)]
    )
    assert result.exit_code == 2 and "train.epochz" in result.output
    assert list(tmp_path.iterdir()) == []
    result = runner.invoke(app, ["recommend", str(tmp_path), "--user", "1"])
    assert result.exit_code == 2 and "not a complete run directory" in result.output


@pytest.mark.filterwarnings("ignore:EASE's lambda chosen")  # 300 is the grid's edge here
def test_train_says_what_validation_chose(tmp_path):
    """EASE has no epochs: train names the lambda it chose, which metrics.json records."""
    grid = ["--set", "model.l2_lambda_grid=[1e9,300]"]  # 1e9 ranks by popularity alone
    result = runner.invoke(
        app, ["train", "demo-ease", *grid, "--runs-dir", str(tmp_path), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert "chosen on validation: l2_lambda 300," in result.stdout
    (run,) = list(tmp_path.iterdir())
    assert json.loads((run / "metrics.json").read_text())["selected"] == {"l2_lambda": 300.0}
    result = runner.invoke(
        app, ["train", "demo-popularity", "--runs-dir", str(tmp_path), "--quiet"]
    )
    assert result.exit_code == 0 and "no training loop," in result.stdout


def test_presets_listed():
    result = runner.invoke(app, ["presets"])
    assert "diffrec-ml1m" in result.output.split()


def test_reproduce_refuses_settings_without_paper_numbers(tmp_path):
    result = runner.invoke(app, ["reproduce", "demo-diffrec", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 2 and "reproducible presets" in result.output


def test_reproduce_shows_the_paper_metrics_it_computed_and_says_what_differs(tmp_path, monkeypatch):
    """Overrides may leave some of the paper's metrics uncomputed (eval.ks) or change the data
    or the averaging: recdiff's row then shows what it computed, and notes say what is missing
    and that the paper's row is for other data and evaluation. None computed: refused before
    training. (EASE on the demo data stands in for a paper preset: a second's training.)"""
    from recdiff.cli import reproduce

    paper = {"recall@10": 0.2, "recall@20": 0.3, "ndcg@10": 0.1, "ndcg@20": 0.15}
    monkeypatch.setitem(reproduce.PAPER_RESULTS, "demo-ease", paper)
    args = ["reproduce", "demo-ease", "--runs-dir", str(tmp_path), "--quiet"]
    args += ["--set", "model.l2_lambda=500", "--set", "eval.ks=[5,20]"]
    result = runner.invoke(app, [*args, "--set", "data.seed=3"])
    assert result.exit_code == 0, result.output
    (run,) = tmp_path.iterdir()
    test = json.loads((run / "metrics.json").read_text())["test"]
    table = [line.split() for line in result.stdout.splitlines()[1:]]
    assert table == [
        ["recall@20", "ndcg@20"],
        ["paper", "0.3000", "0.1500"],
        ["recdiff", "(n=1)", f"{test['recall@20']:.4f}", f"{test['ndcg@20']:.4f}"],
    ]
    assert result.stderr == (
        "note: the paper's recall@10 and ndcg@10 are not shown: eval.ks [5, 20] and "
        "eval.metrics ['recall', 'ndcg', 'precision', 'mrr', 'hit_rate', 'coverage'] do not "
        "compute them\n"
        "note: these runs use data.seed=3 (preset 0): the paper's row is for the preset's data "
        "and evaluation, not a like-for-like comparison\n"
    )
    result = runner.invoke(app, [*args, "--set", "eval.averaging=test_users"])
    assert result.exit_code == 0, result.output
    assert "eval.averaging=test_users (preset all_users)" in result.stderr
    assert "data." not in result.stderr
    result = runner.invoke(app, [*args, "--set", "eval.ks=[5]", "--set", "train.metric=recall@5"])
    assert result.exit_code == 2 and len(list(tmp_path.iterdir())) == 2  # nothing trained
    assert "compute none of the paper's metrics (recall@10, recall@20, ndcg@10, ndcg@20)" in (
        result.stderr
    )


@pytest.mark.data
def test_reproduce_prints_recdiff_beside_the_paper(tmp_path, datasets_root, monkeypatch):
    monkeypatch.setenv("RECDIFF_DATASETS", str(datasets_root))
    args = ["reproduce", "diffrec-ml1m", "--runs-dir", str(tmp_path), "--quiet"]
    args += [
        "--set",
        "train.epochs=1",
        "--set",
        "train.eval_every=1",
        "--set",
        "train.precision=bf16",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    paper = next(line for line in result.output.splitlines() if line.startswith("paper"))
    assert "0.1787" in paper
    ours = next(line for line in result.output.splitlines() if line.startswith("recdiff (n=1)"))
    assert float(ours.split()[3]) > 0.1  # test Recall@20 after one epoch; popularity: 0.099


def test_ctrl_c_during_training_says_nothing_was_written(monkeypatch, tmp_path):
    from recdiff.train import run

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "run_training", interrupted)
    result = runner.invoke(app, ["train", "demo-diffrec", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 130
    assert result.stderr == (
        "error: interrupted; no run was written (a run folder appears only when complete; "
        "set train.checkpoint_every to make an interrupted run resumable)\n"
    )


def test_sigterm_during_training_says_nothing_was_written(monkeypatch, tmp_path):
    from recdiff.train import run

    def terminated(*args, **kwargs):
        raise SystemExit(143)  # what run_training's sigterm_unwinds raises

    monkeypatch.setattr(run, "run_training", terminated)
    result = runner.invoke(app, ["train", "demo-diffrec", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 143
    assert result.stderr.startswith("error: stopped by SIGTERM; no run was written")


def test_ctrl_c_during_reproduce_says_which_seeds_are_complete(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from recdiff.train import run

    calls = []

    def second_seed_interrupted(config, *args, **kwargs):
        calls.append(config.train.seed)
        if len(calls) == 2:
            raise KeyboardInterrupt
        metrics = {"test": {}, "best_epoch": 5}
        return SimpleNamespace(metrics=metrics, directory=tmp_path / "seed1")

    monkeypatch.setattr(run, "run_training", second_seed_interrupted)
    args = ["reproduce", "diffrec-ml1m", "--seeds", "3", "--runs-dir", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 130 and calls == [1, 2]
    assert result.stderr == (
        f"error: interrupted during seed 2; seed 1 is a complete run (in {tmp_path})\n"
    )


def test_sigterm_during_reproduce_says_so_like_ctrl_c(monkeypatch, tmp_path):
    from recdiff.train import run

    def terminated(*args, **kwargs):
        raise SystemExit(143)  # what run_training's sigterm_unwinds raises

    monkeypatch.setattr(run, "run_training", terminated)
    args = ["reproduce", "diffrec-ml1m", "--seeds", "2", "--runs-dir", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 143
    assert result.stderr == (
        f"error: stopped by SIGTERM during seed 1; no run was written (in {tmp_path})\n"
    )


def test_a_note_says_when_all_users_averaging_counts_users_without_test_items(
    monkeypatch, tmp_path
):
    """A global time split leaves most users without test items; all-users averaging (the
    DiffRec paper's) counts them as 0, so train says how many and what the others score."""
    from recdiff.train import run

    by_averaging = {
        "all_users": {"valid": {"recall@20": 0.01}, "test": {"recall@20": 0.009}},
        "test_users": {"valid": {"recall@20": 0.12}, "test": {"recall@20": 0.1119}},
    }
    metrics = {
        "averaging": "all_users",
        **by_averaging["all_users"],
        "by_averaging": by_averaging,
        "best_epoch": 3,
        "seconds": {"total": 1.0},
        "data": {"n_users": 943, "test_users": 75},
    }
    monkeypatch.setattr(
        run, "run_training", lambda *a, **k: run.RunResult(tmp_path / "r", metrics, None)
    )
    result = runner.invoke(app, ["train", "demo-diffrec", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        "note: only 75 of 943 users have test items; eval.averaging=all_users (the DiffRec "
        "paper's protocol) counts the others as 0. Over the users with test items: test "
        "recall@20 0.1119 (eval.averaging=test_users)\n"
    )
    for data, averaging in (({"n_users": 943, "test_users": 943}, "all_users"),
                            ({"n_users": 943, "test_users": 75}, "test_users")):  # fmt: skip
        metrics.update(data=data, averaging=averaging)
        result = runner.invoke(app, ["train", "demo-diffrec", "--runs-dir", str(tmp_path)])
        assert result.exit_code == 0 and result.stderr == ""


def test_run_metrics_count_the_users_with_held_out_items(run_dir):
    from recdiff.config import load_config
    from recdiff.train.datasets import load_splits

    stored = json.loads((run_dir / "metrics.json").read_text())
    splits = load_splits(load_config(str(run_dir / "config.yaml")).data)
    assert stored["data"]["valid_users"] == int((splits.valid.user_counts() > 0).sum())
    assert stored["data"]["test_users"] == int((splits.test.user_counts() > 0).sum())


def test_a_stray_rank_outside_a_torchrun_job_keeps_the_warnings(tmp_path, monkeypatch):
    """Only the other ranks of a job (WORLD_SIZE > 1) keep quiet; a RANK left in the
    environment of a single process must not hide its warnings."""
    monkeypatch.setenv("RANK", "1")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    args = ["train", "demo-ease", "--set", "train.lr=0.5", "--quiet"]
    with pytest.warns(UserWarning, match="train.lr does not apply to ease"):
        result = runner.invoke(app, [*args, "--runs-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
