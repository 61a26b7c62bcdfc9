"""Next-item models and their commands on data the presets were not tuned on: awkward shapes,
other files' formats, and the errors a user meets there."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from recdiff.cli.main import app
from recdiff.data import read_user_sequences
from recdiff.data.sequences import UserSequences
from recdiff.eval.next_item import ITEM_CHUNK, evaluate_next_item
from recdiff.models.sasrec import MostPopular

runner = CliRunner()


def _train(preset: str, source: Path, runs: Path, *sets: str):
    """``recdiff train PRESET`` on a sequence file, one quick epoch."""
    settings = ["data.format=sequences", f"data.source={source}", "train.epochs=1", *sets]
    args = ["train", preset, "--quiet", "--runs-dir", str(runs)]
    return runner.invoke(app, args + [part for s in settings for part in ("--set", s)])


def _one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


# ------------------------------------------------------------------ files that are not there
def test_a_missing_sequence_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nothere\.txt not found$"):
        read_user_sequences(tmp_path / "nothere.txt")
    line = _one_error_line(_train("demo-sasrec", tmp_path / "nothere.txt", tmp_path / "runs"))
    assert line == f"error: {tmp_path / 'nothere.txt'} not found"  # not "[Errno 2] ..."


@pytest.mark.parametrize("where", ["missing", "file", "partial"])
def test_a_dreamrec_folder_without_its_files_says_what_it_holds(tmp_path: Path, where) -> None:
    folder = tmp_path / "zhihu"
    if where == "file":
        folder.write_text("")
    elif where == "partial":  # e.g. the original release's columns: no train_data.df
        folder.mkdir()
        for name in ("data_statis.df", "val_data.df", "test_data.df"):
            (folder / name).write_bytes(b"")
    args = ["train", "mostpop-zhihu", "--quiet", "--runs-dir", str(tmp_path / "runs")]
    line = _one_error_line(runner.invoke(app, [*args, "--set", f"data.source={folder}"]))
    problem = {"missing": "not found", "file": "is not a folder", "partial": "lacks train_data.df"}
    assert line.startswith(f"error: {folder} {problem[where]}: a DreamRec data folder")
    assert "data_statis.df, train_data.df, val_data.df, test_data.df" in line


# ------------------------------------------------------------------ sequences too short
@pytest.mark.parametrize("preset", ["demo-sasrec", "mostpop-zhihu"])
@pytest.mark.parametrize(
    ("lines", "empty"),
    [
        ("u1 a b\nu2 b c\nu3 a\n", "training and validation"),
        ("u1 a b c\nu2 b c a\nu3 c\n", "training"),
    ],
)
def test_sequences_too_short_for_leave_one_out_say_how_long(
    tmp_path: Path, preset: str, lines: str, empty: str
) -> None:
    path = tmp_path / "short.txt"
    path.write_text(lines)
    line = _one_error_line(_train(preset, path, tmp_path / "runs"))
    assert f"no next-item examples for {empty}: leave-one-out" in line
    assert "a user needs 2 items to count in test, 3 in validation and 4 in training" in line
    longest = max(len(row.split()) - 1 for row in lines.splitlines())
    assert line.endswith(f"the longest of the 3 users' sequences here has {longest}")
    assert not any((tmp_path / "runs").glob("*"))  # nothing half-written


def test_most_popular_refuses_empty_training_examples() -> None:
    data = UserSequences.from_lists({"u1": ["a", "b", "c"], "u2": ["b", "a"]})
    with pytest.raises(ValueError, match="train has no next-item examples"):
        MostPopular().fit(data.leave_one_out(max_len=5))


# ------------------------------------------------------------------ evaluate after a change
def _dreamrec_folder(folder: Path, n_items: int = 12, width: int = 4) -> Path:
    """A DreamRec data folder of random right-padded examples (60 / 20 / 20)."""
    rng = np.random.default_rng(0)
    folder.mkdir()

    def frame(n: int) -> pd.DataFrame:
        lengths = rng.integers(0, width + 1, n)
        seqs = [list(rng.integers(0, n_items, k)) + [n_items] * (width - k) for k in lengths]
        targets = rng.integers(0, n_items, n)
        return pd.DataFrame({"seq": seqs, "seq_len": np.maximum(lengths, 1), "tgt": targets})

    pd.DataFrame({"seq_size": [width], "item_num": [n_items]}).to_pickle(folder / "data_statis.df")
    for name, n in (("train", 60), ("val", 20), ("test", 20)):
        frame(n).to_pickle(folder / f"{name}_data.df")
    return folder


def test_evaluate_refuses_a_dreamrec_folder_that_changed(tmp_path: Path) -> None:
    folder = _dreamrec_folder(tmp_path / "data")
    args = ["train", "mostpop-zhihu", "--quiet", "--runs-dir", str(tmp_path / "runs")]
    trained = runner.invoke(app, [*args, "--set", f"data.source={folder}"])
    assert trained.exit_code == 0, trained.output
    (run,) = (tmp_path / "runs").iterdir()
    evaluated = runner.invoke(app, ["evaluate", str(run)])
    assert evaluated.exit_code == 0, evaluated.output
    # one target an example: no users to average over, whatever eval.averaging says
    assert evaluated.output.splitlines()[-1] == "averaging: over examples, one target each"
    test = pd.read_pickle(folder / "test_data.df")
    test.iloc[:12].to_pickle(folder / "test_data.df")  # fewer test examples: other metrics
    line = _one_error_line(runner.invoke(app, ["evaluate", str(run)]))
    assert "the run's data changed since training: it has 12 test examples, the run had 20" in line


# ------------------------------------------------------------------ never-trained targets
@pytest.mark.parametrize("excluded", [False, True])
def test_dreamrec_warns_of_test_targets_it_never_trained_on(tmp_path: Path, excluded) -> None:
    # "cold" is only ever a test target: validation cannot show its random embedding's luck
    lines = [f"u{u} " + " ".join(f"i{(u + j) % 7}" for j in range(6)) for u in range(20)]
    lines[0] += " cold"
    path = tmp_path / "cold.txt"
    path.write_text("\n".join(lines) + "\n")
    sets = ["model.diffusion.steps=5", f"model.exclude_untrained_items={excluded}"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _train("demo-dreamrec", path, tmp_path / "runs", *sets)
    assert result.exit_code == 0, result.output
    said = [str(w.message) for w in caught if "in the training examples, yet" in str(w.message)]
    if excluded:
        assert not said
    else:
        assert said == [
            "1 item never occurs in the training examples, yet it is the target of 0 of 20 "
            "(0.0%) validation and 1 of 20 (5.0%) test examples: no example fitted those "
            "embeddings, which can fill top-k slots and score those hits by luck (set "
            "model.exclude_untrained_items=true to rank trained items only)"
        ]


# ------------------------------------------------------------------ wide catalogues
def test_next_item_ranking_in_item_chunks_changes_no_metric() -> None:
    rng = np.random.default_rng(0)
    lists = {u: rng.integers(0, 40, rng.integers(2, 12)).tolist() for u in range(60)}
    data = UserSequences.from_lists(lists).leave_one_out(max_len=5)
    n = data.n_items
    tied = torch.from_numpy(rng.integers(0, 3, n).astype(np.float32))  # most-popular's ties

    def score(history, lengths):
        return tied.expand(len(history), -1)

    for exclude in (False, True):
        whole, chunked = (
            evaluate_next_item(
                score,
                data.test,
                n,
                ks=(1, 5, 50),
                batch_size=16,
                exclude_history=exclude,
                item_chunk=chunk,
            ).per_user
            for chunk in (None, 7)
        )
        assert all(np.array_equal(whole[key], chunked[key]) for key in whole)
    assert ITEM_CHUNK < 20_000  # Amazon-size catalogues are ranked in chunks by default
