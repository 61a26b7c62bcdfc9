"""DreamRec's settings (Yang et al., NeurIPS 2023): the networks, the guidance and the process.

The model itself is :class:`recdiff.models.dreamrec.DreamRec`, which re-exports these configs.

==========================  =====================================  =============
paper                       code                                   section
==========================  =====================================  =============
p_u (guidance dropped)      ``DreamRecConfig.p_uncond``            3.3
w (guidance strength)       ``DreamRecConfig.guidance_weight``     3.3
T, beta_1..beta_T           ``GuidedDiffusionConfig``              released code
==========================  =====================================  =============

``ItemSpaceConfig`` is no part of the paper: it lets DreamRec generate in a pre-trained SASRec's
item space instead of learning its own table.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from recdiff.diffusion import NoiseSchedule, ScheduleError
from recdiff.diffusion.schedules import DREAMREC_COSINE_BETAS
from recdiff.train.config import MAX_EPOCHS, TrainConfig, chosen_keys

__all__ = ["SAMPLERS", "DreamRecConfig", "GuidedDiffusionConfig", "ItemSpaceConfig"]

#: The reverse processes inference can run (the values of ``GuidedDiffusionConfig.sampler``).
SAMPLERS = ("ddpm", "ddim")
#: The settings each schedule reads (besides ``steps``).
_SCHEDULE_READS = {"linear": {"beta_start", "beta_end"}, "exp": {"beta_min", "beta_max"}}


class GuidedDiffusionConfig(BaseModel):
    """The diffusion process over item embeddings (defaults: the released Zhihu settings)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    steps: int = Field(500, ge=1, description="T, diffusion steps")
    schedule: Literal["linear", "cosine", "exp"] = Field(
        "linear", description="beta schedule (cosine: betas clipped to [1e-4, 0.9999], as released)"
    )
    beta_start: float = Field(1e-4, gt=0, lt=1, description="linear: first beta")
    beta_end: float = Field(0.02, gt=0, lt=1, description="linear: last beta")
    beta_min: float = Field(0.1, gt=0, description="exp: b_min")
    beta_max: float = Field(10.0, gt=0, description="exp: b_max")
    sampler: Literal["ddpm", "ddim"] = Field("ddpm", description="reverse process at inference")
    sampling_steps: int | None = Field(
        None, ge=1, description="respace inference to this many steps (None = all T)"
    )
    eta: float = Field(0.0, ge=0, le=1, description="DDIM stochasticity (0 = deterministic)")

    @model_validator(mode="after")
    def _check(self) -> GuidedDiffusionConfig:
        if self.schedule == "linear" and self.beta_start >= self.beta_end:
            raise ValueError(
                f"beta_start ({self.beta_start}) must be smaller than beta_end ({self.beta_end})"
            )
        if self.schedule == "exp" and self.beta_min >= self.beta_max:
            raise ValueError(
                f"beta_min ({self.beta_min}) must be smaller than beta_max ({self.beta_max})"
            )
        if self.sampling_steps is not None and self.sampling_steps > self.steps:
            raise ValueError(
                f"sampling_steps ({self.sampling_steps}) cannot exceed steps ({self.steps})"
            )
        # Built here, so that a schedule that cannot be used (alpha_bar underflowing, betas of
        # 1) is refused with the config's keys rather than when the model is built.
        try:
            self.noise_schedule()
        except ScheduleError as error:
            keys = {"linear": "beta_start, beta_end", "exp": "beta_min, beta_max"}
            raise ValueError(
                f"steps={self.steps} with this {self.schedule} schedule "
                f"({keys.get(self.schedule, 'steps')}) is not a usable noise schedule: {error}"
            ) from None
        return self

    def unread_settings(self) -> dict[str, str]:
        """Settings chosen (moved from their defaults) that this schedule and sampler do not
        read, each with why, for a warning: refused, they would make saved runs holding them
        unreadable."""
        chosen = chosen_keys(self)
        other = set().union(*_SCHEDULE_READS.values()) - _SCHEDULE_READS.get(self.schedule, set())
        unread = {
            k: f"the {self.schedule} schedule does not read it" for k in sorted(chosen & other)
        }
        if self.sampler == "ddpm" and "eta" in chosen:
            unread["eta"] = "DDPM sampling does not read it (eta is DDIM's)"
        return unread

    def noise_schedule(self) -> NoiseSchedule:
        if self.schedule == "linear":
            return NoiseSchedule.linear(self.steps, self.beta_start, self.beta_end)
        if self.schedule == "exp":
            return NoiseSchedule.exp(self.steps, self.beta_min, self.beta_max)
        low, high = DREAMREC_COSINE_BETAS  # the released clip, not Nichol & Dhariwal's [0, 0.999]
        return NoiseSchedule.cosine(self.steps, min_beta=low, max_beta=high)


