"""Every file a config names is checked before anything trains: the data, and L-DiffRec's item
embeddings, which were found missing only when the model was built (in an experiment, after
the configs before it had trained)."""

from pathlib import Path

import numpy as np
import pytest

from recdiff.config import load_config
from recdiff.config.sources import check_sources


def _ldiffrec(embeddings: str) -> object:
    return load_config(
        "ldiffrec-ml1m",
        [
            "data.format=csv",
            "data.source=" + str(Path(__file__)),  # any existing file: only existence is checked
            "model.latent.item_embeddings=" + embeddings,
        ],
    )


def test_missing_item_embeddings_are_named_with_the_way_out(tmp_path: Path) -> None:
    config = _ldiffrec(str(tmp_path / "gone.npy"))
    with pytest.raises(FileNotFoundError) as error:
        check_sources(config)
    message = str(error.value)
    assert message.startswith(f"model.latent.item_embeddings ({tmp_path / 'gone.npy'}): no such")
    assert "model.latent.item_embeddings=null derives the embeddings from the data" in message


def test_item_embeddings_under_the_dataset_roots_are_looked_up(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECDIFF_DATASETS", str(tmp_path / "root"))
    (tmp_path / "root").mkdir()
    np.save(tmp_path / "root" / "emb.npy", np.zeros((3, 2)))
    check_sources(_ldiffrec("datasets:emb.npy"))  # found: no error
    with pytest.raises(
        FileNotFoundError,
        match=r"dataset 'other\.npy' not found.*--set "
        r"model\.latent\.item_embeddings=PATH",
    ):
        check_sources(_ldiffrec("datasets:other.npy"))


def test_configs_without_embeddings_check_their_data_only(tmp_path: Path) -> None:
    check_sources(
        load_config(
            "ldiffrec-ml1m",
            ["data.format=csv", f"data.source={__file__}", "model.latent.item_embeddings=null"],
        )
    )
    check_sources(load_config("demo-diffrec", []))  # built-in data: nothing to find
    gone = load_config("demo-ease", ["data.format=csv", f"data.source={tmp_path / 'x.csv'}"])
    with pytest.raises(FileNotFoundError, match=r"x\.csv not found"):
        check_sources(gone)


def test_an_experiment_refuses_missing_embeddings_before_it_trains_any_config(tmp_path) -> None:
    """The L-DiffRec config comes second: before, the first trained, then the second failed."""
    from recdiff.experiments.experiment import ExperimentError, run_experiment

    first = load_config("demo-popularity", [])
    second = load_config("ldiffrec-ml1m", [f"model.latent.item_embeddings={tmp_path / 'e.npy'}"])
    second = second.model_copy(update={"data": first.data})  # the demo data: nothing else missing
    with pytest.raises(ExperimentError, match=r"config 'ldiffrec-ml1m': model\.latent\."):
        run_experiment([first, second], seeds=1, out=tmp_path / "exp")
    assert not (tmp_path / "exp" / "runs").exists() or not any(
        (tmp_path / "exp" / "runs").iterdir()
    )
