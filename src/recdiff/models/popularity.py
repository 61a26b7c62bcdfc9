"""Most-popular baseline: every user gets the items ranked by their number of train interactions.

Not personalised, but a necessary floor: a model that does not beat it has learned nothing
about users. Ties in counts follow the shared ranking rule (lower item index first).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from recdiff.models.base import Recommender, WeightsMismatch, check_train


class Popularity(Recommender):
    """Scores each item by how many train users interacted with it (binary, duplicates once)."""

    seed_independent = True  # counting draws no random numbers

    def __init__(self) -> None:
        self.item_counts: np.ndarray | None = None

    def fit(self, train: sp.csr_matrix, valid: sp.csr_matrix | None = None) -> Popularity:
        """Count the users per item in ``train``; ``valid`` is not used."""
        # check_train binarises: a rating of 5 is one interaction, as is a duplicate entry.
        train = check_train(train, valid)
        self.item_counts = np.bincount(train.indices, minlength=train.shape[1]).astype(np.float32)
        return self

    @property
    def n_items(self) -> int:
        return len(self._fitted_counts())

    def score(self, history: sp.csr_matrix) -> np.ndarray:
        """The same count vector for every history row, as a ``[batch, n_items]`` float32 array."""
        history = self._check_history(history)
        return np.tile(self._fitted_counts(), (history.shape[0], 1))

    def _fitted_counts(self) -> np.ndarray:
        if self.item_counts is None:
            raise RuntimeError("Popularity is not fitted: call fit(train) first")
        return self.item_counts

    def _config(self) -> dict[str, Any]:
        return {"n_items": self.n_items}

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {"item_counts": torch.from_numpy(self._fitted_counts())}

    @classmethod
    def _from_saved(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Popularity:
        model = cls()
        model.item_counts = tensors["item_counts"].numpy().astype(np.float32)
        if len(model.item_counts) != config["n_items"]:
            raise WeightsMismatch(
                f"'item_counts' has {len(model.item_counts)} entries, but config.json's n_items "
                f"is {config['n_items']}"
            )
        return model
