"""`recdiff experiment` over configs on several data: each config is tested against the best
baseline (on validation) of its own group of comparable runs, not one baseline for all."""

from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from recdiff.cli.main import app
from recdiff.config import load_config
from recdiff.experiments.experiment import SeedRecord
from recdiff.experiments.report import choose_baselines, per_user_over_seeds, render_markdown
from recdiff.experiments.stats import paired_test

runner = CliRunner()
USERS = np.linspace(0, 1, 40)


def _record(folder: Path, label: str, model: str, valid: float, values) -> SeedRecord:
    path = folder / f"{label}.npz"
    np.savez(path, **{"ndcg@20": np.asarray(values, dtype=np.float64)})
    test = {"ndcg@20": float(np.nanmean(values))}
    return SeedRecord(label, model, 1, "", {"ndcg@20": valid}, test, per_user_path=str(path))


def test_each_config_is_tested_against_the_best_baseline_on_its_own_data(tmp_path, markdown_tables):
    """SASRec has the highest validation value of all baselines, but on the demo sequences, not
    the demo rows: DiffRec is tested against EASE, the better of the row baselines on
    validation (popularity is better on test, which does not choose), DreamRec against SASRec.
    A DiffRec on other demo data has no baseline and says why. Before, everything was tested
    against SASRec and the row models were only "not comparable"."""
    configs = [
        ("diffrec", load_config("demo-diffrec")),
        ("sasrec", load_config("demo-sasrec")),
        ("ease", load_config("demo-ease")),
        ("pop", load_config("demo-popularity")),
        ("dreamrec", load_config("demo-dreamrec")),
        ("diffrec7", load_config("demo-diffrec", ["data.seed=7"])),
    ]
    records = [
        _record(tmp_path, "diffrec", "diffrec", 0.3, USERS),
        _record(tmp_path, "sasrec", "sasrec", 0.9, USERS / 2),
        _record(tmp_path, "ease", "ease", 0.4, USERS / 3),
        _record(tmp_path, "pop", "popularity", 0.2, USERS / 1.5),
        _record(tmp_path, "dreamrec", "dreamrec", 0.1, USERS / 4),
        _record(tmp_path, "diffrec7", "diffrec", 0.5, USERS),
    ]
    choice = choose_baselines(configs, records, "ndcg@20")
    assert choice.against == {
        "diffrec": "ease",
        "pop": "ease",
        "dreamrec": "sasrec",
        "diffrec7": None,
    }
    assert choice.references == {"ease": {"ease": 0.4, "pop": 0.2}, "sasrec": {"sasrec": 0.9}}
    text, best, tests = render_markdown(configs, records, "ndcg@20", "wilcoxon")
    assert best == "ease"  # the first config's group
    assert tests["diffrec"] == paired_test(USERS, USERS / 3, "wilcoxon")
    assert tests["pop"] == paired_test(USERS / 1.5, USERS / 3, "wilcoxon")
    assert tests["dreamrec"] == paired_test(USERS / 4, USERS / 2, "wilcoxon")
    assert tests["diffrec"].mean_a == 0.5 and tests["diffrec"].mean_b == 0.5 / 3
    missing = (
        "no baseline on the same data and protocol: test targets: users' interaction rows "
        "here, next-item examples in sasrec (different data); data.seed: 7 here, 0 in ease "
        "(different data); data.seed: 7 here, 0 in pop (different data)"
    )
    assert tests["diffrec7"] == missing
    p_diffrec = f"{tests['diffrec'].p_value:.2e}"
    p_dreamrec = f"{tests['dreamrec'].p_value:.2e}"
    assert markdown_tables(text)[1] == [
        ["config", "users", "per-user test ndcg@20", "baseline", "difference", "p-value",
         "tested against"],
        ["diffrec", "40", "0.5000", "0.1667", "+0.3333", p_diffrec, "ease"],
        ["pop", "40", "0.3333", "0.1667", "+0.1667", f"{tests['pop'].p_value:.2e}", "ease"],
        ["dreamrec", "40", "0.1250", "0.2500", "-0.1250", p_dreamrec, "sasrec"],
        ["diffrec7", "", "", "", "", missing, ""],
    ]  # fmt: skip
    assert (
        "- Best baseline: **ease** (highest mean validation ndcg@20 among ease 0.4000, pop "
        "0.2000), for diffrec, pop.\n"
        "- Best baseline: **sasrec** (highest mean validation ndcg@20 among sasrec 0.9000), for "
        "dreamrec.\n"
        "- No baseline on the same data and protocol for diffrec7.\n"
    ) in text


def test_one_group_keeps_the_single_baseline_layout(tmp_path, markdown_tables):
    """All configs on one data: the line naming the best baseline and the column headed by its
    name read as before groups; the new last column names the baseline of each row."""
    configs = [("diffrec", load_config("demo-diffrec")), ("ease", load_config("demo-ease"))]
    records = [
        _record(tmp_path, "diffrec", "diffrec", 0.3, USERS),
        _record(tmp_path, "ease", "ease", 0.4, USERS / 3),
    ]
    text, best, tests = render_markdown(configs, records, "ndcg@20", "ttest")
    assert best == "ease"
    assert "Best baseline: **ease** (highest mean validation ndcg@20 among ease 0.4000).\n" in text
    assert "groups" not in text
    assert markdown_tables(text)[1][0][3] == "ease"
    assert markdown_tables(text)[1][1][-1] == "ease"
    assert tests["diffrec"] == paired_test(USERS, USERS / 3, "ttest")


def test_experiment_over_demo_rows_and_sequences_tests_both_diffusion_models(
    tmp_path, markdown_tables
):
    """`recdiff experiment demo-diffrec demo-dreamrec demo-sasrec demo-ease --metric ndcg@20`
    (tiny): DiffRec is paired with EASE on the demo rows, DreamRec with SASRec on the demo
    sequences. Before, one baseline served all, so one of the two was left untested."""
    out = tmp_path / "out"
    command = ["experiment", "demo-diffrec", "demo-dreamrec", "demo-sasrec", "demo-ease"]
    command += ["--metric", "ndcg@20", "--seeds", "1", "--out", str(out), "--quiet"]
    command += ["--set", "train.epochs=1", "--set", "train.eval_every=1"]
    for scoped in (
        "demo-diffrec:model.hidden_dims=[32]",
        "demo-diffrec:model.diffusion.steps=4",
        "demo-dreamrec:model.dim=8",
        "demo-dreamrec:model.hidden_dims=[16]",
        "demo-dreamrec:model.diffusion.steps=4",
        "demo-sasrec:model.dim=8",
    ):
        command += ["--set", scoped]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output

    def per_user(label: str) -> np.ndarray:
        with np.load(out / "records" / label / "seed-1.npz") as data:
            return per_user_over_seeds([data["ndcg@20"]])

    rows = {row[0]: row for row in markdown_tables((out / "results.md").read_text())[1][1:]}
    assert set(rows) == {"demo-diffrec", "demo-dreamrec"}
    for label, baseline in (("demo-diffrec", "demo-ease"), ("demo-dreamrec", "demo-sasrec")):
        expected = paired_test(per_user(label), per_user(baseline), "wilcoxon")
        assert rows[label][1] == "1000" == str(expected.n)  # one test target per demo user
        assert rows[label][2:4] == [f"{expected.mean_a:.4f}", f"{expected.mean_b:.4f}"]
        assert rows[label][-1] == baseline
