"""Mult-VAE: loss by hand, seeding, partial batches, annealing, early stopping with restore."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from recommender_contract import N_USERS, RecommenderContract, checkerboard, to_numpy

from recdiff.eval import EvalTask
from recdiff.models import MultVAE, MultVAEConfig, Recommender
from recdiff.models.multvae import multvae_loss

TINY = MultVAEConfig(
    hidden_dims=(16,), latent_dim=8, batch_size=16, max_epochs=40, lr=1e-2, total_anneal_steps=50
)


# Tiny matrices: one torch thread (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


class TestMultVAE(RecommenderContract):
    def make_model(self) -> Recommender:
        return MultVAE(TINY)


def _split(seed: int = 0) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    full = checkerboard(seed=seed).tocoo()
    held = np.random.default_rng(seed).random(full.nnz) < 0.25

    def part(mask: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((full.data[mask], (full.row[mask], full.col[mask])), shape=full.shape)

    return part(~held), part(held)


def test_loss_by_hand() -> None:
    # Uniform logits over 4 items, x = [1, 1, 0, 0]: -log-likelihood = 2 log 4 = 2.7726;
    # mu = 0, logvar = 0 is the prior itself, so KL = 0 and beta does not matter.
    logits, mu, logvar = torch.zeros(1, 4), torch.zeros(1, 3), torch.zeros(1, 3)
    loss, kl = multvae_loss(logits, mu, logvar, torch.tensor([[1.0, 1.0, 0.0, 0.0]]), beta=0.2)
    assert loss.item() == pytest.approx(2 * math.log(4))
    assert kl.item() == 0.0
    # KL of N(1, 1) vs N(0, 1) in one dimension = 1/2
    _, kl = multvae_loss(logits, torch.ones(1, 1), torch.zeros(1, 1), torch.zeros(1, 4), beta=1)
    assert kl.item() == pytest.approx(0.5)


def test_seeded_and_leaves_global_rng_alone() -> None:
    train = checkerboard()
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = MultVAE(TINY, max_epochs=3).fit(train)
    assert torch.rand(1) == expected_next, "fit must not consume the caller's RNG"
    b = MultVAE(TINY, max_epochs=3).fit(train)
    c = MultVAE(TINY, max_epochs=3, seed=1).fit(train)
    np.testing.assert_array_equal(to_numpy(a.score(train)), to_numpy(b.score(train)))
    assert not np.array_equal(to_numpy(a.score(train)), to_numpy(c.score(train)))


@pytest.mark.parametrize(("device", "forked"), [("cuda", [3]), ("cuda:1", [1]), ("cpu", [])])
def test_fit_forks_the_rng_of_the_gpu_it_trains_on(monkeypatch, device, forked) -> None:
    """Under torchrun, train.device=cuda is GPU LOCAL_RANK (the current device), not GPU 0: its
    RNG is the one to save and restore. No GPU is needed: the fork is where fit stops here."""

    class Forked(Exception):
        pass

    seen = []

    def fork_rng(devices):
        seen.append(list(devices))
        raise Forked

    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    monkeypatch.setattr(torch.random, "fork_rng", fork_rng)
    # under torchrun the process joins its group (and picks its GPU) before the fork
    joined = []
    monkeypatch.setattr("recdiff.models.multvae.init_from_env", joined.append)
    with pytest.raises(Forked):
        MultVAE(TINY, device=device).fit(checkerboard())
    assert seen == [forked]
    assert [str(d) for d in joined] == ([device] if forked else [])


def test_keeps_last_partial_batch_and_anneals_to_cap() -> None:
    model = MultVAE(TINY, batch_size=15, max_epochs=10, total_anneal_steps=20).fit(checkerboard())
    steps_per_epoch = math.ceil(N_USERS / 15)  # 40 users -> 15 + 15 + 10
    assert [e["steps"] for e in model.fit_log_] == [steps_per_epoch * (i + 1) for i in range(10)]
    assert model.fit_log_[-1]["beta"] == TINY.beta_max


def test_early_stopping_restores_best_weights() -> None:
    train, valid = _split()
    # ndcg@3, not recall@20: with 20 items recall@20 is 1 from the first epoch on.
    model = MultVAE(TINY, max_epochs=30, patience=3, valid_metric="ndcg@3").fit(train, valid)
    values = [e["valid_ndcg@3"] for e in model.fit_log_]
    assert model.best_epoch_ == int(np.argmax(values)) + 1
    assert len(values) <= 30
    assert len(values) == model.best_epoch_ + 3, "stops exactly `patience` rounds after the best"
    assert model.best_epoch_ < len(values), "this seed must exercise the restore"
    task = EvalTask.validation(train, valid)
    final = task.evaluate(model.score, ks=(3,), metrics=("ndcg",))["ndcg@3"]
    assert final == pytest.approx(max(values))
    assert not model.net.training, "the fitted model must be left in eval mode"


def test_scores_are_deterministic_at_evaluation() -> None:
    model = MultVAE(TINY, max_epochs=2).fit(checkerboard())
    model.net.train()  # even if someone left dropout on, score() must switch it off
    first = to_numpy(model.score(checkerboard()))
    np.testing.assert_array_equal(first, to_numpy(model.score(checkerboard())))


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="dropout"):
        MultVAEConfig(dropout=1.0)
    with pytest.raises(ValueError, match="valid_metric"):
        MultVAEConfig(valid_metric="recall")
    with pytest.raises(TypeError, match="unexpected keyword argument 'not_a_field'"):
        MultVAE(not_a_field=1)


def test_empty_rows_are_trained_on_and_the_result_is_kept() -> None:
    """The paper's objective covers every user: an empty row still takes part (its KL term)."""
    train = sp.vstack([checkerboard(), sp.csr_matrix((1, checkerboard().shape[1]))]).tocsr()
    model = MultVAE(TINY, batch_size=N_USERS, max_epochs=2).fit(train)
    assert [e["steps"] for e in model.fit_log_] == [2, 4]  # 41 rows: batches of 40 and 1
    assert model.result.epochs_run == 2 and model.best_epoch_ == 2
