"""Mult-VAE: variational autoencoder with a multinomial likelihood (Liang et al., WWW 2018).

=====================  =========================  ============================================
paper                  code                       meaning
=====================  =========================  ============================================
x_u                    ``x``                      user's binary interaction row
g_phi (encoder)        ``MultVAENet.encoder``     L2-normalise, dropout, tanh MLP -> mu, logvar
z_u ~ N(mu, sigma^2)   ``z``                      reparameterised sample (training); mu at eval
f_theta (decoder)      ``MultVAENet.decoder``     z -> tanh MLP -> logits over all items
pi(z) = softmax(f(z))  ``log_softmax(logits)``    multinomial item probabilities
beta                   ``beta``                   KL weight min(beta_max, step /
                                                  ``total_anneal_steps``): it rises by
                                                  1/total_anneal_steps a step, as the paper's
                                                  code, and reaches beta_max after
                                                  beta_max x total_anneal_steps steps
=====================  =========================  ============================================

Loss per batch (Eq. 6 with annealing): ``-mean_u sum_i x_ui log pi_i + beta * mean_u KL``.
Architecture and training follow the paper: [n_items -> 600 -> 200] encoder and its mirror as
decoder, tanh, dropout 0.5 on the L2-normalised input, Adam lr 1e-3, batch 500 (the last partial
batch is kept), beta capped at 0.2. Early stopping keeps the weights of the epoch with the best
validation metric (train items masked) and restores them at the end. The epochs run in recdiff's
:class:`~recdiff.train.trainer.Trainer`, so Mult-VAE trains data-parallel under torchrun too.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from recdiff.eval.evaluator import as_binary_csr
from recdiff.eval.metrics import Averaging, canonical_metric
from recdiff.eval.protocol import EvalTask
from recdiff.models.base import Recommender, check_train
from recdiff.train.batches import RowBatches
from recdiff.train.config import MAX_EPOCHS, TrainConfig, TrainResult
from recdiff.train.distributed import init_from_env
from recdiff.train.trainer import Trainer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MultVAEConfig:
    """Hyper-parameters of Mult-VAE; defaults are the paper's."""

    #: Encoder hidden sizes between the item layer and the latent (the decoder mirrors them).
    hidden_dims: tuple[int, ...] = (600,)
    #: Size of the latent z.
    latent_dim: int = 200
    #: Dropout probability on the normalised input (the paper's only regulariser besides KL).
    dropout: float = 0.5
    #: Cap of the KL weight; the paper found partial regularisation (0.2) best.
    beta_max: float = 0.2
    #: beta = min(beta_max, step / total_anneal_steps) (the paper's code): beta would reach 1
    #: after this many gradient steps, so the cap beta_max after beta_max x this many.
    total_anneal_steps: int = 200_000
    #: Adam learning rate.
    lr: float = 1e-3
    #: Adam (L2) weight decay; 0 in the paper's Mult-VAE.
    weight_decay: float = 0.0
    #: Users per gradient step.
    batch_size: int = 500
    #: Upper bound on training epochs.
    max_epochs: int = 200
    #: Stop after this many validation rounds without improvement (needs ``valid`` in fit).
    patience: int = 20
    #: Validation metric used for early stopping, e.g. ``"recall@20"`` or ``"ndcg@20"``.
    valid_metric: str = "recall@20"
    #: Seed of initialisation, shuffling, dropout and the reparameterisation noise.
    seed: int = 0
    #: Torch device for training and scoring (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
    device: str = "cpu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden_dims", tuple(int(d) for d in self.hidden_dims))
        if min((self.latent_dim, *self.hidden_dims)) < 1:
            raise ValueError("hidden_dims and latent_dim must be positive layer sizes")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0 <= self.beta_max < math.inf or self.total_anneal_steps < 1:
            raise ValueError(
                "beta_max must be a finite number >= 0 and total_anneal_steps >= 1, got "
                f"{self.beta_max} and {self.total_anneal_steps}"
            )
        # Checked here, as the other settings: the trainer would refuse them only once the data
        # is loaded, naming its own keys (TrainConfig's lr), or train on a NaN/inf rate.
        if not 0 < self.lr < math.inf:
            raise ValueError(f"lr must be a finite number > 0, got {self.lr}")
        if not 0 <= self.weight_decay < math.inf:
            raise ValueError(f"weight_decay must be a finite number >= 0, got {self.weight_decay}")
        if min(self.batch_size, self.max_epochs, self.patience) < 1:
            raise ValueError("batch_size, max_epochs and patience must be >= 1")
        if self.max_epochs > MAX_EPOCHS:
            raise ValueError(f"max_epochs must be <= {MAX_EPOCHS}, got {self.max_epochs}")
        metric = canonical_metric(self.valid_metric, "valid_metric")
        object.__setattr__(self, "valid_metric", metric)


