"""Row models on logs split by one global time cut (``data.split=global_temporal``), as a user
of a public review dump (Amazon, Yelp) splits them: users who arrive after the cut have no
train interaction, and the split leaves their held-out interactions out of valid and test.

Found by a trial on ML-100K written as Amazon's JSON dump: the line a run prints said
``38,762 train / 874 valid / 1,276 test`` of 55,375 interactions, with no word of the 14,463
held-out interactions the split had left out (276 of 942 users arrived after the cut), so the
held-out counts looked far short of ``data.ratios`` (0.7/0.1/0.2). And ``data.time_weights``
(T-DiffRec's) given to EASE, popularity or Mult-VAE changed nothing, without a word: they read
every interaction as 1. A paper preset (``data.format: diffrec``) given the review file as
``data.source`` alone said ``reviews.json.gz/train_list.npy not found``, as if the file were a
folder."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from recdiff.config import load_config
from recdiff.train.run import run_training

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: 20 users with 10 interactions each, item (u + t) % 20 at time 100 t + u, and two users who
#: arrive after every other's 9th: all theirs fall in test, and are left out of it.
REGULAR = [(u, (u + t) % 20, 100 * t + u) for u in range(20) for t in range(10)]
LATE = {20: [0, 3, 6, 9, 12], 21: [1, 5, 13, 17]}
ROWS = REGULAR + [(u, i, 950 + 5 * k + u) for u, items in LATE.items() for k, i in enumerate(items)]


def _settings(tmp_path: Path, *extra: str) -> list[str]:
    path = tmp_path / "log.csv"
    path.write_text("user,item,ts\n" + "".join(f"{u},{i},{t}\n" for u, i, t in ROWS))
    return [
        "data.format=csv",
        f"data.source={path}",
        "data.time_col=ts",
        "data.split=global_temporal",
        *extra,
    ]


def test_the_data_line_says_what_the_split_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = load_config("demo-popularity", _settings(tmp_path))
    result = run_training(config, tmp_path / "runs", progress=True)
    err = capsys.readouterr().err
    data = result.metrics["data"]
    line = (
        f"data: 22 users, 20 items; interactions {data['train']} train / {data['valid']} valid "
        f"/ {data['test']} test; 9 held-out interactions left out (their user or item has no "
        "train interaction: 2 users, 0 items)\n"
    )
    assert line in err and err.count("data: ") == 1
    # nothing left out, nothing said (the demo data's line is unchanged)
    run_training(load_config("demo-popularity"), tmp_path / "demo", progress=True)
    assert "interactions 17,633 train / 2,635 valid / 5,577 test\n" in capsys.readouterr().err


@pytest.mark.parametrize("preset", ["demo-ease", "demo-popularity", "demo-multvae"])
def test_time_weights_given_to_a_model_that_binarises_its_rows_are_named(
    tmp_path: Path, preset: str
) -> None:
    settings = (
        ["data.time_weights.w_min=0.2", "model.l2_lambda=100"]
        if preset == "demo-ease"
        else ["data.time_weights.w_min=0.2"]
    )
    if preset == "demo-multvae":
        settings.append("train.epochs=1")
    with pytest.warns(UserWarning, match=r"data.time_weights .*: ignored"):
        run_training(load_config(preset, settings), tmp_path / "weighted", progress=False)


def test_time_weights_ignored_change_nothing_and_diffrec_is_not_warned(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="time_weights"):
        weighted = run_training(
            load_config("demo-popularity", ["data.time_weights.w_min=0.2"]), tmp_path, False
        )
    plain = run_training(load_config("demo-popularity"), tmp_path, False)
    assert weighted.metrics["test"] == plain.metrics["test"]  # what "ignored" claims
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = load_config(
            "demo-diffrec",
            ["data.time_weights.w_min=0.2", "train.epochs=1", "train.eval_every=1"],
        )
        run_training(config, tmp_path, progress=False)
    assert not [w for w in caught if "time_weights" in str(w.message)]


@pytest.mark.parametrize(
    ("name", "named"),
    [
        ("reviews.json.gz", "jsonl"),
        ("log.csv", "csv"),
        ("ml-100k.inter", "recbole"),
        ("x.bin", None),
    ],
)
def test_a_paper_preset_given_a_table_file_says_to_set_its_format(
    tmp_path: Path, name: str, named: str | None
) -> None:
    from recdiff.data.errors import DataFormatError

    source = tmp_path / name
    source.write_bytes(b"")
    config = load_config("tdiffrec-ml1m", [f"data.source={source}", "train.epochs=1"])
    fix = f"set data.format={named}" if named else "set data.format to the file's (csv"
    with pytest.raises(DataFormatError, match=r"is a file, but data\.format=diffrec") as caught:
        run_training(config, tmp_path / "runs", progress=False)
    assert fix in str(caught.value) and "train_list.npy not found" not in str(caught.value)


def test_recommend_keeps_scores_in_a_column_with_long_ids(tmp_path: Path) -> None:
    """Yelp's 22-character ids pushed each score right by its id's length (found by the trial)."""
    from typer.testing import CliRunner

    from recdiff.cli.main import app

    names = [f"item-{'x' * (n % 4) * 6}{n}" for n in range(12)]  # 6 to 25 characters
    rows = [(f"u{u}", names[(u + j) % 12]) for u in range(30) for j in range(6)]
    log = tmp_path / "log.csv"
    log.write_text("user,item\n" + "".join(f"{u},{i}\n" for u, i in rows))
    settings = ["data.format=csv", f"data.source={log}", "data.split=random"]
    run = run_training(load_config("demo-popularity", settings), tmp_path / "runs", False)
    shown = CliRunner().invoke(app, ["recommend", str(run.directory), "--user", "u1", "--k", "6"])
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    starts = {line.rindex(" ") + 1 for line in lines}  # the score, after the id padded alike
    assert len(lines) == 6 and len(starts) == 1
    assert any(len(line.split()[1]) > 12 for line in lines)
