"""The row models used from Python as a researcher would: refits, tiny data, hand-built parts,
and hand-computed expectations for what the models pass to the diffusion core."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recdiff.data import Interactions, Vocabulary, time_weights
from recdiff.models.diffrec import DiffRec, DiffRecConfig, DiffusionConfig
from recdiff.models.item_clusters import item_embeddings
from recdiff.models.ldiffrec import LatentConfig, LDiffRec, LDiffRecConfig
from recdiff.models.multvae import MultVAE, MultVAENet
from recdiff.nn.autoencoders import ClusterAutoencoder
from recdiff.train.config import TrainConfig

# Tiny matrices: one torch thread (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _rows(n_users: int, n_items: int, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < 0.4).astype(np.float32)
    dense[:, 0] = 1.0
    return sp.csr_matrix(dense)


def _tiny_ldiffrec(**latent) -> LDiffRec:
    settings = {"n_clusters": 2, "latent_dim": 4, "epochs": 1, "svd_dim": 3, **latent}
    return LDiffRec(
        LDiffRecConfig(
            hidden_dims=[4],
            latent=LatentConfig(**settings),
            diffusion=DiffusionConfig(steps=2),
        ),
        TrainConfig(epochs=3, batch_size=4, progress=False),
    )


@pytest.mark.parametrize("joint", [False, True])
def test_ldiffrec_refit_starts_with_an_empty_timestep_history(joint: bool) -> None:
    """A second fit of the same object is a fresh fit, as DiffRec's: the loss-aware sampler
    must not keep the first fit's losses (it then draws other steps, so other weights)."""
    train = _rows(20, 6)
    model = _tiny_ldiffrec(joint=joint).fit(train)
    first = model.score(train)
    model.fit(train)
    # 20 users x 3 epochs of the diffusion stage, each user's loss recorded once
    assert int(model.timesteps.counts.sum()) == 20 * 3
    torch.testing.assert_close(model.score(train), first, rtol=0, atol=0)


def test_ldiffrec_clusters_a_one_user_matrix_by_svd() -> None:
    # One user's matrix is its own rank-1 SVD: s = |x|, v = x / |x|, so the embedding is +-x.
    row = np.array([[1.0, 0.0, 0.5, 1.0, 0.0, 0.25]], dtype=np.float32)
    train = sp.csr_matrix(row)
    emb = item_embeddings(train, LatentConfig(n_clusters=2, latent_dim=4, svd_dim=3))
    assert emb.shape == (6, 1)
    np.testing.assert_allclose(np.abs(emb[:, 0]), row[0], rtol=1e-6)
    model = _tiny_ldiffrec().fit(train)
    assert sorted(set(model.autoencoder.labels.tolist())) == [0, 1]
    assert model.score(train).shape == (1, 6)


def test_cluster_autoencoder_refuses_a_gap_in_the_group_numbers() -> None:
    with pytest.raises(ValueError, match=r"group\(s\) \[1\] of 0..2 empty"):
        ClusterAutoencoder(np.array([0, 0, 2, 2]), latent_dim=3, dropout=0.0)
    with pytest.raises(ValueError, match="group numbers >= 0"):
        ClusterAutoencoder(np.array([-1, 0, 1]), latent_dim=3, dropout=0.0)


def test_time_weights_by_hand_with_ties_and_single_interactions() -> None:
    # user 0: times 10, 20, 20, 30 -> 3 distinct times: 0.1, 0.55, 0.55, 1.0
    # user 1: one interaction -> w_max; user 2: none; user 3: times 5 (item 2), 1 (item 0)
    users, items = Vocabulary(["a", "b", "c", "d"]), Vocabulary(["i0", "i1", "i2", "i3", "i4"])
    user_idx = np.array([0, 0, 0, 0, 1, 3, 3])
    item_idx = np.array([3, 1, 4, 0, 2, 2, 0])
    times = np.array([10, 20, 20, 30, 7, 5, 1], dtype=np.float64)
    data = Interactions.from_indices(users, items, user_idx, item_idx, timestamps=times)
    expected = np.array(
        [
            [1.0, 0.55, 0.0, 0.1, 0.55],
            [0.0, 0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0],
            [0.1, 0.0, 1.0, 0.0, 0.0],
        ]
    )
    np.testing.assert_allclose(time_weights(data, 0.1, 1.0).toarray(), expected, rtol=1e-6)
    expected[1, 2] = 0.1  # the released code's linspace for one interaction
    np.testing.assert_allclose(
        time_weights(data, 0.1, 1.0, single="min").toarray(), expected, rtol=1e-6
    )


