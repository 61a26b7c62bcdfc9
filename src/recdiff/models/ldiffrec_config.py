"""L-DiffRec's settings (Wang et al., SIGIR 2023, Sec. 4.2): the item-cluster autoencoders and
the latent denoiser. The model itself is :class:`recdiff.models.ldiffrec.LDiffRec`, which
re-exports these configs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from recdiff.models.diffrec import DiffusionConfig
from recdiff.train.config import MAX_EPOCHS

__all__ = ["LDiffRecConfig", "LatentConfig"]


class LatentConfig(BaseModel):
    """The item-cluster autoencoders."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    n_clusters: int = Field(2, ge=1, description="C, item groups (paper: 2 on ML-1M)")
    latent_dim: int = Field(300, ge=1, description="total latent size, split by group size")
    hidden_dim: int = Field(
        0,
        ge=0,
        description="total hidden width of the encoders, split by group size, and of the "
        "decoders unless decoder_hidden_dim is set (0: linear, as released)",
    )
    decoder_hidden_dim: int | None = Field(
        None,
        ge=0,
        description="hidden width of the decoders, split by group size for per-group ones "
        "(None: hidden_dim; 0: linear)",
    )
    decoder: Literal["cluster", "shared"] = Field(
        "cluster",
        description="cluster: one decoder per group from its latent to its items; shared: one "
        "decoder from the concatenated latent to all items (the released code's linear decoder)",
    )
    item_embeddings: str | None = Field(
        None,
        description="item embeddings to cluster: an .npy array in vocabulary order, or a .csv, "
        ".tsv or .parquet table of an item id then the values (None: truncated SVD of train)",
    )
    svd_dim: int = Field(64, ge=1, description="SVD embedding size when none is given")
    dropout: float = Field(0.5, ge=0, lt=1, description="dropout on the encoders' input")
    normalize_input: bool = Field(
        True,
        description="L2-normalise each group's slice of the row before its encoder (Mult-VAE); "
        "false: the raw row, as the released code feeds it",
    )
    bounded_encoder: bool = Field(
        False,
        description="tanh on the encoders' outputs too, so latent means and log-variances lie in "
        "[-1, 1], as the released code builds its encoders (false: linear outputs, Mult-VAE)",
    )
    likelihood: Literal["multinomial", "gaussian"] = Field(
        "multinomial",
        description="the autoencoders' reconstruction term: multinomial (Mult-VAE, as released) "
        "or gaussian (squared error of the decoded scores against the row, unit variance, as "
        "DiffRec's x0 loss is a squared error)",
    )
    beta_max: float = Field(0.2, ge=0, description="cap of the annealed KL weight")
    anneal_steps: int = Field(2000, ge=1, description="gradient steps to reach beta_max")
    epochs: int = Field(
        100,
        ge=0,
        le=MAX_EPOCHS,
        description="autoencoder pre-training epochs (best by valid; 0: none, joint only)",
    )
    lr: float = Field(
        1e-3,
        gt=0,
        description="autoencoder learning rate, in pre-training and in joint training (where "
        "train.lr is the denoiser's, as the released code's lr1 and lr2)",
    )
    recon_weight: float = Field(
        0.0,
        ge=0,
        description="stage 2 also trains the decoders on decode(denoised latent) with this weight "
        "of the multinomial loss (0: decoders frozen, diffusion loss only)",
    )
    joint: bool = Field(
        False,
        description="stage 2 trains encoders, denoiser and decoders together on the multinomial "
        "loss of decode(denoised latent) + annealed KL + diffusion_weight x the diffusion loss, "
        "the encoders seeing dropped-out rows (false: the paper's advice, diffusion on frozen "
        "latents). The diffusion target is the sampled latent itself, so with beta_max=0 "
        "nothing but the reconstruction fixes the latents' scale",
    )
    diffusion_weight: float = Field(
        1.0, gt=0, description="lambda, the diffusion loss's weight in joint training"
    )
    diffusion_weight_final: float | None = Field(
        None,
        gt=0,
        description="lambda decays linearly from diffusion_weight towards 0 over "
        "diffusion_weight_decay_steps joint steps and stays at this floor once it reaches it "
        "(None: constant lambda). The released "
        "code decays 0.03 towards 0.005 over 500 epochs (7,500 steps of 400 users on ML-1M clean)",
    )
    diffusion_weight_decay_steps: int = Field(
        0, ge=0, description="joint-training steps over which lambda would reach 0"
    )
    sparse_input: bool = Field(
        False,
        description="feed user rows to the encoders as sparse tensors (torch.sparse.mm): for "
        "catalogues of ~20k+ items, where dense rows dominate time and memory; same outputs as "
        "dense rows up to float rounding, a different (equivalent) dropout draw in training",
    )

    @model_validator(mode="after")
    def _every_group_gets_a_unit(self) -> LatentConfig:
        """Widths are shared out by group, one unit at least each: checked here, so a search
        skips such a combination as invalid instead of failing when the model is built."""
        widths = {"latent_dim": self.latent_dim, "hidden_dim": self.hidden_dim}
        if self.decoder == "cluster" and self.decoder_hidden_dim is not None:
            widths["decoder_hidden_dim"] = self.decoder_hidden_dim
        for key, width in widths.items():
            if (key == "latent_dim" or width) and width < self.n_clusters:
                raise ValueError(
                    f"{key} ({width}) is shared out among the n_clusters "
                    f"({self.n_clusters}) item groups, one unit at least each: raise it to "
                    f">= {self.n_clusters}" + ("" if key == "latent_dim" else " or set it to 0")
                )
        return self

    @model_validator(mode="after")
    def _trained_somewhere(self) -> LatentConfig:
        if self.epochs == 0 and not self.joint:
            raise ValueError(
                "latent.epochs=0 skips the autoencoder pre-training, which only joint training "
                "(latent.joint=true) makes up for; set epochs >= 1 or joint=true"
            )
        decays = self.diffusion_weight_final is not None
        if decays != (self.diffusion_weight_decay_steps > 0):
            raise ValueError(
                "a decaying lambda needs both diffusion_weight_final and "
                "diffusion_weight_decay_steps >= 1 (or neither, for a constant lambda)"
            )
        if decays and self.diffusion_weight_final > self.diffusion_weight:
            raise ValueError(
                f"diffusion_weight_final ({self.diffusion_weight_final}) must not exceed "
                f"diffusion_weight ({self.diffusion_weight}): lambda decays towards it"
            )
        return self

    def diffusion_weight_at(self, step: int) -> float:
        """lambda after ``step`` joint-training steps: max((1 - step / S) lambda, floor)."""
        if self.diffusion_weight_final is None:
            return self.diffusion_weight
        fraction = 1.0 - step / self.diffusion_weight_decay_steps
        return max(fraction * self.diffusion_weight, self.diffusion_weight_final)


class LDiffRecConfig(BaseModel):
    """L-DiffRec: autoencoders plus DiffRec's process on their latents."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    latent: LatentConfig = Field(default_factory=LatentConfig)
    hidden_dims: list[PositiveInt] = Field(
        [300], min_length=1, description="latent denoiser widths"
    )
    time_dim: int = Field(10, ge=2, description="size of the step embedding (a cosine and a sine)")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the latent x_t")
    chain_inference: bool = Field(
        True, description="as DiffRec's: the reverse steps in the denoiser's hidden width"
    )
    diffusion: DiffusionConfig = Field(default_factory=DiffusionConfig)
