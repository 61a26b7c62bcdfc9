"""The interface every recdiff recommender implements, and its on-disk format.

Models are *inductive*: they score a user from the user's interaction row (a CSR ``history``),
never from a user id, so new users need no retraining and the same call serves validation,
test and production.

A subclass provides five things::

    fit(train, valid=None) -> self        learn from a users x items CSR
    n_items                               catalogue size the model was fitted on
    score(history) -> [batch, n_items]    numpy array or torch tensor, larger = better
    _config() -> dict                     JSON-able hyper-parameters (+ n_items)
    _tensors() -> dict[str, Tensor]       learned state
    _from_saved(config, tensors) -> model (classmethod) rebuild from the two above

and inherits ``recommend`` (shared top-K with seen-item masking) and ``save``/``load``.

On disk a model is a folder with ``config.json`` (model class, format version, recdiff
version, hyper-parameters) and ``weights.safetensors`` — no pickles, so loading runs no code.
"""

from __future__ import annotations

import abc
import contextlib
import importlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import scipy.sparse as sp
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from recdiff import __version__
from recdiff.atomic import atomic_path
from recdiff.eval.evaluator import as_binary_csr
from recdiff.eval.ranking import ScoreBlock, check_top_k, topk_items

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"

R = TypeVar("R", bound="SavedModel")

_REGISTRY: dict[str, type[SavedModel]] = {}

#: The modules of recdiff's own models, imported by the loader: a class registers when its module
#: is imported, and a saved folder must load whatever the caller happened to import before.
BUILTIN_MODEL_MODULES = (
    "recdiff.models.popularity",
    "recdiff.models.ease",
    "recdiff.models.multvae",
    "recdiff.models.diffrec",
    "recdiff.models.ldiffrec",
    "recdiff.models.sasrec",
    "recdiff.models.dreamrec",
)


