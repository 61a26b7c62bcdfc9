"""Neural building blocks shared by recdiff models (no recommendation logic here)."""

from .denoisers import ACTIVATIONS, MLPDenoiser
from .embeddings import SinusoidalTimeEmbedding, timestep_embedding

__all__ = ["ACTIVATIONS", "MLPDenoiser", "SinusoidalTimeEmbedding", "timestep_embedding"]
