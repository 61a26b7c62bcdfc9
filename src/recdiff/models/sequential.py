"""The interface of next-item recommenders (SASRec, DreamRec), which score item sequences.

Where a :class:`~recdiff.models.base.Recommender` scores a user's interaction *row*, a
:class:`SequentialRecommender` scores a user's recent *history* in time order, so it is inductive
in the same way: a new user is served from their history with no retraining.

Histories reach the network left-padded (newest item in the last column) with the pad id
``n_items``; :meth:`SequentialRecommender.fit` converts a dataset to that layout and
:meth:`SequentialRecommender.windows` builds it from lists of item indices. A subclass provides
``build`` (its network, whose ``forward(history, targets)`` returns the training loss, so that a
distributed wrapper sees every forward) and ``_score_batch``.
"""

from __future__ import annotations

import abc
import itertools
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import BaseModel
from torch import nn

from recdiff.data._ragged import concat_ranges
from recdiff.data.batches import WindowedExamples, history_windows
from recdiff.data.sequences import SequenceDataset
from recdiff.data.vocab import refuse_rounded_ids
from recdiff.diffusion.samplers import Generators
from recdiff.eval.ranking import check_top_k, topk_items
from recdiff.models.base import SavedModel, settings
from recdiff.nn.sequence import trim_left_padding
from recdiff.train.batches import ExampleBatches
from recdiff.train.config import TrainConfig, TrainResult
from recdiff.train.trainer import OnEvent, Trainer
from recdiff.train.trainer import autocast as precision_context

__all__ = ["SequentialRecommender", "seen_matrix", "training_items"]

S = TypeVar("S", bound="SequentialRecommender")

Evaluate = Callable[[Callable[..., Any]], dict[str, dict[str, float]]]


