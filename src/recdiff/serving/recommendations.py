"""What a recommendation request becomes: the prepared model input (:class:`Query`) and the list
that comes back (:class:`Recommendations`), with the notes that say why a list is short or not
personalised."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from recdiff.eval.evaluator import as_binary_csr
from recdiff.eval.ranking import ScoreBlock, as_score_tensor

__all__ = [
    "EMPTY_INPUT_NOTE",
    "SEEN_REMEDY",
    "Query",
    "Recommendations",
    "mask_ruled_items",
    "shortfall_note",
]

#: How a shortfall note tells a Python caller to rank the seen items too; the CLI and the HTTP
#: service name their own switch (``--include-seen``, ``"exclude_seen": false``).
SEEN_REMEDY = "pass exclude_seen=False"


#: The note on a list for a user whose model input is empty: it is no one's list in particular.
#: A known user's interactions may all be of items the model never trained on (which every input
#: leaves out), left out by the split, or, in runs that serve the train rows (saved before
#: 2026-11-30), all held out; a new user's history may hold only items the model never trained on.
EMPTY_INPUT_NOTE = (
    "this user has no interactions in the model's input (their items are all held out, left out "
    "by the split, or items the model never trained on), so the list is the model's answer to "
    "an empty history, not personalised"
)


@dataclass(frozen=True)
class Recommendations:
    """Top-k external item ids, best first, with their scores.

    ``note`` says why fewer than ``k`` items came back (None when ``k`` did), e.g. that every
    catalogue item is already in the history, or that the user's input was empty.
    """

    items: list[Any]
    scores: list[float]
    unknown_items: list[Any]
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "scores": self.scores,
            "unknown_items": self.unknown_items,
            "note": self.note,
        }


def shortfall_note(
    returned: int,
    k: int,
    unseen: int,
    seen_remedy: str = SEEN_REMEDY,
    catalogue: int | None = None,
    allowed: int | None = None,
) -> str | None:
    """Why a list holds ``returned`` items instead of ``k`` (None when it holds ``k``).

    ``unseen`` is the number of catalogue items left once the history's (or known user's) items
    are excluded, out of ``catalogue`` items in all; ``seen_remedy`` says how to rank those too.
    ``allowed`` is the number left once the request's own rules (``exclude_items``,
    ``candidates``) are applied too (None: the request had none).
    """
    if returned >= k:
        return None
    left = unseen if allowed is None else allowed
    if returned < left:  # the model declined some (a score of -inf, e.g. never-trained items)
        ranked = f"only {returned}" if returned else "none"
        return (
            f"the model ranks {ranked} of the {left} catalogue items left for this input; it "
            "gives the others no score (e.g. items it never trained on)"
        )
    if left < unseen:  # the request's exclude_items or candidates ruled out the rest
        if left == 0:
            how_many = "no catalogue item is"
        elif left == 1:
            how_many = "only 1 catalogue item is"
        else:
            how_many = f"only {left} catalogue items are"
        return (
            f"{how_many} left to recommend once the request's excluded items, the items outside "
            "its candidates and the history's items are left out"
        )
    if unseen == catalogue:  # nothing was excluded: k is simply above the catalogue's size
        return f"the catalogue holds only {catalogue} item{'s' * (catalogue != 1)}"
    if unseen == 0:
        return f"every catalogue item is already in the history; {seen_remedy} to rank them"
    verb = "is" if unseen == 1 else "are"
    return (
        f"only {unseen} catalogue item{'s' * (unseen != 1)} {verb} not already in the "
        f"history; {seen_remedy} to rank the others too"
    )


@dataclass(frozen=True)
class Query:
    """Prepared model input for one or more users: what to score and what never to recommend.

    Built by :meth:`Predictor.query` (one user) or :meth:`Predictor.query_users` (many known
    users); queries are stacked into one model call by :meth:`Predictor.recommend_queries`, which
    is how the HTTP service batches concurrent requests.
    """

    inputs: sp.csr_matrix  # [rows, n_items] model input rows
    exclude: sp.csr_matrix  # [rows, n_items] the seen items never to return (no entries: none)
    unknown_items: tuple[Any, ...] = ()  # history ids dropped because the catalogue lacks them
    #: item indices the request rules out for every row (its ``exclude_items``, or the items
    #: outside its ``candidates``); None: none. Kept apart from ``exclude`` for the notes, and
    #: as one list rather than a row of them per user: 10 candidates in a catalogue of 139,000
    #: items made a CSR of 139,000 entries per user, and an export of 3,000 users took 112 s and
    #: 6 GB (as one list, masked as columns, 6 s and 1.5 GB).
    ruled_items: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def ruling_out(self, items: np.ndarray) -> Query:
        """This query with the item indices ``items`` ruled out for every row."""
        return replace(self, ruled_items=np.asarray(items, dtype=np.int64))

    @property
    def ruled_out(self) -> sp.csr_matrix | None:
        """``[rows, n_items]``: the ruled-out items of every row (None: none); ``rows x
        ruled`` entries, so ranking masks :attr:`ruled_items` as columns instead."""
        if self.ruled_items is None:
            return None
        rows, items = len(self), self.ruled_items
        return sp.csr_matrix(
            (
                np.ones(rows * len(items), dtype=np.float32),
                np.tile(items, rows),
                np.arange(rows + 1, dtype=np.int64) * len(items),
            ),
            shape=(rows, self.exclude.shape[1]),
        )

    def ruled_unseen(self) -> np.ndarray:
        """How many ruled-out items each row has not seen (0 without rules): what the rules
        take from the items the row may return (counted without the ``rows x ruled`` matrix)."""
        if self.ruled_items is None:
            return np.zeros(len(self), dtype=np.int64)
        seen = as_binary_csr(self.exclude, "exclude")
        ruled = np.zeros(seen.shape[1], dtype=bool)
        ruled[self.ruled_items] = True
        rows = np.repeat(np.arange(len(self)), np.diff(seen.indptr))
        seen_and_ruled = np.bincount(rows[ruled[seen.indices]], minlength=len(self))
        return int(ruled.sum()) - seen_and_ruled

    def never_returned(self) -> sp.csr_matrix:
        """``[rows, n_items]``: every item not to return, the seen and the ruled out."""
        if self.ruled_items is None:
            return self.exclude
        # binary first: a seen item stored as a 0 (a rating of 0) must not vanish in the sum
        seen = as_binary_csr(self.exclude, "exclude")
        return as_binary_csr(seen + as_binary_csr(self.ruled_out, "ruled_out"), "exclude")


def mask_ruled_items(scores: ScoreBlock, queries: Sequence[Query]) -> ScoreBlock:
    """The score block of the stacked ``queries`` with each query's :attr:`Query.ruled_items`
    at ``-inf`` in its rows (a copy: a model may hand out a view of its own state)."""
    if all(q.ruled_items is None for q in queries):
        return scores
    block = as_score_tensor(scores).clone()
    start = 0
    for query in queries:
        if query.ruled_items is not None and len(query.ruled_items):
            ruled = torch.zeros(block.shape[1], dtype=torch.bool)
            ruled[torch.from_numpy(query.ruled_items)] = True
            block[start : start + len(query)].masked_fill_(ruled.to(block.device), float("-inf"))
        start += len(query)
    return block
