"""What a denoiser is to the process, and the modes that say how its output is read.

The process takes the network as ``model_fn(x_t, t) -> output`` (:data:`ModelFn`); the enums name
what that output predicts, which fixed variance the reverse process uses, and how training weighs
the steps; the NamedTuples are the Gaussians the process hands back. Kept apart from
:class:`~recdiff.diffusion.gaussian.GaussianDiffusion` because the samplers, the ELBO terms,
guidance and the denoisers speak this vocabulary too.

==============================================  ==================================  ==================
paper                                           code                                equation
==============================================  ==================================  ==================
eps_theta(x_t, t), the noise predicted          ``Prediction.EPS``                  DDPM (11-12)
x_0 predicted directly (as DiffRec does)        ``Prediction.X0``
v = sqrt(abar_t) eps - sqrt(1-abar_t) x_0       ``Prediction.V``                    Salimans & Ho 2022
sigma_t^2 = beta~_t ("fixed small")             ``VarianceType.POSTERIOR``          DDPM Sec. 3.2
sigma_t^2 = beta_t ("fixed large")              ``VarianceType.BETA``               DDPM Sec. 3.2
L_simple                                        ``LossWeighting.NONE``              DDPM (14)
1/2 (SNR(t-1) - SNR(t)) on the x_0 error        ``LossWeighting.SNR_DIFF``          DiffRec (8-9)
q(x_{t-1} | x_t, x_0) = N(mu~_t, beta~_t I)     ``Posterior``                       DDPM (6-7)
p_theta(x_{t-1} | x_t) = N(mu_theta, sigma_t^2) ``ReverseStep``                     DDPM (1)
==============================================  ==================================  ==================
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import NamedTuple

import torch

__all__ = [
    "LossWeighting",
    "ModelFn",
    "Posterior",
    "Prediction",
    "ReverseStep",
    "VarianceType",
]

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Prediction(str, enum.Enum):
    """What the denoiser outputs."""

    EPS = "eps"
    X0 = "x0"
    V = "v"


class VarianceType(str, enum.Enum):
    """The fixed reverse-process variance sigma_t^2 (DDPM Sec. 3.2)."""

    POSTERIOR = "posterior"  # sigma_t^2 = beta~_t, "fixed small"
    BETA = "beta"  # sigma_t^2 = beta_t, "fixed large"


class LossWeighting(str, enum.Enum):
    """Per-step weights of the training loss."""

    NONE = "none"  # plain MSE on the prediction target (DDPM's L_simple for eps)
    # 1/2 (SNR(t-1) - SNR(t)) on the x0 error for t > 1 and 1 at t = 1 (DiffRec Eq. 8-9): with the
    # posterior variance this makes each term exactly L_{t-1} of the ELBO, up to the mean over dims.
    SNR_DIFF = "snr_diff"


class Posterior(NamedTuple):
    mean: torch.Tensor
    variance: torch.Tensor
    log_variance: torch.Tensor


class ReverseStep(NamedTuple):
    """The reverse-process Gaussian at one step, plus the x0 prediction it was built from."""

    mean: torch.Tensor
    variance: torch.Tensor
    log_variance: torch.Tensor
    pred_x0: torch.Tensor


def _choice(kind: type[enum.Enum], value: object, argument: str) -> enum.Enum:
    """``kind(value)``, refusing an unknown value with the accepted ones listed."""
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(repr(member.value) for member in kind)
        raise ValueError(f"{argument}={value!r} is not one of {choices}") from None


def _model_output(model_fn: ModelFn, x_t: torch.Tensor, model_t: torch.Tensor) -> torch.Tensor:
    """``model_fn(x_t, model_t)``, refusing an output that would broadcast against x_t."""
    output = model_fn(x_t, model_t)
    if output.shape != x_t.shape:
        raise ValueError(
            f"model_fn returned shape {tuple(output.shape)} for x_t of shape "
            f"{tuple(x_t.shape)}: it must return x_t's shape (its prediction of eps, x0 or v)"
        )
    return output
