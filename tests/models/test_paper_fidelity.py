"""Known answers pinning the models to ../shared/docs/PAPERS.md (sections 3 and 4).

DiffRec: the batch loss is the SNR-difference weighted x0 error divided by the sampling
probability (as 1 / (T p_t)), and the loss-aware sampler records the weighted loss before that
division; inference starts from the history noised to T' and runs all T reverse steps with the
posterior mean only; the ML-1M denoiser is n_items + 10 -> 600 -> 200 -> 600 -> n_items with tanh
between layers and dropout 0.5 on x_t alone. DreamRec: x0 prediction of the target item's
embedding under MSE, the guidance replaced by the learned null embedding when dropped, and
scores the inner products of every item with the oracle generated from pure noise by the guided
prediction (1 + w) f(x_t, c, t) - w f(x_t, null, t). SASRec: full-catalogue cross-entropy.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch import nn

from recdiff.diffusion import GaussianDiffusion, LossAwareSampler, NoiseSchedule
from recdiff.models.diffrec import DiffRec, DiffRecConfig, DiffusionConfig
from recdiff.models.dreamrec import DreamRec, DreamRecConfig, GuidedDiffusionConfig
from recdiff.models.sasrec import SASRec, SASRecConfig
from recdiff.nn.denoisers import InputLayer
from recdiff.train.config import TrainConfig

TRAIN = TrainConfig(progress=False, seed=0)
# betas (0.1, 0.2): abar = (0.9, 0.72), SNR = (9, 18/7).
TWO_STEPS = NoiseSchedule(np.array([0.1, 0.2]))


def _diffrec_on_two_steps(**diffusion) -> DiffRec:
    config = DiffRecConfig(
        hidden_dims=[8], chain_inference=False, diffusion=DiffusionConfig(steps=2, **diffusion)
    )
    model = DiffRec(config, TRAIN).build(4)
    model.process = GaussianDiffusion(TWO_STEPS, "x0")
    return model


class _HalfOfInput(nn.Module):
    """An x0 "denoiser" f(x_t, t) = x_t / 2 that records the steps it is called with."""

    def __init__(self, dim: int = 4) -> None:
        super().__init__()
        self.dim = dim  # the width DiffRec checks histories against
        self.anchor = nn.Parameter(torch.zeros(()))  # so the model knows its device
        self.steps: list[list[int]] = []

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.steps.append(t.reshape(-1).tolist())
        return 0.5 * x_t + 0.0 * self.anchor


# ------------------------------------------------------------------------------------- DiffRec
def test_diffrec_loss_is_the_snr_weighted_x0_error_over_t_p_t_and_records_it_undivided():
    model = _diffrec_on_two_steps()
    # One loss kept per step, no uniform share: losses (0, 3) give p = (0, 1), so every draw is
    # the paper's t = 2 (index 1), with weight 1 / (T p_t) = 1 / (2 * 1) = 1/2.
    sampler = LossAwareSampler(2, history=1, uniform_prob=0.0)
    sampler.update(torch.tensor([0, 1]), torch.tensor([0.0, 3.0]))
    model.timesteps = sampler
    model.denoiser = lambda x_t, t: torch.zeros_like(x_t)  # x0_hat = 0: the x0 error is x0
    rows = torch.tensor([[1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    loss = model.loss(rows)
    # x0 MSE per row (mean over items): 0.5 and 1.0. Weight at t = 2: 1/2 (SNR(1) - SNR(2)) =
    # 1/2 (9 - 18/7) = 45/14. Weighted: 45/28 and 45/14, recorded as is; the batch loss is
    # mean(weighted * 1/2) = (45/28 + 45/14) / 4 = 135/112 = 1.20536.
    assert float(loss) == pytest.approx(135 / 112, rel=1e-6)
    # history 1 keeps the batch's last loss at index 1: 45/14; index 0 keeps its 0.
    np.testing.assert_allclose(sampler.loss_history[:, 0].numpy(), [0.0, 45 / 14], rtol=1e-6)
    assert sampler.counts.tolist() == [1, 3]


def test_diffrec_inference_runs_every_reverse_step_from_the_history_with_the_mean_only():
    model = _diffrec_on_two_steps()  # T' = 0 (the released setting)
    denoiser = model.module = model.denoiser = _HalfOfInput()
    history = sp.csr_matrix(np.array([[1.0, 0.0, 0.5, 0.0], [0.0, 2.0, 0.0, 1.0]]))
    with pytest.warns(UserWarning, match=r"history holds values above 1 \(up to 2\)"):
        scores = model.score(history)  # read as they are: a weight of 2 is doubled, not 1
    # x_2 = x (no noise at T' = 0). Step t = 2: x0_hat = x / 2, posterior mean
    #   mu = beta_2 sqrt(abar_1) / (1 - abar_2) x0_hat + (1 - abar_1) sqrt(alpha_2) / (1 - abar_2) x_2
    #      = (5/7) sqrt(0.9) x / 2 + (5/14) sqrt(0.8) x = (5/14) (sqrt(0.9) + sqrt(0.8)) x.
    # Step t = 1: the posterior mean is x0_hat itself (abar_0 = 1): x_0 = x_1 / 2, no noise.
    factor = 5 / 28 * (math.sqrt(0.9) + math.sqrt(0.8))  # 0.329127
    torch.testing.assert_close(scores, factor * torch.from_numpy(history.toarray()).float())
    assert denoiser.steps == [[1, 1], [0, 0]]  # t = T first, every step, model's own indices


def test_diffrec_inference_from_a_history_noised_to_t_prime_still_runs_all_t_steps():
    model = _diffrec_on_two_steps(inference_noise_steps=1)
    model.module = model.denoiser = _HalfOfInput()
    x = torch.tensor([[1.0, 0.0, 0.5, 0.0]])
    out = model.reconstruct(x, torch.Generator().manual_seed(0))
    # x_{T'} = sqrt(abar_1) x + sqrt(1 - abar_1) z = sqrt(0.9) x + sqrt(0.1) z, then both steps.
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    start = math.sqrt(0.9) * x + math.sqrt(0.1) * z
    factor = 5 / 28 * (math.sqrt(0.9) + math.sqrt(0.8))
    torch.testing.assert_close(out, factor * start)
    assert model.denoiser.steps == [[1], [0]]


def test_diffrec_ml1m_denoiser_is_the_released_mlp():
    model = DiffRec(DiffRecConfig(), TRAIN).build(50)  # defaults: the ml-1m_clean settings
    layers = list(model.denoiser.layers)
    kinds = [type(layer) for layer in layers]
    assert kinds == [InputLayer, nn.Tanh, nn.Linear, nn.Tanh, nn.Linear, nn.Tanh, nn.Linear]
    first = layers[0]
    # [x_t ; emb(t)] -> 600: x_t's 50 columns and the step embedding's 10.
    assert tuple(first.weight_x.shape) == (600, 50) and tuple(first.weight_t.shape) == (600, 10)
    widths = [(layer.in_features, layer.out_features) for layer in layers[2::2]]
    assert widths == [(600, 200), (200, 600), (600, 50)]  # no tanh after the output layer
    proj = model.denoiser.time_embedding.proj
    assert isinstance(proj, nn.Linear) and (proj.in_features, proj.out_features) == (10, 10)
    assert model.denoiser.dropout.p == 0.5


def test_diffrec_dropout_acts_on_x_t_and_not_on_the_step_embedding():
    model = DiffRec(DiffRecConfig(hidden_dims=[16]), TRAIN).build(30)
    net = model.denoiser.train()
    t = torch.tensor([3, 7])
    zeros = torch.zeros(2, 30)
    # Dropping zeros changes nothing: were the step embedding dropped, the two calls would differ.
    torch.testing.assert_close(net(zeros, t), net(zeros, t), rtol=0, atol=0)
    ones = torch.ones(2, 30)
    assert not torch.equal(net(ones, t), net(ones, t))
    net.eval()
    torch.testing.assert_close(net(ones, t), net(ones, t), rtol=0, atol=0)


# ------------------------------------------------------------------------------------ DreamRec
N_ITEMS, MAX_LEN, DIM = 6, 3, 4
HISTORY = torch.tensor([[N_ITEMS, 1, 2], [0, 3, 5], [N_ITEMS, N_ITEMS, 4]])  # left-padded


def _dreamrec(p_uncond: float = 0.1, steps: int = 3, w: float = 2.0) -> DreamRec:
    config = DreamRecConfig(
        dim=DIM,
        dropout=0.0,
        time_dim=4,
        p_uncond=p_uncond,
        guidance_weight=w,
        diffusion=GuidedDiffusionConfig(steps=steps),
    )
    return DreamRec(config, TRAIN).build(N_ITEMS, MAX_LEN)


def _record_denoiser_calls(net) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    calls = []
    original = net.denoiser.forward

    def recording(x_t, t, cond=None):
        calls.append((x_t.detach().clone(), t.clone(), cond.detach().clone()))
        return original(x_t, t, cond)

    net.denoiser.forward = recording
    return calls


@pytest.mark.parametrize("dropped", [False, True])
def test_dreamrec_loss_is_the_x0_mse_of_the_target_embedding_under_the_guidance(dropped):
    model = _dreamrec()
    net = model.net.eval()
    # p_u = 0: the history's guidance in every row; p_u = 1: the null embedding in every row
    # (the config refuses 1 for training, so it is set on the net's copy only).
    net.config = net.config.model_copy(update={"p_uncond": 1.0 if dropped else 0.0})
    calls = _record_denoiser_calls(net)
    targets = torch.tensor([3, 0, 5])
    torch.manual_seed(1)
    loss = net(HISTORY, targets)
    ((x_t, t, cond),) = calls
    expected_cond = net.null.expand(3, DIM) if dropped else net.encoder(HISTORY)
    torch.testing.assert_close(cond, expected_cond.detach())
    assert t.tolist() and all(0 <= step < 3 for step in t.tolist())
    # The loss: mean over rows and dims of (f(x_t, c, t) - e_target)^2, unweighted.
    with torch.no_grad():
        pred = net.denoiser(x_t, t, cond)
        x0 = net.encoder.item_embedding(targets)
    torch.testing.assert_close(loss.detach(), (pred - x0).pow(2).mean())


def test_dreamrec_training_steps_are_uniform_over_all_t():
    model = _dreamrec(steps=4)
    net = model.net.eval()
    calls = _record_denoiser_calls(net)
    torch.manual_seed(2)
    many = HISTORY.repeat(1000, 1)
    net(many, torch.zeros(len(many), dtype=torch.long))
    frequency = torch.bincount(calls[0][1], minlength=4).double() / len(many)
    # 3000 draws: each frequency's standard deviation is sqrt(0.25 * 0.75 / 3000) = 0.008.
    torch.testing.assert_close(
        frequency, torch.full((4,), 0.25, dtype=torch.float64), atol=0.04, rtol=0
    )


def test_dreamrec_scores_are_inner_products_with_the_guided_oracle_from_pure_noise():
    w = 2.0
    model = _dreamrec(steps=1, w=w)
    net = model.net.eval()
    scores = model.score(HISTORY, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        # T = 1: x_1 = z ~ N(0, I) drawn from the generator; the single reverse step adds no
        # noise and its posterior mean is the x0 prediction (abar_0 = 1), guided:
        # oracle = (1 + w) f(z, c, 0) - w f(z, null, 0).
        z = torch.randn((3, DIM), generator=torch.Generator().manual_seed(7))
        t = torch.zeros(3, dtype=torch.long)
        cond = net.encoder(HISTORY)
        null = net.null.expand(3, DIM)
        oracle = (1 + w) * net.denoiser(z, t, cond) - w * net.denoiser(z, t, null)
        expected = oracle @ net.encoder.item_embedding.weight[:N_ITEMS].T
    assert scores.shape == (3, N_ITEMS)  # every item, the pad row excluded
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-5)


# -------------------------------------------------------------------------------------- SASRec
def test_sasrec_loss_is_the_cross_entropy_over_the_whole_catalogue():
    model = SASRec(SASRecConfig(dim=DIM, dropout=0.0), TRAIN).build(N_ITEMS, MAX_LEN)
    net = model.net.eval()
    targets = torch.tensor([3, 0, 5])
    with torch.no_grad():
        summary = net.encoder(HISTORY)
        items = net.encoder.item_embedding.weight[:N_ITEMS]  # the pad row is never a class
        log_p = torch.log_softmax(summary @ items.T, dim=1)
        expected = -log_p[torch.arange(3), targets].mean()
        torch.testing.assert_close(net(HISTORY, targets), expected)


def test_diffrec_selects_on_valid_recall_with_train_masked_averaged_over_all_users():
    # 5 users x 8 items; each user's train row holds 5 items, so with train masked the top 3 are
    # exactly the 3 other items, whatever the scores: every valid item is found at k = 3.
    rng = np.random.default_rng(0)
    train, valid = np.zeros((5, 8), np.float32), np.zeros((5, 8), np.float32)
    for user in range(5):
        items = rng.permutation(8)
        train[user, items[:5]] = 1.0
        if user < 4:  # user 4 has no valid item
            valid[user, items[5]] = 1.0
    training = TRAIN.model_copy(update={"epochs": 1, "eval_every": 1, "metric": "recall@3"})
    model = DiffRec(DiffRecConfig(hidden_dims=[8], diffusion=DiffusionConfig(steps=2)), training)
    model.fit(sp.csr_matrix(train), sp.csr_matrix(valid))
    # recall@3 = 1 for users 0-3 and 0 for user 4 (counted, as the paper averages): 4/5, where
    # averaging over users with valid items only would give 1.
    assert model.result.best_metric == pytest.approx(0.8)
