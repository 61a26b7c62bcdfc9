"""Contract every recdiff recommender must pass; each model's test class mixes it in.

Usage::

    class TestMyModel(RecommenderContract):
        def make_model(self) -> Recommender:
            return MyModel(small_settings)

The shared data is a "checkerboard": two user groups, each interacting only with its own half
of the items, so any personalised model must recommend a user's own half first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recdiff.models import Recommender

N_USERS, N_ITEMS, PER_USER = 40, 20, 6


def to_numpy(scores: np.ndarray | torch.Tensor) -> np.ndarray:
    """Scores as a numpy array, whatever the model returned."""
    return scores.detach().cpu().numpy() if isinstance(scores, torch.Tensor) else scores


def checkerboard(seed: int = 0) -> sp.csr_matrix:
    """Users < N_USERS/2 take PER_USER random items of the first half, the others of the second."""
    rng = np.random.default_rng(seed)
    half = N_ITEMS // 2
    picks = np.argsort(rng.random((N_USERS, half)), axis=1)[:, :PER_USER]
    group = (np.arange(N_USERS) >= N_USERS // 2).astype(int)[:, None]
    cols = (picks + group * half).ravel()
    rows = np.repeat(np.arange(N_USERS), PER_USER)
    ones = np.ones(len(rows), dtype=np.float32)
    return sp.csr_matrix((ones, (rows, cols)), shape=(N_USERS, N_ITEMS))


class RecommenderContract:
    """Mixin of tests; subclasses implement :meth:`make_model` (an unfitted, small model)."""

    def make_model(self) -> Recommender:
        raise NotImplementedError

    @pytest.fixture(scope="class")
    def train(self) -> sp.csr_matrix:
        return checkerboard()

    @pytest.fixture(scope="class")
    def fitted(self, train: sp.csr_matrix) -> Recommender:
        return self.make_model().fit(train)

    def test_fit_returns_self_and_keeps_train(self, train: sp.csr_matrix) -> None:
        before = train.copy()
        model = self.make_model()
        assert model.fit(train) is model
        assert model.n_items == N_ITEMS
        assert (train != before).nnz == 0, "fit must not modify the caller's matrix"

    def test_score_shape_and_finite(self, fitted: Recommender, train: sp.csr_matrix) -> None:
        scores = to_numpy(fitted.score(train[:5]))
        assert scores.shape == (5, N_ITEMS)
        assert np.isfinite(scores).all()

    def test_save_load_round_trip(
        self, fitted: Recommender, train: sp.csr_matrix, tmp_path: Path
    ) -> None:
        fitted.save(tmp_path / "model")
        assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
            "config.json",
            "weights.safetensors",
        ]
        modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "model").iterdir()}
        assert modes["weights.safetensors"] == modes["config.json"]  # not safetensors' 0600
        for loader in (Recommender.load, type(fitted).load):
            loaded = loader(tmp_path / "model")
            assert type(loaded) is type(fitted)
            np.testing.assert_array_equal(
                to_numpy(loaded.score(train)), to_numpy(fitted.score(train))
            )

    def test_empty_history(self, fitted: Recommender) -> None:
        empty = sp.csr_matrix((2, N_ITEMS), dtype=np.float32)
        scores = to_numpy(fitted.score(empty))
        assert scores.shape == (2, N_ITEMS) and np.isfinite(scores).all()
        items, _ = fitted.recommend(empty, k=3)
        assert items.shape == (2, 3) and (items >= 0).all()

    def test_recommend_excludes_seen(self, fitted: Recommender, train: sp.csr_matrix) -> None:
        history = train[:10]
        items, scores = fitted.recommend(history, k=N_ITEMS)
        seen = history.toarray() > 0
        for row in range(10):  # a readable check on a tiny batch, not a hot path
            shown = items[row][items[row] >= 0]
            assert not seen[row, shown].any()
            assert len(shown) == N_ITEMS - seen[row].sum()
        assert np.isneginf(scores[items < 0]).all()
        all_items, _ = fitted.recommend(history, k=N_ITEMS, exclude_seen=False)
        assert (np.sort(all_items, axis=1) == np.arange(N_ITEMS)).all()

    def test_known_answer(self, fitted: Recommender) -> None:
        """A user with three first-half items gets the other seven first-half items on top."""
        history = sp.csr_matrix(
            (np.ones(3, dtype=np.float32), ([0, 0, 0], [0, 1, 2])), shape=(1, N_ITEMS)
        )
        items, _ = fitted.recommend(history, k=N_ITEMS // 2 - 3)
        assert set(items[0].tolist()) == set(range(3, N_ITEMS // 2))

    def test_wrong_width_and_dense_input_rejected(self, fitted: Recommender) -> None:
        with pytest.raises(ValueError, match="fitted on"):
            fitted.score(sp.csr_matrix((1, N_ITEMS + 1)))
        with pytest.raises(TypeError, match="sparse"):
            fitted.score(np.zeros((1, N_ITEMS)))  # type: ignore[arg-type]

    def test_unfitted_model_says_fit_first(self) -> None:
        with pytest.raises(RuntimeError, match="fit"):
            self.make_model().score(sp.csr_matrix((1, N_ITEMS)))