class ItemSpaceConfig(BaseModel):
    """Where the item embeddings come from that DreamRec generates in and ranks by.

    ``learned`` (the paper): DreamRec's own table, trained with it. ``sasrec``: a SASRec (full
    cross-entropy, this config's encoder settings and ``model.dim``) is trained first on the same
    examples and selected on validation like any run; its item table, each row rescaled to
    ``rms`` per coordinate, becomes DreamRec's table (history input and targets), fixed while
    the denoiser and history encoder train if ``freeze``. The stage's events carry
    ``stage: items``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    source: Literal["learned", "sasrec"] = Field(
        "learned",
        description="learned = DreamRec's own table (the paper); sasrec = pre-train SASRec on "
        "the same data first and generate in its item space",
    )
    freeze: bool = Field(True, description="sasrec: keep the pre-trained table fixed")
    rms: float | None = Field(
        1.0,
        gt=0,
        description="sasrec: rescale every item's row to this root mean square per coordinate "
        "(norm rms * sqrt(dim)), so inner products rank by direction (SASRec leaves items absent "
        "from training with twice the others' norm); 1 = the scale of the N(0, 1) noise the "
        "process adds; null keeps SASRec's rows",
    )
    blocks: int = Field(1, ge=1, description="sasrec: self-attention blocks")
    heads: int = Field(1, ge=1, description="sasrec: attention heads (must divide model.dim)")
    dropout: float = Field(0.1, ge=0, lt=1, description="sasrec: dropout in its encoder")
    all_positions: bool = Field(False, description="sasrec: SASRec's all-positions objective")
    lr: float = Field(1e-3, gt=0, description="sasrec: learning rate of the stage")
    epochs: int = Field(
        200, ge=1, le=MAX_EPOCHS, description="sasrec: upper bound on the stage's epochs"
    )
    eval_every: int = Field(2, ge=1, description="sasrec: validate every k epochs")
    patience: int = Field(10, ge=0, description="sasrec: stop after this many epochs without gain")

    @model_validator(mode="after")
    def _only_for_sasrec(self) -> ItemSpaceConfig:
        if self.source == "learned":  # values, not fields set: saved configs list them all
            fields = type(self).model_fields
            ignored = [k for k in fields if k != "source" and getattr(self, k) != fields[k].default]
            if ignored:
                raise ValueError(
                    f"item_space.{ignored[0]} applies to item_space.source=sasrec only; with "
                    "source learned, DreamRec trains its own table: remove it or set the source"
                )
        return self

    def training(self, base: TrainConfig) -> TrainConfig:
        """The SASRec stage's training: ``base`` (DreamRec's batch size, optimizer, precision,
        seed, device) with this stage's lr, epochs and validation rule."""
        return base.model_copy(
            update={
                "lr": self.lr,
                "epochs": self.epochs,
                "eval_every": self.eval_every,
                "patience": self.patience,
                "patience_steps": None,
                "ema_decay": None,
            }
        )


