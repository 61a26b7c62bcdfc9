"""Saved model folders as a user handles them: overwritten, damaged, edited by hand. Each
problem ends in one error that names the file and what to do, and a failed save leaves the
model saved there before intact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from safetensors.torch import load_file, save_file

import recdiff.models.base as base
from recdiff.models import EASE, MultVAE, MultVAEConfig, Popularity
from recdiff.models.base import SavedModel

TINY = MultVAEConfig(hidden_dims=(8,), latent_dim=4, batch_size=16, max_epochs=1)
WEIGHTS = "weights.safetensors"


def checkerboard() -> sp.csr_matrix:
    """40 users x 20 items: the first half of the users take items of the first half, the
    others of the second."""
    rng = np.random.default_rng(0)
    picks = np.argsort(rng.random((40, 10)), axis=1)[:, :4] + 10 * (np.arange(40) >= 20)[:, None]
    rows = np.repeat(np.arange(40), 4)
    return sp.csr_matrix((np.ones(rows.size, np.float32), (rows, picks.ravel())), shape=(40, 20))


def _scores(model, rows) -> np.ndarray:
    scores = model.score(rows)
    return scores.numpy() if isinstance(scores, torch.Tensor) else np.asarray(scores)


@pytest.fixture
def multvae(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return MultVAE(TINY).fit(checkerboard()).save(tmp_path / "multvae")


def _edit_weights(folder: Path, edit) -> None:
    tensors = load_file(str(folder / WEIGHTS))
    edit(tensors)
    save_file(tensors, str(folder / WEIGHTS))


def _assert_damaged(caught: pytest.ExceptionInfo, *files: Path) -> None:
    message = str(caught.value)
    assert all(str(f) in message for f in files), message
    assert "looks damaged" in message and "\n" not in message


@pytest.mark.parametrize(
    "damage",
    [b"", b"\x08\x00\x00\x00\x00\x00\x00\x00{", b"not safetensors" * 20, "half"],
    ids=["empty", "short-header", "garbage", "truncated"],
)
def test_unreadable_weights_name_the_file(multvae: Path, damage) -> None:
    path = multvae / WEIGHTS
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2] if damage == "half" else damage)
    with pytest.raises(ValueError) as caught:
        SavedModel.load(multvae)
    _assert_damaged(caught, path)
    assert "cannot be read" in str(caught.value)


def test_missing_weights_name_the_file(multvae: Path) -> None:
    (multvae / WEIGHTS).unlink()
    with pytest.raises(FileNotFoundError) as caught:
        SavedModel.load(multvae)
    _assert_damaged(caught, multvae / WEIGHTS)


@pytest.mark.parametrize("model", [EASE(), Popularity()], ids=["ease", "popularity"])
def test_an_extra_tensor_is_refused_by_every_model(model, tmp_path: Path) -> None:
    folder = model.fit(checkerboard()).save(tmp_path / "model")
    _edit_weights(folder, lambda tensors: tensors.update(stray=torch.zeros(2)))
    with pytest.raises(ValueError) as caught:
        SavedModel.load(folder)
    _assert_damaged(caught, folder / WEIGHTS, folder / "config.json")
    assert "stray" in str(caught.value)


def test_integer_weights_are_refused_not_cast(multvae: Path) -> None:
    _edit_weights(
        multvae, lambda tensors: tensors.update({k: v.long() for k, v in tensors.items()})
    )
    with pytest.raises(ValueError, match=r"torch\.int64") as caught:
        SavedModel.load(multvae)
    _assert_damaged(caught, multvae / WEIGHTS, multvae / "config.json")


def test_weights_of_another_float_precision_load(multvae: Path) -> None:
    rows = checkerboard()[:3]
    before = _scores(SavedModel.load(multvae), rows)
    _edit_weights(
        multvae, lambda tensors: tensors.update({k: v.double() for k, v in tensors.items()})
    )
    np.testing.assert_allclose(_scores(SavedModel.load(multvae), rows), before, rtol=1e-5)


def test_a_format_version_of_another_type_is_shown_as_such(multvae: Path) -> None:
    path = multvae / "config.json"
    path.write_text(path.read_text().replace('"format_version": 1', '"format_version": "1"'))
    with pytest.raises(ValueError, match=r"format_version '1', this recdiff reads 1"):
        SavedModel.load(multvae)


def test_a_config_that_is_no_mapping_names_the_file(multvae: Path) -> None:
    (multvae / "config.json").write_text("[1, 2]\n")
    with pytest.raises(ValueError) as caught:
        SavedModel.load(multvae)
    _assert_damaged(caught, multvae / "config.json")


def test_a_failed_save_leaves_the_saved_model_intact(tmp_path: Path, monkeypatch) -> None:
    rows = checkerboard()
    folder = EASE().fit(rows).save(tmp_path / "model")
    before = _scores(SavedModel.load(folder), rows[:3])

    def full_disk(tensors, path):
        Path(path).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(base, "save_file", full_disk)
    with pytest.raises(OSError, match="No space"):
        Popularity().fit(rows).save(folder)
    monkeypatch.undo()
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", WEIGHTS]
    reloaded = SavedModel.load(folder)
    assert isinstance(reloaded, EASE)
    np.testing.assert_array_equal(_scores(reloaded, rows[:3]), before)


def test_saving_over_a_file_says_so(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.write_text("notes")
    with pytest.raises(FileExistsError, match="is a file, not a folder"):
        Popularity().fit(checkerboard()).save(target)
    assert target.read_text() == "notes"


def test_overwriting_a_model_replaces_it(tmp_path: Path) -> None:
    rows = checkerboard()
    folder = EASE().fit(rows).save(tmp_path / "model")
    Popularity().fit(rows).save(folder)
    assert isinstance(SavedModel.load(folder), Popularity)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", WEIGHTS]
