"""From a run config's ``data`` section to train/valid/test splits."""

from __future__ import annotations

from recdiff.config.schema import DataConfig, resolve_source
from recdiff.data import (
    DatasetSplits,
    Interactions,
    demo_splits,
    filter_ratings,
    k_core,
    read_diffrec_splits,
    read_interactions,
    read_movielens,
    read_recbole_inter,
    split_global_temporal,
    split_random,
    split_user_temporal,
)

__all__ = ["load_splits"]


def _read_table(data: DataConfig) -> Interactions:
    path = resolve_source(data.source)
    if data.format == "movielens":
        return read_movielens(path)
    if data.format == "recbole":
        return read_recbole_inter(path)
    return read_interactions(
        path,
        user_col=data.user_col,
        item_col=data.item_col,
        rating_col=data.rating_col,
        time_col=data.time_col,
        sep="\t" if data.format == "tsv" else None,
    )


def load_splits(data: DataConfig) -> DatasetSplits:
    """Read, filter and split as configured; DiffRec folders come already split."""
    if data.format == "demo":
        return demo_splits(seed=data.seed)
    if data.format == "diffrec":
        return read_diffrec_splits(resolve_source(data.source))
    interactions = _read_table(data)
    if data.min_rating is not None:
        interactions = filter_ratings(interactions, data.min_rating)
    if data.k_core:
        interactions = k_core(interactions, data.k_core)
    if data.split == "random":
        return split_random(interactions, data.ratios, seed=data.seed, drop_unseen=True)
    if interactions.timestamps is None:
        raise ValueError(
            f"data.split={data.split!r} needs timestamps: set data.time_col, or use split: random"
        )
    if data.split == "user_temporal":
        return split_user_temporal(interactions, data.ratios)
    return split_global_temporal(interactions, data.ratios, drop_unseen=True)
