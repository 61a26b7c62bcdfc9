"""The Gaussian diffusion process of DDPM (Ho et al. 2020), model-agnostic.

The process owns no network and no optimizer state: every method that needs the denoiser takes it
as ``model_fn(x_t, t) -> output``, where ``t`` holds the *model's* step indices (the original steps
of a respaced schedule). Step indices are 0-based: index ``i`` is the paper's ``t = i + 1``.
Its modes live in :mod:`.parametrization`, the checks on its arguments in :mod:`.arguments`.

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

import functools
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from .arguments import _noise_for, check_clip, check_data, step_indices
from .parametrization import (
    LossWeighting,
    ModelFn,
    Posterior,
    Prediction,
    ReverseStep,
    VarianceType,
    _choice,
    _model_output,
)
from .schedules import NoiseSchedule

# The modes stay importable from here, where GaussianDiffusion takes them as arguments.
__all__ = ["GaussianDiffusion", "LossWeighting", "Prediction", "VarianceType"]


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
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(
                f"schedule must be a NoiseSchedule, got {type(schedule).__name__}: for betas, "
                "pass NoiseSchedule(betas); or e.g. NoiseSchedule.linear(1000)"
            )
        self.schedule = schedule
        self.prediction = _choice(Prediction, prediction, "prediction")
        self.variance_type = _choice(VarianceType, variance, "variance")
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
            # "fixed large": beta_t at every t, the decoder of L_0 included (DDPM's sigma_1^2 =
            # beta_1). That is x_0's spread given x_1 for data spread wider than sqrt(beta_1),
            # so the bound approaches -log p(x_0) as T grows; improved-diffusion's beta~_2 there
            # (about beta_1 / 2) overstates L_0 by ~0.15 nats per dimension.
            buffers["reverse_variance"] = s.betas
            buffers["reverse_log_variance"] = np.log(s.betas)
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

    # Public methods check their arguments (check_data, step_indices) and then use the private
    # ones, which trust them: composite methods (training_losses, p_mean_variance, the samplers)
    # thus check ``t`` once, which reads it once from the device, rather than at every lookup.

    @staticmethod
    def _at(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """values[t] cast to ``like``'s dtype, shaped to broadcast over ``like``.

        ``t`` is [batch] (one step per example) or 0-d (one step for all, as samplers use it,
        which saves a gather per coefficient).
        """
        out = values[t.to(values.device)].to(device=like.device, dtype=like.dtype)
        return out.reshape(out.shape + (1,) * (like.dim() - out.dim()))

    def _steps(self, t: torch.Tensor | int, like: torch.Tensor | None = None) -> torch.Tensor:
        """``t`` checked by :func:`step_indices` against T and ``like``'s batch."""
        if like is None:
            return step_indices(t, self.num_steps, device=self.betas.device)
        return step_indices(t, self.num_steps, like.shape[0], like.device)

    def _checked(self, t: torch.Tensor | int, *data: tuple[str, torch.Tensor]) -> torch.Tensor:
        """Check each ``(name, tensor)`` of data and ``t`` against the first one's batch."""
        for name, x in data:
            check_data(x, name)
        return self._steps(t, data[0][1])

    def _checked_pair(
        self,
        t: torch.Tensor | int,
        first: tuple[str, torch.Tensor],
        second: tuple[str, torch.Tensor],
    ) -> torch.Tensor:
        """:meth:`_checked` for two tensors that combine elementwise: the second is refused when
        its shape differs from the first's, as it would broadcast against it (as ``q_sample``
        refuses such noise)."""
        t = self._checked(t, first, second)
        (first_name, x), (name, other) = first, second
        if other.shape != x.shape:
            raise ValueError(
                f"{name} must have {first_name}'s shape {tuple(x.shape)}, got {tuple(other.shape)}"
            )
        return t

    def model_t(self, t: torch.Tensor | int, batch: int | None = None) -> torch.Tensor:
        """The step indices the denoiser is trained on (differ from ``t`` after respacing).

        A 0-d ``t`` (or an int) is expanded to ``batch`` entries.
        """
        steps = step_indices(t, self.num_steps, batch, self.betas.device)
        return self._model_t(steps, batch)

    def _model_t(self, t: torch.Tensor, batch: int | None = None) -> torch.Tensor:
        steps = self.model_timesteps[t.to(self.model_timesteps.device)].long().to(t.device)
        return steps.expand(batch) if steps.dim() == 0 and batch is not None else steps

    def sample_timesteps(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """t ~ U{0..T-1} (Algorithm 1)."""
        return torch.randint(0, self.num_steps, (batch,), device=device)

    # -------------------------------------------------------------------- forward process
    def q_mean_variance(
        self, x0: torch.Tensor, t: torch.Tensor | int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of q(x_t | x_0)."""
        t = self._checked(t, ("x0", x0))
        return self._at(self.sqrt_alpha_bar, t, x0) * x0, self._at(1.0 - self.alpha_bar, t, x0)

    def q_sample(
        self, x0: torch.Tensor, t: torch.Tensor | int, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps."""
        return self._q_sample(x0, self._checked(t, ("x0", x0)), _noise_for(x0, noise))

    def _q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return (
            self._at(self.sqrt_alpha_bar, t, x0) * x0
            + self._at(self.sqrt_one_minus_alpha_bar, t, x0) * noise
        )

    def q_posterior(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | int) -> Posterior:
        """q(x_{t-1} | x_t, x_0) = N(mu~_t, beta~_t I); log-variance clipped at t = 1.

        Everything comes in x_t's dtype, whatever x0's (as every other method here returns its
        result in the dtype of the x it is given).
        """
        t = self._checked(t, ("x_t", x_t), ("x0", x0))
        if x0.shape != x_t.shape:
            raise ValueError(
                f"x0 and x_t must have the same shape, got {tuple(x0.shape)} and {tuple(x_t.shape)}"
            )
        return self._q_posterior(x0, x_t, t)

    def _q_posterior(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> Posterior:
        x0 = x0.to(x_t.dtype)
        if t.dim() == 0:  # one step for the batch (samplers): scalar coefficients, two passes
            coef_x0, coef_xt = float(self.posterior_coef_x0[t]), float(self.posterior_coef_xt[t])
            mean = (x_t * coef_xt).add_(x0, alpha=coef_x0)
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
    def x0_from_eps(
        self, x_t: torch.Tensor, t: torch.Tensor | int, eps: torch.Tensor
    ) -> torch.Tensor:
        return self._x0_from_eps(x_t, self._checked_pair(t, ("x_t", x_t), ("eps", eps)), eps)

    def _x0_from_eps(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return (x_t - self._at(self.sqrt_one_minus_alpha_bar, t, x_t) * eps) / self._at(
            self.sqrt_alpha_bar, t, x_t
        )

    def eps_from_x0(
        self, x_t: torch.Tensor, t: torch.Tensor | int, x0: torch.Tensor
    ) -> torch.Tensor:
        return self._eps_from_x0(x_t, self._checked_pair(t, ("x_t", x_t), ("x0", x0)), x0)

    def _eps_from_x0(self, x_t: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        return (x_t - self._at(self.sqrt_alpha_bar, t, x_t) * x0) / self._at(
            self.sqrt_one_minus_alpha_bar, t, x_t
        )

    def v_target(
        self, x0: torch.Tensor, t: torch.Tensor | int, noise: torch.Tensor
    ) -> torch.Tensor:
        """v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0."""
        return self._v_target(x0, self._checked_pair(t, ("x0", x0), ("noise", noise)), noise)

    def _v_target(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return (
            self._at(self.sqrt_alpha_bar, t, x0) * noise
            - self._at(self.sqrt_one_minus_alpha_bar, t, x0) * x0
        )

    def x0_from_v(self, x_t: torch.Tensor, t: torch.Tensor | int, v: torch.Tensor) -> torch.Tensor:
        return self._x0_from_v(x_t, self._checked_pair(t, ("x_t", x_t), ("v", v)), v)

    def _x0_from_v(self, x_t: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return (
            self._at(self.sqrt_alpha_bar, t, x_t) * x_t
            - self._at(self.sqrt_one_minus_alpha_bar, t, x_t) * v
        )

    def to_x0(self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """x0 from a model output of this process's prediction type."""
        return self._to_x0(output, x_t, self._checked_pair(t, ("x_t", x_t), ("output", output)))

    def _to_x0(self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.prediction is Prediction.EPS:
            return self._x0_from_eps(x_t, t, output)
        if self.prediction is Prediction.X0:
            return output
        return self._x0_from_v(x_t, t, output)

    def to_x0_eps(
        self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Both x0 and eps from a model output of this process's prediction type."""
        t = self._checked_pair(t, ("x_t", x_t), ("output", output))
        return self._to_x0_eps(output, x_t, t)

    def _to_x0_eps(
        self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x0 = self._to_x0(output, x_t, t)
        return x0, output if self.prediction is Prediction.EPS else self._eps_from_x0(x_t, t, x0)

    def target(self, x0: torch.Tensor, t: torch.Tensor | int, noise: torch.Tensor) -> torch.Tensor:
        """The regression target of the denoiser for this prediction type."""
        return self._target(x0, self._checked_pair(t, ("x0", x0), ("noise", noise)), noise)

    def _target(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        if self.prediction is Prediction.EPS:
            return noise
        if self.prediction is Prediction.X0:
            return x0
        return self._v_target(x0, t, noise)

    # -------------------------------------------------------------------- reverse process
    @functools.cached_property
    def mean_chain(self) -> list[tuple[int, float, float]]:
        """(model step, a, b) of every reverse step, T first: the deterministic reverse process
        (posterior mean only) as ``x <- a x + b f(x, model step)``, for
        :meth:`recdiff.nn.MLPDenoiser.reverse_mean_chain`. Fixed by the schedule, so computed
        once per process."""
        return [
            (int(self.schedule.timesteps[t]), *self.mean_coefficients(t))
            for t in reversed(range(self.num_steps))
        ]

    def mean_coefficients(self, t: int) -> tuple[float, float]:
        """(a, b) with mu_theta(x_t, t) = a x_t + b f for the model output f at step index ``t``.

        Every prediction type makes x0_hat affine in x_t and f without a constant term
        (x0: f; eps: (x_t - sqrt(1-abar) f) / sqrt(abar); v: sqrt(abar) x_t - sqrt(1-abar) f),
        and the posterior mean is linear in x0_hat and x_t, so two probes give both weights.
        """
        step = self._steps(t)
        one = torch.ones(1, 1, dtype=torch.float64, device=self.betas.device)
        zero = torch.zeros_like(one)
        a = self._q_posterior(self._to_x0(zero, one, step), one, step).mean
        b = self._q_posterior(self._to_x0(one, zero, step), zero, step).mean
        return float(a), float(b)

    def p_mean_variance(
        self,
        model_fn: ModelFn,
        x_t: torch.Tensor,
        t: torch.Tensor | int,
        clip_x0: tuple[float, float] | None = None,
    ) -> ReverseStep:
        """p_theta(x_{t-1} | x_t): the posterior mean at the predicted x0, with the fixed variance.

        At t = 1 (index 0) the variance returned is the decoder variance of L_0: beta_1 under
        the ``beta`` choice, and beta~_2 under ``posterior`` (beta_1 when T = 1), not
        beta~_1 = 0. A sampler adds no noise at that step (Algorithm 2), as
        :class:`~recdiff.diffusion.DDPMSampler` does, so only the bound reads it.
        """
        clip_x0 = check_clip(clip_x0)
        return self._p_mean_variance(model_fn, x_t, self._checked(t, ("x_t", x_t)), clip_x0)

    def _p_mean_variance(
        self,
        model_fn: ModelFn,
        x_t: torch.Tensor,
        t: torch.Tensor,
        clip_x0: tuple[float, float] | None = None,
    ) -> ReverseStep:
        output = _model_output(model_fn, x_t, self._model_t(t, x_t.shape[0]))
        pred_x0 = self._to_x0(output, x_t, t)
        if clip_x0 is not None:
            pred_x0 = pred_x0.clamp(*clip_x0)
        mean = self._q_posterior(pred_x0, x_t, t).mean
        return ReverseStep(
            mean,
            self._at(self.reverse_variance, t, x_t),
            self._at(self.reverse_log_variance, t, x_t),
            pred_x0,
        )

    # ------------------------------------------------------------------------- training
    def loss_weights(self, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
        """DiffRec's weights 1/2 (SNR(t-1) - SNR(t)) for t > 1, and 1 at t = 1."""
        batch = like.shape[0] if like.dim() else None
        return self._loss_weights(step_indices(t, self.num_steps, batch, like.device), like)

    def _loss_weights(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        snr_prev = torch.cat([self.snr.new_ones(1), self.snr[:-1]])
        weights = 0.5 * (snr_prev - self.snr)
        weights[0] = 1.0
        out = self._at(weights, t, like).reshape(-1)
        # One step for the batch still gives one weight per example, as a [batch] t does.
        return out.expand(like.shape[0]) if t.dim() == 0 and like.dim() else out

    def training_losses(
        self,
        model_fn: ModelFn,
        x0: torch.Tensor,
        t: torch.Tensor | int,
        noise: torch.Tensor | None = None,
        weighting: LossWeighting | str = LossWeighting.NONE,
    ) -> dict[str, torch.Tensor]:
        """Per-example losses (mean over feature dims) for a batch; Algorithm 1's objective.

        Returns ``loss`` (weighted), ``mse`` (unweighted, on the prediction target), ``pred_x0``.
        With ``snr_diff`` weights the loss is taken on the x0 error whatever the prediction type.
        """
        weighting = _choice(LossWeighting, weighting, "weighting")
        t = self._checked(t, ("x0", x0))
        noise = _noise_for(x0, noise)
        x_t = self._q_sample(x0, t, noise)
        output = _model_output(model_fn, x_t, self._model_t(t, x0.shape[0]))
        reduce_dims = tuple(range(1, x0.dim()))
        mse = (output - self._target(x0, t, noise)).pow(2).mean(dim=reduce_dims)
        pred_x0 = self._to_x0(output, x_t, t)
        if weighting is LossWeighting.SNR_DIFF:
            x0_mse = (pred_x0 - x0).pow(2).mean(dim=reduce_dims)
            loss = self._loss_weights(t, x0_mse) * x0_mse
        else:
            loss = mse
        return {"loss": loss, "mse": mse, "pred_x0": pred_x0}
