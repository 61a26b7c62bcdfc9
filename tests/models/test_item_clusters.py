"""L-DiffRec's item embeddings from a file: an .npy array in vocabulary order, or a table keyed
by item id, matched to the data's items whatever its row order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recdiff.config import load_config
from recdiff.models.item_clusters import item_embeddings
from recdiff.models.ldiffrec import LatentConfig
from recdiff.serving.predictor import Predictor
from recdiff.train.run import run_training

IDS = np.array(["a", "b", "c", "d"])  # vocabulary order
VECTORS = np.array([[1.0, 0.5], [2.0, -1.0], [3.0, 0.25], [4.0, 8.0]], dtype=np.float32)


def _embeddings(path, ids=IDS) -> np.ndarray:
    train = sp.csr_matrix(np.ones((3, len(IDS if ids is None else ids)), dtype=np.float32))
    return item_embeddings(train, LatentConfig(item_embeddings=str(path)), ids)


def test_a_table_is_matched_to_the_items_by_id_whatever_its_order(tmp_path):
    """Rows shuffled, an id the data lacks, with or without a header: the same array as the
    .npy in vocabulary order."""
    np.save(tmp_path / "emb.npy", VECTORS)
    assert np.array_equal(_embeddings(tmp_path / "emb.npy"), VECTORS)
    order = [2, 0, 3, 1]
    lines = [f"{IDS[i]},{VECTORS[i, 0]},{VECTORS[i, 1]}" for i in order]
    (tmp_path / "emb.csv").write_text("item,e0,e1\n" + "\n".join(lines) + "\nz,9,9\n")
    (tmp_path / "emb.tsv").write_text("\n".join(line.replace(",", "\t") for line in lines))
    frame = pd.DataFrame({"item": IDS[order], "e0": VECTORS[order, 0], "e1": VECTORS[order, 1]})
    frame.to_parquet(tmp_path / "emb.parquet")
    for name in ("emb.csv", "emb.tsv", "emb.parquet"):
        assert np.array_equal(_embeddings(tmp_path / name), VECTORS), name


def test_parquet_ids_read_as_the_data_readers_read_them(tmp_path):
    """Ids from a float column (a nullable int column written out) are ints, and ids written as
    the frame's index are found there; an embedding in one list column says what to write."""
    ids = np.array([7, 10])
    pd.DataFrame({"item": [10.0, 7.0], "e0": [1.0, 2.0]}).to_parquet(tmp_path / "float.parquet")
    assert _embeddings(tmp_path / "float.parquet", ids).tolist() == [[2], [1]]
    pd.DataFrame({"e0": [1.0, 2.0]}, index=pd.Index([10, 7], name="item")).to_parquet(
        tmp_path / "index.parquet"
    )
    assert _embeddings(tmp_path / "index.parquet", ids).tolist() == [[2], [1]]
    pd.DataFrame({"item": [7, 10], "vector": [[1.0, 2.0], [3.0, 4.0]]}).to_parquet(
        tmp_path / "lists.parquet"
    )
    with pytest.raises(ValueError, match=r"not a number \(write one number a cell, one column"):
        _embeddings(tmp_path / "lists.parquet", ids)


def test_ids_match_as_written(tmp_path):
    """An int vocabulary id 7 matches the text 7, not 007 (two ids, as in the data readers)."""
    (tmp_path / "emb.csv").write_text("10,1,1\n7,2,2\n")
    assert _embeddings(tmp_path / "emb.csv", np.array([7, 10])).tolist() == [[2, 2], [1, 1]]
    (tmp_path / "padded.csv").write_text("10,1,1\n007,2,2\n")
    with pytest.raises(ValueError, match=r"no row for 1 of the data's 2 items \('7'\)"):
        _embeddings(tmp_path / "padded.csv", np.array([7, 10]))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,1\nb,2\nc,3\n", r"no row for 1 of the data's 4 items \('d'\); ids must be written"),
        ("a,1\nb,2\nb,5\nc,3\nd,4\n", r"lists 1 item id\(s\) more than once \('b'\)"),
        ("a,1\nb,x\nc,3\nd,4\n", "the row of item 'b' holds a value that is not a number"),
        ("a,1\nb,\nc,3\nd,4\n", "the row of item 'b' holds a value that is not a number"),
        ("a\nb\nc\nd\n", r"needs rows of an item id followed by the embedding's values"),
        ("a,1\nb,nan\nc,3\nd,inf\n", r"NaN or infinite values in 2 row\(s\) \(item 'b', 'd'\)"),
        ("a,1\nb,2\n,3\nd,4\n", "missing"),
        ("a,NA,1\nb,2,2\nc,3,3\nd,4,4\n", "the row of item 'a' holds a value that is not a"),
    ],
)
def test_a_table_that_cannot_be_used_says_what_to_fix(tmp_path, text, message):
    path = tmp_path / "emb.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"model\.latent\.item_embeddings \({path}\).*{message}"):
        _embeddings(path)


