"""L-DiffRec: DiffRec in the latent space of item-cluster autoencoders (Wang et al., SIGIR 2023, Sec. 4.2).

Items are clustered into C groups (k-means on item embeddings: given, e.g. the paper's LightGCN
ones, or a truncated SVD of the training matrix). One variational encoder per group compresses the
user's slice of the interaction row to a latent whose size is proportional to the group's size;
the concatenated latents (``latent_dim`` in all) are diffused and denoised exactly as DiffRec does;
decoders map the denoised latent back to item scores: per group (``latent.decoder="cluster"``,
each group's items from its own latent) or one decoder from the whole latent to all items
(``"shared"``, as the released code builds it when its decoder has no hidden layer), so that one
group's items are scored from every group's latent. Because each encoder only sees its own items,
the encoders are block-diagonal, which is where the parameter saving comes from.

Training follows the paper's advice: the autoencoders first (multinomial or Gaussian likelihood + annealed
KL, as Mult-VAE), then the diffusion on their frozen latent means (joint training is unstable).
``latent.joint`` instead trains all parts together after (or, with ``latent.epochs=0``, without)
that pre-training. LT-DiffRec is this model fed time-weighted rows.

==========================  ====================================
paper                       code
==========================  ====================================
C                           ``latent.n_clusters``
z = [z_1 ; ... ; z_C]       ``ClusterAutoencoder.encode``
L_vae + lambda L_diff       ``vae_loss`` then ``loss`` (staged), or ``joint_loss``
==========================  ====================================
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from recdiff.eval.protocol import EvalTask
from recdiff.models.diffrec import DiffRec, check_rows, warn_weights_above_one
from recdiff.models.item_clusters import cluster_items, item_embeddings
from recdiff.models.ldiffrec_config import LatentConfig, LDiffRecConfig
from recdiff.nn import MLPDenoiser
from recdiff.nn.autoencoders import ClusterAutoencoder
from recdiff.train.batches import RowBatches, SparseRowBatches, sparse_rows
from recdiff.train.config import TrainConfig
from recdiff.train.distributed import broadcast_object, init_from_env
from recdiff.train.trainer import Trainer, autocast

__all__ = ["ClusterAutoencoder", "LDiffRec", "LDiffRecConfig", "LatentConfig", "cluster_items"]


class LDiffRec(DiffRec):
    """L-DiffRec; reuses DiffRec's process, sampler and training contract on latents."""

    model_name = "ldiffrec"
    config_class = LDiffRecConfig

    def __init__(
        self, config: LDiffRecConfig | None = None, training: TrainConfig | None = None
    ) -> None:
        # LDiffRecConfig keeps its process settings under ``diffusion`` as DiffRecConfig does.
        super().__init__(config, training)
        self.autoencoder: ClusterAutoencoder | None = None
        self.stage = "diffusion"  # "autoencoder" while the autoencoders pre-train
        self.vae_steps = 0
        self.joint_steps = 0
        #: The items' external ids in vocabulary order, to match an embedding table keyed by id
        #: (``latent.item_embeddings``) to the items; set before ``fit``, as runs do.
        self.item_ids: np.ndarray | None = None

    def build(self, n_items: int, labels: np.ndarray | None = None) -> LDiffRec:
        torch.manual_seed(self.training.seed)
        if labels is None:
            labels = np.arange(n_items) % self.config.latent.n_clusters
        latent = self.config.latent
        self.autoencoder = ClusterAutoencoder(
            labels,
            latent.latent_dim,
            latent.dropout,
            latent.hidden_dim,
            latent.decoder,
            latent.decoder_hidden_dim,
            latent.normalize_input,
            latent.bounded_encoder,
        )
        self.denoiser = MLPDenoiser(
            sum(self.autoencoder.latent_dims),
            self.config.hidden_dims,
            self.config.time_dim,
            dropout=self.config.dropout,
            activation="tanh",
        )
        self.module = nn.ModuleDict({"autoencoder": self.autoencoder, "denoiser": self.denoiser})
        return self

    @property
    def n_items(self) -> int:
        if self.autoencoder is None:
            raise RuntimeError("LDiffRec is not fitted: call fit() or load() first")
        return self.autoencoder.n_items

    def loss(self, rows: torch.Tensor) -> torch.Tensor:
        if self.stage == "autoencoder":
            return self.vae_loss(rows)
        if self.stage == "joint":
            return self.joint_loss(rows)
        self.autoencoder.eval()  # targets are the latents inference will see: no input dropout
        with torch.no_grad():
            z0, _ = self.autoencoder.encode(rows)
        loss, pred_z0 = self._diffusion_loss(z0.float())
        weight = self.config.latent.recon_weight
        if weight == 0:
            return loss
        # Decoding the denoiser's latent lets it mix information across item clusters.
        return loss + weight * self._reconstruction_nll(pred_z0, rows)

    def vae_loss(self, rows: torch.Tensor) -> torch.Tensor:
        """The reconstruction term (``latent.likelihood``: Mult-VAE's multinomial negative
        log-likelihood, or half the squared error) plus the annealed KL."""
        z, kl_term = self._encode_with_kl(rows)
        return self._reconstruction_nll(z, rows) + kl_term

    def joint_loss(self, rows: torch.Tensor) -> torch.Tensor:
        """All parts at once: the denoiser's x0 prediction of the (dropped-out) row's latent is
        decoded and scored against the whole row, so the denoiser, which sees every cluster's
        latent, learns to fill one cluster's missing items from the others; plus the annealed
        KL and lambda x the diffusion loss on that latent."""
        z0, kl_term = self._encode_with_kl(rows)
        diffusion, pred_z0 = self._diffusion_loss(z0.float())
        nll = self._reconstruction_nll(pred_z0, rows)
        weight = self.config.latent.diffusion_weight_at(self.joint_steps)
        if self.module.training:
            self.joint_steps += 1
        return nll + kl_term + weight * diffusion

    def parameter_groups(self) -> list[dict]:
        """The autoencoders at ``latent.lr`` and the denoiser at ``train.lr``, in every stage
        (each stage trains only its unfrozen part)."""
        return [
            {"params": list(self.autoencoder.parameters()), "lr": self.config.latent.lr},
            {"params": list(self.denoiser.parameters()), "lr": self.training.lr},
        ]

    def _encode_with_kl(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A latent (sampled in training, the mean otherwise) and beta x KL, beta annealed."""
        mu, logvar = self.autoencoder.encode(rows)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.module.training else mu
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).float().sum(dim=1).mean()
        cfg = self.config.latent
        beta = min(cfg.beta_max, cfg.beta_max * self.vae_steps / cfg.anneal_steps)
        if self.module.training:
            self.vae_steps += 1
        return z, beta * kl

    def _reconstruction_nll(self, z: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The rows' reconstruction loss under the decoded latents: half the squared error
        (``likelihood="gaussian"``) or the multinomial NLL, where sparse rows are scored against
        logits in group order (same value, no scatter of a batch x n_items block)."""
        if self.config.latent.likelihood == "gaussian":
            dense = rows.to_dense() if rows.is_sparse else rows
            return 0.5 * (self.autoencoder.decode(z).float() - dense).pow(2).sum(dim=1).mean()
        if not rows.is_sparse or self.autoencoder.shared:
            return _multinomial_nll(self.autoencoder.decode(z), rows)
        logits = self.autoencoder.decode_grouped(z)
        return _multinomial_nll(logits, rows, self.autoencoder.grouped_column)

    def training_state(self) -> dict[str, int]:
        """The steps the KL and lambda schedules have counted (for resume checkpoints)."""
        return {"vae_steps": self.vae_steps, "joint_steps": self.joint_steps}

    def load_training_state(self, state: dict[str, int]) -> None:
        self.vae_steps, self.joint_steps = int(state["vae_steps"]), int(state["joint_steps"])

    @property
    def stage_results(self) -> dict:
        """The autoencoder stage's training, once fitted with ``latent.epochs`` > 0."""
        result = getattr(self, "vae_result", None)
        return {"autoencoder": result} if result is not None else {}

    def fit(self, train, valid=None, *, evaluate=None, on_event=None) -> LDiffRec:
        train = check_rows(train, "train")
        latent = self.config.latent
        embeddings = item_embeddings(train, latent, self.item_ids)
        labels = cluster_items(embeddings, latent.n_clusters, self.training.seed)
        # Under DDP every process must build the same groups: rank 0's clustering decides.
        init_from_env(self.training.device)
        self.build(train.shape[1], broadcast_object(labels))
        # As DiffRec's fit: an empty loss history for the timesteps, or a second fit would
        # sample steps from the first one's losses (and differ from a fresh model's fit).
        self.timesteps = self.config.diffusion.timestep_sampler()
        if evaluate is None and valid is not None:
            task = EvalTask.validation(train, valid)
            metric, _, k = self.training.metric.partition("@")

            def evaluate(score_fn):
                ks, metrics = (int(k),), (metric,)
                result = task.evaluate(score_fn, ks=ks, metrics=metrics, averaging="all_users")
                return {"valid": result.means}

        # Stage 1: the autoencoders alone, selected on validation of their own reconstruction.
        # Stage 2: DiffRec's process on the frozen latent means. Flags are restored on any exit.
        vae_training = self.training.model_copy(update={"epochs": latent.epochs, "lr": latent.lr})
        log = on_event or (lambda record: None)
        stage_log = lambda record: log({**record, "stage": "autoencoder"})  # noqa: E731
        rows = SparseRowBatches(train) if latent.sparse_input else RowBatches(train)
        self.vae_steps = self.joint_steps = 0  # the KL and lambda schedules start afresh
        try:
            self.vae_result = None
            if latent.epochs:
                self.stage = "autoencoder"
                self.denoiser.requires_grad_(False)
                stage = Trainer(vae_training, evaluate, stage_log, {"lr": "model.latent.lr"})
                self.vae_result = stage.fit(self, rows)
            self.denoiser.requires_grad_(True)
            if latent.joint:
                self.stage = "joint"
                self.autoencoder.requires_grad_(True)
            else:
                self.stage = "diffusion"
                self.autoencoder.requires_grad_(False)
                self.autoencoder.decoders.requires_grad_(self.config.latent.recon_weight > 0)
            self.result = Trainer(self.training, evaluate, on_event).fit(self, rows)
        finally:
            self.stage = "diffusion"
            self.denoiser.requires_grad_(True)
            self.autoencoder.requires_grad_(True)
        return self

    @torch.no_grad()
    def score(
        self, history: sp.csr_matrix, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        if not self.config.latent.sparse_input:
            return super().score(history, generator)
        history = self._check_history(history)
        warn_weights_above_one(history, "history")
        return self.reconstruct(sparse_rows(history, self.device), generator)

    @torch.no_grad()
    def reconstruct(
        self, x0: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        self.module.eval()
        with autocast(self.training.precision, x0.device):
            z, _ = self.autoencoder.encode(x0)
            if self.stage != "autoencoder":
                z = self._denoise(z.float(), generator)
            return self.autoencoder.decode(z).float()

    def _build_for_load(self, n_items: int, tensors: dict[str, torch.Tensor]) -> None:
        self.build(n_items, tensors["module.autoencoder.labels"].numpy())


def _multinomial_nll(
    logits: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean over users of -sum_i x_ui log softmax(logits_u)_i, for dense or sparse COO rows;
    ``columns[i]`` is item i's column in ``logits`` when they are not in item order."""
    log_probs = F.log_softmax(logits.float(), dim=1)
    if not rows.is_sparse:
        return -(log_probs * rows).sum(dim=1).mean()
    user, item = rows.indices()
    if columns is not None:
        item = columns[item]
    picked = log_probs[user, item] * rows.values()
    return -log_probs.new_zeros(rows.shape[0]).index_add_(0, user, picked).mean()
