"""DiffRec: diffusion over a user's interaction vector (Wang et al., SIGIR 2023).

x_0 is the user's (possibly time-weighted) interaction row over all items. The forward process adds
little noise (the schedule of Eq. 4), an MLP predicts x_0 from [x_t ; emb(t)], and the loss is the
x0-ELBO with SNR-difference weights (Eq. 8-9) under loss-aware timestep sampling (Eq. 14).
Inference (Sec. 3.4): noise the history to step T' (T' = 0: not at all), run the reverse process
for T steps with the posterior mean only, and rank items by the result.

T-DiffRec is this model fed time-weighted rows (:func:`recdiff.data.time_weights`); L-DiffRec
(:mod:`recdiff.models.ldiffrec`) wraps the same process around item-cluster autoencoders.

==============================  ==================================  ==========
paper                           code                                equation
==============================  ==================================  ==========
s, a_min, a_max, T              ``noise_scale, noise_min, noise_max, steps``  Eq. 4
T'                              ``inference_noise_steps``           Sec. 3.4
w_t = 1/2 (SNR(t-1) - SNR(t))   ``loss_weighting="snr_diff"``       Eq. 8-9
p_t ~ sqrt(E[L_t^2])            ``importance_sampling=True``        Eq. 14
==============================  ==================================  ==========
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from recdiff._warnings import warn
from recdiff.diffusion import (
    DDPMSampler,
    EachRowAlone,
    GaussianDiffusion,
    LossAwareSampler,
    NoiseSchedule,
    ScheduleError,
    TimestepSampler,
    UniformSampler,
    noise_to,
    row_block_pass,
)
from recdiff.diffusion.schedules import RELEASED_FIRST_BETA
from recdiff.eval.protocol import EvalTask
from recdiff.models.base import Recommender, settings
from recdiff.nn import MLPDenoiser
from recdiff.train.config import TrainConfig, TrainResult, chosen_keys
from recdiff.train.distributed import gather_timestep_losses
from recdiff.train.trainer import Trainer, autocast

__all__ = ["DiffRec", "DiffRecConfig", "DiffusionConfig"]


class DiffusionConfig(BaseModel):
    """The diffusion process of a DiffRec-family model (defaults: released ML-1M settings)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    steps: int = Field(40, ge=1, description="T, diffusion steps")
    noise_schedule: Literal["diffrec", "linear", "cosine"] = Field(
        "diffrec", description="diffrec = Eq. 4's linear variance; linear/cosine for ablations"
    )
    noise_scale: float = Field(5e-3, gt=0, le=1, description="s, scales the noise (Eq. 4)")
    noise_min: float = Field(5e-3, gt=0, lt=1, description="a_min, the noise bound at t = 1")
    noise_max: float = Field(1e-2, gt=0, lt=1, description="a_max, the noise bound at t = T")
    prediction: Literal["x0", "eps"] = Field("x0", description="what the denoiser predicts")
    loss_weighting: Literal["snr_diff", "none"] = Field("snr_diff", description="Eq. 8-9 weights")
    importance_sampling: bool = Field(True, description="loss-aware timestep sampling (Eq. 14)")
    inference_noise_steps: int = Field(0, ge=0, description="T', noise added to the history")

    @model_validator(mode="after")
    def _check(self) -> DiffusionConfig:
        if self.noise_min >= self.noise_max:
            raise ValueError(
                f"noise_min ({self.noise_min}) must be smaller than noise_max ({self.noise_max})"
            )
        if self.inference_noise_steps > self.steps:
            raise ValueError(
                f"inference_noise_steps T' ({self.inference_noise_steps}) cannot exceed steps T "
                f"({self.steps})"
            )
        # Checked here rather than when the model is built, so the error names the config's
        # keys and a search skips such a combination as invalid (e.g. a noise_scale so small
        # that abar stops decreasing in float64 gives betas of 0).
        try:
            self.schedule()
        except ScheduleError as error:
            given = f"steps={self.steps}"
            if self.noise_schedule != "cosine":
                given += (
                    f", noise_scale={self.noise_scale}, noise_min={self.noise_min}, "
                    f"noise_max={self.noise_max}"
                )
            if self.noise_schedule == "linear":
                given += (
                    " (beta_start = noise_scale * noise_min, beta_end = noise_scale * noise_max)"
                )
            raise ValueError(
                f"{given} give an invalid {self.noise_schedule} noise schedule: {error}"
            ) from None
        return self

    def unread_settings(self) -> dict[str, str]:
        """Settings chosen (moved from their defaults) that this schedule does not read, each
        with why, for a warning: refused, they would make saved runs holding them unreadable."""
        if self.noise_schedule != "cosine":
            return {}
        unread = chosen_keys(self) & {"noise_scale", "noise_min", "noise_max"}
        return {key: "the cosine schedule does not read it" for key in sorted(unread)}

    def schedule(self) -> NoiseSchedule:
        if self.noise_schedule == "diffrec":
            return NoiseSchedule.diffrec(
                self.steps, self.noise_scale, self.noise_min, self.noise_max
            )
        if self.noise_schedule == "linear":  # DiffRec's "linear": betas s*a_min .. s*a_max
            betas = NoiseSchedule.linear(
                self.steps, self.noise_scale * self.noise_min, self.noise_scale * self.noise_max
            ).betas.copy()
            betas[0] = RELEASED_FIRST_BETA  # the released code fixes beta_1 for both schedules
            return NoiseSchedule(betas, name="linear")
        return NoiseSchedule.cosine(self.steps)

    def process(self) -> GaussianDiffusion:
        return GaussianDiffusion(self.schedule(), self.prediction)

    def timestep_sampler(self) -> TimestepSampler:
        if self.importance_sampling:
            return LossAwareSampler(self.steps)
        return UniformSampler(self.steps)