def test_a_table_needs_the_items_ids(tmp_path):
    (tmp_path / "emb.csv").write_text("a,1\nb,2\nc,3\nd,4\n")
    with pytest.raises(ValueError, match="keyed by item id, but the items' ids were not given"):
        _embeddings(tmp_path / "emb.csv", ids=None)


def test_a_run_clusters_the_items_of_a_table_keyed_by_external_id(tmp_path):
    """A CSV log whose item ids sort otherwise than the embedding table lists them: the run's
    two groups are the two planted blobs of the table, by id."""
    rng = np.random.default_rng(0)
    items = [f"x{i}" for i in range(10)] + [f"y{i}" for i in range(10)]
    rows = [(f"u{u}", item) for u in range(30) for item in rng.choice(items, 8, replace=False)]
    log = pd.DataFrame(rows, columns=["user", "item"])
    log.to_csv(tmp_path / "log.csv", index=False)
    blob = {"x": 0.0, "y": 10.0}
    # interleaved x0, y0, x1, y1...: rows taken by position instead of by id would mix the blobs
    order = [item for pair in zip(items[:10], items[10:], strict=True) for item in pair]
    table = [(item, blob[item[0]] + rng.normal(), rng.normal()) for item in order]
    pd.DataFrame(table, columns=["item", "e0", "e1"]).to_csv(tmp_path / "emb.csv", index=False)
    sets = ["data.format=csv", f"data.source={tmp_path / 'log.csv'}", "data.split=random"]
    sets += [f"model.latent.item_embeddings={tmp_path / 'emb.csv'}", "model.latent.epochs=1"]
    sets += ["train.epochs=1", "train.eval_every=1", "model.latent.latent_dim=4"]
    sets += ["model.latent.decoder_hidden_dim=8", "model.hidden_dims=[8]"]
    run = run_training(load_config("ldiffrec-ml1m-tuned", sets), tmp_path / "runs", progress=False)
    predictor = Predictor.load(run.directory)
    labels = predictor.model.autoencoder.labels.numpy()
    group = dict(zip(predictor.items.ids.tolist(), labels.tolist(), strict=True))
    assert {group[i] for i in items[:10]} != {group[i] for i in items[10:]}
    assert len({group[i] for i in items[:10]}) == len({group[i] for i in items[10:]}) == 1


def test_a_missing_datasets_embeddings_file_names_its_own_setting(tmp_path, monkeypatch):
    """The preset's ``datasets:diffrec/ml-1m_clean/item_emb.npy`` under an empty dataset folder:
    the message said "pass --set data.source=PATH", a setting that does not hold this path."""
    from recdiff.config.models import build_model
    from recdiff.train.config import TrainConfig

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECDIFF_DATASETS", str(tmp_path))
    latent = {"item_embeddings": "datasets:diffrec/ml-1m_clean/item_emb.npy"}
    with pytest.raises(FileNotFoundError) as caught:
        build_model("ldiffrec", {"latent": latent}, TrainConfig())
    message = str(caught.value)
    assert "data.source" not in message
    assert message.endswith(
        "or pass --set model.latent.item_embeddings=PATH; model.latent.item_embeddings=null "
        "derives the embeddings from the data instead (a truncated SVD of the training matrix)"
    )
