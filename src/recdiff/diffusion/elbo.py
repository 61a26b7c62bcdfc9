"""The variational bound of DDPM (Ho et al. 2020, Eq. 5), term by term, in nats.

-log p_theta(x_0) <= L_T + sum_{t>1} L_{t-1} + L_0, with
  L_T     = KL(q(x_T | x_0) || N(0, I))                    ``prior_kl``
  L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p_theta(x_{t-1} | x_t))   ``vb_term`` for t > 1
  L_0     = -log p_theta(x_0 | x_1)                        ``vb_term`` at t = 1

The data are treated as continuous: L_0 is the Gaussian negative log-density of x_0 under the decoder
N(mu_theta(x_1, 1), sigma_1^2 I), so the bound is on a density (it can be negative). Every term is
summed over the feature dimensions and returned per example.

The reverse variance matters to the bound, not to the samplers' means: to estimate a likelihood,
build the process with ``variance="beta"`` (sigma_t^2 = beta_t, and sigma_1^2 = beta_1). With the
exact denoiser of Gaussian data its bound closes on -log p(x_0) as T grows (0.009 nat above at
T = 1000 in tests/diffusion/test_gaussian.py); the posterior choice's smaller variances stay
about 0.5-1 nat per dimension above there, however large T is.
"""

from __future__ import annotations

import math

import torch

from .arguments import check_data
from .gaussian import GaussianDiffusion
from .parametrization import ModelFn
from .samplers import randn_rows

__all__ = ["gaussian_nll", "nll_bound", "normal_kl", "prior_kl", "vb_term"]


def normal_kl(
    mean1: torch.Tensor, log_var1: torch.Tensor, mean2: torch.Tensor, log_var2: torch.Tensor
) -> torch.Tensor:
    """Elementwise KL(N(mean1, exp(log_var1)) || N(mean2, exp(log_var2))) in nats."""
    return 0.5 * (
        log_var2
        - log_var1
        + torch.exp(log_var1 - log_var2)
        + (mean1 - mean2).pow(2) * torch.exp(-log_var2)
        - 1.0
    )


def gaussian_nll(x: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """Elementwise -log N(x; mean, exp(log_var)) in nats."""
    return 0.5 * (math.log(2 * math.pi) + log_var + (x - mean).pow(2) * torch.exp(-log_var))


def _sum_features(values: torch.Tensor) -> torch.Tensor:
    return values.flatten(1).sum(dim=1)


def prior_kl(process: GaussianDiffusion, x0: torch.Tensor) -> torch.Tensor:
    """L_T = KL(q(x_T | x_0) || N(0, I)) per example; no parameters, so constant in training."""
    check_data(x0, "x0")
    last = torch.full((x0.shape[0],), process.num_steps - 1, dtype=torch.long, device=x0.device)
    mean, var = process.q_mean_variance(x0, last)
    zeros = torch.zeros_like(x0)
    return _sum_features(normal_kl(mean, torch.log(var).expand_as(x0), zeros, zeros))


def vb_term(
    process: GaussianDiffusion,
    model_fn: ModelFn,
    x0: torch.Tensor,
    x_t: torch.Tensor,
    t: torch.Tensor,
) -> torch.Tensor:
    """L_{t-1} per example: the posterior-to-model KL for t > 1 (index > 0), L_0 at t = 1."""
    true = process.q_posterior(x0, x_t, t)  # checks x0, x_t and t, once for both
    t = process._steps(t, x_t)
    model = process._p_mean_variance(model_fn, x_t, t)
    kl = _sum_features(
        normal_kl(true.mean, true.log_variance.expand_as(x0), model.mean, model.log_variance)
    )
    decoder_nll = _sum_features(gaussian_nll(x0, model.mean, model.log_variance.expand_as(x0)))
    return torch.where(t == 0, decoder_nll, kl)


@torch.no_grad()
def nll_bound(
    process: GaussianDiffusion,
    model_fn: ModelFn,
    x0: torch.Tensor,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """The full bound -log p(x_0) <= L_T + sum_t L_{t-1}, per example, in nats.

    One Monte-Carlo sample of x_t per step. Returns ``total`` [b], ``prior`` [b] and ``terms``
    [b, T] (column i is L_{i} in the paper's numbering, i.e. L_0 first).
    """
    check_data(x0, "x0")
    terms = []
    for i in range(process.num_steps):
        t = torch.full((x0.shape[0],), i, dtype=torch.long, device=x0.device)
        noise = randn_rows(x0.shape, generator, x0.device, x0.dtype)
        terms.append(vb_term(process, model_fn, x0, process.q_sample(x0, t, noise), t))
    stacked = torch.stack(terms, dim=1)
    prior = prior_kl(process, x0)
    return {"total": stacked.sum(dim=1) + prior, "prior": prior, "terms": stacked}
