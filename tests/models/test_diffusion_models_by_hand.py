"""Known answers pinning DiffRec, L-DiffRec and DreamRec to ../shared/docs/PAPERS.md
(sections 3 and 4), computed by hand on small tensors with fixed weights.

What earlier files already pin is not repeated here (see test_paper_fidelity.py: the
SNR-weighted loss at t = 2 over T p_t, inference through all T steps with the posterior mean, the
ML-1M layer sizes, dropout on x_t only, DreamRec's MSE under the dropped or kept guidance at
p_u in {0, 1}, its uniform steps and its scores at T = 1). This file adds:

- DiffRec: the schedule a *config* builds (Eq. 4, beta_1 = 1e-5, betas from consecutive abar) at
  T = 3 and at the released ML-1M T = 40; the denoiser's forward pass by hand from its weights
  (sinusoids of the 0-based step, their linear map, tanh between layers and not after the last,
  inverted dropout 0.5 on x_t in training only); the SNR-difference weight of each step through
  the model's loss with the steps in scrambled order; the loss-aware sampler's defaults (10
  losses per step, 0.1% uniform) fed by the model's own loss, uniform until every step is full,
  and the batch loss divided by T p_t for the steps it draws; the ranking excluding seen items.
- L-DiffRec: k-means groups reaching the autoencoders in ``fit``; identity autoencoders over
  non-contiguous groups to pin the item order of every path (dense and sparse encoding, decoding,
  the grouped columns of the multinomial loss, the whole reconstruction through the latent
  diffusion); the parameter counts by hand, and ML-1M's "53% of DiffRec's parameters".
- DreamRec: the null guidance drawn per row with probability p_u (not once per batch) and
  trained; the history encoder equal to one Transformer block over the real items only, read at
  the newest; evaluation metrics reproduced by a second pass and by a saved-and-loaded copy.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch import nn

from recdiff.config import load_config
from recdiff.data.sequences import UserSequences
from recdiff.data.synthetic_sequences import make_sequences
from recdiff.diffusion import GaussianDiffusion, LossAwareSampler, NoiseSchedule, TimestepSampler
from recdiff.models.base import SavedModel
from recdiff.models.diffrec import DiffRec, DiffRecConfig, DiffusionConfig
from recdiff.models.dreamrec import DreamRec, DreamRecConfig, GuidedDiffusionConfig
from recdiff.models.ldiffrec import LatentConfig, LDiffRec, LDiffRecConfig
from recdiff.train.batches import sparse_rows
from recdiff.train.config import TrainConfig
from recdiff.train.run_sequential import evaluate_sequential

TRAIN = TrainConfig(progress=False, seed=0)
# betas (0.1, 0.2): abar = (0.9, 0.72), SNR = (9, 18/7).
TWO_STEPS = NoiseSchedule(np.array([0.1, 0.2]))


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class _FixedSteps(TimestepSampler):
    """Draws the given steps, in order, with unit weights (so the loss is the weighted mean)."""

    def __init__(self, steps: list[int], num_steps: int) -> None:
        super().__init__(num_steps)
        self.steps = torch.tensor(steps)

    def probabilities(self) -> torch.Tensor:
        return torch.full((self.num_steps,), 1.0 / self.num_steps, dtype=torch.float64)

    def sample(self, batch, device="cpu", generator=None):
        assert batch == len(self.steps)
        return self.steps.to(device), torch.ones(batch, device=device)


class _Constant(nn.Module):
    """An x0 "denoiser" that predicts the same vector ``v`` whatever x_t and t."""

    def __init__(self, v: torch.Tensor) -> None:
        super().__init__()
        self.dim = v.numel()
        self.v = nn.Parameter(v.clone(), requires_grad=False)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.v.expand_as(x_t).clone()


class _ScaleEach(nn.Module):
    """An x0 "denoiser" f(x_t, t) = g * x_t, one factor per coordinate."""

    def __init__(self, g: torch.Tensor) -> None:
        super().__init__()
        self.dim = g.numel()
        self.g = nn.Parameter(g.clone(), requires_grad=False)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.g * x_t


# ======================================================================================= DiffRec
def test_diffrec_config_builds_eq4_with_the_first_beta_fixed_at_t_3_by_hand():
    config = DiffusionConfig(steps=3, noise_scale=0.1, noise_min=0.1, noise_max=0.5)
    model = DiffRec(DiffRecConfig(hidden_dims=[4], diffusion=config), TRAIN)
    process = model.process
    # Eq. 4: 1 - abar = s [a_min + (t-1)/(T-1) (a_max - a_min)] = 0.1 x (0.1, 0.3, 0.5)
    #      = (0.01, 0.03, 0.05); betas from consecutive abar: beta_2 = 1 - 0.97/0.99,
    #      beta_3 = 1 - 0.95/0.97; beta_1 fixed to 1e-5 (not 0.01).
    betas = [1e-5, 1 - 0.97 / 0.99, 1 - 0.95 / 0.97]
    np.testing.assert_allclose(process.betas.numpy(), betas, rtol=1e-12)
    # Fixing beta_1 scales every abar_t by (1 - 1e-5) / 0.99.
    abar = (1 - 1e-5) * np.array([1.0, 0.97 / 0.99, 0.95 / 0.99])
    np.testing.assert_allclose(process.alpha_bar.numpy(), abar, rtol=1e-12)
    assert process.prediction.value == "x0"  # DiffRec predicts x0


def test_diffrec_linear_schedule_fixes_the_first_beta_as_released():
    """The released code sets beta_1 = 1e-5 after building either schedule, its "linear" too."""
    config = DiffusionConfig(
        noise_schedule="linear", steps=3, noise_scale=0.1, noise_min=0.1, noise_max=0.5
    )
    process = DiffRec(DiffRecConfig(hidden_dims=[4], diffusion=config), TRAIN).process
    # betas s a_min .. s a_max = 0.01, 0.03, 0.05; beta_1 fixed to 1e-5 (not 0.01)
    np.testing.assert_allclose(process.betas.numpy(), [1e-5, 0.03, 0.05], rtol=1e-12)


def test_diffrec_default_config_is_the_released_ml1m_schedule_at_every_step():
    process = DiffRec(training=TRAIN).process  # T 40, s 5e-3, a_min 5e-3, a_max 1e-2
    s, a_min, a_max, steps = 5e-3, 5e-3, 1e-2, 40
    t = np.arange(1, steps + 1)
    eq4 = 1.0 - s * (a_min + (t - 1) / (steps - 1) * (a_max - a_min))  # abar_t of Eq. 4
    betas = np.concatenate([[1e-5], 1.0 - eq4[1:] / eq4[:-1]])
    np.testing.assert_allclose(process.betas.numpy(), betas, rtol=1e-9)
    assert process.num_steps == 40


def _sinusoids(t: float, dim: int = 10) -> np.ndarray:
    """[cos(t f_k), sin(t f_k)], f_k = 10000^(-k / (dim/2)), k = 0..dim/2-1."""
    freqs = 10000.0 ** (-np.arange(dim // 2) / (dim // 2))
    return np.concatenate([np.cos(t * freqs), np.sin(t * freqs)])


def _mlp_by_hand(denoiser, x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """n_items + 10 -> 3 -> 2 -> n_items with tanh between layers, from the module's weights."""
    w = {k: v.detach().double().numpy() for k, v in denoiser.state_dict().items()}
    out = []
    for row, step in zip(x, t, strict=True):
        emb = (
            w["time_embedding.proj.weight"] @ _sinusoids(float(step))
            + w["time_embedding.proj.bias"]
        )
        first = w["layers.0.weight_x"] @ row + w["layers.0.weight_t"] @ emb + w["layers.0.bias"]
        hidden = np.tanh(w["layers.2.weight"] @ np.tanh(first) + w["layers.2.bias"])
        out.append(w["layers.4.weight"] @ hidden + w["layers.4.bias"])  # no tanh after it
    return np.stack(out)


