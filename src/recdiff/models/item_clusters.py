"""L-DiffRec's item groups: item embeddings (given, or a truncated SVD of the training matrix)
and k-means over them.

Given embeddings come as an ``.npy`` array with one row per item in the run's vocabulary order
(sorted external ids), or as a table keyed by item id (CSV, TSV or Parquet: the first column
the id, the others the vector), which is matched to the data's items by id, so embeddings
exported by another tool need no reordering.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.cluster.vq import kmeans2
from scipy.sparse.linalg import svds

from recdiff.config.problems import SettingsDoNotFitData
from recdiff.data.errors import DataFormatError
from recdiff.data.vocab import as_id_array

if TYPE_CHECKING:
    from recdiff.models.ldiffrec_config import LatentConfig

__all__ = [
    "EMBEDDINGS_FROM_DATA",
    "KMEANS_ITERATIONS",
    "TABLE_SUFFIXES",
    "cluster_items",
    "item_embeddings",
]

#: The other choice a missing embeddings file leaves, for messages that name the setting.
EMBEDDINGS_FROM_DATA = (
    "model.latent.item_embeddings=null derives the embeddings from the data instead (a truncated "
    "SVD of the training matrix)"
)

#: Lloyd's iterations of the item clustering (it converges in far fewer on the papers' data).
KMEANS_ITERATIONS = 300
#: File endings read as tables keyed by item id (any other file is read as an ``.npy`` array).
TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".parquet": None, ".pq": None}


def cluster_items(embeddings: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    """k-means (k-means++ start) labels in 0..C-1 for each item; empty clusters are refilled.

    ``KMEANS_ITERATIONS`` Lloyd's iterations (scipy runs them all) reach the fixed point:
    scipy's default of 10 stopped short of it on ML-1M's LightGCN embeddings (2026-11-28: seed
    2 split 1862 / 948 items where the converged split is 1789 / 1021)."""
    if n_clusters > embeddings.shape[0]:
        raise SettingsDoNotFitData(
            f"cannot cluster {embeddings.shape[0]} items into {n_clusters} groups: set "
            f"model.latent.n_clusters to at most {embeddings.shape[0]}, the catalogue's size"
        )
    if n_clusters == 1:
        return np.zeros(embeddings.shape[0], dtype=np.int64)
    points = embeddings.astype(np.float64)
    centroids, labels = kmeans2(points, n_clusters, iter=KMEANS_ITERATIONS, minit="++", seed=seed)
    labels = labels.astype(np.int64)
    for c in range(n_clusters):  # k-means can leave a group empty: give it the biggest group's
        if not (labels == c).any():  # half farthest from that group's centre
            biggest = np.bincount(labels, minlength=n_clusters).argmax()
            members = np.flatnonzero(labels == biggest)
            distance = np.linalg.norm(points[members] - centroids[biggest], axis=1)
            farthest = members[np.argsort(-distance, kind="stable")]
            labels[farthest[: max(1, members.size // 2)]] = c
    return labels


def item_embeddings(
    train: sp.csr_matrix, config: LatentConfig, item_ids: np.ndarray | None = None
) -> np.ndarray:
    """``[n_items, dim]`` embeddings to cluster: from ``config.item_embeddings`` (``item_ids``,
    the external ids in vocabulary order, match a table's rows to the items), else a truncated
    SVD of ``train`` with ``config.svd_dim`` dimensions."""
    if config.item_embeddings is None:
        k = min(config.svd_dim, min(train.shape) - 1)
        if k < 1:  # svds needs k < min(shape): one user's (or item's) matrix is its own SVD
            _, s, vt = np.linalg.svd(train.toarray().astype(np.float64), full_matrices=False)
        else:
            _, s, vt = svds(train.astype(np.float64), k=k, random_state=0)
        return (vt.T * s).astype(np.float32)
    path = Path(config.item_embeddings)
    if path.suffix.lower() in TABLE_SUFFIXES:
        if item_ids is None:
            raise ValueError(
                f"model.latent.item_embeddings ({path}) is a table keyed by item id, but the "
                "items' ids were not given: set the model's item_ids (the vocabulary's ids in "
                "order, e.g. splits.items.ids) before fit, as recdiff's runs do"
            )
        emb = _aligned_table(path, item_ids)
        names = np.asarray(item_ids)
    else:
        emb, names = _load_array(path), None
    if emb.ndim != 2 or emb.shape[0] != train.shape[1]:
        raise ValueError(
            f"item embeddings {config.item_embeddings} have shape {emb.shape}; expected "
            f"({train.shape[1]}, dim), one row per item in vocabulary order (they belong "
            "to other data? set model.latent.item_embeddings=null to derive them from this "
            "data's training matrix, or give a table keyed by item id)"
        )
    return _check_finite(emb, path, names)


def _load_array(path: Path) -> np.ndarray:
    """A numeric array from an ``.npy`` file, or an error that names the setting."""
    where = f"model.latent.item_embeddings ({path})"
    try:
        emb = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ValueError(f"{where}: no such file; {EMBEDDINGS_FROM_DATA}") from None
    except (ValueError, OSError):  # not an .npy file, or an object array (needs pickle)
        raise ValueError(
            f"{where} is not an .npy file of numbers: write the [items, dim] embeddings with "
            "numpy.save, or give a .csv, .tsv or .parquet table keyed by item id"
        ) from None
    if not isinstance(emb, np.ndarray) or not np.issubdtype(emb.dtype, np.number):
        raise ValueError(f"{where} holds {getattr(emb, 'dtype', type(emb))}, not numbers")
    return emb


def _read_table(path: Path) -> tuple[np.ndarray, pd.DataFrame]:
    """The table's ids (text, as the data readers write ids: ``7.0`` from a float column is
    ``7``) and values (numbers). A text file's first row is its header when none of its values
    is a number, so files with and without one both read; a Parquet file's ids may also be
    its index."""
    where = f"model.latent.item_embeddings ({path})"
    sep = TABLE_SUFFIXES[path.suffix.lower()]
    try:
        if sep is None:
            table = pd.read_parquet(path)
            if not isinstance(table.index, pd.RangeIndex):  # written with the ids as index
                table = table.reset_index()
        else:
            table = pd.read_csv(path, sep=sep, header=None, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise ValueError(f"{where}: no such file; {EMBEDDINGS_FROM_DATA}") from None
    except (ValueError, OSError, pd.errors.ParserError) as error:
        raise ValueError(f"{where} cannot be read as a table: {error}") from None
    if table.shape[1] < 2:
        raise ValueError(
            f"{where} needs rows of an item id followed by the embedding's values (at least one "
            f"value column); it has {table.shape[1]} column(s)"
        )
    if sep is not None and len(table) and _not_numbers(table.iloc[0, 1:]).all():
        table = table.iloc[1:]  # a header line
    try:
        ids = as_id_array(table.iloc[:, 0].replace("", None).to_numpy(), what="item id")
    except DataFormatError as error:
        raise ValueError(f"{where}: {error}") from None
    ids = np.char.strip(ids.astype(str))
    cells = table.iloc[:, 1:]
    values = cells.apply(pd.to_numeric, errors="coerce")
    not_numbers = (values.isna() & ~cells.apply(_spelled_nan)).any(axis=1).to_numpy()
    if not_numbers.any():
        raise ValueError(
            f"{where}: the row of item {str(ids[int(np.argmax(not_numbers))])!r} holds a value that "
            "is not a number (write one number a cell, one column per dimension)"
        )
    return ids, values


def _not_numbers(cells: pd.Series) -> pd.Series:
    """Cells that are not numbers (``nan`` and ``inf`` are: the finiteness check names them)."""
    return pd.to_numeric(cells, errors="coerce").isna() & ~_spelled_nan(cells)


def _spelled_nan(cells: pd.Series) -> pd.Series:
    """Cells that spell NaN, a number that parses to NaN."""
    return cells.astype(str).str.strip().str.lower().isin(["nan", "-nan", "+nan"])


def _aligned_table(path: Path, item_ids: np.ndarray) -> np.ndarray:
    """The table's vectors in the order of ``item_ids``; ids match as written (``str`` of the
    vocabulary's ids: ``7`` matches an int id 7, ``007`` does not)."""
    where = f"model.latent.item_embeddings ({path})"
    ids, values = _read_table(path)
    repeated = pd.unique(ids[pd.Index(ids).duplicated()])
    if repeated.size:
        raise ValueError(
            f"{where} lists {repeated.size} item id(s) more than once ({_few(repeated)}): keep "
            "one row per item"
        )
    wanted = np.asarray(item_ids).astype(str)
    rows = pd.Index(ids).get_indexer(wanted)
    missing = wanted[rows < 0]
    if missing.size:
        raise ValueError(
            f"{where} has no row for {missing.size} of the data's {wanted.size} items "
            f"({_few(missing)}); ids must be written as in the data (set "
            "model.latent.item_embeddings=null to derive embeddings from the training matrix)"
        )
    return values.to_numpy(dtype=np.float64)[rows].astype(np.float32)


def _check_finite(emb: np.ndarray, path: Path, names: np.ndarray | None = None) -> np.ndarray:
    """``emb``, or an error naming its rows with NaN or infinite values: by the items' ids
    (``names``, for a table keyed by id), else by vocabulary position."""
    finite = np.isfinite(emb).reshape(emb.shape[0], -1).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        listed = _few(names[bad]) if names is not None else ", ".join(map(str, bad[:5]))
        more = ", ..." if names is None and bad.size > 5 else ""
        raise ValueError(
            f"model.latent.item_embeddings ({path}) has NaN or infinite values in {bad.size} "
            f"row(s) (item {listed}{more})"
        )
    return emb


def _few(values: np.ndarray, shown: int = 5) -> str:
    listed = ", ".join(repr(str(v)) for v in values[:shown])
    return listed + (f" and {len(values) - shown} more" if len(values) > shown else "")
