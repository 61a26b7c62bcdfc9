"""A 2-D DDPM that learns a distribution from noise: the demo and the end-to-end test of the core."""

from .data import TOY_DATASETS, energy_distance, gaussian_mixture, two_moons
from .train import ToyConfig, ToyModel, train_toy

__all__ = [
    "TOY_DATASETS",
    "ToyConfig",
    "ToyModel",
    "energy_distance",
    "gaussian_mixture",
    "train_toy",
    "two_moons",
]