def test_diffrec_denoiser_forward_by_hand_from_its_weights():
    model = DiffRec(DiffRecConfig(hidden_dims=[3, 2], dropout=0.5), TRAIN).build(4)
    net = model.denoiser.eval()
    x = np.array([[1.0, 0.0, 0.5, 0.0], [0.2, 1.0, 0.0, 0.7]])
    t = np.array([0, 7])  # the 0-based step index is embedded (the released code's convention)
    with torch.no_grad():
        got = net(torch.tensor(x, dtype=torch.float32), torch.tensor(t)).double().numpy()
    np.testing.assert_allclose(got, _mlp_by_hand(net, x, t), rtol=1e-5, atol=1e-6)


def test_diffrec_training_dropout_keeps_each_input_with_p_half_and_scales_it_by_two():
    model = DiffRec(DiffRecConfig(hidden_dims=[3, 2], dropout=0.5), TRAIN).build(4)
    net = model.denoiser.train()
    x = np.array([[1.0, 0.3, 0.5, 0.8]])
    t = np.array([5])
    # Every 0/1 mask m of the 4 inputs: the output must be f(2 m x, t) for one of them.
    masks = np.array([[(k >> i) & 1 for i in range(4)] for k in range(16)], dtype=np.float64)
    candidates = np.stack([_mlp_by_hand(net, 2.0 * m * x, t)[0] for m in masks])
    kept = np.zeros(4)
    torch.manual_seed(0)
    draws = 400
    with torch.no_grad():
        for _ in range(draws):
            out = net(torch.tensor(x, dtype=torch.float32), torch.tensor(t)).double().numpy()[0]
            error = np.abs(candidates - out).max(axis=1)
            assert error.min() < 1e-5, error.min()
            kept += masks[int(error.argmin())]
    # Each input is kept with probability 1/2: std of the share sqrt(0.25 / 400) = 0.025.
    np.testing.assert_allclose(kept / draws, 0.5, atol=0.1)
    with torch.no_grad():  # and in evaluation mode the input is left alone
        out = net.eval()(torch.tensor(x, dtype=torch.float32), torch.tensor(t)).double().numpy()
    np.testing.assert_allclose(out, _mlp_by_hand(net, x, t), rtol=0, atol=1e-5)


