"""A whole run on the demo data: the run directory, its metrics, and reloading for inference."""

import json
import os
import signal

import numpy as np
import pytest
import scipy.sparse as sp

from recdiff.config import load_config
from recdiff.eval.ranking import topk_items
from recdiff.serving.predictor import Predictor
from recdiff.train.run import run_training

FAST = [
    "train.epochs=10",
    "train.eval_every=5",
    "model.hidden_dims=[64]",
    "model.diffusion.steps=5",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return run_training(
        load_config("demo-diffrec", FAST), tmp_path_factory.mktemp("runs"), progress=False
    )


def test_run_directory_is_complete(run):
    names = {p.relative_to(run.directory).as_posix() for p in run.directory.rglob("*")}
    assert {
        "config.yaml",
        "events.jsonl",
        "metrics.json",
        "curves.png",
        "model/config.json",
        "model/weights.safetensors",
        "data/users.json",
        "data/items.json",
        "data/inputs.npz",
        "data/seen.npz",
        "test_per_user.npz",
    } <= names
    assert not [p for p in run.directory.parent.iterdir() if p.name.startswith(".")]
    events = [
        json.loads(line) for line in (run.directory / "events.jsonl").read_text().splitlines()
    ]
    assert [e["epoch"] for e in events if e["event"] == "eval"] == [5, 10]
    assert all(
        "valid/recall@20" in e and "test/recall@20" in e for e in events if e["event"] == "eval"
    )


def test_a_multvae_run_logs_its_epochs_and_draws_its_curves(tmp_path):
    config = load_config("demo-multvae", ["train.epochs=4", "train.tensorboard=true"])
    done = run_training(config, tmp_path, progress=False)
    events = [
        json.loads(line) for line in (done.directory / "events.jsonl").read_text().splitlines()
    ]
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [1, 2, 3, 4]
    evals = [e for e in events if e["event"] == "eval"]
    assert [e["epoch"] for e in evals] == [1, 2, 3, 4]  # Mult-VAE validates every epoch
    metrics = json.loads((done.directory / "metrics.json").read_text())
    best = max(evals, key=lambda e: e["valid/recall@20"])
    assert metrics["best_epoch"] == best["epoch"]
    assert (done.directory / "curves.png").stat().st_size > 0
    assert any((done.directory / "tensorboard").rglob("events.out.tfevents.*"))


def test_metrics_record_the_selected_epoch_and_both_averagings(run):
    metrics = json.loads((run.directory / "metrics.json").read_text())
    assert metrics["best_epoch"] in (5, 10)
    assert metrics["validated"] and metrics["diverged_epoch"] is None
    assert metrics["stages"] == {}  # DiffRec has no pre-training stage
    best = next(
        e
        for e in map(json.loads, (run.directory / "events.jsonl").read_text().splitlines())
        if e.get("epoch") == metrics["best_epoch"] and e["event"] == "eval"
    )
    # The final evaluation of the restored best weights reproduces the selection-time numbers.
    assert metrics["valid"]["recall@20"] == pytest.approx(best["valid/recall@20"], abs=1e-9)
    assert metrics["test"]["recall@20"] == pytest.approx(best["test/recall@20"], abs=1e-9)
    assert set(metrics["by_averaging"]) == {"all_users", "test_users"}
    # On the demo data every user has test items: the share is 1, the averagings agree.
    assert metrics["data"]["test_users"] == metrics["data"]["n_users"]
    _check_all_users_averaging(metrics)


def _check_all_users_averaging(metrics: dict) -> None:
    """Users without held-out items count as 0 under all_users averaging: its means are the
    test_users means scaled by the share of users with held-out items. Coverage is a property
    of the lists, not a per-user mean: the same either way."""
    data, both = metrics["data"], metrics["by_averaging"]
    for split in ("valid", "test"):
        share = data[f"{split}_users"] / data["n_users"]
        assert both["all_users"][split].keys() == both["test_users"][split].keys()
        for name, value in both["test_users"][split].items():
            expected = value if name.startswith("coverage@") else value * share
            assert both["all_users"][split][name] == pytest.approx(expected, rel=1e-9), (
                split,
                name,
            )


def test_all_users_averaging_scales_by_the_share_of_users_with_test_items(tmp_path):
    # 3 to 8 items a user, split at random: some users get no validation or test item.
    rows = [(u, i) for u in range(40) for i in range(u % 5, u % 5 + 3 + u % 6)]
    log = tmp_path / "log.csv"
    log.write_text("user,item\n" + "".join(f"{u},{i}\n" for u, i in rows))
    data = ["data.format=csv", f"data.source={log}", "data.split=random", "model.l2_lambda=10"]
    run = run_training(load_config("demo-ease", data), tmp_path / "runs", progress=False)
    metrics = json.loads((run.directory / "metrics.json").read_text())
    n_users = metrics["data"]["n_users"]
    assert 0 < metrics["data"]["valid_users"] < n_users  # the scaling is not the identity
    assert 0 < metrics["data"]["test_users"] < n_users
    _check_all_users_averaging(metrics)


def test_predictor_matches_the_model_and_serves_new_users(run):
    predictor = Predictor.load(run.directory)
    user = predictor.users.external([7])[0]
    recs = predictor.recommend(user=user, k=5)
    # Same as ranking the model's scores for the user's whole history (train, valid and test:
    # what serving scores) with every seen item masked.
    assert predictor.known_inputs[7].nnz > predictor.inputs[7].nnz
    expected, _ = topk_items(run.model.score(predictor.known_inputs[7]), 5, predictor.seen[7])
    assert recs.items == predictor.items.external(expected[0]).tolist()
    history = predictor.items.external(predictor.inputs[7].indices[:4]).tolist()
    new_user = predictor.recommend(history=history, k=5)
    assert len(new_user.items) == 5 and not set(history) & set(new_user.items)
    assert np.all(np.diff(new_user.scores) <= 0)


def test_predictor_reports_bad_requests(run):
    predictor = Predictor.load(run.directory)
    with pytest.raises(KeyError, match="not in the catalogue"):
        predictor.recommend(history=[10**9], k=3)
    with pytest.raises(ValueError, match="empty"):
        predictor.recommend(history=[], k=3)
    with pytest.raises(ValueError, match="k must lie"):
        predictor.recommend(user=predictor.users.external([0])[0], k=0)
    with pytest.raises(KeyError):
        predictor.recommend(user=10**9, k=3)
    known = predictor.items.external([1, 2]).tolist()
    recs = predictor.recommend(history=[*known, 10**9], k=3, ignore_unknown=True)
    assert recs.unknown_items == [10**9]


def test_failed_run_leaves_nothing_behind(tmp_path):
    config = load_config("demo-diffrec", [*FAST, "data.format=diffrec", "data.source=/nonexistent"])
    with pytest.raises(FileNotFoundError):
        run_training(config, tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_run_without_validation_or_test_data_is_refused(tmp_path):
    # A global time split whose later periods hold only users unseen in training: nothing to
    # validate or test on (the evaluation needs a user's training row).
    rows = [(u, i, t) for t, (u, i) in enumerate([(0, 0), (0, 1), (1, 1), (1, 2), (0, 2), (1, 0)])]
    rows += [(2, 0, 10), (2, 1, 11), (3, 2, 12), (3, 0, 13)]
    log = tmp_path / "log.csv"
    log.write_text("user,item,ts\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))
    config = load_config(
        "demo-diffrec",
        [*FAST, "data.format=csv", f"data.source={log}", "data.time_col=ts",
         "data.split=global_temporal", "data.ratios=[0.6,0.2,0.2]"],
    )  # fmt: skip
    runs = tmp_path / "runs"
    with pytest.raises(ValueError, match="validation and test splits are empty"):
        run_training(config, runs, progress=False)
    assert list(runs.iterdir()) == []


@pytest.mark.parametrize("name", ["../escaped", "a/b", "..", ".hidden"])
def test_a_run_name_cannot_leave_the_runs_folder(tmp_path, name):
    runs = tmp_path / "runs"
    config = load_config("demo-diffrec", [*FAST, f"name={name}"])
    with pytest.raises(ValueError, match="plain folder name"):
        run_training(config, runs, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == []  # nothing written, not even runs/


def test_a_run_name_too_long_for_its_folders_is_refused_before_anything_is_written(tmp_path):
    """A 230-byte name would make the hidden folder ".NAME-<time>.incomplete" 256+ bytes: the
    run failed with a traceback after reserving its empty final folder. Now it is refused first,
    and the longest name allowed runs (with room for a "-NNNN" suffix on a clash)."""
    runs = tmp_path / "runs"
    config = load_config("demo-popularity", ["name=" + "n" * 230])
    with pytest.raises(ValueError, match=r"230 bytes long: .* at most 222 bytes"):
        run_training(config, runs, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == []
    run = run_training(config.model_copy(update={"name": "é" * 111}), runs, progress=False)
    assert run.directory.name.startswith("é" * 111)


def test_sigterm_removes_the_partial_run(tmp_path):
    def terminate(record):
        if record.get("event") == "epoch":
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(SystemExit) as stopped:
        run_training(
            load_config("demo-diffrec", FAST), tmp_path, progress=False, on_event=terminate
        )
    assert stopped.value.code == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone again


def test_data_duplicates_chooses_what_repeated_rows_become(tmp_path):
    log = tmp_path / "log.csv"
    rows = [(u, i) for u in range(30) for i in range(u % 5, u % 5 + 8)]
    log.write_text("user,item\n" + "".join(f"{u},{i}\n" for u, i in [*rows, rows[0]]))
    settings = ["data.format=csv", f"data.source={log}", "data.split=random"]
    with pytest.raises(ValueError, match=r"1 duplicate .*data\.duplicates"):
        run_training(load_config("demo-ease", settings), tmp_path / "a", progress=False)
    run = run_training(
        load_config("demo-ease", [*settings, "data.duplicates=last"]),
        tmp_path / "b",
        progress=False,
    )
    assert run.metrics["data"]["train"] + run.metrics["data"]["valid"] + run.metrics["data"][
        "test"
    ] == len(rows)  # the repeated row counted once


def test_both_averagings_come_from_one_scoring_pass(tmp_path):
    """With T' > 0 DiffRec's scores draw noise: the two averagings must average the same draws
    (on the demo data every user has test items, so they must agree exactly)."""
    settings = [*FAST, "train.epochs=2", "model.diffusion.inference_noise_steps=2"]
    run = run_training(load_config("demo-diffrec", settings), tmp_path, progress=False)
    assert run.metrics["data"]["test_users"] == run.metrics["data"]["n_users"]
    both = run.metrics["by_averaging"]
    assert both["all_users"] == both["test_users"]
    # 2 epochs, validation every 5: the last epoch is validated all the same, and kept
    assert (run.metrics["best_epoch"], run.metrics["validated"]) == (2, True)


def test_a_rating_of_zero_is_still_an_interaction(tmp_path):
    """Stored rows are interactions whatever their rating (it matters through min_rating
    only): a 0 once dropped them from the held-out truth and the seen mask, silently."""
    rows = [(u, i, (u + i) % 3) for u in range(40) for i in range(u % 5, u % 5 + 8)]
    log = tmp_path / "log.csv"
    log.write_text("user,item,rating\n" + "".join(f"{u},{i},{r}\n" for u, i, r in rows))
    data = ["data.format=csv", f"data.source={log}", "data.split=random", "model.l2_lambda=100"]
    rated = run_training(
        load_config("demo-ease", [*data, "data.rating_col=rating"]), tmp_path / "a", False
    )
    plain = run_training(load_config("demo-ease", data), tmp_path / "b", False)
    assert rated.metrics["test"] == plain.metrics["test"]
    assert rated.metrics["valid"] == plain.metrics["valid"]
    seen = sp.load_npz(rated.directory / "data" / "seen.npz")
    assert seen.nnz == len(rows) and set(seen.data) == {1.0}
    # re-evaluation reads the zeros as interactions too (it said "the run's data changed")
    assert Predictor.load(rated.directory).evaluate()["test"] == rated.metrics["test"]


def test_interactions_a_split_drops_are_still_seen(tmp_path):
    """A held-out row whose user is not in train cannot be evaluated, but that user had the
    item: the run's seen mask keeps it, so recommend never offers it back, and the user is
    served from it (before, from an empty input: the unpersonalised list, scores all 0)."""
    rows = [(f"u{u}", f"i{(u + j) % 12}", j * 100 + u) for u in range(30) for j in range(8)]
    rows += [("late", "i1", 10_000), ("late", "i2", 10_001)]  # only in the test period
    log = tmp_path / "log.csv"
    log.write_text("user,item,time\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))
    data = ["data.format=csv", f"data.source={log}", "data.time_col=time"]
    run = run_training(load_config("demo-ease", [*data, "model.l2_lambda=10"]), tmp_path, False)
    predictor = Predictor.load(run.directory)
    late = predictor.users.index(["late"])[0]
    assert predictor.inputs[late].nnz == 0  # nothing of theirs is in train
    seen = predictor.items.external(predictor.seen[late].indices).tolist()
    assert sorted(seen) == ["i1", "i2"]
    recs = predictor.recommend(user="late", k=10)
    assert not {"i1", "i2"} & set(recs.items)
    assert recs.note is None and max(recs.scores) > 0  # a list from their own items
    # EASE scores an item by the rows of those it is given: what a new user with i1, i2 gets
    assert recs.to_dict() == predictor.recommend(history=["i1", "i2"], k=10).to_dict()
    assert predictor.recommend(user="u3", k=3).note is None


def test_recbole_files_use_their_field_names_unless_the_config_names_others(tmp_path):
    from recdiff.config.schema import DataConfig
    from recdiff.train.datasets import load_splits

    rows = [(u, i, 4.0 + (u + i) % 2) for u in range(20) for i in range(u % 4, u % 4 + 6)]
    body = "".join(f"{u}\t{i}\t{r}\n" for u, i, r in rows)
    default = tmp_path / "a.inter"
    default.write_text("user_id:token\titem_id:token\trating:float\n" + body)
    renamed = tmp_path / "b.inter"
    renamed.write_text("uid:token\tiid:token\tstars:float\n" + body)
    common = {"format": "recbole", "split": "random", "min_rating": 5.0}
    kept = sum(r >= 5.0 for _, _, r in rows)
    for source, names in ((default, {}), (renamed, {"user_col": "uid", "item_col": "iid",
                                                    "rating_col": "stars"})):  # fmt: skip
        config = DataConfig(source=str(source), **common, **names)
        # A resolved config, written out and read back (as `experiment` and saved runs do),
        # still names the columns that were read.
        for data in (config, DataConfig.model_validate(config.model_dump(mode="json"))):
            splits = load_splits(data)
            assert splits.train.nnz + splits.valid.nnz + splits.test.nnz == kept
    with pytest.raises(ValueError, match="uid"):  # the renamed file without the names
        load_splits(DataConfig(source=str(renamed), **common))


def test_reproduce_under_torchrun_reports_from_rank_0_only(monkeypatch, tmp_path):
    """Every torchrun process runs `recdiff reproduce`; only rank 0 prints the seeds and table."""
    from typer.testing import CliRunner

    from recdiff.cli.main import app
    from recdiff.train import distributed, run

    def trained(config, runs_dir, progress=None, on_event=None):
        test = {"recall@10": 0.1, "recall@20": 0.2, "ndcg@10": 0.05, "ndcg@20": 0.07}
        metrics = {"best_epoch": 1, "test": test}
        return run.RunResult(tmp_path / f"seed{config.train.seed}", metrics, None)

    monkeypatch.setattr(run, "run_training", trained)
    command = ["reproduce", "diffrec-ml1m", "--seeds", "2", "--runs-dir", str(tmp_path)]
    monkeypatch.setattr(distributed, "is_main_process", lambda: False)
    other = CliRunner().invoke(app, command)
    assert other.exit_code == 0, other.output
    assert other.output == ""
    monkeypatch.setattr(distributed, "is_main_process", lambda: True)
    main = CliRunner().invoke(app, command)
    assert main.exit_code == 0, main.output
    assert "seed 1: best epoch 1" in main.output and "seed 2: best epoch 1" in main.output
    assert "recdiff (n=2)" in main.output


def _rated_table(tmp_path):
    """12 users who liked 5 of 7 items each, an item rated 1 by all, a user who rated all 2."""
    rows = [(f"u{u}", f"i{i}", 5) for u in range(12) for i in range(u % 3, u % 3 + 5)]
    rows += [(f"u{u}", "never-liked", 1) for u in range(12)]
    rows += [("grumpy", f"i{i}", 2) for i in range(5)]
    table = tmp_path / "ratings.csv"
    table.write_text("user,item,rating\n" + "".join(f"{u},{i},{r}\n" for u, i, r in rows))
    return table


def test_users_and_items_below_the_rating_bar_leave_the_catalogue(tmp_path):
    """min_rating drops interactions, and then the users and items left with none: the item
    rated 1 by everyone and the user who rated everything 2 are not ranked or scored."""
    from recdiff.config.schema import DataConfig
    from recdiff.train.datasets import load_splits

    config = DataConfig(
        format="csv",
        source=str(_rated_table(tmp_path)),
        rating_col="rating",
        min_rating=4,
        split="random",
    )
    splits = load_splits(config)
    assert "never-liked" not in splits.train.items.ids
    assert "grumpy" not in splits.train.users.ids
    assert (len(splits.train.users), len(splits.train.items)) == (12, 7)
    kept = load_splits(config, drop_emptied=False)  # as runs saved before this did
    assert (len(kept.train.users), len(kept.train.items)) == (13, 8)


def test_a_run_saved_before_min_rating_dropped_emptied_ids_still_evaluates(monkeypatch, tmp_path):
    from recdiff.train import run_rows
    from recdiff.train.datasets import load_splits

    settings = ["data.format=csv", f"data.source={_rated_table(tmp_path)}", "data.split=random",
                "data.rating_col=rating", "data.min_rating=4"]  # fmt: skip
    config = load_config("demo-popularity", settings)
    monkeypatch.setattr(run_rows, "load_splits", lambda data: load_splits(data, drop_emptied=False))
    old = run_training(config, tmp_path / "runs", progress=False)
    monkeypatch.undo()
    predictor = Predictor.load(old.directory)
    assert len(predictor.items) == 8  # the catalogue it was trained with
    assert predictor.evaluate()["test"] == pytest.approx(old.metrics["test"])


@pytest.mark.parametrize(
    ("preset", "settings", "named"),
    [
        ("demo-ease", ["train.lr=0.5", "train.epochs=3"], "train.epochs, train.lr do not apply"),
        ("demo-popularity", ["train.metric=ndcg@10"], "train.metric does not apply"),
    ],
)
def test_closed_form_models_name_the_train_settings_they_ignore(tmp_path, preset, settings, named):
    with pytest.warns(UserWarning, match=named):
        run_training(load_config(preset, settings), tmp_path, progress=False)


def test_ease_reads_train_metric_and_warns_of_nothing_it_uses(tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails: EASE selects lambda by this metric
        run = run_training(
            load_config("demo-ease", ["train.metric=ndcg@10", "train.seed=3"]), tmp_path, False
        )
    events = [
        json.loads(line) for line in (run.directory / "events.jsonl").read_text().splitlines()
    ]
    selected = [e for e in events if e.get("event") == "select"]
    assert selected and selected[0]["l2_lambda"] > 0
