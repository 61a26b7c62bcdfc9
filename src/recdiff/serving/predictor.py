"""Inference from a run directory: top-k items, in external ids, for known or new users.

DiffRec-family models and the autoencoder baselines are inductive: they score a user from an
interaction row, so a new user is served from the items they interacted with (oldest first, which
matters for time-weighted models), with no retraining.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import yaml

from recdiff.config.models import SEQUENTIAL_MODELS
from recdiff.config.schema import SAVED_RUN, RunConfig
from recdiff.data import Vocabulary, linear_time_weights
from recdiff.eval.ranking import check_top_k
from recdiff.models.base import Recommender
from recdiff.serving.ids import ExternalIds, as_python, shown
from recdiff.serving.recommendations import (
    EMPTY_INPUT_NOTE,
    SEEN_REMEDY,
    Query,
    Recommendations,
    mask_ruled_items,
    shortfall_note,
)
from recdiff.serving.run_files import (
    check_items,
    check_model_name,
    read_metrics,
    read_run_config,
    read_user_rows,
    read_vocabulary,
)

__all__ = ["DEFAULT_K", "Predictor"]

#: How many items a recommendation holds unless the caller says (fewer in a smaller catalogue).
DEFAULT_K = 10


def _distinct_per_row(matrix: sp.csr_matrix) -> np.ndarray:
    """How many distinct columns each row of ``matrix`` stores (what ranking excludes)."""
    matrix = matrix.tocsr()
    if not matrix.has_canonical_format:  # duplicates would count twice: merge them in a copy
        matrix = matrix.copy()
        matrix.sum_duplicates()
    return np.diff(matrix.indptr)


class Predictor(ExternalIds):
    """Inference-only state of a run: the model, id vocabularies, input rows and seen items
    (ids are parsed and looked up as :class:`ExternalIds` says)."""

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
        known_inputs: sp.csr_matrix | None = None,
    ) -> None:
        self.model, self.users, self.items = model, users, items
        # inputs: the train rows, which evaluation scores; known_inputs: each user's whole
        # history (train, valid, test), which serving scores (the train rows for runs saved
        # before 2026-11-30, which lack data/known_inputs.npz).
        self.inputs, self.seen = inputs, seen
        self.known_inputs = inputs if known_inputs is None else known_inputs
        #: Items with a training interaction: a new user's history is read through these only.
        self.trained_items = inputs.getnnz(axis=0) > 0
        self.config, self.metrics, self.directory = config, metrics, directory

    @classmethod
    def load(cls, run: str | Path) -> Predictor:
        """The predictor of a run directory (next-item runs get a :class:`SequencePredictor`)."""
        run = Path(run)
        if (run / "config.yaml").is_file():
            config = RunConfig.model_validate(
                yaml.safe_load((run / "config.yaml").read_text()), context=SAVED_RUN
            )
            if config.model.name in SEQUENTIAL_MODELS and cls is Predictor:
                from recdiff.serving.sequence_predictor import SequencePredictor

                return SequencePredictor.load(run)
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
        config = read_run_config(run, needed)
        model = Recommender.load(run / "model")
        check_model_name(run, model.model_name, config.model.name)
        users = read_vocabulary(run / "data/users.json")
        items = read_vocabulary(run / "data/items.json")
        check_items(run, model.n_items, len(items))
        names = ["inputs", "seen"]
        if (run / "data/known_inputs.npz").is_file():  # runs saved since 2026-11-30
            names.append("known_inputs")
        rows = {name: read_user_rows(run, name, len(users), len(items)) for name in names}
        return cls(
            model,
            users,
            items,
            rows["inputs"],
            rows["seen"],
            config,
            read_metrics(run),
            run,
            rows.get("known_inputs"),
        )

    def history_row(
        self, history: Sequence[Any], ignore_unknown: bool = False
    ) -> tuple[sp.csr_matrix, list[Any]]:
        """A model input row from external item ids, oldest first; returns it and unknown ids."""
        index, unknown = self.history_indices(history, ignore_unknown)
        return self._input_row(index), unknown

    def _input_row(self, index: np.ndarray) -> sp.csr_matrix:
        """The model input of a history of item indices (oldest first, repeats allowed)."""
        # Items the model never trained on carry nothing it learned (their input weights were
        # never fitted to a 1): left out of the input, as they are from a known user's.
        index = index[self.trained_items[index]]
        # The last occurrence of a repeated item is its most recent interaction: keep those, in
        # history order (np.unique on the reversed history finds each item's last position).
        _, from_end = np.unique(index[::-1], return_index=True)
        columns = index[np.sort(index.size - 1 - from_end)]
        values = np.ones(columns.size, dtype=np.float32)
        weights = self.config.data.time_weights
        if weights is not None:
            ranks = np.arange(columns.size)
            counts = np.full(columns.size, columns.size)
            values = linear_time_weights(
                ranks, counts, weights.w_min, weights.w_max, weights.single
            ).astype(np.float32)
        return _one_row(columns, values, len(self.items))

    # ---------------------------------------------------------------------- recommend
    #: The note on the list of a query row for which :meth:`empty_inputs` is true.
    empty_input_note: str = EMPTY_INPUT_NOTE

    def empty_inputs(self, query: Query) -> np.ndarray:
        """Which rows of ``query`` hold no interaction: their list is nobody's in particular."""
        return np.diff(sp.csr_matrix(query.inputs).indptr) == 0

    def recommend(
        self,
        user: Any = None,
        history: Sequence[Any] | None = None,
        k: int | None = None,
        exclude_seen: bool = True,
        ignore_unknown: bool = False,
        seen_remedy: str = SEEN_REMEDY,
        exclude_items: Sequence[Any] | None = None,
        candidates: Sequence[Any] | None = None,
    ) -> Recommendations:
        """Top ``k`` items for a known ``user`` or a new user's ``history`` (external ids).

        ``k`` defaults to 10, or the catalogue's size when it holds fewer items (as the HTTP
        service's default); a ``k`` given above the catalogue's size is an error. Fewer than
        ``k`` come back when fewer can be recommended (e.g. the history covers the catalogue);
        their ``note`` then says why, ending with ``seen_remedy`` when including the seen
        items would rank more. ``exclude_items`` and ``candidates`` are the caller's own rules
        (items out of stock; a shortlist to rank), see :meth:`rule_out`.
        """
        if k is None:
            k = min(DEFAULT_K, len(self.items))
        self.check_k(k)
        query = self.query(user, history, exclude_seen, ignore_unknown)
        query = self.rule_out(query, exclude_items, candidates)
        return self.recommend_queries([query], [k], seen_remedy)[0]

    def rule_out(
        self,
        query: Query,
        exclude_items: Sequence[Any] | None = None,
        candidates: Sequence[Any] | None = None,
    ) -> Query:
        """``query`` with the items :meth:`ruled_items` names ruled out for every row."""
        ruled = self.ruled_items(exclude_items, candidates)
        return query if ruled is None else query.ruling_out(ruled)

    def ruled_items(
        self, exclude_items: Sequence[Any] | None = None, candidates: Sequence[Any] | None = None
    ) -> np.ndarray | None:
        """The item indices a caller rules out (None: no rules): those of ``exclude_items``,
        and with ``candidates`` given, every item outside them (the list ranks the candidates
        only). External ids; ids the catalogue lacks are skipped (an item the model does not
        know is never recommended anyway), but ``candidates`` of which none is in the
        catalogue are an error (a typo, or ids of another catalogue)."""
        if exclude_items is None and candidates is None:
            return None
        n_items = len(self.items)
        ruled = np.zeros(n_items, dtype=bool)
        if exclude_items is not None:
            ruled[self.known_item_indices(exclude_items, "exclude_items")] = True
        if candidates is not None:
            allowed = self.known_item_indices(candidates, "candidates")
            if not len(candidates):
                raise ValueError(
                    "candidates is empty: give the item ids to rank, or none at all to rank "
                    "the whole catalogue"
                )
            if not len(allowed):
                raise ValueError(
                    f"none of the {len(candidates)} candidates is in the catalogue of "
                    f"{n_items} items (e.g. {shown(list(candidates))}): check the ids"
                )
            outside = np.ones(n_items, dtype=bool)
            outside[allowed] = False
            ruled |= outside
        return np.flatnonzero(ruled)

    def check_k(self, k: int) -> None:
        check_top_k(k, len(self.items))

    def query(
        self,
        user: Any = None,
        history: Sequence[Any] | None = None,
        exclude_seen: bool = True,
        ignore_unknown: bool = False,
    ) -> Query:
        """The model input of a known ``user`` or of a new user's ``history``; checks the ids,
        which are parsed as the CLI and the HTTP service parse them (see :meth:`parse_user`)."""
        if (user is None) == (history is None):
            raise ValueError("give exactly one of user= or history=")
        if user is not None:
            return self.query_users([self.parse_user(user)], exclude_seen)
        return self.query_history(history, exclude_seen, ignore_unknown)

    def query_history(
        self, history: Sequence[Any], exclude_seen: bool = True, ignore_unknown: bool = False
    ) -> Query:
        """The model input of a new user's ``history`` (external ids, oldest first)."""
        index, unknown = self.history_indices(history, ignore_unknown)
        inputs = self._input_row(index)
        if exclude_seen:  # every item of the history, those the input leaves out too
            columns = np.unique(index)
            exclude = _one_row(columns, np.ones(columns.size, np.float32), len(self.items))
        else:
            exclude = sp.csr_matrix(inputs.shape, dtype=np.float32)
        return Query(inputs, exclude, tuple(as_python(x) for x in unknown))

    def query_users(self, users: Sequence[Any] | np.ndarray, exclude_seen: bool = True) -> Query:
        """The model inputs of many known users at once (external ids)."""
        rows = self.user_rows(users)
        inputs = self.known_inputs[rows]
        exclude = self.seen[rows] if exclude_seen else sp.csr_matrix(inputs.shape, dtype=np.float32)
        return Query(inputs, exclude)

    #: The retrieval index recommendations go through (next-item runs, :meth:`use_index`).
    index = None
    index_recall: float | None = None  # recall@index_recall_k of its top-k against the exact
    index_recall_k: int = 20

    def use_index(self, kind: str = "faiss", k: int = 20, sample: int = 256, **options: Any):
        """Recommend through a retrieval index: only for next-item runs (SASRec, DreamRec),
        which rank by inner product with item vectors."""
        if kind == "exact":
            return None  # what this predictor does anyway
        raise ValueError(
            f"a retrieval index ({kind}) serves next-item runs (SASRec, DreamRec), which rank "
            f"items by inner product; a {self.config.model.name} run scores every item itself: "
            "serve it without one"
        )

    def top_k(self, queries: Sequence[Query], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Item indices and scores ``[rows, k]`` of all the queries' rows, in one model call.

        Padding (fewer than ``k`` recommendable items) is item ``-1`` with score ``-inf``.
        """
        from recdiff.eval.ranking import topk_items

        if len(queries) == 1:
            inputs, exclude = queries[0].inputs, queries[0].exclude
        else:
            inputs = sp.vstack([q.inputs for q in queries], format="csr")
            exclude = sp.vstack([q.exclude for q in queries], format="csr")
        return topk_items(mask_ruled_items(self.model.score(inputs), queries), k, exclude)

    def recommend_queries(
        self, queries: Sequence[Query], ks: Sequence[int], seen_remedy: str = SEEN_REMEDY
    ) -> list[Recommendations]:
        """One :class:`Recommendations` per row of the queries (each with its own ``k``).

        The first ``k`` of a top-``max(ks)`` list are the top ``k``: ranking is a total order
        (score, then lower item index), so one batched call serves requests of any sizes. A row
        with fewer than ``k`` items gets a note saying why (see :func:`shortfall_note`).
        """
        rows = sum(len(q) for q in queries)
        if len(ks) != rows:
            raise ValueError(f"give one k per query row: {rows} rows but {len(ks)} values of k")
        items, scores = self.top_k(queries, max(ks))
        unknown = [q.unknown_items for q in queries for _ in range(len(q))]
        n_items = len(self.items)
        unseen = n_items - np.concatenate([_distinct_per_row(q.exclude) for q in queries])
        allowed = unseen - np.concatenate([q.ruled_unseen() for q in queries])
        empty = np.concatenate([self.empty_inputs(q) for q in queries])
        results = []
        for row, k in enumerate(ks):
            keep = items[row, :k] >= 0
            returned = self.items.external(items[row, :k][keep]).tolist()
            note = shortfall_note(
                len(returned),
                k,
                int(unseen[row]),
                seen_remedy,
                n_items,
                int(allowed[row]),
            )
            if note is None and empty[row]:  # a known user with nothing in the model's input
                note = self.empty_input_note
            results.append(
                Recommendations(
                    returned,
                    scores[row, :k][keep].astype(np.float64).tolist(),
                    list(unknown[row]),
                    note,
                )
            )
        return results

    def evaluate(
        self, averaging: str | None = None, exclude_history: bool | None = None
    ) -> dict[str, dict[str, float]]:
        """Valid and test metrics of the model on the run's data, re-computed: ``averaging`` None
        (the run's ``eval.averaging``) repeats the metrics the run recorded. Data changed since
        training is refused (:mod:`recdiff.serving.reevaluate`)."""
        from recdiff.serving.reevaluate import evaluate_rows

        return evaluate_rows(self, averaging, exclude_history)


def _one_row(columns: np.ndarray, values: np.ndarray, n_items: int) -> sp.csr_matrix:
    return sp.csr_matrix((values, (np.zeros_like(columns), columns)), shape=(1, n_items))