class SequentialRecommender(SavedModel):
    """Base class of next-item models: fit on a :class:`SequenceDataset`, score histories."""

    #: The pydantic settings class of the subclass.
    config_class: ClassVar[type[BaseModel]]
    #: The keyword options ``score`` passes on to the model's inference (DreamRec's sampling).
    inference_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: BaseModel | None = None, training: TrainConfig | None = None):
        self.config = settings(self.config_class, config, "config")
        self.training = settings(TrainConfig, training, "training")
        self.net: nn.Module | None = None
        self.module: nn.Module | None = None  # what the trainer optimises (the net)
        self.result: TrainResult | None = None
        self._n_items = 0
        self.max_len = 0
        # Config keys the trainer's messages name for lr and eval_every (a stage run inside
        # another model takes them from that model's settings; see Trainer).
        self.trainer_settings: dict[str, str] = {}

    # ------------------------------------------------------------------ what subclasses define
    @abc.abstractmethod
    def _build_net(self, n_items: int, max_len: int) -> nn.Module:
        """The network; its ``forward(history, targets)`` returns the scalar training loss."""

    @abc.abstractmethod
    def _score_batch(
        self, history: torch.Tensor, generator: torch.Generator | None, **options: Any
    ) -> torch.Tensor:
        """``[batch, n_items]`` scores of left-padded histories (the net is in eval mode);
        ``options`` are model-specific inference settings (e.g. DreamRec's sampler)."""

    # ------------------------------------------------------------------------------- training
    @property
    def n_items(self) -> int:
        return self._n_items

    def build(self: S, n_items: int, max_len: int) -> S:
        """Create the network for ``n_items`` and histories of ``max_len`` (seeded)."""
        if n_items < 1 or max_len < 1:
            raise ValueError(f"n_items and max_len must be >= 1, got {n_items} and {max_len}")
        torch.manual_seed(self.training.seed)
        self._n_items, self.max_len = n_items, max_len
        self.module = self.net = self._build_net(n_items, max_len)
        return self

    def _prepare(self, data: SequenceDataset) -> None:
        """Called after :meth:`build`, before training, with the (left-padded) dataset."""
        del data

    def _training_examples(self, train):
        """The examples an epoch iterates (all of ``train``; a subclass may keep fewer)."""
        return train

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.module(trim_left_padding(batch["history"], self.n_items), batch["targets"])

    def extra_state(self) -> dict[str, torch.Tensor]:
        return {}

    def load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        del state

    def fit(
        self: S,
        data: SequenceDataset,
        *,
        evaluate: Evaluate | None = None,
        on_event: OnEvent | None = None,
    ) -> S:
        """Train on ``data.train``; ``evaluate`` (validation metrics of a score function)
        selects the epoch. It is called with the ``score`` method of the model being trained,
        and must rank with that model (``score.__self__``): a model may train a stage of
        another kind first (DreamRec's SASRec items), validated through the same ``evaluate``.
        The histories are converted to this model's layout first."""
        data = check_sequence_dataset(data)
        data = data.with_layout("left")
        self.build(data.n_items, data.max_len)
        self._prepare(data)
        trainer = Trainer(self.training, evaluate, on_event, self.trainer_settings)
        self.result = trainer.fit(self, ExampleBatches(self._training_examples(data.train)))
        self.module = self.net
        return self

    # ------------------------------------------------------------------------------ inference
    def _check_fitted(self) -> nn.Module:
        if self.net is None:
            raise RuntimeError(f"{self.model_name} is not fitted: call fit() or load() first")
        return self.net

    @property
    def device(self) -> torch.device:
        """Where the network is, hence where it scores (the CPU after :meth:`load`)."""
        net = self._check_fitted()
        return next(itertools.chain(net.parameters(), net.buffers())).device

    def sampling_generator(self, seed: int) -> torch.Generator:
        """A generator seeded with ``seed`` on :attr:`device`, where sampling draws (torch
        draws only from a generator of the tensors' device type)."""
        return torch.Generator(device=self.device).manual_seed(seed)

    def score(
        self,
        history: torch.Tensor | np.ndarray,
        lengths: torch.Tensor | np.ndarray | None = None,
        generator: Generators = None,
        **options: Any,
    ) -> torch.Tensor:
        """Scores ``[batch, n_items]`` for left-padded histories (pad id ``n_items``).

        ``lengths`` is accepted for the evaluators' calling convention and checked against the
        pads; ``generator`` seeds any sampling (diffusion models; one per row makes each row's
        draws independent of its batch); ``options`` go to the model's inference (e.g.
        DreamRec's ``guidance_weight``, ``sampler``, ``sampling_steps``). An empty batch gets
        ``[0, n_items]`` scores.
        """
        history = self._checked_history(history)
        if lengths is not None:
            real = (history != self.n_items).sum(dim=1)
            lengths = torch.as_tensor(lengths)
            if lengths.is_floating_point() or lengths.dtype == torch.bool:
                raise ValueError(f"lengths must be integers, got {lengths.dtype} {_shown(lengths)}")
            if lengths.shape != real.shape or not torch.equal(
                real, lengths.clamp(max=self.max_len).to(real)
            ):
                raise ValueError(
                    f"lengths disagree with the pads of history (lengths {_shown(lengths)}, "
                    f"items per row {_shown(real)}): pass left-padded rows and their lengths"
                )
        if history.shape[0] == 0:  # the network cannot run on no rows (its reshapes fail)
            return torch.empty((0, self.n_items), device=self.device)
        return self._inference(self._score_batch, history, generator, **options)

    def _checked_history(self, history: torch.Tensor | np.ndarray) -> torch.Tensor:
        """``history`` as a long ``[batch, <= max_len]`` tensor of the newest items, after
        checking its shape, ids and left padding."""
        self._check_fitted()
        history = torch.as_tensor(history)
        if history.dtype == torch.bool or (
            history.is_floating_point() and not torch.equal(history, history.round())
        ):
            raise TypeError(
                f"history must hold integer item indices, got {history.dtype} values such as "
                f"{_shown(history.flatten())}; map external ids with the run's item vocabulary"
            )
        history = history.long()
        if history.dim() != 2:
            raise ValueError(f"history must be [batch, length], got shape {tuple(history.shape)}")
        if history.numel() and (history.min() < 0 or history.max() > self.n_items):
            raise ValueError(
                f"history holds ids outside 0..{self.n_items} (items 0..{self.n_items - 1}, "
                f"pad {self.n_items}); map external ids with the run's item vocabulary"
            )
        self._check_left_padded(history)
        if history.shape[1] > self.max_len:
            history = history[:, -self.max_len :]
        return history

    def _inference(self, method, history: torch.Tensor, generator, **options) -> torch.Tensor:
        """``method(history, generator, **options)`` on checked, left-padded, non-empty rows,
        in evaluation mode, without gradients, at the training precision; float32 out."""
        net = self._check_fitted()
        unknown = sorted(set(options) - set(self.inference_options))
        if unknown:  # else a TypeError naming a private method
            takes = ", ".join(self.inference_options) or "none"
            raise TypeError(
                f"{type(self).__name__} takes no inference option {', '.join(unknown)}; "
                f"its options: {takes}"
            )
        if history.shape[1] == 0:  # rows without a column are empty histories: one pad column
            history = torch.full((history.shape[0], 1), self.n_items, dtype=torch.long)
        history = trim_left_padding(history, self.n_items)
        device = self.device
        was_training = net.training
        net.eval()
        try:
            with torch.no_grad(), precision_context(self.training.precision, device):
                return method(history.to(device), generator, **options).float()
        finally:
            net.train(was_training)

    # ------------------------------------------------------------- retrieval by inner product
    #: Whether :meth:`score` is the inner product of a query vector with each item's vector
    #: (SASRec, DreamRec), so that an index over :meth:`item_vectors` can rank instead.
    ranks_by_inner_product: bool = False

    def item_vectors(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The ``[n_items, dim]`` item vectors that :meth:`score` takes inner products with,
        and a mask of the items it may rank (None: all), for a retrieval index."""
        raise NotImplementedError(f"{self.model_name} does not rank by inner product")

    def query_vectors(
        self,
        history: torch.Tensor | np.ndarray,
        generator: Generators = None,
        **options: Any,
    ) -> torch.Tensor:
        """The ``[batch, dim]`` query vectors whose inner products with :meth:`item_vectors`
        are :meth:`score`'s scores, for the same left-padded histories (and draws)."""
        if not self.ranks_by_inner_product:
            raise NotImplementedError(f"{self.model_name} does not rank by inner product")
        history = self._checked_history(history)
        if history.shape[0] == 0:
            return torch.empty((0, self.item_vectors()[0].shape[1]), device=self.device)
        return self._inference(self._query_batch, history, generator, **options)

    def _query_batch(self, history, generator, **options) -> torch.Tensor:
        raise NotImplementedError

    def _check_left_padded(self, history: torch.Tensor) -> None:
        """Fail when a row holds a pad after an item: it is padded on the right. The network
        reads the last column as the newest item, so such a row would get a worse list, and
        no error."""
        misplaced = (history[:, 1:] == self.n_items) & (history[:, :-1] != self.n_items)
        rows = torch.nonzero(misplaced.any(dim=1)).flatten()
        if rows.numel():
            raise ValueError(
                f"history rows {_shown(rows)} are not left-padded: the pad id ({self.n_items}) "
                "follows an item. Pass left-padded rows, pads first and the newest item last "
                '(a SequenceDataset: data.with_layout("left"); lists of items: model.windows)'
            )

    def windows(self, histories: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        """Left-padded ``[n, max_len]`` windows (last ``max_len`` items) and lengths from
        lists of item indices, oldest first."""
        windowed = (  # what windows() itself returns: (padded rows, lengths)
            isinstance(histories, tuple)
            and len(histories) == 2
            and all(isinstance(part, np.ndarray) for part in histories)
            and histories[0].ndim == 2
        )
        if sp.issparse(histories) or windowed:
            given = "a scipy sparse matrix" if sp.issparse(histories) else "windows()' output"
            raise TypeError(
                f"histories must be a list of histories, each a list of item indices in time "
                f"order, got {given}: a next-item model reads the order of a history, which "
                "a users x items matrix (a model of rows' input) does not hold, and "
                "windows() gives padded rows for score(), not for recommend(); e.g. "
                "recommend([[3, 17, 42]], k=10)"
            )
        for history in histories:
            if not hasattr(history, "__len__") or isinstance(history, str):
                raise TypeError(
                    f"histories must be a list of histories, each a list of item indices, got "
                    f"{history!r} as a history; one history [3, 17, 42] goes in as [[3, 17, 42]]"
                )
        lengths = np.array([len(h) for h in histories], dtype=np.int64)
        flat = _item_indices(histories, int(lengths.sum()))
        if flat.size and (flat.min() < 0 or flat.max() >= self.n_items):
            raise ValueError(f"item indices must lie in 0..{self.n_items - 1}")
        ends = np.cumsum(lengths)
        return history_windows(flat, ends - lengths, ends, self.max_len, self.n_items, "left")

    def recommend(
        self,
        histories: Sequence[Sequence[int]],
        k: int,
        exclude_seen: bool = True,
        generator: Generators = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` items (indices, scores; ``[n, k]``) after each history (oldest first).

        Items already in a history are left out, as the models of rows and ``recdiff
        recommend`` leave them out; ``exclude_seen=False`` ranks them too (users re-consume).
        """
        self._check_fitted()
        check_top_k(k, self.n_items)
        history, _ = self.windows(histories)
        scores = self.score(history, generator=generator)
        exclude = None
        if exclude_seen:
            exclude = seen_matrix(histories, self.n_items)
        return topk_items(scores, k, exclude=exclude)

    # ------------------------------------------------------------------------------- on disk
    def _config(self) -> dict[str, Any]:
        return {
            "settings": self.config.model_dump(mode="json"),
            "training": self.training.model_dump(mode="json"),
            "n_items": self.n_items,
            "max_len": self.max_len,
        }

    def _tensors(self) -> dict[str, torch.Tensor]:
        return dict(self._check_fitted().state_dict())

    @classmethod
    def _from_saved(cls: type[S], config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> S:
        model = cls(
            cls.config_class.model_validate(config["settings"]),
            TrainConfig.model_validate(config["training"]),
        )
        model.build(int(config["n_items"]), int(config["max_len"]))
        model.net.load_state_dict(tensors)
        model.net.eval()
        return model


def _shown(values: torch.Tensor, most: int = 5) -> str:
    """The first values of a 1-D tensor, for an error message."""
    listed = values.flatten().tolist()
    return str(listed[:most])[:-1] + (", ...]" if len(listed) > most else "]")


def check_sequence_dataset(data: Any) -> SequenceDataset:
    """``data`` if it is a :class:`SequenceDataset`; users' whole sequences (not split yet) or
    anything else is refused with how to split them."""
    if not isinstance(data, SequenceDataset):
        raise TypeError(
            f"fit takes a SequenceDataset of (history, next item) examples, got "
            f"{type(data).__name__}; split users' sequences first, e.g. "
            "sequences.leave_one_out(max_len=50)"
        )
    return data


def _item_indices(histories: Sequence[Sequence[int]], count: int) -> np.ndarray:
    """The histories' item indices, one flat int64 array. An index is an integer (2.0 too, as a
    float column holds it): ``np.int64`` would read 1.7 and True as item 1, a list for a history
    nobody gave, so they are refused."""
    if all(isinstance(h, np.ndarray) and h.dtype.kind in "iu" for h in histories):
        # the predictors' arrays (known users' sequences): integers already, no look at each
        return np.fromiter(itertools.chain.from_iterable(histories), np.int64, count=count)
    for history in histories:
        refuse_rounded_ids(history, "item indices")
    values = [
        i.tolist() if isinstance(i, (np.generic, torch.Tensor)) else i for h in histories for i in h
    ]
    bad = [i for i in values if isinstance(i, bool) or not isinstance(i, (int, float))]
    bad += [i for i in values if isinstance(i, float) and not i.is_integer()]
    if bad:
        raise ValueError(
            f"item indices must be integers, got {bad[:5]}{' ...' if len(bad) > 5 else ''}; "
            "booleans and fractions name no item (map external ids with the run's item "
            "vocabulary)"
        )
    try:
        return np.array(values, dtype=np.int64).reshape(count)
    except OverflowError:  # beyond int64: no item of any catalogue
        return np.full(count, -1, dtype=np.int64)


def seen_matrix(histories: Sequence[Sequence[int]], n_items: int) -> sp.csr_matrix:
    """``[n, n_items]`` rows marking every item of each history (for masking seen items)."""
    lengths = np.array([len(h) for h in histories], dtype=np.int64)
    items = np.fromiter((i for h in histories for i in h), dtype=np.int64, count=lengths.sum())
    rows = np.repeat(np.arange(len(histories)), lengths)
    matrix = sp.csr_matrix(
        (np.ones(items.size, dtype=np.float32), (rows, items)), shape=(len(histories), n_items)
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def training_items(train, n_items: int) -> np.ndarray:
    """Boolean ``[n_items]``: which items occur in the training examples (target or history)."""
    if isinstance(train, WindowedExamples):  # per-user sequences: each user's items up to
        last = train.last_per_user()  # their latest training target, without building windows
        starts = last.indptr[last.users]
        items = last.items[concat_ranges(starts, last.target_positions - starts + 1)]
    else:
        history = np.asarray(train.history)
        items = np.concatenate([history[history < n_items], np.asarray(train.targets)])
    return np.bincount(items, minlength=n_items)[:n_items] > 0
