"""A model folder whose weights and config.json do not belong together fails to load with a
ValueError naming both files (the CLI turns it into one ``error:`` line), not torch's traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from recommender_contract import checkerboard
from safetensors.torch import load_file, save_file

from recdiff.models import MultVAE, MultVAEConfig, Popularity, Recommender

TINY = MultVAEConfig(hidden_dims=(8,), latent_dim=4, batch_size=16, max_epochs=1)


def _edit_weights(folder: Path, edit) -> None:
    path = folder / "weights.safetensors"
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path))


def _assert_names_both_files(folder: Path, caught: pytest.ExceptionInfo) -> None:
    message = str(caught.value)
    assert f"{folder / 'weights.safetensors'} and {folder / 'config.json'}" in message
    assert "looks damaged" in message and "\n" not in message


@pytest.fixture
def multvae(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return MultVAE(TINY).fit(checkerboard()).save(tmp_path / "multvae")


def test_a_tensor_of_the_wrong_shape_names_the_files(multvae: Path) -> None:
    name = next(iter(load_file(str(multvae / "weights.safetensors"))))

    def wrong_shape(tensors):
        tensors[name] = torch.zeros(3)

    _edit_weights(multvae, wrong_shape)
    with pytest.raises(ValueError, match=f"size mismatch for {name}") as caught:
        Recommender.load(multvae)
    _assert_names_both_files(multvae, caught)


def test_a_missing_tensor_names_the_files(multvae: Path, tmp_path: Path) -> None:
    name = next(iter(load_file(str(multvae / "weights.safetensors"))))
    _edit_weights(multvae, lambda tensors: tensors.pop(name))
    with pytest.raises(ValueError, match="Missing key") as caught:
        Recommender.load(multvae)
    _assert_names_both_files(multvae, caught)

    popularity = Popularity().fit(checkerboard()).save(tmp_path / "pop")
    save_file({"other": torch.zeros(2)}, str(popularity / "weights.safetensors"))
    with pytest.raises(ValueError, match="'item_counts' is missing") as caught:
        Recommender.load(popularity)  # read as tensors["item_counts"]: a KeyError before
    _assert_names_both_files(popularity, caught)


def test_other_runtime_errors_keep_their_traceback(tmp_path: Path, monkeypatch) -> None:
    saved = Popularity().fit(checkerboard()).save(tmp_path / "pop")

    def broken(config, tensors):
        raise RuntimeError("a bug")

    monkeypatch.setattr(Popularity, "_from_saved", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        Recommender.load(saved)


@pytest.mark.parametrize("kind", ["popularity", "ease"])
def test_weights_of_another_catalogue_size_name_the_files(kind: str, tmp_path: Path) -> None:
    """EASE and popularity check their weights against config.json's n_items themselves: a
    mismatch named neither file nor the folder before."""
    from recdiff.models import EASE

    model = Popularity() if kind == "popularity" else EASE()
    folder = model.fit(checkerboard()).save(tmp_path / kind)
    name = "item_counts" if kind == "popularity" else "weights"
    n = checkerboard().shape[1]
    small = {"item_counts": torch.ones(n - 1), "weights": torch.zeros(n - 1, n - 1)}[name]
    save_file({name: small}, str(folder / "weights.safetensors"))
    with pytest.raises(ValueError, match=f"'{name}' has .*config.json's n_items") as caught:
        Recommender.load(folder)
    _assert_names_both_files(folder, caught)