def test_diffrec_loss_weights_each_step_by_its_snr_difference_in_scrambled_order():
    config = DiffusionConfig(steps=3, noise_scale=0.1, noise_min=0.1, noise_max=0.5)
    model = DiffRec(DiffRecConfig(hidden_dims=[4], diffusion=config), TRAIN).build(4)
    model.denoiser = lambda x_t, t: torch.zeros_like(x_t)  # x0_hat = 0: the error is x0 itself
    # Rows' x0 mean squares 0.25, 0.5, 0.75, drawn at the paper's t = 3, 1, 2.
    model.timesteps = _FixedSteps([2, 0, 1], 3)
    rows = torch.tensor([[1.0, 0, 0, 0], [1.0, 1, 0, 0], [1.0, 1, 1, 0]])
    abar = (1 - 1e-5) * np.array([1.0, 0.97 / 0.99, 0.95 / 0.99])
    snr = abar / (1 - abar)  # SNR(1) = 99999
    weight = {1: 1.0, 2: 0.5 * (snr[0] - snr[1]), 3: 0.5 * (snr[1] - snr[2])}
    expected = (weight[3] * 0.25 + weight[1] * 0.5 + weight[2] * 0.75) / 3
    assert float(model.loss(rows)) == pytest.approx(expected, rel=1e-5)


def test_diffrec_importance_sampling_defaults_fed_by_the_models_own_losses():
    model = DiffRec(DiffRecConfig(hidden_dims=[4], diffusion=DiffusionConfig(steps=2)), TRAIN)
    model.build(3)
    sampler = model.timesteps
    assert isinstance(sampler, LossAwareSampler)
    assert (sampler.history, sampler.uniform_prob) == (10, 0.001)  # the paper's 10 and 0.1%
    model.process = GaussianDiffusion(TWO_STEPS, "x0")
    model.denoiser = lambda x_t, t: torch.zeros_like(x_t)
    rows = torch.ones(4, 3)  # x0 MSE 1 in every row: the losses recorded are the weights
    w = np.array([1.0, 0.5 * (9 - 18 / 7)])  # t = 1: 1; t = 2: 1/2 (SNR(1) - SNR(2)) = 45/14
    torch.manual_seed(0)
    calls = 0
    while not bool((sampler.counts >= 10).all()):
        # uniform until every step holds 10 losses (whatever the other step holds)
        torch.testing.assert_close(sampler.probabilities(), torch.full((2,), 0.5).double())
        model.loss(rows)
        calls += 1
    assert calls >= 5 and sampler.counts.sum() == 4 * calls
    # p_t = 0.999 sqrt(E[L_t^2]) / sum + 0.001 / T, with constant histories L_t = w_t
    p = 0.999 * w / w.sum() + 0.0005
    np.testing.assert_allclose(sampler.probabilities().numpy(), p, rtol=1e-6)  # float32 losses
    # Three rows of zeros: each pushes a loss of 0 into its step's last 10. With n_t of them at
    # step t, sqrt(E[L_t^2]) = w_t sqrt((10 - n_t) / 10) (the mean would be w_t (10 - n_t) / 10;
    # n_1 + n_2 = 3, so the two steps differ and the root mean square shows).
    before = sampler.counts.clone()
    model.loss(torch.zeros(3, 3))
    n = (sampler.counts - before).numpy()
    rms = w * np.sqrt((10 - n) / 10)
    p = 0.999 * rms / rms.sum() + 0.0005
    np.testing.assert_allclose(sampler.probabilities().numpy(), p, rtol=1e-6)
    # The batch loss is the mean of w_t / (T p_t) over the steps drawn (replayed by seed).
    torch.manual_seed(11)
    drawn = torch.multinomial(sampler.probabilities(), 4, replacement=True).numpy()
    torch.manual_seed(11)
    loss = float(model.loss(rows))
    assert loss == pytest.approx(np.mean(w[drawn] / (2 * p[drawn])), rel=1e-5)


