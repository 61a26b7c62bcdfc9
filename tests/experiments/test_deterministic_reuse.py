"""`recdiff experiment` trains a deterministic config (popularity, EASE on data the seed does not
change) once and gives its other seeds records that repeat that run."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from recdiff.config import load_config
from recdiff.experiments import experiment as experiment_module
from recdiff.experiments.experiment import run_experiment
from recdiff.experiments.reuse import seed_independent, shared_run_key
from recdiff.train import run as run_module
from recdiff.train.run import run_training

TINY_DIFFREC = ["model.hidden_dims=[8]", "model.diffusion.steps=2", "train.epochs=1"]


@pytest.fixture
def trained(monkeypatch):
    """The names of the runs ``run_training`` trains from here on (it still trains them)."""
    names: list[str] = []
    real = run_module.run_training

    def counting(config, runs_dir, progress=None, on_event=None):
        names.append(config.name)
        return real(config, runs_dir, progress=progress, on_event=on_event)

    monkeypatch.setattr(run_module, "run_training", counting)
    return names


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def _record(out: Path, label: str, seed: int) -> dict:
    return json.loads((out / "records" / label / f"seed-{seed}.json").read_text())


def _table(tmp_path: Path) -> Path:
    """30 users with 10 timed interactions each over 20 items, in no particular row order."""
    rows = [(u, (u * 5 + 7 * j) % 20, 100 * u + j) for u in range(30) for j in range(10)]
    rows = sorted(set(rows), key=lambda row: (row[1], -row[0]))
    path = tmp_path / "log.csv"
    path.write_text("user,item,time\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))
    return path


def test_popularity_and_ease_train_once_for_three_seeds(tmp_path, trained):
    out = tmp_path / "out"
    lines: list[str] = []
    configs = [load_config("demo-popularity"), load_config("demo-ease")]
    result = run_experiment(configs, 3, out, report=lines.append)
    assert trained == ["demo-popularity-seed1", "demo-ease-seed1"]
    assert len(list((out / "runs").iterdir())) == 2
    rows = _rows(out / "results.csv")
    assert [(r["label"], r["seed"]) for r in rows] == [
        (label, str(seed)) for label in ("demo-popularity", "demo-ease") for seed in (1, 2, 3)
    ]
    for label in ("demo-popularity", "demo-ease"):
        mine = [{k: v for k, v in r.items() if k != "seed"} for r in rows if r["label"] == label]
        assert mine[0] == mine[1] == mine[2]  # the same run, the same numbers
        first = _record(out, label, 1)
        run_dir = first["run_dir"]
        assert run_dir.startswith(f"runs/{label}-seed1-") and "same_as_seed" not in first
        for seed in (2, 3):
            record = _record(out, label, seed)
            assert (record["same_as_seed"], record["run_dir"]) == (1, run_dir)
            assert record["config"]["train"]["seed"] == seed
        assert f"{label} seed 2: same as seed 1: deterministic ({out / run_dir})" in lines
        per_user = [
            np.load(out / "records" / label / f"seed-{seed}.npz")["recall@20"] for seed in (1, 3)
        ]
        np.testing.assert_array_equal(per_user[0], per_user[1])
    assert "demo-popularity, demo-ease (deterministic" in result.markdown
    assert result.markdown.count("± 0.0000") >= 10  # every cell of both rows: std 0
    # The paired test is the one of single runs: averaging equal arrays changes nothing.
    assert result.tests["demo-popularity"].n == 1000


def test_a_seed_changes_nothing_a_deterministic_run_reads(tmp_path):
    """What makes the reuse right: trained with seed 1 and seed 2, popularity and EASE give the
    same numbers, to the bit."""
    for preset in ("demo-popularity", "demo-ease"):
        runs = [
            run_training(load_config(preset, [f"train.seed={seed}"]), tmp_path, progress=False)
            for seed in (1, 2)
        ]
        assert runs[0].metrics["test"] == runs[1].metrics["test"]
        assert runs[0].metrics["valid"] == runs[1].metrics["valid"]


def test_a_split_drawn_from_the_seed_trains_every_seed(tmp_path, trained, monkeypatch):
    """An experiment whose seed also drew ``data.seed`` (patched in here: experiments vary
    ``train.seed`` alone) would give a random split per seed: each seed trains. A time split
    does not read ``data.seed`` and still trains once."""
    real = experiment_module._seeded

    def seeding_the_data_too(config, label, seed):
        raw = real(config, label, seed)
        raw["data"]["seed"] = seed
        return raw

    monkeypatch.setattr(experiment_module, "_seeded", seeding_the_data_too)
    table = ["data.format=csv", f"data.source={_table(tmp_path)}", "data.time_col=time"]
    random = load_config("demo-popularity", ["name=random", *table, "data.split=random"])
    timed = load_config("demo-popularity", ["name=timed", *table, "data.split=user_temporal"])
    result = run_experiment([random, timed], 3, tmp_path / "out")
    assert trained == ["random-seed1", "random-seed2", "random-seed3", "timed-seed1"]
    fingerprints = {r.data["fingerprint"] for r in result.records if r.label == "random"}
    assert len(fingerprints) == 3  # three splits indeed


def test_a_random_split_with_its_own_seed_trains_once(tmp_path, trained):
    """As experiments are: ``data.seed`` is the config's, the same for every seed, so a random
    split is the same split for each and popularity trains once."""
    table = ["data.format=csv", f"data.source={_table(tmp_path)}", "data.split=random"]
    run_experiment([load_config("demo-popularity", table)], 3, tmp_path / "out")
    assert trained == ["demo-popularity-seed1"]


def test_models_that_draw_random_numbers_train_every_seed(tmp_path, trained):
    tiny = load_config("demo-diffrec", ["name=tiny", *TINY_DIFFREC])
    result = run_experiment([tiny], 3, tmp_path / "out")
    assert trained == ["tiny-seed1", "tiny-seed2", "tiny-seed3"]
    assert len({r.run_dir for r in result.records}) == 3
    assert all(r.same_as_seed is None for r in result.records)
    assert "Trained once" not in result.markdown


def test_which_models_are_seed_independent():
    counted = ("popularity", "ease", "mostpop")
    assert [name for name in counted if seed_independent(name)] == list(counted)
    for name in ("multvae", "diffrec", "ldiffrec", "sasrec", "dreamrec", "no-such-model"):
        assert not seed_independent(name)
    seeded = load_config("demo-diffrec", ["train.seed=2"]).model_dump(mode="json")
    assert shared_run_key(seeded) is None
    one, two = (
        load_config("demo-ease", [f"train.seed={seed}", f"name=x{seed}"]).model_dump(mode="json")
        for seed in (1, 2)
    )
    assert shared_run_key(one) == shared_run_key(two)
    # the demo data is drawn from data.seed: another data.seed is other data
    other = load_config("demo-ease", ["data.seed=5"]).model_dump(mode="json")
    assert shared_run_key(other) != shared_run_key(one)
    # another setting is another run
    fixed = load_config("demo-ease", ["model.l2_lambda=100"]).model_dump(mode="json")
    assert shared_run_key(fixed) != shared_run_key(one)


def test_seeds_added_later_repeat_the_run_done_before(tmp_path, trained):
    """``--seeds 2`` then ``--seeds 4``: seeds 3 and 4 repeat seed 1's run without training,
    as they do when seed 2 was trained on its own (a record written before reuse existed), or
    when a repeated seed's per-user values were deleted."""
    out = tmp_path / "out"
    configs = [load_config("demo-popularity")]
    run_experiment(configs, 2, out)
    assert trained == ["demo-popularity-seed1"]
    lines: list[str] = []
    result = run_experiment(configs, 4, out, report=lines.append)
    assert trained == ["demo-popularity-seed1"]  # nothing more
    assert [line.split(" (")[0] for line in lines[:4]] == [
        "demo-popularity seed 1: done before",
        "demo-popularity seed 2: done before",
        "demo-popularity seed 3: same as seed 1: deterministic",
        "demo-popularity seed 4: same as seed 1: deterministic",
    ]
    assert [r.same_as_seed for r in result.records] == [None, 1, 1, 1]
    assert len({r.run_dir for r in result.records}) == 1

    # A record of seed 2 as an experiment without reuse wrote it: its own run.
    own = run_training(
        load_config("demo-popularity", ["name=demo-popularity-seed2", "train.seed=2"]),
        out / "runs",
        progress=False,
    ).directory
    record = _record(out, "demo-popularity", 2)
    del record["same_as_seed"]
    record["run_dir"] = f"runs/{own.name}"
    (out / "records" / "demo-popularity" / "seed-2.json").write_text(json.dumps(record))
    (out / "records" / "demo-popularity" / "seed-4.npz").unlink()  # seed 4 is to be redone
    trained.clear()
    result = run_experiment(configs, 4, out)
    assert trained == []
    repeats = [(r.seed, r.same_as_seed) for r in result.records]
    assert repeats == [(1, None), (2, None), (3, 1), (4, 1)]
    assert Path(result.records[1].run_dir).name == own.name
    assert Path(result.records[3].run_dir) == Path(result.records[0].run_dir)