class MultVAENet(nn.Module):
    """Encoder/decoder pair; ``forward(x) -> (logits, mu, logvar)``."""

    def __init__(
        self, n_items: int, hidden_dims: tuple[int, ...], latent_dim: int, dropout: float
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.dropout = nn.Dropout(dropout)
        # The last encoder layer emits mu and logvar side by side.
        self.encoder = _tanh_mlp([n_items, *hidden_dims, 2 * latent_dim])
        self.decoder = _tanh_mlp([latent_dim, *reversed(hidden_dims), n_items])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.dropout(F.normalize(x, p=2.0, dim=1))  # an empty row stays all zeros
        mu, logvar = self.encoder(h).split(self.latent_dim, dim=1)
        if self.training:
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        else:
            z = mu  # the posterior mean: deterministic scores
        return self.decoder(z), mu, logvar


def _tanh_mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(itertools.pairwise(sizes)):
        linear = nn.Linear(d_in, d_out)
        # The paper's initialisation: Xavier weights, small normal biases.
        nn.init.xavier_uniform_(linear.weight)
        nn.init.normal_(linear.bias, std=0.001)
        layers.append(linear)
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def multvae_loss(
    logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, x: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Annealed negative ELBO (batch means); returns ``(loss, kl)``."""
    neg_ll = -(F.log_softmax(logits, dim=1) * x).sum(dim=1).mean()
    kl = (-0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)).mean()
    return neg_ll + beta * kl, kl


class MultVAE(Recommender):
    """Mult-VAE recommender; ``score`` returns the decoder logits (a torch tensor)."""

    #: Each loss reaches every parameter, so DDP need not search for unused ones.
    trains_every_parameter = True

    def __init__(self, config: MultVAEConfig | None = None, **overrides: Any) -> None:
        base = asdict(config) if config is not None else {}
        self.config = MultVAEConfig(**{**base, **overrides})
        self.net: MultVAENet | None = None
        #: One dict per epoch (loss, beta, validation metric, seconds), filled by fit.
        self.fit_log_: list[dict[str, float]] = []
        #: Epoch (1-based) whose weights were restored; 0 before fitting.
        self.best_epoch_: int = 0
        #: The trainer's record of the last fit (selected epoch, evaluations), None before.
        self.result: TrainResult | None = None

    @property
    def n_items(self) -> int:
        return self._fitted_net().decoder[-1].out_features

    @property
    def module(self) -> MultVAENet:
        """The network the trainer optimises."""
        return self._fitted_net()

    def fit(
        self,
        train: sp.csr_matrix,
        valid: sp.csr_matrix | None = None,
        *,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        averaging: Averaging = "test_users",
    ) -> MultVAE:
        """Train on ``train`` (binarised: any stored entry is one interaction); with ``valid``,
        early-stop on ``config.valid_metric``, averaged over users as ``averaging`` says (a run
        passes its ``eval.averaging``, so its logged validation is the one it reports).
        ``on_event`` receives the trainer's records (epochs, evaluations), as other models'."""
        self._on_event = on_event
        train = check_train(train, valid)
        cfg = self.config
        device = torch.device(cfg.device)
        devices = []
        if device.type == "cuda":  # 'cuda' alone is the current GPU (LOCAL_RANK's under torchrun)
            init_from_env(device)  # which the trainer would choose only after the fork
            devices = [torch.cuda.current_device() if device.index is None else device.index]
        # fork_rng: the seed governs this fit only and leaves the caller's global RNG untouched.
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(cfg.seed)
            self.net = MultVAENet(train.shape[1], cfg.hidden_dims, cfg.latent_dim, cfg.dropout)
            self._train(train, valid, averaging)
        return self

    def _train(
        self, train: sp.csr_matrix, valid: sp.csr_matrix | None, averaging: Averaging
    ) -> None:
        cfg = self.config
        training = TrainConfig(
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            optimizer="adam",
            batch_size=cfg.batch_size,
            epochs=cfg.max_epochs,
            eval_every=1,
            patience=cfg.patience,
            metric=cfg.valid_metric,
            seed=cfg.seed,
            device=cfg.device,
            progress=False,
        )
        evaluate = None
        if valid is not None:
            task = EvalTask.validation(train, valid)
            metric, _, k = cfg.valid_metric.partition("@")

            def evaluate(score_fn):
                result = task.evaluate(
                    score_fn, ks=(int(k),), metrics=(metric,), averaging=averaging
                )
                return {"valid": result.means}

        self.steps, self.beta, self.fit_log_ = 0, 0.0, []
        # Every user row, empty ones too: their KL term is part of the paper's objective.
        rows = RowBatches(train, skip_empty=False)
        self.result = Trainer(training, evaluate, self._log_event).fit(self, rows)
        self.best_epoch_ = self.result.best_epoch if valid is not None else self.result.epochs_run

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """The annealed negative ELBO of a batch of rows; counts the gradient step for beta."""
        cfg = self.config
        self.beta = min(cfg.beta_max, self.steps / cfg.total_anneal_steps)
        loss, _ = multvae_loss(*self.module(x), x, self.beta)
        self.steps += 1
        return loss

    def extra_state(self) -> dict[str, torch.Tensor]:
        return {}

    def load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        """Mult-VAE keeps no state outside its network."""

    def training_state(self) -> dict[str, Any]:
        """The annealing step count, its beta and the fit log (for resume checkpoints)."""
        return {"steps": self.steps, "beta": self.beta, "fit_log": self.fit_log_}

    def load_training_state(self, state: dict[str, Any]) -> None:
        self.steps, self.beta = int(state["steps"]), float(state["beta"])
        self.fit_log_ = [dict(entry) for entry in state["fit_log"]]

    def _log_event(self, record: dict[str, Any]) -> None:
        if getattr(self, "_on_event", None) is not None:
            self._on_event(record)
        if record["event"] == "epoch":
            entry = {k: record[k] for k in ("epoch", "loss")}
            entry.update(beta=self.beta, steps=self.steps, seconds=record["seconds"])
            self.fit_log_.append(entry)
            log.info("MultVAE %s", entry)
        elif record["event"] == "eval":
            name = self.config.valid_metric
            self.fit_log_[-1][f"valid_{name}"] = record[f"valid/{name}"]
            self.fit_log_[-1]["seconds"] += record["seconds"]

    @torch.no_grad()
    def score(self, history: sp.csr_matrix) -> torch.Tensor:
        """Decoder logits ``[batch, n_items]`` (float32, on ``config.device``) at z = mu.

        Histories are binarised as in ``fit``: every stored entry counts as 1, so time weights
        (T-DiffRec's rows) or ratings change nothing."""
        net = self._fitted_net()
        history = as_binary_csr(self._check_history(history), "history")
        net.eval()  # dropout off and z = mu, however the model was left
        x = torch.from_numpy(history.toarray()).to(next(net.parameters()).device)
        logits, _, _ = net(x)
        return logits

    def _fitted_net(self) -> MultVAENet:
        if self.net is None:
            raise RuntimeError("MultVAE is not fitted: call fit(train) first")
        return self.net

    def _config(self) -> dict[str, Any]:
        # The device is where this process runs, not a property of the model: a model trained
        # on a GPU loads on the CPU (move it with .to(device) after loading).
        config = {k: v for k, v in asdict(self.config).items() if k != "device"}
        return {**config, "n_items": self.n_items}

    def _tensors(self) -> dict[str, torch.Tensor]:
        return dict(self._fitted_net().state_dict())

    def to(self, device: str | torch.device) -> MultVAE:
        """Move the network (and future scoring) to ``device``; returns self."""
        self.config = MultVAEConfig(**{**asdict(self.config), "device": str(device)})
        self._fitted_net().to(torch.device(device))
        return self

    @classmethod
    def _from_saved(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> MultVAE:
        config = dict(config)
        n_items = config.pop("n_items")
        model = cls(MultVAEConfig(**config))
        cfg = model.config
        model.net = MultVAENet(n_items, cfg.hidden_dims, cfg.latent_dim, cfg.dropout)
        model.net.load_state_dict(tensors, strict=True)
        model.net.to(torch.device(cfg.device)).eval()
        return model
