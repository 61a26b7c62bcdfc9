"""recdiff: diffusion-model recommenders on a clean DDPM core.

Layers (dependencies point one way, top to bottom):

- ``recdiff.diffusion`` -- schedules, the Gaussian process, timestep samplers, DDPM/DDIM samplers, guidance
- ``recdiff.nn``        -- timestep embeddings and denoiser networks
- ``recdiff.data``      -- interactions, readers, splits, batches
- ``recdiff.eval``      -- metrics and the full-ranking evaluator
- ``recdiff.models``    -- recommenders (DiffRec family, DreamRec, baselines)
- ``recdiff.cli``       -- the ``recdiff`` command
"""

__version__ = "0.1.0"
