"""Recommenders: one file per model, all implementing :class:`Recommender`.

``base``        the interface (fit / score / recommend / save / load) and on-disk format
``popularity``  most-popular baseline
``ease``        EASE closed-form item-item model, lambda selected on validation
``multvae``     Mult-VAE (Liang et al. 2018) with early stopping on validation
"""

from recdiff.models.base import Recommender, registered_models
from recdiff.models.ease import EASE, EASEConfig, EASESelection, select_ease_lambda
from recdiff.models.multvae import MultVAE, MultVAEConfig
from recdiff.models.popularity import Popularity

__all__ = [
    "EASE",
    "EASEConfig",
    "EASESelection",
    "MultVAE",
    "MultVAEConfig",
    "Popularity",
    "Recommender",
    "registered_models",
    "select_ease_lambda",
]