def test_diffrec_recommends_by_the_reverse_process_and_never_a_seen_item():
    config = DiffRecConfig(hidden_dims=[4], chain_inference=False)
    model = DiffRec(config, TRAIN).build(6)
    v = torch.tensor([0.9, 0.1, 0.8, 0.3, 0.7, 0.2])
    model.module = model.denoiser = _Constant(v)
    # T-DiffRec rows: weights 0.1 and 1 for user 0, 0.55 for user 1.
    history = sp.csr_matrix(
        np.array([[0.1, 0, 0, 0, 1.0, 0], [0, 0, 0.55, 0, 0, 0]], dtype=np.float32)
    )
    # The last reverse step (t = 1) returns x0_hat itself (abar_0 = 1): the scores are v.
    torch.testing.assert_close(model.score(history), v.expand(2, 6), rtol=1e-6, atol=1e-6)
    items, _ = model.recommend(history, k=3)
    assert items.tolist() == [[2, 3, 5], [0, 4, 3]]  # items 0, 4 and 2 were seen


# ===================================================================================== L-DiffRec
# Items 0..6 in groups 1, 0, 2, 0, 1, 2, 0: group 0 = items (1, 3, 6), group 1 = (0, 4),
# group 2 = (2, 5), so no group is a contiguous block and a slice taken in the wrong order shows.
LABELS = np.array([1, 0, 2, 0, 1, 2, 0])
GROUPED_ORDER = [1, 3, 6, 0, 4, 2, 5]  # the items behind the concatenated latent, in order
# Item i's column in the concatenation: 1 -> 0, 3 -> 1, 6 -> 2, 0 -> 3, 4 -> 4, 2 -> 5, 5 -> 6.
GROUPED_COLUMN = [3, 0, 5, 1, 4, 6, 2]


def _ldiffrec(sparse_input: bool = False, **latent) -> LDiffRec:
    settings = {
        "n_clusters": 3,
        "latent_dim": 7,  # one unit per item: 3, 2, 2
        "normalize_input": False,
        "dropout": 0.0,
        "epochs": 1,
        "sparse_input": sparse_input,
        **latent,
    }
    config = LDiffRecConfig(
        latent=LatentConfig(**settings),
        hidden_dims=[4],
        chain_inference=False,
        diffusion=DiffusionConfig(steps=2),
    )
    return LDiffRec(config, TRAIN).build(7, LABELS)


def _make_identity(autoencoder) -> None:
    """mu = the group's slice, log-variance 0, and each decoder the identity."""
    with torch.no_grad():
        for encoder, decoder in zip(autoencoder.encoders, autoencoder.decoders, strict=True):
            (enc,), (dec,) = list(encoder), list(decoder)
            n = enc.in_features
            enc.weight.zero_()
            enc.weight[:n].copy_(torch.eye(n))
            enc.bias.zero_()
            dec.weight.copy_(torch.eye(n))
            dec.bias.zero_()


ROWS = np.array(
    [
        [1.0, 0, 0.5, 0, 0.25, 0, 2.0],
        [0, 3.0, 0, 4.0, 0, 5.0, 0],
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
    ],
    dtype=np.float32,
)


