"""The Gaussian diffusion process of DDPM (Ho et al. 2020), model-agnostic.

The process owns no network and no optimizer state: every method that needs the denoiser takes it
as ``model_fn(x_t, t) -> output``, where ``t`` holds the *model's* step indices (the original steps
of a respaced schedule). Step indices are 0-based: index ``i`` is the paper's ``t = i + 1``.

==============================================  =================================  ========
paper                                           code                               equation
==============================================  =================================  ========
q(x_t | x_0) = N(sqrt(abar_t) x_0, (1-abar_t)I) ``q_mean_variance``, ``q_sample``  DDPM (4)
q(x_{t-1} | x_t, x_0) = N(mu~_t, beta~_t I)     ``q_posterior``                    DDPM (6-7)
x_0 = (x_t - sqrt(1-abar_t) eps) / sqrt(abar_t) ``x0_from_eps``
v = sqrt(abar_t) eps - sqrt(1-abar_t) x_0       ``v_target``, ``x0_from_v``        Salimans & Ho 2022
p_theta(x_{t-1} | x_t) = N(mu_theta, sigma_t^2) ``p_mean_variance``
L_simple / x0-MSE / SNR-difference weights      ``training_losses``                DDPM (14), DiffRec (8-9)
==============================================  =================================  ========
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from .schedules import NoiseSchedule

__all__ = [
    "GaussianDiffusion",
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


def _as_tensor(values: np.ndarray) -> torch.Tensor:
    return torch.tensor(np.asarray(values, dtype=np.float64))


class GaussianDiffusion(nn.Module):
    """q, the posterior and p_theta over a :class:`NoiseSchedule`; schedule arrays are float64 buffers.

    Args:
        schedule: the betas (possibly a respaced schedule).
        prediction: what the denoiser predicts (eps, x0 or v).
        variance: the fixed reverse variance, beta~_t (posterior) or beta_t.
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        prediction: Prediction | str = Prediction.EPS,
        variance: VarianceType | str = VarianceType.POSTERIOR,
    ) -> None:
        super().__init__()
        self.schedule = schedule
        self.prediction = Prediction(prediction)
        self.variance_type = VarianceType(variance)
        s = schedule
        abar, abar_prev = s.alpha_bar, s.alpha_bar_prev
        post_var = s.posterior_variance
        # beta~_1 = 0, so its log is clipped to beta~_2 (as improved-diffusion does); the clipped
        # value is also the decoder variance of L_0 under the posterior choice.
        clipped = np.concatenate([post_var[1:2], post_var[1:]]) if s.num_steps > 1 else s.betas
        buffers = {
            "betas": s.betas,
            "alpha_bar": abar,
            "alpha_bar_prev": abar_prev,
            "sqrt_alpha_bar": np.sqrt(abar),
            "sqrt_one_minus_alpha_bar": np.sqrt(1.0 - abar),
            "snr": s.snr,
            "posterior_variance": post_var,
            "posterior_log_variance": np.log(clipped),
            "posterior_coef_x0": s.betas * np.sqrt(abar_prev) / (1.0 - abar),
            "posterior_coef_xt": (1.0 - abar_prev) * np.sqrt(s.alphas) / (1.0 - abar),
            "model_timesteps": s.timesteps.astype(np.float64),
        }
        if self.variance_type is VarianceType.POSTERIOR:
            # At t = 1 no noise is added when sampling; the clipped value serves the decoder L_0.
            buffers["reverse_variance"] = clipped
            buffers["reverse_log_variance"] = np.log(clipped)
        else:
            # "fixed large": beta_t, except at t = 1 where beta~_2 keeps the decoder well scaled.
            large = np.concatenate([clipped[:1], s.betas[1:]])
            buffers["reverse_variance"] = large
            buffers["reverse_log_variance"] = np.log(large)
        for name, value in buffers.items():
            self.register_buffer(name, _as_tensor(value), persistent=False)

    def _apply(
        self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True
    ) -> GaussianDiffusion:
        """Follow device moves but not dtype casts: ``.float()``, ``.half()``, ``.to(bf16)`` on this
        process or on a module holding it would otherwise round the schedule (in bfloat16
        1 - abar_1 of DiffRec's schedule becomes 0). Each table that came back in another dtype is
        replaced by its float64 original, moved to where the cast one landed."""
        originals = dict(self._buffers)
        super()._apply(fn, recurse)
        for name, original in originals.items():
            moved = self._buffers[name]
            if original is not None and moved is not None and moved.dtype != original.dtype:
                self._buffers[name] = original.to(moved.device)
        return self

    @property
    def num_steps(self) -> int:
        return self.schedule.num_steps

    def extra_repr(self) -> str:
        return (
            f"schedule={self.schedule.name}, T={self.num_steps}, "
            f"prediction={self.prediction.value}, variance={self.variance_type.value}"
        )

    @staticmethod
    def _at(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """values[t] cast to ``like``'s dtype, shaped to broadcast over ``like``.

        ``t`` is [batch] (one step per example) or 0-d (one step for all, as samplers use it,
        which saves a gather per coefficient).
        """
        out = values[t.to(values.device)].to(device=like.device, dtype=like.dtype)
        return out.reshape(out.shape + (1,) * (like.dim() - out.dim()))

    def model_t(self, t: torch.Tensor, batch: int | None = None) -> torch.Tensor:
        """The step indices the denoiser is trained on (differ from ``t`` after respacing).

        A 0-d ``t`` is expanded to ``batch`` entries.
        """
        steps = self.model_timesteps[t.to(self.model_timesteps.device)].long().to(t.device)
        return steps.expand(batch) if steps.dim() == 0 and batch is not None else steps

    def sample_timesteps(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """t ~ U{0..T-1} (Algorithm 1)."""
        return torch.randint(0, self.num_steps, (batch,), device=device)

    # -------------------------------------------------------------------- forward process
    def q_mean_variance(
        self, x0: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of q(x_t | x_0)."""
        return self._at(self.sqrt_alpha_bar, t, x0) * x0, self._at(1.0 - self.alpha_bar, t, x0)

    def q_sample(
        self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps."""
        if noise is None:
            noise = torch.randn_like(x0)
        return (
            self._at(self.sqrt_alpha_bar, t, x0) * x0
            + self._at(self.sqrt_one_minus_alpha_bar, t, x0) * noise
        )

    def q_posterior(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> Posterior:
        """q(x_{t-1} | x_t, x_0) = N(mu~_t, beta~_t I); log-variance clipped at t = 1."""
        if t.dim() == 0:  # one step for the batch (samplers): scalar coefficients, two passes
            coef_x0, coef_xt = float(self.posterior_coef_x0[t]), float(self.posterior_coef_xt[t])
            mean = (x_t * coef_xt).add_(x0.to(x_t.dtype), alpha=coef_x0)
        else:
            mean = (
                self._at(self.posterior_coef_x0, t, x_t) * x0
                + self._at(self.posterior_coef_xt, t, x_t) * x_t
            )
        return Posterior(
            mean,
            self._at(self.posterior_variance, t, x_t),
            self._at(self.posterior_log_variance, t, x_t),
        )

    # ----------------------------------------------------------- prediction conversions
    def x0_from_eps(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return (x_t - self._at(self.sqrt_one_minus_alpha_bar, t, x_t) * eps) / self._at(
            self.sqrt_alpha_bar, t, x_t
        )

    def eps_from_x0(self, x_t: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        return (x_t - self._at(self.sqrt_alpha_bar, t, x_t) * x0) / self._at(
            self.sqrt_one_minus_alpha_bar, t, x_t
        )

    def v_target(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0."""
        return (
            self._at(self.sqrt_alpha_bar, t, x0) * noise
            - self._at(self.sqrt_one_minus_alpha_bar, t, x0) * x0
        )

    def x0_from_v(self, x_t: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return (
            self._at(self.sqrt_alpha_bar, t, x_t) * x_t
            - self._at(self.sqrt_one_minus_alpha_bar, t, x_t) * v
        )

    def to_x0(self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x0 from a model output of this process's prediction type."""
        if self.prediction is Prediction.EPS:
            return self.x0_from_eps(x_t, t, output)
        if self.prediction is Prediction.X0:
            return output
        return self.x0_from_v(x_t, t, output)

    def to_x0_eps(
        self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Both x0 and eps from a model output of this process's prediction type."""
        x0 = self.to_x0(output, x_t, t)
        return x0, output if self.prediction is Prediction.EPS else self.eps_from_x0(x_t, t, x0)

    def target(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The regression target of the denoiser for this prediction type."""
        if self.prediction is Prediction.EPS:
            return noise
        if self.prediction is Prediction.X0:
            return x0
        return self.v_target(x0, t, noise)

    # -------------------------------------------------------------------- reverse process
    @functools.cached_property
    def mean_chain(self) -> list[tuple[int, float, float]]:
        """(model step, a, b) of every reverse step, T first: the deterministic reverse process
        (posterior mean only) as ``x <- a x + b f(x, model step)``, for
        :meth:`recdiff.nn.MLPDenoiser.reverse_mean_chain`. Fixed by the schedule, so computed
        once per process."""
        return [
            (int(self.model_t(torch.tensor(t))), *self.mean_coefficients(t))
            for t in reversed(range(self.num_steps))
        ]

    def mean_coefficients(self, t: int) -> tuple[float, float]:
        """(a, b) with mu_theta(x_t, t) = a x_t + b f for the model output f at step index ``t``.

        Every prediction type makes x0_hat affine in x_t and f without a constant term
        (x0: f; eps: (x_t - sqrt(1-abar) f) / sqrt(abar); v: sqrt(abar) x_t - sqrt(1-abar) f),
        and the posterior mean is linear in x0_hat and x_t, so two probes give both weights.
        """
        if not 0 <= t < self.num_steps:
            raise ValueError(f"t must lie in 0..{self.num_steps - 1}, got {t}")
        step = torch.tensor(t)
        one = torch.ones(1, dtype=torch.float64, device=self.betas.device)
        zero = torch.zeros_like(one)
        a = self.q_posterior(self.to_x0(zero, one, step), one, step).mean
        b = self.q_posterior(self.to_x0(one, zero, step), zero, step).mean
        return float(a), float(b)

    def p_mean_variance(
        self,
        model_fn: ModelFn,
        x_t: torch.Tensor,
        t: torch.Tensor,
        clip_x0: tuple[float, float] | None = None,
    ) -> ReverseStep:
        """p_theta(x_{t-1} | x_t): the posterior mean at the predicted x0, with the fixed variance."""
        output = model_fn(x_t, self.model_t(t, x_t.shape[0]))
        pred_x0 = self.to_x0(output, x_t, t)
        if clip_x0 is not None:
            pred_x0 = pred_x0.clamp(*clip_x0)
        mean = self.q_posterior(pred_x0, x_t, t).mean
        return ReverseStep(
            mean,
            self._at(self.reverse_variance, t, x_t),
            self._at(self.reverse_log_variance, t, x_t),
            pred_x0,
        )

    # ------------------------------------------------------------------------- training
    def loss_weights(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """DiffRec's weights 1/2 (SNR(t-1) - SNR(t)) for t > 1, and 1 at t = 1."""
        snr_prev = torch.cat([self.snr.new_ones(1), self.snr[:-1]])
        weights = 0.5 * (snr_prev - self.snr)
        weights[0] = 1.0
        return self._at(weights, t, like).reshape(-1)

    def training_losses(
        self,
        model_fn: ModelFn,
        x0: torch.Tensor,
        t: torch.Tensor,
        noise: torch.Tensor | None = None,
        weighting: LossWeighting | str = LossWeighting.NONE,
    ) -> dict[str, torch.Tensor]:
        """Per-example losses (mean over feature dims) for a batch; Algorithm 1's objective.

        Returns ``loss`` (weighted), ``mse`` (unweighted, on the prediction target), ``pred_x0``.
        With ``snr_diff`` weights the loss is taken on the x0 error whatever the prediction type.
        """
        if noise is None:
            noise = torch.randn_like(x0)
        x_t = self.q_sample(x0, t, noise)
        output = model_fn(x_t, self.model_t(t))
        reduce_dims = tuple(range(1, x0.dim()))
        mse = (output - self.target(x0, t, noise)).pow(2).mean(dim=reduce_dims)
        pred_x0 = self.to_x0(output, x_t, t)
        if LossWeighting(weighting) is LossWeighting.SNR_DIFF:
            x0_mse = (pred_x0 - x0).pow(2).mean(dim=reduce_dims)
            loss = self.loss_weights(t, x0_mse) * x0_mse
        else:
            loss = mse
        return {"loss": loss, "mse": mse, "pred_x0": pred_x0}
