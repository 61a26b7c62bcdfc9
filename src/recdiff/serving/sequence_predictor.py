"""Inference for next-item runs (SASRec, DreamRec): recommendations after an item sequence.

A known user is served from their whole recorded sequence (train, valid and test items, oldest
first); a new user from the history they give, in order, repeats kept — order is what these models
read. The last ``max_len`` items are used. DreamRec samples with a fixed seed per call, so the same
history always gets the same list: each row of a batched call draws its noise from its own
generator, seeded as a lone request's, so a list does not depend on the other rows of a batch
(concurrent requests, export) beyond float rounding (batched matrix products round differently,
which can swap near-tied items).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recdiff.config.schema import RunConfig
from recdiff.data import Vocabulary
from recdiff.eval.evaluator import as_binary_csr
from recdiff.models.base import SavedModel
from recdiff.models.sequential import SequentialRecommender, seen_matrix
from recdiff.retrieval import ItemIndex
from recdiff.serving.ids import as_python
from recdiff.serving.predictor import Predictor
from recdiff.serving.recommendations import Query, mask_ruled_items
from recdiff.serving.run_files import (
    check_items,
    check_model_name,
    damaged,
    read_metrics,
    read_npz,
    read_run_config,
    read_user_rows,
    read_vocabulary,
)

__all__ = ["SequencePredictor", "has_user_ids"]


def has_user_ids(config: RunConfig) -> bool:
    """Whether a next-item run's data has users (and so a users.json and sequences.npz): all
    formats but DreamRec's example files, which hold (history, next item) examples only."""
    return config.data.format != "dreamrec"