def test_ldiffrec_encoders_read_each_groups_slice_and_decoders_write_it_back_in_item_order():
    model = _ldiffrec()
    autoencoder = model.autoencoder.eval()
    assert autoencoder.latent_dims == [3, 2, 2]
    _make_identity(autoencoder)
    x = torch.from_numpy(ROWS)
    with torch.no_grad():
        mu, logvar = autoencoder.encode(x)
        torch.testing.assert_close(mu, x[:, GROUPED_ORDER])  # z = [z_1 ; z_2 ; z_3]
        torch.testing.assert_close(logvar, torch.zeros_like(logvar))
        mu_sparse, _ = autoencoder.encode(sparse_rows(sp.csr_matrix(ROWS), "cpu"))
        torch.testing.assert_close(mu_sparse, x[:, GROUPED_ORDER])
        torch.testing.assert_close(autoencoder.decode(mu), x)  # back in item order
        # The multinomial loss of sparse rows reads logits group after group.
        assert autoencoder.grouped_column.tolist() == GROUPED_COLUMN
        torch.testing.assert_close(autoencoder.decode_grouped(mu)[:, GROUPED_COLUMN], x)


def test_ldiffrec_multinomial_loss_of_sparse_rows_equals_the_dense_one_on_scattered_groups():
    model = _ldiffrec()  # random (non-identity) decoders
    z = torch.randn(3, 7, generator=torch.Generator().manual_seed(0))
    dense = torch.from_numpy(ROWS)
    with torch.no_grad():
        logits = model.autoencoder.decode(z)
        by_hand = -(torch.log_softmax(logits, dim=1) * dense).sum(dim=1).mean()
        torch.testing.assert_close(model._reconstruction_nll(z, dense), by_hand)
        sparse = sparse_rows(sp.csr_matrix(ROWS), "cpu")
        torch.testing.assert_close(model._reconstruction_nll(z, sparse), by_hand)


@pytest.mark.parametrize("sparse_input", [False, True])
def test_ldiffrec_scores_come_back_in_item_order_through_the_latent_diffusion(sparse_input):
    model = _ldiffrec(sparse_input)
    _make_identity(model.autoencoder)
    model.process = GaussianDiffusion(TWO_STEPS, "x0")
    g = torch.tensor([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5])  # one factor per latent column
    model.denoiser = _ScaleEach(g)
    with pytest.warns(UserWarning, match="values above 1"):  # ROWS holds weights up to 5
        scores = model.score(sp.csr_matrix(ROWS))
    # f = g z. Step t = 2: z_1 = (c_x0 g + c_xt) z_2 with c_x0 = beta_2 sqrt(abar_1) / (1 - abar_2)
    # = 0.2 sqrt(0.9) / 0.28 and c_xt = (1 - abar_1) sqrt(alpha_2) / (1 - abar_2) = 0.1 sqrt(0.8)
    # / 0.28; step t = 1: z_0 = x0_hat = g z_1. Item i sits at latent column GROUPED_COLUMN[i].
    c_x0, c_xt = 0.2 * math.sqrt(0.9) / 0.28, 0.1 * math.sqrt(0.8) / 0.28
    gi = g[GROUPED_COLUMN]
    expected = torch.from_numpy(ROWS) * gi * (c_x0 * gi + c_xt)
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-6)


def test_ldiffrec_fit_gives_each_k_means_group_its_own_encoder():
    # 3 blocks of 4 items; each of 30 users takes 3 of its block's 4 items.
    rng = np.random.default_rng(0)
    dense = np.zeros((30, 12), dtype=np.float32)
    for user in range(30):
        block = user % 3
        dense[user, block * 4 + rng.permutation(4)[:3]] = 1.0
    config = LDiffRecConfig(
        latent=LatentConfig(n_clusters=3, latent_dim=6, epochs=1, svd_dim=4),
        hidden_dims=[4],
        diffusion=DiffusionConfig(steps=2),
    )
    training = TRAIN.model_copy(update={"epochs": 1, "batch_size": 30})
    model = LDiffRec(config, training).fit(sp.csr_matrix(dense))
    labels = model.autoencoder.labels.numpy()
    blocks = [set(labels[b * 4 : b * 4 + 4].tolist()) for b in range(3)]
    assert all(len(b) == 1 for b in blocks) and len(set.union(*blocks)) == 3, labels
    sizes = [enc[0].in_features for enc in model.autoencoder.encoders]
    assert sizes == [4, 4, 4]  # each encoder reads its group's 4 items


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_by_hand_on_a_small_model():
    # DiffRec, 6 items, [4], step embedding 10: [x ; emb] -> 4 is 4 x 16 + 4, the step map
    # 10 x 10 + 10, the output 4 x 6 + 6.
    diffrec = DiffRec(DiffRecConfig(hidden_dims=[4]), TRAIN).build(6)
    assert diffrec.parameter_count() == (4 * 16 + 4) + (10 * 10 + 10) + (4 * 6 + 6) == 208
    # L-DiffRec over LABELS (groups of 3, 2, 2 items, latents 3, 2, 2): linear encoders
    # n -> 2d and decoders d -> n per group; the latent denoiser 7 + 10 -> 4 -> 7.
    model = _ldiffrec()
    encoders = (3 * 6 + 6) + (2 * 4 + 4) + (2 * 4 + 4)
    decoders = (3 * 3 + 3) + (2 * 2 + 2) + (2 * 2 + 2)
    denoiser = (4 * 17 + 4) + (10 * 10 + 10) + (4 * 7 + 7)
    assert model.parameter_count() == encoders + decoders + denoiser == 289
    assert model.parameter_count() == _count(model.autoencoder) + _count(model.denoiser)