def test_diffrec_loss_is_snr_weighted_and_divided_by_sampling_probability() -> None:
    steps = 4
    config = DiffRecConfig(
        hidden_dims=[6],
        dropout=0.0,
        diffusion=DiffusionConfig(steps=steps, noise_scale=0.1, noise_min=0.1, noise_max=0.5),
    )
    model = DiffRec(config, TrainConfig(progress=False)).build(5)
    model.module.eval()
    history = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)[:, None].repeat(1, 10)
    model.timesteps.load_state_dict({"loss_history": history, "counts": torch.full((4,), 10)})
    # rms of the histories is 1..4: p_t = 0.999 t / 10 + 0.001 / 4
    p = 0.999 * torch.arange(1, 5, dtype=torch.float64) / 10 + 0.001 / 4
    torch.testing.assert_close(copy.deepcopy(model.timesteps).probabilities(), p)
    x0 = torch.tensor([[1.0, 0, 1, 0, 0], [0, 1, 0, 0, 1], [1, 1, 1, 0, 0]])
    torch.manual_seed(5)
    loss = model.loss(x0)
    torch.manual_seed(5)  # the same draws: t, then the noise
    t = torch.multinomial(p, 3, replacement=True)
    noise = torch.randn_like(x0)
    abar = np.cumprod(1.0 - model.process.betas.numpy())
    snr = abar / (1.0 - abar)
    weight = np.r_[1.0, 0.5 * (snr[:-1] - snr[1:])]  # 1 at t = 1, Eq. 8-9 after
    x_t = (
        torch.from_numpy(np.sqrt(abar)).float()[t, None] * x0
        + torch.from_numpy(np.sqrt(1.0 - abar)).float()[t, None] * noise
    )
    with torch.no_grad():
        per_row = torch.from_numpy(weight)[t] * (model.denoiser(x_t, t) - x0).pow(2).mean(1)
    expected = (per_row / (steps * p[t])).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # the sampler records the SNR-weighted losses, before the division by p_t
    recorded = torch.stack([model.timesteps.loss_history[s, 0] for s in t.tolist()])
    torch.testing.assert_close(recorded, per_row.double(), rtol=1e-5, atol=0)


def test_multvae_beta_rises_by_one_over_total_anneal_steps() -> None:
    model = MultVAE(hidden_dims=(3,), latent_dim=2, dropout=0.0, total_anneal_steps=10)
    model.net = MultVAENet(4, (3,), 2, 0.0)
    model.steps = 0
    x = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    betas = []
    for _ in range(4):
        model.loss(x)
        betas.append(model.beta)
    assert betas == [0.0, 0.1, 0.2, 0.2]  # min(0.2, step / 10)


@pytest.mark.parametrize("value", [np.nan, -1.0, np.inf])
def test_the_baselines_refuse_in_fit_what_their_scoring_refuses(value):
    """fit counted a NaN or negative entry as an interaction, while score refused the same
    value in a history "(as fit requires)"."""
    from recdiff.models.ease import EASE
    from recdiff.models.popularity import Popularity

    train = sp.csr_matrix(np.array([[1.0, 0.0, value], [0.0, 1.0, 1.0]]))
    for model in (Popularity(), EASE(l2_lambda=1.0)):
        with pytest.raises(ValueError, match="negative or non-finite values"):
            model.fit(train)
    zeros = sp.csr_matrix(([0.0, 1.0], ([0, 1], [2, 0])), shape=(2, 3))  # a stored 0 counts
    assert Popularity().fit(zeros).score(sp.csr_matrix((1, 3))).tolist() == [[1.0, 0.0, 1.0]]