class DreamRecConfig(BaseModel):
    """DreamRec's networks, guidance and sampling (defaults: released Zhihu settings)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    dim: int = Field(64, ge=1, description="item embedding size (= guidance size)")
    blocks: int = Field(1, ge=1, description="self-attention blocks of the history encoder")
    heads: int = Field(1, ge=1, description="attention heads (must divide dim)")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout in the history encoder")
    embedding_std: float = Field(
        1.0, gt=0, description="initial std of item embeddings (their scale against the noise)"
    )
    detach_target: bool = Field(
        False,
        description="stop the MSE gradient into the target embedding x0 (the paper lets it "
        "flow). With it, the loss is minimised by shrinking every embedding to one point; on the "
        "planted demo data they collapse within tens of epochs and detaching wins on validation, "
        "on Zhihu the paper's way does. No effect on a frozen item_space table",
    )
    rounding_weight: float = Field(
        0.0,
        ge=0,
        description="weight of a cross-entropy 'rounding' term scoring the predicted x0 against "
        "every item (Diffusion-LM's anchor for learned embeddings); 0 = the paper's MSE only",
    )
    hidden_dims: list[PositiveInt] = Field(
        [],
        description="denoiser MLP hidden widths; [] = one linear layer over [x_t ; c ; emb(t)], "
        "the released code's 'mlp1', which its commands for all three datasets use",
    )
    activation: Literal["tanh", "relu", "silu", "gelu", "sigmoid"] = Field(
        "gelu", description="denoiser activation"
    )
    time_dim: int = Field(64, ge=2, description="size of the step embedding (a cosine and a sine)")
    time_mlp: bool = Field(
        True,
        description="map the step's sinusoids through an MLP (time_dim -> 2 time_dim -> GELU -> "
        "time_dim), as the released code does; False: one linear map",
    )
    p_uncond: float = Field(
        0.1, ge=0, lt=1, description="p_u, guidance dropped in training (1 would never train it)"
    )
    guidance_weight: float = Field(4.0, ge=0, description="w at inference")
    exclude_untrained_items: bool = Field(
        False,
        description="never rank items absent from the training data (neither a target nor in a "
        "history): their embeddings keep their random initialisation, and once the paper's loss "
        "has shrunk the trained ones, those random vectors win every inner product (on Zhihu, "
        "87 such items take every top-20 slot); False ranks all items, as the paper does",
    )
    sample_seed: int = Field(
        0,
        ge=0,
        lt=2**64,
        description="seed of inference sampling when none is given (0 .. 2**64 - 1: evaluation "
        "seeds its per-row noise blocks from it, which takes no negative seed)",
    )
    diffusion: GuidedDiffusionConfig = Field(default_factory=GuidedDiffusionConfig)
    item_space: ItemSpaceConfig = Field(default_factory=ItemSpaceConfig)

    @model_validator(mode="after")
    def _heads_divide(self) -> DreamRecConfig:
        if self.dim % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide dim ({self.dim})")
        if self.item_space.source == "sasrec":
            if self.dim % self.item_space.heads:
                raise ValueError(
                    f"item_space.heads ({self.item_space.heads}) must divide dim ({self.dim})"
                )
            if self.embedding_std != type(self).model_fields["embedding_std"].default:
                raise ValueError(
                    "embedding_std sets the initial item table, which item_space.source=sasrec "
                    "replaces with SASRec's: remove it"
                )
        if any(h < 1 for h in self.hidden_dims):
            raise ValueError(f"hidden_dims must be positive, got {self.hidden_dims}")
        if self.p_uncond == 0 and self.guidance_weight > 0:
            raise ValueError(
                f"guidance_weight {self.guidance_weight:g} mixes in the prediction under the null "
                "condition, which never trains with p_uncond=0 (it keeps its random start): set "
                "p_uncond above 0 (the paper: 0.1), or guidance_weight=0"
            )
        return self