def test_ldiffrec_ml1m_preset_is_53_percent_of_diffrecs_parameters_by_hand():
    """README: ``ldiffrec-ml1m`` uses 53% of DiffRec's parameters. ML-1M clean has 2,810 items;
    the converged k-means split of its LightGCN embeddings is 1,789 / 1,021 (item_clusters.py)."""
    n_items = 2810
    config = LDiffRecConfig.model_validate(
        load_config("ldiffrec-ml1m").model.model_dump(exclude={"name"})
    )
    labels = np.repeat([0, 1], [1789, 1021])
    ldiffrec = LDiffRec(config, TRAIN).build(n_items, labels)
    diffrec = DiffRec(training=TRAIN).build(n_items)
    # DiffRec: 2820 -> 600 -> 200 -> 600 -> 2810 and the 10 x 10 step map.
    theirs = (600 * 2820 + 600) + 110 + (200 * 600 + 200) + (600 * 200 + 600) + (2810 * 600 + 2810)
    assert diffrec.parameter_count() == theirs == 3_622_320
    # Latent 300 split 191 / 109 by group size; linear encoders n -> 2d; one shared linear
    # decoder 300 -> 2810; the denoiser 310 -> 300 -> 300 with its step map.
    assert ldiffrec.autoencoder.latent_dims == [191, 109]
    encoders = (1789 * 382 + 382) + (1021 * 218 + 218)
    decoder = 300 * 2810 + 2810
    denoiser = (300 * 310 + 300) + 110 + (300 * 300 + 300)
    ours = encoders + decoder + denoiser
    assert ldiffrec.parameter_count() == ours == 1_936_096
    assert round(100 * ours / theirs) == 53


# ====================================================================================== DreamRec
N_ITEMS, MAX_LEN, DIM = 6, 5, 8
PAD = N_ITEMS
HISTORY = torch.tensor([[PAD, PAD, 1, 2, 3], [4, 0, 5, 1, 2], [PAD, PAD, PAD, PAD, 3]])


def _dreamrec(p_uncond: float = 0.1, steps: int = 4, heads: int = 2, **settings) -> DreamRec:
    config = DreamRecConfig(
        dim=DIM,
        heads=heads,
        dropout=0.0,
        time_dim=4,
        hidden_dims=[8],
        p_uncond=p_uncond,
        guidance_weight=2.0,
        diffusion=GuidedDiffusionConfig(steps=steps),
        **settings,
    )
    return DreamRec(config, TRAIN).build(N_ITEMS, MAX_LEN)


def test_dreamrec_drops_the_guidance_row_by_row_with_probability_p_u_and_trains_the_null():
    model = _dreamrec(p_uncond=0.1)
    net = model.net.train()
    seen = []
    original = net.denoiser.forward

    def recording(x_t, t, cond=None):
        seen.append(cond.detach().clone())
        return original(x_t, t, cond)

    net.denoiser.forward = recording
    many = HISTORY.repeat(2000, 1)  # 6000 rows in one batch
    torch.manual_seed(3)
    loss = net(many, torch.zeros(len(many), dtype=torch.long))
    (cond,) = seen
    with torch.no_grad():
        guidance = net.encoder(many)
    is_null = (cond == net.null.detach()).all(dim=1)
    is_guidance = torch.isclose(cond, guidance, atol=1e-6).all(dim=1)
    assert bool((is_null ^ is_guidance).all())  # every row one or the other
    # Per row with p_u = 0.1: std of the share sqrt(0.09 / 6000) = 0.004 (per batch: 0 or 1).
    assert abs(float(is_null.double().mean()) - 0.1) < 0.02
    loss.backward()
    assert net.null.grad is not None and float(net.null.grad.abs().sum()) > 0


