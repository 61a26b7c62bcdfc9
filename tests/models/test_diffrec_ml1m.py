"""DiffRec on the paper's ML-1M split: a short run already ranks far above popularity."""

from __future__ import annotations

import pytest

from recdiff.data import read_diffrec_splits
from recdiff.eval import EvalTask
from recdiff.models import Popularity
from recdiff.models.diffrec import DiffRec
from recdiff.train.config import TrainConfig


@pytest.mark.slow  # moved out of the default run (~10 min on 2 cores); CI runs it
@pytest.mark.data
def test_five_epochs_of_released_settings_beat_popularity(datasets_root):
    splits = read_diffrec_splits(datasets_root / "diffrec" / "ml-1m_clean")
    train, valid = splits.train.matrix, splits.valid.matrix
    model = DiffRec(training=TrainConfig(epochs=5, eval_every=5, progress=False))
    model.fit(train, valid)
    task = EvalTask.validation(train, valid)
    ours = task.evaluate(model.score, ks=(20,), averaging="all_users", batch_size=2048)
    pop = task.evaluate(Popularity().fit(train).score, ks=(20,), averaging="all_users")
    # Measured: DiffRec 0.112 after 5 epochs (seed 1), popularity 0.079, EASE's best 0.118.
    assert ours["recall@20"] > 0.10 > pop["recall@20"]
    assert ours["recall@20"] == pytest.approx(model.result.best_metric, abs=1e-9)


@pytest.mark.data
@pytest.mark.parametrize(
    ("space", "preset"),
    [
        ("ldiffrec-autoencoders", "ldiffrec-ml1m"),
        ("ldiffrec-shared-decoder", "ldiffrec-ml1m-tuned"),
        ("ldiffrec-wide", "ldiffrec-ml1m-tuned"),
    ],
)
def test_every_l_diffrec_search_setting_stays_under_60_percent_of_diffrec(
    datasets_root, space, preset
):
    import itertools

    import numpy as np

    from recdiff.config import load_config
    from recdiff.experiments.space import load_space
    from recdiff.models.ldiffrec import LDiffRec, LDiffRecConfig, cluster_items

    root = datasets_root / "diffrec" / "ml-1m_clean"
    n_items = read_diffrec_splits(root).train.matrix.shape[1]
    embeddings = np.load(root / "item_emb.npy")
    diffrec = DiffRec().build(n_items).parameter_count()
    params = load_space(space).params
    spec = load_config(preset).model.model_dump(exclude={"name"})
    base = LDiffRecConfig.model_validate(spec)
    sized = ("decoder", "hidden_dim", "decoder_hidden_dim", "latent_dim")
    names = [k for k in sized if f"model.latent.{k}" in params]
    sizes = [params[f"model.latent.{k}"].choices for k in names]
    clusters = {seed: cluster_items(embeddings, 2, seed) for seed in (1, 2, 3)}
    counts = [
        LDiffRec(
            base.model_copy(
                update={
                    "latent": base.latent.model_copy(update=dict(zip(names, combo, strict=True))),
                    "hidden_dims": dims,
                }
            )
        )
        .build(n_items, clusters[seed])
        .parameter_count()
        for combo in itertools.product(*sizes)
        for dims in params["model.hidden_dims"].choices
        for seed in clusters  # the clusters, hence the sizes, move with the seed
    ]
    # measured 0.586, 0.534 and 0.590 (wide)
    assert max(counts) / diffrec < 0.6, max(counts) / diffrec


@pytest.mark.data
def test_item_clusters_are_a_k_means_fixed_point(datasets_root):
    """Every item is nearest its own cluster's centre (scipy's default 10 iterations left
    0.1-0.9% of ML-1M's items nearer the other centre)."""
    import numpy as np
    from scipy.cluster.vq import vq

    from recdiff.models.ldiffrec import cluster_items

    embeddings = np.load(datasets_root / "diffrec" / "ml-1m_clean" / "item_emb.npy")
    for seed in (1, 2, 3):
        labels = cluster_items(embeddings, 2, seed)
        centres = np.stack([embeddings[labels == c].mean(axis=0) for c in (0, 1)])
        assert (vq(embeddings, centres)[0] == labels).all(), seed


@pytest.mark.data
@pytest.mark.parametrize("preset", ["ldiffrec-ml1m", "ldiffrec-ml1m-tuned", "ldiffrec-ml1m-search"])
def test_l_diffrec_presets_stay_under_60_percent_of_diffrec(datasets_root, preset):
    """The issue's budget, for the clusters that seeds 1-3 draw (their sizes move the count)."""
    import numpy as np

    from recdiff.config import load_config
    from recdiff.models.ldiffrec import LDiffRec, LDiffRecConfig, cluster_items

    root = datasets_root / "diffrec" / "ml-1m_clean"
    n_items = read_diffrec_splits(root).train.matrix.shape[1]
    diffrec = DiffRec().build(n_items).parameter_count()  # the released [200, 600] denoiser
    config = LDiffRecConfig.model_validate(load_config(preset).model.model_dump(exclude={"name"}))
    assert config.latent.n_clusters == 2
    embeddings = np.load(root / "item_emb.npy")
    shares = [
        LDiffRec(config).build(n_items, cluster_items(embeddings, 2, seed)).parameter_count()
        / diffrec
        for seed in (1, 2, 3)
    ]
    assert max(shares) < 0.6, shares  # measured 0.52-0.54 (search: 0.42)
