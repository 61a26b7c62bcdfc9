"""The DDPM core shared by every recdiff model; it knows nothing of recommendation.

- :class:`NoiseSchedule` -- betas as data (linear, cosine, DiffRec, exp, any abar), respacing
- :class:`GaussianDiffusion` -- q, the posterior, p_theta, prediction conversions, training losses;
  :class:`Prediction`, :class:`VarianceType`, :class:`LossWeighting` -- the modes it is built with
- :mod:`recdiff.diffusion.elbo` -- L_T, L_{t-1}, L_0 and the full NLL bound in nats
- :class:`UniformSampler`, :class:`LossAwareSampler` -- timestep sampling for training
- :class:`DDPMSampler`, :class:`DDIMSampler`, :func:`noise_to` -- the reverse process;
  :class:`EachRowAlone`, :class:`RowBlocks` (and the :data:`Generators` they belong to),
  :func:`row_block_pass` -- per-row noise that does not depend on the batch
- :func:`guided`, :func:`drop_condition` -- classifier-free guidance
"""

from .elbo import gaussian_nll, nll_bound, normal_kl, prior_kl, vb_term
from .gaussian import GaussianDiffusion
from .guidance import drop_condition, guided
from .parametrization import (
    LossWeighting,
    ModelFn,
    Posterior,
    Prediction,
    ReverseStep,
    VarianceType,
)
from .samplers import (
    DDIMSampler,
    DDPMSampler,
    EachRowAlone,
    Generators,
    RowBlocks,
    Sampler,
    SamplerState,
    noise_to,
    randn_rows,
    row_block_pass,
)
from .schedules import NoiseSchedule, ScheduleError
from .timesteps import LossAwareSampler, TimestepSampler, UniformSampler

__all__ = [
    "DDIMSampler",
    "DDPMSampler",
    "EachRowAlone",
    "GaussianDiffusion",
    "Generators",
    "LossAwareSampler",
    "LossWeighting",
    "ModelFn",
    "NoiseSchedule",
    "Posterior",
    "Prediction",
    "ReverseStep",
    "RowBlocks",
    "Sampler",
    "SamplerState",
    "ScheduleError",
    "TimestepSampler",
    "UniformSampler",
    "VarianceType",
    "drop_condition",
    "gaussian_nll",
    "guided",
    "nll_bound",
    "noise_to",
    "normal_kl",
    "prior_kl",
    "randn_rows",
    "row_block_pass",
    "vb_term",
]
