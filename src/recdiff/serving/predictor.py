"""Inference from a run directory: top-k items, in external ids, for known or new users.

DiffRec-family models and the autoencoder baselines are inductive: they score a user from an
interaction row, so a new user is served from the items they interacted with (oldest first, which
matters for time-weighted models), with no retraining.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import yaml

import recdiff.models.diffrec  # (registers the model classes for loading)
import recdiff.models.ldiffrec  # noqa: F401
from recdiff.config.schema import RunConfig
from recdiff.data import Vocabulary, linear_time_weights
from recdiff.models.base import Recommender

__all__ = ["Predictor", "Recommendations"]


@dataclass(frozen=True)
class Recommendations:
    """Top-k external item ids, best first, with their scores."""

    items: list[Any]
    scores: list[float]
    unknown_items: list[Any]

    def to_dict(self) -> dict[str, Any]:
        return {"items": self.items, "scores": self.scores, "unknown_items": self.unknown_items}


def _python(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


class Predictor:
    """Inference-only state of a run: the model, id vocabularies, input rows and seen items."""

    def __init__(
        self,
        model: Recommender,
        users: Vocabulary,
        items: Vocabulary,
        inputs: sp.csr_matrix,
        seen: sp.csr_matrix,
        config: RunConfig,
        metrics: dict[str, Any],
        directory: Path | None = None,
    ) -> None:
        self.model, self.users, self.items = model, users, items
        self.inputs, self.seen = inputs, seen
        self.config, self.metrics, self.directory = config, metrics, directory

    @classmethod
    def load(cls, run: str | Path) -> Predictor:
        run = Path(run)
        needed = [
            "config.yaml",
            "metrics.json",
            "model/config.json",
            "model/weights.safetensors",
            "data/users.json",
            "data/items.json",
            "data/inputs.npz",
            "data/seen.npz",
        ]
        missing = [name for name in needed if not (run / name).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{run} is not a complete run directory (missing {missing}); "
                "pass a folder written by `recdiff train`"
            )
        config = RunConfig.model_validate(yaml.safe_load((run / "config.yaml").read_text()))
        return cls(
            Recommender.load(run / "model"),
            Vocabulary.from_json((run / "data/users.json").read_text()),
            Vocabulary.from_json((run / "data/items.json").read_text()),
            sp.load_npz(run / "data/inputs.npz").tocsr(),
            sp.load_npz(run / "data/seen.npz").tocsr(),
            config,
            json.loads((run / "metrics.json").read_text()),
            run,
        )

    # --------------------------------------------------------------------------- ids
    def parse_user(self, text: str) -> Any:
        """A user id typed on a command line, as the vocabulary's type."""
        if self.users.kind == "int":
            try:
                return int(text)
            except ValueError:
                raise ValueError(f"user ids of this run are integers, got {text!r}") from None
        return text

    def _parse_items(self, items: Sequence[Any]) -> list[Any]:
        if self.items.kind != "int":
            return [str(i) for i in items]
        try:
            return [int(i) for i in items]
        except (TypeError, ValueError):
            raise ValueError(f"item ids of this run are integers, got {list(items)[:5]}") from None

    def history_row(
        self, history: Sequence[Any], ignore_unknown: bool = False
    ) -> tuple[sp.csr_matrix, list[Any]]:
        """A model input row from external item ids, oldest first; returns it and unknown ids."""
        if len(history) == 0:
            raise ValueError("history is empty: give at least one item the user interacted with")
        ids = self._parse_items(history)
        known = self.items.contains(ids)
        unknown = [ids[i] for i in np.flatnonzero(~known)]
        if unknown and not ignore_unknown:
            raise KeyError(
                f"{len(unknown)} item id(s) not in the catalogue: {unknown[:5]}; remove them or "
                "pass ignore_unknown=True (--ignore-unknown)"
            )
        index = self.items.index([i for i, ok in zip(ids, known, strict=True) if ok])
        if index.size == 0:
            raise ValueError("no item of the history is in the catalogue")
        # The last occurrence of a repeated item is its most recent interaction: keep those, in
        # history order (np.unique on the reversed history finds each item's last position).
        _, from_end = np.unique(index[::-1], return_index=True)
        columns = index[np.sort(index.size - 1 - from_end)]
        values = np.ones(columns.size, dtype=np.float32)
        weights = self.config.data.time_weights
        if weights is not None:
            ranks = np.arange(columns.size)
            counts = np.full(columns.size, columns.size)
            values = linear_time_weights(ranks, counts, weights.w_min, weights.w_max).astype(
                np.float32
            )
        row = sp.csr_matrix((values, (np.zeros_like(columns), columns)), shape=(1, len(self.items)))
        return row, unknown

    # ---------------------------------------------------------------------- recommend
    def recommend(
        self,
        user: Any = None,
        history: Sequence[Any] | None = None,
        k: int = 10,
        exclude_seen: bool = True,
        ignore_unknown: bool = False,
    ) -> Recommendations:
        """Top ``k`` items for a known ``user`` or a new user's ``history`` (external ids)."""
        if (user is None) == (history is None):
            raise ValueError("give exactly one of user= or history=")
        if not 1 <= k <= len(self.items):
            raise ValueError(f"k must lie in 1..{len(self.items)} (the catalogue size), got {k}")
        unknown: list[Any] = []
        if user is not None:
            row = int(self.users.index([user], what="user id")[0])
            inputs, exclude = self.inputs[row], self.seen[row]
        else:
            inputs, unknown = self.history_row(history, ignore_unknown)
            exclude = inputs
        items, scores = _top_k(self.model, inputs, k, exclude if exclude_seen else None)
        keep = items[0] >= 0
        return Recommendations(
            [_python(x) for x in self.items.external(items[0][keep])],
            [float(s) for s in scores[0][keep]],
            [_python(x) for x in unknown],
        )

    def evaluate(self, averaging: str = "all_users") -> dict[str, dict[str, float]]:
        """Valid and test metrics of the model on the run's data, re-computed."""
        from recdiff.eval.multi import evaluate_many
        from recdiff.eval.protocol import EvalTask
        from recdiff.train.datasets import load_splits

        splits = load_splits(self.config.data)
        if splits.items != self.items or splits.users != self.users:
            raise ValueError("the run's data changed since training: its vocabularies differ")
        if (
            splits.train.matrix.shape != self.inputs.shape
            or ((splits.train.matrix != 0) != (self.inputs != 0)).nnz
        ):
            raise ValueError("the run's data changed since training: its train interactions differ")
        tasks = {
            "valid": EvalTask.validation(self.inputs, splits.valid.matrix),
            "test": EvalTask.test(self.inputs, splits.valid.matrix, splits.test.matrix),
        }
        ev = self.config.eval
        results = evaluate_many(
            self.model.score,
            self.inputs,
            tasks,
            ks=ev.ks,
            metrics=ev.metrics,
            batch_size=ev.batch_size,
            averaging=averaging,
        )
        return {split: result.means for split, result in results.items()}


def _top_k(model: Recommender, inputs: sp.csr_matrix, k: int, exclude: sp.csr_matrix | None):
    from recdiff.eval.ranking import topk_items

    return topk_items(model.score(inputs), k, exclude)
