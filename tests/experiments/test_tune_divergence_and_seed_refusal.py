"""`recdiff tune` and `recdiff experiment` as a demanding user drives them: a sampled learning
rate that diverges, sampled eval settings without the search's metric, and a train.seed that an
experiment would replace."""

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recdiff.cli.main import app
from recdiff.config import load_config
from recdiff.experiments.space import SearchSpace
from recdiff.experiments.tune import tune

runner = CliRunner()


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_a_sampled_setting_the_data_cannot_take_is_skipped_as_invalid(tmp_path):
    """More item clusters than the demo's 500 items is a valid config that only the data
    refuses: the trial is INVALID with the reason, and the search goes on (it used to end as a
    FAIL, and again on every rerun of the same command)."""
    pytest.importorskip("optuna")
    choices = {"type": "categorical", "choices": [2, 600]}
    space = SearchSpace.from_dict({"model.latent.n_clusters": choices})
    sets = ["model.latent.item_embeddings=null", "model.latent.latent_dim=700"]
    sets += ["model.latent.epochs=1", "train.epochs=1"]
    config = load_config("ldiffrec-ml1m", [*sets, "data.format=demo", "data.source=null"])
    result = tune(config, space, 2, tmp_path, seed=0, prune=False)
    rows = _rows(tmp_path / "trials.csv")
    states = {row["model.latent.n_clusters"]: row["state"] for row in rows}
    assert states == {"2": "COMPLETE", "600": "INVALID"}, rows
    invalid = next(row for row in rows if row["state"] == "INVALID")
    assert invalid["error"] == (
        "cannot cluster 500 items into 600 groups: set model.latent.n_clusters to at most 500, "
        "the catalogue's size"
    )
    assert result.counts["complete"] == 2 and result.counts["invalid"] >= 1


def test_a_trial_that_diverges_is_skipped_and_the_search_goes_on(tmp_path):
    """lr 1e8 turns Mult-VAE's loss NaN in its first epoch, before any validation: the run
    fails, but the search goes on (it sampled that lr) and counts the trial as finished."""
    pytest.importorskip("optuna")
    space = SearchSpace.from_dict({"train.lr": {"type": "categorical", "choices": [1e-3, 1e8]}})
    config = load_config("demo-multvae", ["train.epochs=1"])
    result = tune(config, space, 3, tmp_path, seed=1, prune=False)
    rows = _rows(tmp_path / "trials.csv")
    assert len(rows) == 3  # diverged trials count towards --trials
    for row in rows:
        diverged = float(row["train.lr"]) == 1e8
        assert row["state"] == ("DIVERGED" if diverged else "COMPLETE"), row
        assert ("training diverged in epoch 1" in row["error"]) == diverged
        assert (row["run_dir"] == "") == diverged  # a diverged trial leaves no run
    n_diverged = sum(row["state"] == "DIVERGED" for row in rows)
    assert n_diverged >= 1
    assert result.counts["diverged"] == n_diverged
    assert result.counts["complete"] == 3 - n_diverged >= 1
    assert result.counts["fail"] == 0
    best = next(r for r in rows if r["state"] == "COMPLETE")
    assert result.best_number == int(best["number"])
    assert load_config(str(tmp_path / "best.yaml")).train.lr == 1e-3
    assert len(list((tmp_path / "runs").iterdir())) == 3 - n_diverged


def test_sampled_eval_settings_without_the_searchs_metric_are_invalid(tmp_path):
    """The search selects on ndcg@10; a trial whose eval.ks lacks 10 cannot report it: it is
    skipped before training, as any invalid combination is, rather than ending the search with a
    KeyError after training."""
    pytest.importorskip("optuna")
    ks = {"type": "categorical", "choices": [[20], [10, 20]]}
    space = SearchSpace.from_dict({"eval.ks": ks})
    result = tune(load_config("demo-ease"), space, 2, tmp_path, metric="valid/ndcg@10", seed=0)
    rows = _rows(tmp_path / "trials.csv")
    invalid = [r for r in rows if r["eval.ks"] == "[20]"]
    complete = [r for r in rows if r["eval.ks"] == "[10, 20]"]
    assert invalid and len(complete) == 2 and len(invalid) + 2 == len(rows)
    for row in invalid:
        assert row["state"] == "INVALID" and row["run_dir"] == ""
        # the trials select their epochs on the search's metric, which their eval must compute
        assert "train.metric 'ndcg@10' selects the epoch" in row["error"]
        assert "add 'ndcg' to eval.metrics and 10 to eval.ks" in row["error"]
    assert all(r["state"] == "COMPLETE" for r in complete)
    assert (result.counts["complete"], result.counts["invalid"]) == (2, len(invalid))
    # EASE is deterministic: both complete trials score the same
    assert float(complete[0]["valid/ndcg@10"]) == float(complete[1]["valid/ndcg@10"]) > 0
    assert len(list((tmp_path / "runs").iterdir())) == 2


@pytest.mark.parametrize("setting", ["train.seed=7", "demo-ease:train.seed=7", " train.seed = 7"])
def test_experiment_refuses_a_train_seed_it_would_replace(tmp_path, setting):
    out = tmp_path / "out"
    args = ["experiment", "demo-ease", "--seeds", "2", "--out", str(out), "--set", setting]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "train.seed 1 to --seeds (now 2)" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()  # refused before anything trained


def test_a_search_cut_short_by_its_timeout_says_so(tmp_path):
    """--timeout 1 with 4 trials: a trial (a 3-epoch Mult-VAE, ~1-2 s here) outlasts it, so the
    search stops short of 4; the summary says the timeout, not the trial count, ended it."""
    pytest.importorskip("optuna")
    space = tmp_path / "space.yaml"
    space.write_text("train.lr: {type: float, low: 1.0e-4, high: 1.0e-3, log: true}\n")
    out = tmp_path / "out"
    args = ["tune", "demo-multvae", "--space", str(space), "--trials", "4", "--timeout", "1"]
    args += ["--out", str(out), "--set", "train.epochs=3"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    finished = len(_rows(out / "trials.csv"))
    assert finished < 4
    assert f"--timeout 1 s reached: {finished} of the 4 trials finished; run the same" in (
        result.output
    )
