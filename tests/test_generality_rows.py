"""The models of users' rows and their commands on data shaped unlike the papers': ids holding
commas, SASRec's ``user item`` sequence files, data changed under a saved run."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from recdiff.cli.main import app

runner = CliRunner()


def _train(tmp_path, preset: str, *settings: str):
    """Train ``preset`` with ``settings`` (``key=value``) into ``tmp_path/runs``; the run."""
    runs = tmp_path / "runs"
    args = ["train", preset, "--quiet", "--runs-dir", str(runs)]
    args += [arg for setting in settings for arg in ("--set", setting)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    (run,) = [path for path in runs.iterdir() if not path.name.startswith(".")]
    return run


def _quoted_log(tmp_path):
    """A CSV log whose item ids hold commas (quoted, as CSV writers write them)."""
    rows = [
        (f"u {u}", f"item,{(u * 5 + j) % 12}", u * 100 + j) for u in range(30) for j in range(6)
    ]
    log = tmp_path / "log.csv"
    log.write_text("user,item,time\n" + "".join(f'{u},"{i}",{t}\n' for u, i, t in rows))
    return log


def test_history_ids_with_commas_are_given_quoted_as_in_csv(tmp_path):
    """The README lets ids be any strings; a CSV holds ``"item,3"`` quoted. ``--history`` split
    on every comma, so no such item could be named."""
    log = _quoted_log(tmp_path)
    data = ["data.format=csv", f"data.source={log}", "data.time_col=time"]
    run = _train(tmp_path, "demo-popularity", *data, "data.split=leave_one_out")
    result = runner.invoke(
        app,
        [
            "recommend",
            str(run),
            "--history",
            '"item,3", "item,4",item',
            "--k",
            "3",
            "--json",
            "--ignore-unknown",
        ],
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["unknown_items"] == ["item"]
    assert len(answer["items"]) == 3 and not {"item,3", "item,4"} & set(answer["items"])
    every = runner.invoke(
        app,
        ["recommend", str(run), "--history", '"item,3"', "--k", "12", "--json", "--include-seen"],
    )
    assert "item,3" in json.loads(every.output)["items"]


def test_sasrec_user_item_lines_train_the_models_of_rows(tmp_path):
    """SASRec's files hold one ``user item`` pair a line (``Video.txt``); the README says
    data.format=sequences reads SASRec's files, but each user's second line was an error."""
    lines = [f"{u} {(u * 3 + j) % 15 + 1}" for u in range(1, 31) for j in range(5)]
    pairs = tmp_path / "Video.txt"
    pairs.write_text("\n".join(lines) + "\n")
    grouped = tmp_path / "grouped.txt"  # the same sequences, ICLRec's way
    grouped.write_text(
        "".join(
            f"{u} " + " ".join(str((u * 3 + j) % 15 + 1) for j in range(5)) + "\n"
            for u in range(1, 31)
        )
    )
    metrics = []
    for source in (pairs, grouped):
        run = _train(
            tmp_path / source.stem,
            "demo-popularity",
            "data.format=sequences",
            f"data.source={source}",
            "data.split=leave_one_out",
        )
        metrics.append(json.loads((run / "metrics.json").read_text()))
    assert metrics[0]["data"] == metrics[1]["data"]
    assert metrics[0]["data"]["n_users"] == 30 and metrics[0]["data"]["test"] > 0
    assert metrics[0]["test"] == pytest.approx(metrics[1]["test"])


def test_sasrec_pairs_with_tabs_and_iclrec_users_with_one_item(tmp_path):
    from recdiff.data import read_sequence_file

    tabbed = tmp_path / "pairs.txt"
    tabbed.write_text("7\t1\n7\t2\n7\t1\n8\t3\n")  # a repeat is a later interaction
    sequences = read_sequence_file(tabbed)
    assert [sequences.users.ids.tolist(), sequences.lengths().tolist()] == [[7, 8], [3, 1]]
    single = tmp_path / "single.txt"  # ICLRec's lines with one item each: one line a user
    single.write_text("1 5\n2 6\n3 5\n")
    assert read_sequence_file(single).lengths().tolist() == [1, 1, 1]


def test_evaluate_refuses_held_out_data_changed_after_training(tmp_path):
    """evaluate checked only the train interactions: a test row edited in the data file was
    scored as if it were the run's, and printed different metrics with exit code 0."""
    rows = [(u, (u * 7 + j) % 40, u * 10 + j) for u in range(60) for j in range(4 + u % 3)]
    log = tmp_path / "log.csv"

    def write(rows):
        log.write_text("user,item,time\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))

    write(rows)
    data = ["data.format=csv", f"data.source={log}", "data.time_col=time"]
    run = _train(tmp_path, "demo-popularity", *data, "data.split=leave_one_out")
    assert runner.invoke(app, ["evaluate", str(run)]).exit_code == 0
    last = max(j for u, _, j in rows if u == 5)  # user 5's newest row is a test item
    have = {i for u, i, _ in rows if u == 5}
    other = next(i for i in range(40) if i not in have)
    write([(u, other if (u, t) == (5, last) else i, t) for u, i, t in rows])
    result = runner.invoke(app, ["evaluate", str(run)])
    assert result.exit_code == 2
    assert "changed since training: 1 of its" in result.stderr
    assert "test interactions are new to the run" in result.stderr


def test_evaluate_of_a_run_whose_data_moved_says_where_to_point_it(tmp_path):
    rows = [(u, (u * 7 + j) % 40, u * 10 + j) for u in range(60) for j in range(4 + u % 3)]
    log = tmp_path / "log.csv"
    log.write_text("user,item,time\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))
    data = ["data.format=csv", f"data.source={log}", "data.time_col=time"]
    run = _train(tmp_path, "demo-popularity", *data, "data.split=leave_one_out")
    moved = log.rename(tmp_path / "moved.csv")
    result = runner.invoke(app, ["evaluate", str(run)])
    assert result.exit_code == 2
    assert f"not found; the run was trained on it (data.source in {run / 'config.yaml'})" in (
        result.stderr
    )
    config = run / "config.yaml"
    config.write_text(config.read_text().replace(str(log), str(moved)))
    assert runner.invoke(app, ["evaluate", str(run)]).exit_code == 0


def test_ease_weights_fit_large_catalogues_in_two_and_a_half_gram_matrices():
    """EASE's solve peaked at 4.5 n x n float64 arrays beside the Gram matrix (an identity,
    G + λI, LAPACK's Fortran copy, two triangles): 18 GB in all at Yelp's 20,000 items. Now one
    copy is worked on in place, with the same weights."""
    import tracemalloc

    import numpy as np

    from recdiff.models.ease import ease_weights

    n = 1200
    rows = (np.random.default_rng(0).random((300, n)) < 0.05).astype(np.float64)
    gram = rows.T @ rows
    before = gram.copy()
    tracemalloc.start()
    try:
        weights = ease_weights(gram, 10.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2.0 * n * n * 8  # the copy and the float32 result (4.5 before)
    assert np.array_equal(gram, before)
    precision = np.linalg.inv(gram + 10.0 * np.eye(n))
    expected = -precision / np.diag(precision)[None, :]
    np.fill_diagonal(expected, 0.0)
    assert weights.dtype == np.float32 and weights.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(weights, expected, rtol=1e-4, atol=1e-6)


def test_empty_held_out_splits_say_which_items_the_split_left_out(tmp_path):
    """Items seen only in users' last interactions cannot be evaluated: leave-one-out leaves
    nothing to validate or test. The error spoke of users only, who all had train rows here."""
    log = tmp_path / "log.csv"
    rows = [(u, i, u * 10 + i) for u in range(5) for i in range(10)]
    log.write_text("user,item,time\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))
    args = ["train", "demo-popularity", "--quiet", "--runs-dir", str(tmp_path / "runs")]
    data = ["data.format=csv", f"data.source={log}", "data.time_col=time"]
    for setting in [*data, "data.split=leave_one_out"]:
        args += ["--set", setting]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "10 held-out interaction(s) were left out" in result.stderr
    assert "their user (0 of them) or their item (10, of 2 item(s): 8, 9)" in result.stderr
    runs = tmp_path / "runs"
    assert not runs.exists() or not list(runs.iterdir())  # nothing half-written


def test_an_ease_lambda_set_in_the_config_is_not_reported_as_chosen(tmp_path):
    """With model.l2_lambda set, nothing is selected, yet train printed "chosen on validation:
    l2_lambda 300" and metrics.json recorded it under "selected"."""
    result = runner.invoke(
        app,
        [
            "train",
            "demo-ease",
            "--set",
            "model.l2_lambda=300",
            "--runs-dir",
            str(tmp_path),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "chosen on validation" not in result.stdout and "no training loop," in result.stdout
    (run,) = list(tmp_path.iterdir())
    assert json.loads((run / "metrics.json").read_text())["selected"] == {}


def test_more_item_clusters_than_items_names_the_setting(tmp_path):
    """L-DiffRec's presets cluster items into groups; on a catalogue smaller than
    model.latent.n_clusters the error said only "cannot cluster 3 items into 4 groups"."""
    log = tmp_path / "log.csv"
    rows = [(u, (u + j) % 3, j) for u in range(12) for j in range(3)]
    log.write_text("user,item,time\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))
    args = ["train", "ldiffrec-ml1m-tuned", "--quiet", "--runs-dir", str(tmp_path / "runs")]
    settings = ["data.format=csv", f"data.source={log}", "data.time_col=time"]
    settings += ["data.split=leave_one_out", "model.latent.item_embeddings=null"]
    settings += ["model.latent.n_clusters=4"]
    for setting in settings:
        args += ["--set", setting]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "set model.latent.n_clusters to at most 3" in result.stderr
