"""Learning a 2-D distribution from noise: the smallest complete DDPM (Algorithms 1 and 2)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from ..diffusion import (
    DDIMSampler,
    DDPMSampler,
    GaussianDiffusion,
    NoiseSchedule,
    Prediction,
    Sampler,
    nll_bound,
)
from ..nn import MLPDenoiser
from .data import TOY_DATASETS

__all__ = ["ToyConfig", "ToyModel", "train_toy"]


@dataclass(frozen=True)
class ToyConfig:
    """Settings of the 2-D demo; the defaults train in a few seconds on 2 CPU cores."""

    dataset: str = "mixture"  # a key of TOY_DATASETS
    prediction: Prediction = Prediction.EPS  # what the denoiser predicts
    steps: int = 100  # T; linear betas scaled by 1000/T keep abar_T ~ 4e-5 (few steps sample fast)
    hidden_dims: tuple[int, ...] = (128, 128, 128)
    time_dim: int = 32
    iterations: int = 4000  # optimizer steps
    batch_size: int = 512
    lr: float = 2e-3
    n_train: int = 20000  # size of the fixed training sample
    seed: int = 0
    eval_every: int = 0  # record the held-out NLL bound every k iterations (0: start and end only)
    n_eval: int = 1000  # held-out points for the NLL bound


@dataclass
class ToyModel:
    """A trained toy denoiser with its process, plus the training record."""

    config: ToyConfig
    process: GaussianDiffusion
    network: MLPDenoiser
    nll_curve: list[tuple[int, float]] = field(default_factory=list)  # (iteration, nats/example)
    seconds: float = 0.0

    def model_fn(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.network(x_t, t)

    def sampler(self, kind: str = "ddpm", steps: int | None = None, eta: float = 0.0) -> Sampler:
        """``ddpm`` (ancestral) or ``ddim``, optionally on ``steps`` respaced steps."""
        process = self.process
        if steps is not None and steps != process.num_steps:
            process = GaussianDiffusion(
                process.schedule.spaced(steps), self.config.prediction, process.variance_type
            )
        if kind == "ddpm":
            return DDPMSampler(process)
        if kind == "ddim":
            return DDIMSampler(process, eta=eta)
        raise ValueError(f"unknown sampler {kind!r}; use 'ddpm' or 'ddim'")

    @torch.no_grad()
    def sample(
        self, n: int, kind: str = "ddpm", steps: int | None = None, seed: int = 0, eta: float = 0.0
    ) -> torch.Tensor:
        self.network.eval()
        generator = torch.Generator().manual_seed(seed)
        x_T = torch.randn(n, 2, generator=generator)
        return self.sampler(kind, steps, eta).sample(self.model_fn, x_T, generator=generator)

    @torch.no_grad()
    def nll(self, x0: torch.Tensor, seed: int = 0) -> float:
        """Mean ELBO bound on -log p(x0), in nats per example."""
        self.network.eval()
        generator = torch.Generator().manual_seed(seed)
        return float(nll_bound(self.process, self.model_fn, x0, generator)["total"].mean())


def train_toy(config: ToyConfig = ToyConfig(), held_out: torch.Tensor | None = None) -> ToyModel:
    """Train a denoiser on ``config.dataset`` with L_simple on the chosen prediction target."""
    if config.dataset not in TOY_DATASETS:
        raise ValueError(
            f"unknown toy dataset {config.dataset!r}; choose from {sorted(TOY_DATASETS)}"
        )
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    data = TOY_DATASETS[config.dataset](config.n_train, generator)
    if held_out is None:
        held_out = TOY_DATASETS[config.dataset](config.n_eval, torch.Generator().manual_seed(10**6))
    scale = 1000 / config.steps  # keep abar_T ~ 4e-5 whatever T (improved-diffusion scaling)
    schedule_ = NoiseSchedule.linear(config.steps, 1e-4 * scale, 0.02 * scale)
    process = GaussianDiffusion(schedule_, config.prediction)
    network = MLPDenoiser(2, config.hidden_dims, config.time_dim, activation="silu")
    model = ToyModel(config, process, network)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.iterations)
    model.nll_curve.append((0, model.nll(held_out)))
    start = time.perf_counter()
    for it in range(1, config.iterations + 1):
        network.train()
        index = torch.randint(0, data.shape[0], (config.batch_size,), generator=generator)
        x0 = data[index]
        t = process.sample_timesteps(x0.shape[0])
        loss = process.training_losses(model.model_fn, x0, t)["loss"].mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if config.eval_every and it % config.eval_every == 0 and it < config.iterations:
            model.nll_curve.append((it, model.nll(held_out)))
    model.seconds = time.perf_counter() - start
    model.nll_curve.append((config.iterations, model.nll(held_out)))
    network.eval()
    return model
