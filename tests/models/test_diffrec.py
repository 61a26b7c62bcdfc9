"""DiffRec: the recommender contract, learning on the demo data, T-DiffRec rows, and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from pydantic import ValidationError
from recommender_contract import N_ITEMS, RecommenderContract, checkerboard, to_numpy

from recdiff.data import demo_splits, time_weights
from recdiff.diffusion import LossAwareSampler
from recdiff.eval import EvalTask
from recdiff.models import Popularity, Recommender
from recdiff.models.diffrec import DiffRec, DiffRecConfig, DiffusionConfig
from recdiff.train.config import TrainConfig

TINY = DiffRecConfig(hidden_dims=[64], dropout=0.2, diffusion=DiffusionConfig(steps=5))
FAST = TrainConfig(lr=1e-2, batch_size=8, epochs=150, progress=False, seed=3)


class TestDiffRec(RecommenderContract):
    def make_model(self) -> Recommender:
        return DiffRec(TINY, FAST)


def test_scores_are_deterministic_without_inference_noise():
    model = DiffRec(TINY, FAST.model_copy(update={"epochs": 2})).fit(checkerboard())
    history = checkerboard()[:4]
    # By hand: from x_T = x0 (T' = 0, no noise), T steps of the posterior mean
    # mu = c0 x0_hat + ct x_t, with the denoiser's x0_hat in eval mode (no dropout).
    schedule = model.config.diffusion.schedule()
    betas, abar, abar_prev = schedule.betas, schedule.alpha_bar, schedule.alpha_bar_prev
    c0 = betas * np.sqrt(abar_prev) / (1 - abar)
    ct = (1 - abar_prev) * np.sqrt(1 - betas) / (1 - abar)
    model.module.eval()
    x = torch.from_numpy(history.toarray())
    with torch.no_grad():
        for t in reversed(range(schedule.num_steps)):
            x0_hat = model.denoiser(x, torch.full((x.shape[0],), t, dtype=torch.long))
            x = float(c0[t]) * x0_hat + float(ct[t]) * x
    # score() must switch dropout off itself, even when someone left the module training.
    model.module.train()
    first = to_numpy(model.score(history))
    model.module.train()
    np.testing.assert_array_equal(first, to_numpy(model.score(history)))
    np.testing.assert_allclose(first, x.numpy(), rtol=1e-5, atol=1e-6)


def test_importance_sampler_collects_losses_during_training():
    model = DiffRec(TINY, FAST.model_copy(update={"epochs": 5})).fit(checkerboard())
    assert isinstance(model.timesteps, LossAwareSampler)
    assert model.timesteps.warmed_up  # 5 epochs x 40 users cover every step's 10 slots
    uniform = DiffRec(
        TINY.model_copy(update={"diffusion": DiffusionConfig(steps=5, importance_sampling=False)})
    )
    assert not isinstance(uniform.timesteps, LossAwareSampler)


@pytest.fixture(scope="module")
def demo():
    return demo_splits(seed=0)


def test_learns_the_demo_data_far_better_than_popularity(demo):
    train, valid = demo.train.matrix, demo.valid.matrix
    config = DiffRecConfig(hidden_dims=[200], diffusion=DiffusionConfig(steps=10))
    training = TrainConfig(batch_size=100, epochs=20, eval_every=5, progress=False)
    model = DiffRec(config, training).fit(train, valid)
    task = EvalTask.validation(train, valid)
    ours = task.evaluate(model.score, ks=(20,), averaging="all_users")["recall@20"]
    pop = task.evaluate(Popularity().fit(train).score, ks=(20,), averaging="all_users")["recall@20"]
    assert model.result.best_epoch in (5, 10, 15, 20)
    assert ours > 2 * pop, (ours, pop)  # measured 0.44 vs 0.15


def test_time_weighted_rows_train_and_score(demo):
    weighted = time_weights(demo.train, w_min=0.3)
    assert weighted.data.min() == pytest.approx(0.3) and weighted.data.max() == pytest.approx(1.0)
    model = DiffRec(TINY, FAST.model_copy(update={"epochs": 2}))
    fed = []
    loss = model.loss

    def spy(rows):
        fed.append(rows.detach().cpu().numpy().copy())
        return loss(rows)

    model.loss = spy
    model.fit(weighted)
    # The loss saw the weighted rows themselves (values strictly between 0 and 1 included), not
    # binarised ones: every non-empty row, each epoch.
    fed = np.concatenate(fed)
    rows = weighted.toarray()
    rows = rows[rows.any(axis=1)]
    assert fed.shape == (2 * len(rows), demo.n_items)
    assert ((fed > 0) & (fed < 1)).any()
    np.testing.assert_array_equal(np.unique(fed, axis=0), np.unique(rows, axis=0))
    assert to_numpy(model.score(weighted[:3])).shape == (3, demo.n_items)
    # The same seed on the binary rows trains another model.
    binary = DiffRec(TINY, FAST.model_copy(update={"epochs": 2})).fit(demo.train.matrix)
    history = demo.train.matrix[:3]
    assert not np.allclose(to_numpy(model.score(history)), to_numpy(binary.score(history)))


def test_negative_weights_are_refused():
    bad = sp.csr_matrix(np.array([[1.0, -1.0, 0.0]], dtype=np.float32))
    with pytest.raises(ValueError, match="negative"):
        DiffRec(TINY, FAST).fit(bad)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"noise_min": 0.02, "noise_max": 0.01}, "noise_min"),
        ({"steps": 5, "inference_noise_steps": 6}, "inference_noise_steps"),
        ({"noise_scale": 1.5}, "noise_scale"),
        ({"steps": 0}, "steps"),
        ({"noise_schedul": "linear"}, "noise_schedul"),
    ],
)
def test_invalid_diffusion_settings_are_named(settings, message):
    with pytest.raises(ValidationError, match=message):
        DiffusionConfig(**settings)


def test_inference_from_noised_history_uses_the_generator():
    config = TINY.model_copy(
        update={"diffusion": DiffusionConfig(steps=5, inference_noise_steps=3)}
    )
    model = DiffRec(config, FAST.model_copy(update={"epochs": 1})).fit(checkerboard())
    x0 = torch.from_numpy(checkerboard()[:2].toarray())
    a = model.reconstruct(x0, torch.Generator().manual_seed(0))
    b = model.reconstruct(x0, torch.Generator().manual_seed(0))
    c = model.reconstruct(x0, torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    assert a.shape == (2, N_ITEMS)


def test_chained_inference_scores_equal_step_by_step_scores(demo):
    config = DiffRecConfig(hidden_dims=[32, 8, 32], diffusion=DiffusionConfig(steps=10))
    model = DiffRec(config, FAST.model_copy(update={"epochs": 3})).fit(demo.train.matrix)
    assert model.denoiser.chain_saves_work(demo.train.matrix.shape[0], 10)
    chained = model.score(demo.train.matrix)
    model.config.chain_inference = False
    stepwise = model.score(demo.train.matrix)
    torch.testing.assert_close(chained, stepwise, rtol=1e-4, atol=1e-5)


LOUD = DiffusionConfig(
    steps=5, inference_noise_steps=3, noise_scale=1.0, noise_min=0.1, noise_max=0.5
)


def test_pass_scorer_gives_each_user_their_own_noise_whatever_the_batching():
    """``score`` alone draws every row as it would alone (a served history's scores do not
    depend on its batch), so users alike get alike scores; ``pass_scorer`` draws each user's
    noise from the user's row in the pass, as an evaluation should."""
    model = DiffRec(
        TINY.model_copy(update={"diffusion": LOUD}), FAST.model_copy(update={"epochs": 1})
    )
    train = sp.csr_matrix(np.tile(checkerboard()[:1].toarray(), (40, 1)))  # 40 alike users
    model.fit(train)
    shared = to_numpy(model.score(train))
    np.testing.assert_array_equal(shared[0], shared[39])
    own = to_numpy(model.pass_scorer(model.score)(train))
    assert not np.array_equal(own[0], own[39])
    scorer = model.pass_scorer(model.score)  # a new pass, batched otherwise
    batched = np.concatenate([to_numpy(scorer(train[:15])), to_numpy(scorer(train[15:]))])
    np.testing.assert_allclose(batched, own, rtol=1e-5, atol=1e-6)