def _read_sequences(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as saved:
        return saved["indptr"], saved["items"]


def _check_sequences(
    run: Path, n_users: int, n_items: int, indptr: np.ndarray, sequence_items: np.ndarray
) -> None:
    """Fail when the saved sequences cannot be the users' (one per user, items of the catalogue):
    every request for a user would fail, or be served from the wrong items."""
    path = run / "data/sequences.npz"
    if indptr.ndim != 1 or sequence_items.ndim != 1 or indptr.dtype.kind not in "iu":
        raise damaged(run, "its arrays 'indptr' and 'items' are not lists of indices", path)
    if len(indptr) != n_users + 1:
        raise damaged(
            run,
            f"holds {len(indptr) - 1} sequences, but data/users.json holds {n_users} users",
            run / "data/users.json",
            path,
        )
    if indptr[0] != 0 or (np.diff(indptr) < 0).any() or indptr[-1] != len(sequence_items):
        raise damaged(run, "its 'indptr' does not delimit its 'items'", path)
    if sequence_items.dtype.kind not in "iu" or (
        len(sequence_items) and not 0 <= sequence_items.min() <= sequence_items.max() < n_items
    ):
        raise damaged(
            run, f"its 'items' are not all item indices in 0..{n_items - 1} (data/items.json)", path
        )


#: The note on the list of a window that is all padding: a known user whose recorded sequence is
#: empty (a line of the sequence file holding only the user id), or a history (a new user's, or a
#: known one's) of items the model never trained on only, which every input leaves out.
EMPTY_SEQUENCE_NOTE = (
    "this user's history is empty to the model (a recorded sequence without items, or only items "
    "the model never trained on, which every input leaves out), so the list is the model's "
    "answer to an empty history, not personalised"
)

#: Why a run of DreamRec's example files cannot serve a user id.
NO_USERS = (
    "this run's data holds next-item examples without user ids; recommend from a history "
    "instead, or train on per-user data (a sequence file or a table of interactions) to serve "
    "or export users"
)


class SequencePredictor(Predictor):
    """A :class:`Predictor` whose queries are item sequences instead of interaction rows."""

    empty_input_note = EMPTY_SEQUENCE_NOTE
    ordered_history = True

    def __init__(
        self,
        model: SequentialRecommender,
        users: Vocabulary,
        items: Vocabulary,
        indptr: np.ndarray,
        sequence_items: np.ndarray,
        config: RunConfig,
        metrics: dict[str, Any],
        directory: Path | None = None,
        low_ratings: sp.csr_matrix | None = None,
        trained_items: np.ndarray | None = None,
    ) -> None:
        self.model, self.users, self.items = model, users, items
        #: Items the training examples hold: a history is read through these only (None: every
        #: item, for runs saved before 2026-11-30, which lack data/trained_items.npy).
        self.trained_items = trained_items
        self.indptr, self.sequence_items = indptr, sequence_items
        self.config, self.metrics, self.directory = config, metrics, directory
        # users x items: ratings under data.min_rating, which the sequences leave out
        self.low_ratings = low_ratings
        self.index: ItemIndex | None = None  # None: exact scores over every item
        self.index_recall: float | None = None
        self.index_recall_k = 20

    @classmethod
    def load(cls, run: str | Path) -> SequencePredictor:
        run = Path(run)
        needed = [
            "config.yaml",
            "metrics.json",
            "model/config.json",
            "model/weights.safetensors",
            "data/items.json",
        ]
        config = read_run_config(run, needed)
        # The config says whether the run has users, not the files: a lost sequences.npz would
        # read as a run without users, and every user request fail as if none had been trained.
        with_users = has_user_ids(config)
        if with_users:
            files = [run / "data/users.json", run / "data/sequences.npz"]
            missing = [path for path in files if not path.is_file()]
            if missing:
                raise damaged(
                    run,
                    f"{'is' if len(missing) == 1 else 'are'} missing, though the run's data "
                    f"(data.format={config.data.format}) holds users' sequences",
                    *missing,
                )
        model = SavedModel.load(run / "model")
        check_model_name(run, model.model_name, config.model.name)
        items = read_vocabulary(run / "data/items.json")
        check_items(run, model.n_items, len(items))
        users, indptr, sequence_items = Vocabulary.range(0), np.zeros(1, np.int64), np.zeros(0)
        low_ratings = None
        if with_users:
            users = read_vocabulary(run / "data/users.json")
            indptr, sequence_items = read_npz(run / "data/sequences.npz", _read_sequences)
            _check_sequences(run, len(users), len(items), indptr, sequence_items)
            # runs saved before 2026-11-30, or without data.min_rating, have no such file
            if (run / "data/low_ratings.npz").is_file():
                low_ratings = read_user_rows(run, "low_ratings", len(users), len(items))
        trained = None
        if (run / "data/trained_items.npy").is_file():
            trained = read_npz(run / "data/trained_items.npy", np.load)
            if trained.dtype != bool or trained.shape != (len(items),):
                raise damaged(
                    run,
                    f"is not one true/false per item of data/items.json ({len(items)})",
                    run / "data/trained_items.npy",
                )
        return cls(
            model,
            users,
            items,
            indptr,
            sequence_items,
            config,
            read_metrics(run),
            run,
            low_ratings,
            trained,
        )

    def _query_from(
        self,
        histories: list[np.ndarray],
        exclude_seen: bool,
        unknown=(),
        also_seen: sp.csr_matrix | None = None,
    ) -> Query:
        """``also_seen``: rows of further items to exclude beside each history's own. Items the
        model never trained on are left out of the windows (their embeddings learned nothing: one
        in a history moved the whole list), not out of the items excluded."""
        inputs = histories
        if self.trained_items is not None:
            inputs = [h[self.trained_items[h]] for h in map(np.asarray, histories)]
        windows, _ = self.model.windows(inputs)
        n_items = len(self.items)
        if exclude_seen:
            exclude = seen_matrix(histories, n_items)
            if also_seen is not None:
                exclude = as_binary_csr(exclude + also_seen, "seen")
        else:
            exclude = sp.csr_matrix((len(histories), n_items), dtype=np.float32)
        return Query(windows, exclude, tuple(as_python(x) for x in unknown))

    def query_history(
        self, history: Sequence[Any], exclude_seen: bool = True, ignore_unknown: bool = False
    ) -> Query:
        index, unknown = self.history_indices(history, ignore_unknown)
        return self._query_from([index], exclude_seen, unknown)

    def parse_user(self, value: Any) -> Any:
        self._check_has_users()  # else "user ids of this run are integers" for a string id
        return super().parse_user(value)

    def parse_users(self, values: Sequence[Any]) -> np.ndarray:
        self._check_has_users()
        return super().parse_users(values)

    def query_users(self, users: Sequence[Any] | np.ndarray, exclude_seen: bool = True) -> Query:
        self._check_has_users()
        rows = self.user_rows(users)
        histories = [self.sequence_items[self.indptr[r] : self.indptr[r + 1]] for r in rows]
        low = None if self.low_ratings is None else self.low_ratings[rows]
        return self._query_from(histories, exclude_seen, also_seen=low)

    def _check_has_users(self) -> None:
        if len(self.users) == 0:
            raise ValueError(NO_USERS)

    def empty_inputs(self, query: Query) -> np.ndarray:
        """Which windows of ``query`` are all padding: a known user with an empty sequence."""
        return (np.asarray(query.inputs) == self.model.n_items).all(axis=1)

    def top_k(self, queries: Sequence[Query], k: int) -> tuple[np.ndarray, np.ndarray]:
        from recdiff.eval.ranking import topk_items

        windows = np.concatenate([q.inputs for q in queries])
        # DreamRec's default sampling draws each row as a lone request would (EachRowAlone)
        if self.index is not None and not self._shortlisted(queries):
            exclude = sp.vstack([q.never_returned() for q in queries], format="csr")
            return self.index.top_k(self.model.query_vectors(windows), k, exclude)
        exclude = sp.vstack([q.exclude for q in queries], format="csr")
        return topk_items(mask_ruled_items(self.model.score(windows), queries), k, exclude)

    def _shortlisted(self, queries: Sequence[Query]) -> bool:
        """Whether a query rules out most of the catalogue (a ``candidates`` shortlist): the
        index would have to search nearly all of it to find k allowed items, with a row of
        exclusions per user, where ranking exactly costs no more and is exact."""
        half = len(self.items) // 2
        return any(q.ruled_items is not None and len(q.ruled_items) > half for q in queries)

    def use_index(
        self, kind: str = "faiss", k: int = 20, sample: int = 256, **options: Any
    ) -> float | None:
        """Recommend through an index over the model's item vectors (``faiss``: approximate,
        for large catalogues; ``exact``: the same lists as without one) and return its recall
        against the exact top-``k`` on up to ``sample`` of the run's users (their whole
        sequences; None for a run without users), also kept as :attr:`index_recall`.
        ``options`` go to the index (faiss: ``neighbors``, ``ef_search``)."""
        from recdiff.retrieval import recall_at_k

        if not self.model.ranks_by_inner_product:
            raise ValueError(
                f"{self.model.model_name} does not rank items by inner product with an item "
                "vector, so an index cannot rank for it: serve it without one"
            )
        vectors, usable = self.model.item_vectors()
        index = ItemIndex(vectors, kind, usable, **options)
        recall = None
        if len(self.users) and sample > 0:
            rows = np.random.default_rng(0).permutation(len(self.users))[:sample]
            query = self.query_users(self.users.external(rows), exclude_seen=False)
            vectors_of = self.model.query_vectors(query.inputs)
            exact, _ = ItemIndex(vectors, "exact", usable).top_k(vectors_of, k)
            found, _ = index.top_k(vectors_of, k)
            recall = recall_at_k(found, exact)
        self.index, self.index_recall, self.index_recall_k = index, recall, k
        return recall

    def evaluate(
        self, averaging: str | None = None, exclude_history: bool | None = None
    ) -> dict[str, dict[str, float]]:
        """Valid and test metrics of the model on the run's data, re-computed; with
        ``exclude_history`` set, each user's past items masked or not, whatever the run did.
        ``averaging``: None for the run's ``eval.averaging``."""
        if averaging is None:
            averaging = self.config.eval.averaging
        from recdiff.eval.metrics import AVERAGING_MODES
        from recdiff.serving.reevaluate import check_recorded_sizes
        from recdiff.train.datasets import load_as_saved, load_sequences
        from recdiff.train.run_sequential import evaluate_sequential

        # One target per example: both averagings agree, but a value that is neither is a typo
        # (refused as a row run refuses it, not silently taken for one of them).
        if averaging not in AVERAGING_MODES:
            raise ValueError(f"averaging must be one of {AVERAGING_MODES}, got {averaging!r}")
        data, sequences = load_as_saved(
            load_sequences, self.config.data, lambda loaded: loaded[0].items == self.items
        )
        if data.items != self.items:
            raise ValueError("the run's data changed since training: its item vocabulary differs")
        if len(self.users) and (
            sequences is None
            or sequences.users != self.users
            or not np.array_equal(sequences.indptr, self.indptr)
            or not np.array_equal(sequences.item_idx, self.sequence_items)
        ):
            raise ValueError("the run's data changed since training: its users' sequences differ")
        # DreamRec's folders keep no users' sequences to compare: their example counts, at least
        sizes = {name: len(getattr(data, name)) for name in ("train", "valid", "test")}
        check_recorded_sizes(self.metrics, sizes, "examples")
        config = self.config
        if exclude_history is not None:
            protocol = config.eval.model_copy(update={"exclude_history": exclude_history})
            config = config.model_copy(update={"eval": protocol})
        results = evaluate_sequential(self.model, data.with_layout("left"), config)
        return {split: result.means for split, result in results.items()}