@pytest.mark.parametrize("w", [0.0, 2.0, 4.0])
def test_dreamrec_guided_oracle_with_a_hidden_layer_by_hand(w):
    """test_paper_fidelity.py checks the oracle with the released one-layer denoiser, where the
    guidance is mixed inside the layer; here the two passes run through a hidden layer."""
    model = _dreamrec(steps=1)  # hidden_dims [8]
    net = model.net.eval()
    scores = model.score_with(HISTORY, torch.Generator().manual_seed(5), guidance_weight=w)
    with torch.no_grad():
        z = torch.randn((3, DIM), generator=torch.Generator().manual_seed(5))  # x_T = x_1
        t = torch.zeros(3, dtype=torch.long)
        f_c = net.denoiser(z, t, net.encoder(HISTORY))
        f_null = net.denoiser(z, t, net.null.expand(3, DIM))
        oracle = (1 + w) * f_c - w * f_null  # T = 1: the posterior mean is x0_hat, no noise
        expected = oracle @ net.encoder.item_embedding.weight[:N_ITEMS].T
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-5)


def _encoder_by_hand(encoder, history: torch.Tensor) -> torch.Tensor:
    """One pre-norm Transformer block run on each history's real items alone, at their
    end-anchored positions, read at the newest item, then the final LayerNorm."""
    (block,) = encoder.blocks
    out = []
    for row in history:
        items = row[row != encoder.pad_id]
        positions = torch.arange(encoder.max_len - len(items), encoder.max_len)
        x = encoder.item_embedding.weight[items] + encoder.position_embedding.weight[positions]
        out.append(block(x[None])[0, -1])  # no mask: the newest item sees every real item
    return encoder.norm(torch.stack(out))


@pytest.mark.parametrize("heads", [1, 2])
def test_dreamrec_guidance_is_one_block_over_the_real_items_read_at_the_newest(heads):
    model = _dreamrec(heads=heads)
    encoder = model.net.encoder.eval()
    with torch.no_grad():
        expected = _encoder_by_hand(encoder, HISTORY)
        torch.testing.assert_close(encoder(HISTORY), expected, rtol=1e-5, atol=1e-5)
        # rows alone (their padding trimmed) give the same guidance
        for i in range(len(HISTORY)):
            row = HISTORY[i : i + 1]
            alone = row[:, (row != PAD).any(dim=0)]
            torch.testing.assert_close(encoder(alone), expected[i : i + 1], rtol=1e-5, atol=1e-5)


def test_dreamrec_evaluation_is_reproduced_by_a_second_pass_and_by_the_saved_model(tmp_path):
    sequences = make_sequences(n_users=40, n_items=N_ITEMS, n_groups=2, min_length=4, seed=0)
    assert isinstance(sequences, UserSequences)
    data = sequences.leave_one_out(max_len=MAX_LEN).with_layout("left")
    config = load_config("demo-dreamrec", ["eval.batch_size=7", "eval.ks=[3,10]"])
    model = _dreamrec(steps=5)
    first = evaluate_sequential(model, data, config)
    torch.randn(100)  # whatever ran in between
    again = evaluate_sequential(model, data, config)
    model.save(tmp_path / "dreamrec")
    loaded = evaluate_sequential(SavedModel.load(tmp_path / "dreamrec"), data, config)
    for split in ("valid", "test"):
        for name, values in first[split].per_user.items():
            np.testing.assert_array_equal(again[split].per_user[name], values, err_msg=name)
            np.testing.assert_array_equal(loaded[split].per_user[name], values, err_msg=name)
    # The samples are drawn from sample_seed: another seed gives other oracles.
    history = data.test.take(np.arange(8)).to_torch()["history"]
    other = _dreamrec(steps=5, sample_seed=1)
    other.net.load_state_dict(model.net.state_dict())
    assert not torch.allclose(model.score(history), other.score(history))