class DiffRecConfig(BaseModel):
    """DiffRec's denoiser and diffusion settings."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    hidden_dims: list[PositiveInt] = Field(
        [600, 200, 600], min_length=1, description="MLP widths; the paper's ML-1M 'dims [200,600]'"
    )
    time_dim: int = Field(10, ge=2, description="size of the step embedding (a cosine and a sine)")
    dropout: float = Field(0.5, ge=0, lt=1, description="dropout on the input x_t")
    normalize_input: bool = Field(False, description="L2-normalise x_t before the MLP")
    chain_inference: bool = Field(
        True,
        description="run inference's reverse steps in the first hidden layer's width where that "
        "is cheaper (the same arithmetic regrouped; false: step by step over all items)",
    )
    diffusion: DiffusionConfig = Field(default_factory=DiffusionConfig)


class DiffRec(Recommender):
    """DiffRec on user rows; ``fit`` trains with :class:`Trainer` and keeps the best epoch."""

    model_name = "diffrec"
    config_class: type[BaseModel] = DiffRecConfig
    #: Each loss reaches every trainable parameter (L-DiffRec's too: each stage freezes what it
    #: leaves out), so DDP need not search for unused ones (see ``Trainable``).
    trains_every_parameter = True

    def __init__(
        self,
        config: DiffRecConfig | None = None,
        training: TrainConfig | None = None,
    ) -> None:
        self.config = settings(self.config_class, config, "config")
        self.training = settings(TrainConfig, training, "training")
        self.process = self.config.diffusion.process()
        self._process_copies: dict[torch.device, GaussianDiffusion] = {}  # see _process_on
        self.timesteps = self.config.diffusion.timestep_sampler()
        self.denoiser: MLPDenoiser | None = None
        self.module: torch.nn.Module | None = None  # what the trainer optimises
        self.result: TrainResult | None = None

    # ---------------------------------------------------------------- building and training
    def build(self, n_items: int) -> DiffRec:
        """Create the denoiser for ``n_items`` (seeded by the training seed)."""
        torch.manual_seed(self.training.seed)
        self.module = self.denoiser = MLPDenoiser(
            n_items,
            self.config.hidden_dims,
            time_dim=self.config.time_dim,
            dropout=self.config.dropout,
            activation="tanh",
            normalize_input=self.config.normalize_input,
        )
        return self

    @property
    def n_items(self) -> int:
        if self.denoiser is None:
            raise RuntimeError("DiffRec is not fitted: call fit() or load() first")
        return self.denoiser.dim

    def loss(self, rows: torch.Tensor) -> torch.Tensor:
        """The importance-weighted training loss of a batch of rows (Algorithm 1)."""
        return self._diffusion_loss(rows)[0]

    def _diffusion_loss(self, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Algorithm 1 on a batch of x0 (user rows, or L-DiffRec's latents): the importance-
        weighted loss and the denoiser's x0 prediction."""
        t, weights = self.timesteps.sample(x0.shape[0], x0.device)
        terms = self._process_on(x0.device).training_losses(
            self.denoiser, x0, t, weighting=self.config.diffusion.loss_weighting
        )
        seen = (t, terms["loss"])
        if self.timesteps.records_losses:  # under DDP: every process's losses, same histories
            seen = gather_timestep_losses(*seen)
        self.timesteps.update(*seen)
        return (terms["loss"].float() * weights).mean(), terms["pred_x0"]

    def extra_state(self) -> dict[str, torch.Tensor]:
        return self.timesteps.state_dict()

    def load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        self.timesteps.load_state_dict(state)

    def fit(
        self,
        train: sp.csr_matrix,
        valid: sp.csr_matrix | None = None,
        *,
        evaluate=None,
        on_event=None,
    ) -> DiffRec:
        """Train on ``train`` rows (binary or time-weighted); select the epoch on ``valid``.

        ``evaluate`` (score_fn -> {"valid": metrics, ...}) overrides the default validation
        task (train masked, ``training.metric`` at all-users averaging).
        """
        train = check_rows(train, "train")
        # Every fit starts fresh: new weights and an empty loss history for the timesteps.
        self.build(train.shape[1])
        self.timesteps = self.config.diffusion.timestep_sampler()
        if evaluate is None and valid is not None:
            task = EvalTask.validation(train, valid)
            metric, _, k = self.training.metric.partition("@")

            def evaluate(score_fn):
                result = task.evaluate(
                    self.pass_scorer(score_fn),
                    ks=(int(k),),
                    metrics=(metric,),
                    averaging="all_users",
                )
                return {"valid": result.means}

        trainer = Trainer(self.training, evaluate, on_event)
        self.result = trainer.fit(self, train)
        return self

    # ------------------------------------------------------------------------- inference
    def pass_scorer(self, score: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        """``score`` (this model's, or a function like it) for one pass over a fixed sequence
        of users, batch after batch in order, as an evaluation scores them. With T' > 0 each
        user's noise comes from the :class:`~recdiff.diffusion.RowBlocks` block of their row,
        seeded by ``train.seed``: every user draws their own (as the released code's batch noise
        does, so a metric averages over independent draws), whatever the batching. ``score``
        alone draws each row as it would alone, the same noise for every user (the service's
        rule: a history's scores do not depend on its batch). With T' = 0 nothing is drawn and
        ``score`` is returned. Make one per pass."""
        if not self.config.diffusion.inference_noise_steps:
            return score
        return row_block_pass(score, self.training.seed, self.device)

    @torch.no_grad()
    def score(
        self, history: sp.csr_matrix, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Reverse-process reconstruction of each history (higher = more likely next).

        Rows' values are kept (time weights stay weights). ``generator`` draws the noise of
        ``inference_noise_steps`` T' > 0 (T' = 0, the default, draws none); a sequence of one
        generator per row makes each row's scores those it would get scored alone. Without one,
        every row draws what it would draw alone from a generator seeded by ``train.seed``: the
        scores are then a function of the history, whatever the batch and the call."""
        history = self._check_history(history)
        warn_weights_above_one(history, "history")
        x0 = torch.from_numpy(history.toarray().astype(np.float32, copy=False)).to(self.device)
        return self.reconstruct(x0, generator)

    @property
    def device(self) -> torch.device:
        """Where the model's weights are, hence where it scores: ``train.device`` after ``fit``,
        the CPU after ``load`` (whatever device trained it) unless the module is moved."""
        if self.module is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit() or load() first")
        return next(self.module.parameters()).device

    def _process_on(self, device: torch.device) -> GaussianDiffusion:
        """The process with its step tables on ``device`` (the trainer moves only the module:
        tables left on the CPU would cost a device-to-host copy of the steps at every lookup).

        A copy per device, made whole before it is stored: ``self.process`` is never moved in
        place, so a thread scoring on one device never sees tables half moved to another."""
        device = torch.device(device)
        if self.process.betas.device == device:
            return self.process
        process = self._process_copies.get(device)
        if process is None:
            process = copy.deepcopy(self.process).to(device)
            self._process_copies[device] = process
        return process

    @torch.no_grad()
    def reconstruct(
        self, x0: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Noise ``x0`` to T', then denoise for T steps with the posterior mean (Sec. 3.4)."""
        self.module.eval()
        with autocast(self.training.precision, x0.device):
            out = self._denoise(x0, generator)
        return out.float()

    def _denoise(self, x0: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        process = self._process_on(x0.device)
        if generator is None:
            # Not torch's global generator: a run's validation would take draws from the
            # training's stream (what is trained would depend on train.eval_every), and its
            # metrics on eval.batch_size and on what ran before (`recdiff evaluate` would not
            # reproduce them). On the CPU, so a run reloaded there draws as it did on a GPU.
            generator = EachRowAlone(torch.Generator().manual_seed(self.training.seed))
        x_t = noise_to(process, x0, self.config.diffusion.inference_noise_steps, generator)
        steps = process.num_steps
        if self.config.chain_inference and self.denoiser.chain_saves_work(x_t.shape[0], steps):
            return self.denoiser.reverse_mean_chain(x_t, process.mean_chain)
        return DDPMSampler(process, add_noise=False).sample(self.denoiser, x_t)

    def parameter_count(self) -> int:
        """Trainable and frozen parameters of the built model (L-DiffRec: all its parts)."""
        return sum(p.numel() for p in self.module.parameters())

    # ------------------------------------------------------------------------ persistence
    def _config(self) -> dict[str, Any]:
        return {
            "n_items": self.n_items,
            "model": self.config.model_dump(),
            "training": self.training.model_dump(),
        }

    def _tensors(self) -> dict[str, torch.Tensor]:
        state = {f"module.{k}": v for k, v in self.module.state_dict().items()}
        state.update({f"timesteps.{k}": v for k, v in self.extra_state().items()})
        return state

    def _build_for_load(self, n_items: int, tensors: dict[str, torch.Tensor]) -> None:
        """Create the modules a saved state will be loaded into."""
        self.build(n_items)

    @classmethod
    def _from_saved(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> DiffRec:
        model = cls(cls.config_class(**config["model"]), TrainConfig(**config["training"]))
        model._build_for_load(int(config["n_items"]), tensors)
        model.module.load_state_dict(_prefixed(tensors, "module."))
        extra = _prefixed(tensors, "timesteps.")
        if extra:
            model.load_extra_state(extra)
        model.module.eval()
        return model


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def check_rows(matrix: sp.spmatrix, name: str) -> sp.csr_matrix:
    """A float32 CSR copy of user rows; weights are kept (T-DiffRec), but must be finite and >= 0."""
    if not sp.issparse(matrix):
        raise TypeError(f"{name} must be a scipy sparse users x items matrix, got {type(matrix)}")
    rows = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    if rows.shape[0] == 0 or rows.shape[1] == 0:
        raise ValueError(f"{name} must have users and items, got shape {rows.shape}")
    if rows.nnz and (not np.all(np.isfinite(rows.data)) or rows.data.min() < 0):
        raise ValueError(
            f"{name} holds negative or non-finite values: interaction weights must be >= 0"
        )
    warn_weights_above_one(rows, name)
    return rows


def warn_weights_above_one(rows: sp.csr_matrix, name: str) -> None:
    """DiffRec reads a row's values as they are: 1 for an interaction, or T-DiffRec's time
    weights in (0, 1]. Values above 1 are most likely ratings or counts (an ``Interactions``
    read with a rating column holds its ratings), which EASE, Mult-VAE and popularity would
    binarise, and ``recdiff train`` does: say so, rather than fit or score on them silently."""
    largest = float(rows.data.max()) if rows.nnz else 0.0
    if largest > 1:
        warn(
            f"{name} holds values above 1 (up to {largest:g}), which DiffRec "
            "reads as they are, e.g. ratings as targets; for interactions pass the binary "
            "matrix (Interactions.binarize(), or matrix.sign()), as recdiff train does, or "
            "T-DiffRec's time weights (recdiff.data.time_weights)"
        )