def test_fit_validates_with_each_users_own_noise_as_a_run_does(demo):
    """With T' > 0, ``fit``'s own validation scores through ``pass_scorer`` (as ``recdiff
    train`` does), not with one draw shared by every user."""
    config = DiffRecConfig(hidden_dims=[64], diffusion=LOUD)
    training = FAST.model_copy(update={"epochs": 2, "eval_every": 1, "batch_size": 100})
    model = DiffRec(config, training).fit(demo.train.matrix, demo.valid.matrix)
    task = EvalTask.validation(demo.train.matrix, demo.valid.matrix)

    def recall(score):
        return task.evaluate(score, ks=(20,), metrics=("recall",)).means["recall@20"]

    selected = model.result.best_metrics["valid"]["recall@20"]
    assert selected == pytest.approx(recall(model.pass_scorer(model.score)), abs=1e-9)
    assert selected != pytest.approx(recall(model.score), abs=1e-9)  # the draws matter here


def test_rows_holding_ratings_are_named_not_read_silently():
    """A library user's walk: an Interactions read with a rating column holds its ratings, and
    DiffRec trained on 1-5 targets without a word where EASE and Mult-VAE binarise (and
    recdiff train feeds binary rows). Weights up to 1 (T-DiffRec's) pass in silence."""
    ratings = sp.csr_matrix(checkerboard().toarray() * 4.0)
    model = DiffRec(TINY, FAST.model_copy(update={"epochs": 1}))
    with pytest.warns(
        UserWarning, match=r"train holds values above 1 \(up to 4\).*binarize"
    ) as fit:
        model.fit(ratings)
    with pytest.warns(UserWarning, match=r"history holds values above 1 \(up to 4\)") as score:
        model.score(ratings[:2])
    # Both point at the caller's line, not recdiff's, though fit and score reach the check at
    # different depths.
    assert [w.filename for w in fit.list + score.list] == [__file__, __file__]
    weighted = time_weights(demo_splits().train, 0.1, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DiffRec(TINY, FAST.model_copy(update={"epochs": 1})).fit(weighted).score(weighted[:3])