class SavedModel(abc.ABC):
    """A fitted model that saves to and loads from a folder, found again by its registered name.

    The common root of :class:`Recommender` (scores user rows) and
    :class:`~recdiff.models.sequential.SequentialRecommender` (scores item sequences).
    """

    #: Name written to ``config.json``; defaults to the class name.
    model_name: ClassVar[str] = ""
    #: Whether fitting draws no random numbers, so that ``train.seed`` changes nothing: the
    #: same data gives the same model, to the bit. ``recdiff experiment`` trains such a model
    #: once for all its seeds (when the seed does not change the data either) and reuses that
    #: run. Set it only for a model whose fit, selection and scoring are free of randomness.
    seed_independent: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Abstract intermediates register too (ABCMeta has not computed abstractness yet at this
        # point); they are simply never named in a saved config.
        cls.model_name = cls.__dict__.get("model_name") or cls.__name__
        _REGISTRY[cls.model_name] = cls

    @property
    @abc.abstractmethod
    def n_items(self) -> int:
        """Number of items (columns) the model scores."""

    @abc.abstractmethod
    def _config(self) -> dict[str, Any]:
        """JSON-able hyper-parameters that rebuild the model (with :meth:`_from_saved`)."""

    @abc.abstractmethod
    def _tensors(self) -> dict[str, torch.Tensor]:
        """The learned state to store in safetensors."""

    @classmethod
    @abc.abstractmethod
    def _from_saved(cls: type[R], config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> R:
        """Rebuild a fitted model from :meth:`_config` and :meth:`_tensors` output."""

    def save(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``weights.safetensors`` into ``directory`` (created).

        Each file is written beside its name and renamed into place when complete, the old
        ``config.json`` removed just before: a save that fails (a full disk, Ctrl-C) leaves a
        model saved there before as it was, and never its config beside new weights.
        """
        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise FileExistsError(
                f"{directory} is a file, not a folder: save the model into a folder (a new path, "
                "or an existing model folder to replace)"
            )
        made = not directory.exists()
        directory.mkdir(parents=True, exist_ok=True)
        try:
            self._write(directory)
        except BaseException:
            if made:  # a failed first save (a full disk, Ctrl-C) leaves no empty model folder
                with contextlib.suppress(OSError):
                    directory.rmdir()
            raise
        return directory

    def _write(self, directory: Path) -> None:
        meta = {
            "model": self.model_name,
            "format_version": FORMAT_VERSION,
            "recdiff_version": __version__,
            "config": self._config(),
        }
        tensors = {name: t.detach().cpu().contiguous() for name, t in self._tensors().items()}
        config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
        with atomic_path(config_path) as config_tmp, atomic_path(weights_path) as weights_tmp:
            config_tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
            save_file(tensors, str(weights_tmp))
            # safetensors writes 0600 whatever the umask; give the weights config.json's mode (a
            # plain file's), so whoever may read the run (a service account) may read its weights
            os.chmod(weights_tmp, config_tmp.stat().st_mode & 0o777)
            # Between the two renames the folder holds no config.json (which load names),
            # rather than the old one beside the new weights (which might load as a model).
            config_path.unlink(missing_ok=True)

    @classmethod
    def load(cls: type[R], directory: str | Path) -> R:
        """Load a model saved by :meth:`save`.

        ``SavedModel.load`` returns any model, picking the class named in ``config.json``;
        ``Recommender.load`` any model of user rows (not SASRec or DreamRec, which score item
        sequences); ``EASE.load`` also checks that the folder holds an EASE model. recdiff's
        own models need no import first.
        """
        directory = Path(directory)
        config_path = directory / CONFIG_FILE
        if not config_path.is_file():
            if (directory / "model" / CONFIG_FILE).is_file():  # a run folder holds its model
                raise FileNotFoundError(
                    f"{config_path} not found: {directory} is a run folder, whose model is in "
                    f"{directory / 'model'}; load that, or the run with "
                    f"recdiff.serving.predictor.Predictor.load({str(directory)!r}) to score external ids"
                )
            raise FileNotFoundError(
                f"{config_path} not found: is {directory} a saved model folder?"
            )
        meta = json.loads(config_path.read_text())
        if not isinstance(meta, dict):
            raise ValueError(
                f"{config_path} holds a {type(meta).__name__}, not the mapping a saved model's "
                f"config.json is; the folder {directory} {_DAMAGED}"
            )
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{config_path} has format_version {meta.get('format_version')!r}, this recdiff "
                f"reads {FORMAT_VERSION}: load it with the recdiff version that saved it "
                f"({meta.get('recdiff_version', 'unknown')}), or re-train the model"
            )
        name = meta.get("model")
        target = registered_models().get(name)
        if target is None:
            raise ValueError(
                f"{config_path} names unknown model {name!r}; known: {sorted(_REGISTRY)} "
                "(a model defined outside recdiff: import the module that defines it first)"
            )
        if not issubclass(target, cls):
            raise TypeError(
                f"{directory} holds a {name} model, which {cls.__name__}.load cannot return; "
                f"use SavedModel.load({str(directory)!r}) (any model) or "
                f"{target.__name__}.load (from {target.__module__})"
            )
        weights_path = directory / WEIGHTS_FILE
        tensors = _read_weights(weights_path, directory)
        try:
            model = target._from_saved(meta["config"], tensors)
            _check_tensors(tensors, model._tensors())
        except (KeyError, RuntimeError, WeightsMismatch) as error:
            # A tensor missing or of the wrong shape (torch: "Error(s) in loading state_dict"),
            # or a config without a key the model needs: the two files are not one model's.
            if isinstance(error, RuntimeError) and "state_dict" not in str(error):
                raise  # not a loading problem: a bug, keep its traceback
            reason = f"{error.args[0]!r} is missing" if isinstance(error, KeyError) else error
            raise ValueError(
                f"{weights_path} and {config_path} do not describe the same {name} model "
                f"({_one_line(str(reason))}); the folder {directory} {_DAMAGED}"
            ) from None
        return model


class Recommender(SavedModel):
    """Base class of the user-row recommenders: fit on a CSR, score histories, recommend."""

    @abc.abstractmethod
    def fit(self: R, train: sp.csr_matrix, valid: sp.csr_matrix | None = None) -> R:
        """Learn from ``train`` (users x items); ``valid`` is for early stopping / selection."""

    @abc.abstractmethod
    def score(self, history: sp.csr_matrix) -> ScoreBlock:
        """Scores ``[batch, n_items]`` for a CSR batch of user histories (larger = better)."""

    # --- shared behaviour --------------------------------------------------------------------

    def recommend(
        self, history: sp.csr_matrix, k: int, exclude_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` items per history row, best first; ties go to the lower item index.

        Returns int64 item indices and their scores, both ``[batch, k]``; when fewer than ``k``
        items can be recommended (seen items left out) the rest is padded with item ``-1`` /
        score ``-inf``. ``k`` must lie in 1..n_items.
        """
        check_top_k(k, self.n_items)
        history = self._check_history(history)
        return topk_items(self.score(history), k, exclude=history if exclude_seen else None)

    # --- helpers for subclasses --------------------------------------------------------------

    def _check_history(self, history: sp.spmatrix) -> sp.csr_matrix:
        """Validate a history batch and return it as CSR."""
        if not sp.issparse(history):
            raise TypeError(
                f"history must be a scipy sparse users x items matrix, got {type(history).__name__}"
                " (wrap a dense row with scipy.sparse.csr_matrix)"
            )
        if history.ndim != 2 or history.shape[1] != self.n_items:
            raise ValueError(
                f"history has shape {history.shape} but {self.model_name} was fitted on "
                f"{self.n_items} items: pass rows over the same item vocabulary"
            )
        rows = sp.csr_matrix(history)
        if rows.nnz and (not np.all(np.isfinite(rows.data)) or rows.data.min() < 0):
            raise ValueError(
                "history holds negative or non-finite values: interaction weights must be >= 0 "
                "(as fit requires)"
            )
        return rows


def settings(config_class: type[Any], given: Any, what: str) -> Any:
    """``given`` as a ``config_class`` (pydantic): itself, the defaults for None, or built from
    a mapping of its settings (``DiffRec({"hidden_dims": [200]})``, as EASE and Mult-VAE take
    keywords); anything else is refused, naming what to pass."""
    if given is None:
        return config_class()
    if isinstance(given, config_class):
        return given
    if isinstance(given, Mapping):
        return config_class(**given)
    raise TypeError(
        f"{what} must be a {config_class.__name__} or a mapping of its settings (e.g. "
        f"{config_class.__name__}(...) or {{...}}), got {type(given).__name__}"
    )


def check_train(train: sp.spmatrix, valid: sp.spmatrix | None = None) -> sp.csr_matrix:
    """Validate fit() inputs (sparse, non-empty, same shape, weights >= 0 and finite, as every
    model's scoring requires of a history); return a binary float32 CSR copy.

    Implicit-feedback baselines treat any stored entry as one interaction (a stored 0 too); the
    copy means fitting never changes the caller's matrix.
    """
    if not sp.issparse(train):
        raise TypeError(f"train must be a scipy sparse users x items matrix, got {type(train)}")
    if train.shape[0] == 0 or train.shape[1] == 0:
        raise ValueError(f"train must have users and items, got shape {train.shape}")
    if train.nnz == 0:
        # as the trained models refuse it: counts or a closed form of nothing rank all as ties
        raise ValueError("train has no interactions: every user row is empty")
    values = sp.csr_matrix(train).data
    if not np.all(np.isfinite(values)) or values.min() < 0:
        raise ValueError(
            "train holds negative or non-finite values: interaction weights must be >= 0 "
            "(binarise ratings or drop the bad entries first)"
        )
    if valid is not None:
        if not sp.issparse(valid):
            raise TypeError(f"valid must be a scipy sparse matrix or None, got {type(valid)}")
        if valid.shape != train.shape:
            raise ValueError(
                f"valid has shape {valid.shape} but train has {train.shape}: "
                "splits must share the users x items shape"
            )
    return as_binary_csr(train, "train")


_DAMAGED = "looks damaged: re-train the run or restore the folder from a backup"


class WeightsMismatch(ValueError):
    """Saved tensors that the rebuilt model does not hold as saved: raised by
    :meth:`SavedModel.load`'s checks, or by a model's ``_from_saved`` that checks its own
    (load then names both files and the folder)."""


def _read_weights(path: Path, directory: Path) -> dict[str, torch.Tensor]:
    """The saved tensors, with an error naming the file when it is missing or not safetensors
    (safetensors' own error names neither the file nor a fix)."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the folder {directory} holds a config.json but no weights; it "
            f"{_DAMAGED}"
        )
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise ValueError(
            f"{path}: cannot be read ({_one_line(str(error))}); the folder {directory} {_DAMAGED}"
        ) from None


def _check_tensors(saved: dict[str, torch.Tensor], loaded: dict[str, torch.Tensor]) -> None:
    """Fail when a saved tensor is one the model does not hold, or holds in another shape or
    kind of number: models that copy their tensors in without ``load_state_dict`` (EASE,
    Popularity) or take only some of them (DiffRec) would ignore it or cast integers to
    floats (and floats to integers) silently. Floats of another precision load, as torch
    copies them."""
    unknown = sorted(set(saved) - set(loaded))
    if unknown:
        raise WeightsMismatch(f"unexpected tensor(s) {unknown}")
    for name, tensor in saved.items():
        expected = loaded[name]
        if tuple(tensor.shape) != tuple(expected.shape):
            raise WeightsMismatch(
                f"{name!r} has shape {tuple(tensor.shape)}, the model's {tuple(expected.shape)}"
            )
        if _kind(tensor) != _kind(expected):
            raise WeightsMismatch(f"{name!r} is {tensor.dtype}, the model holds {expected.dtype}")


def _kind(tensor: torch.Tensor) -> str:
    if tensor.dtype == torch.bool:
        return "bool"
    return "complex" if tensor.is_complex() else "float" if tensor.is_floating_point() else "int"


def _one_line(text: str) -> str:
    """torch's multi-line loading error as one line: its heading and the first problem."""
    return " ".join([line.strip() for line in text.splitlines() if line.strip()][:2])


def registered_models() -> dict[str, type[SavedModel]]:
    """Model name -> class: recdiff's own models, and any other subclass imported so far."""
    for module in BUILTIN_MODEL_MODULES:  # imported here, not at the top: they import this one
        importlib.import_module(module)
    return dict(_REGISTRY)
