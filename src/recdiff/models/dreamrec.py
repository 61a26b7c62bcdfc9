"""DreamRec (Yang et al., NeurIPS 2023): generate the next item's embedding, guided by the history.

Each item has a learned embedding e_i. A causal Transformer (:class:`HistoryEncoder`, sharing the
item table) turns the last N items into the guidance c. Training (no negatives): x_0 = e_target,
t ~ U{1..T}, x_t ~ q(x_t | x_0); with probability p_u the guidance is replaced by a learned null
vector; the denoiser f(x_t, c, t) (an MLP over [x_t ; c ; emb(t)]) predicts x_0 under MSE.
Inference: from pure noise, run the reverse process with the guided prediction
(1 + w) f(x_t, c, t) - w f(x_t, null, t) to an "oracle" embedding, and rank every item by its
inner product with it.

==========================  =====================================  ==========
paper                       code                                   section
==========================  =====================================  ==========
e_n^0 (target embedding)    ``encoder.item_embedding(targets)``   3.2
c_{n-1} (guidance)          ``encoder(history)``                   3.2
Φ (null guidance), p_u      ``null``, ``p_uncond``                 3.3
f_θ(x_t, c, t) -> x_0       ``denoiser``                           3.3
w (guidance strength)       ``guidance_weight``                    3.3
oracle -> top-K             ``score`` (inner product)              3.4
==========================  =====================================  ==========

Any sampler of the core works: DDPM over all T steps (the paper), or DDIM / DDPM over
``sampling_steps`` respaced steps. Sampling draws from the generator it is given (or one seeded
with ``sample_seed``), so a checkpoint gives the same scores every time. The settings live in
:mod:`recdiff.models.dreamrec_config`.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recdiff._warnings import warn
from recdiff.diffusion import (
    DDIMSampler,
    DDPMSampler,
    GaussianDiffusion,
    Sampler,
    drop_condition,
    randn_rows,
)
from recdiff.diffusion.samplers import EachRowAlone, Generators
from recdiff.models.dreamrec_config import (
    SAMPLERS,
    DreamRecConfig,
    GuidedDiffusionConfig,
    ItemSpaceConfig,
)
from recdiff.models.sasrec import SASRec, SASRecConfig
from recdiff.models.sequential import (
    SequentialRecommender,
    check_sequence_dataset,
    training_items,
)
from recdiff.nn import MLPDenoiser
from recdiff.nn.sequence import HistoryEncoder

# The configs are re-exported: they are commonly imported with their model.
__all__ = ["DreamRec", "DreamRecConfig", "GuidedDiffusionConfig", "ItemSpaceConfig"]


class DreamRecNet(nn.Module):
    """History encoder, null guidance, denoiser and the process; ``forward`` is the loss."""

    def __init__(self, n_items: int, max_len: int, config: DreamRecConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = HistoryEncoder(
            n_items,
            config.dim,
            max_len,
            config.blocks,
            config.heads,
            config.dropout,
            embedding_std=config.embedding_std,
        )
        self.null = nn.Parameter(torch.randn(config.dim) * config.dim**-0.5)
        self.denoiser = MLPDenoiser(
            config.dim,
            config.hidden_dims,
            time_dim=config.time_dim,
            cond_dim=config.dim,
            activation=config.activation,
            time_hidden=2 * config.time_dim if config.time_mlp else 0,
        )
        self.process = GaussianDiffusion(config.diffusion.noise_schedule(), prediction="x0")
        # Items that occurred in the training data (set by fit; all True until then).
        self.register_buffer("trained", torch.ones(n_items, dtype=torch.bool))

    def forward(self, history: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x0 = self.encoder.item_embedding(targets)
        if self.config.detach_target:
            x0 = x0.detach()
        cond = drop_condition(self.encoder(history), self.null, self.config.p_uncond)
        t = torch.randint(0, self.process.num_steps, (x0.shape[0],), device=x0.device)
        out = self.process.training_losses(
            lambda x_t, steps: self.denoiser(x_t, steps, cond), x0, t
        )
        loss = out["loss"].float().mean()
        if self.config.rounding_weight:
            logits = out["pred_x0"] @ self.encoder.items.T.to(out["pred_x0"].dtype)
            loss = loss + self.config.rounding_weight * F.cross_entropy(logits.float(), targets)
        return loss


def _check_guidance_weight(w: object) -> None:
    """Refuse a guidance weight that is not a finite number >= 0, naming the setting (the
    process's own check says "guidance scale w"; True or "2" would be taken for 1 or fail
    inside a comparison)."""
    if isinstance(w, bool) or not isinstance(w, numbers.Real):
        raise TypeError(f"guidance_weight must be a number (w >= 0), got {w!r}")
    if not 0 <= w < float("inf"):
        raise ValueError(f"guidance_weight must be a finite number >= 0 (w), got {w}")


class DreamRec(SequentialRecommender):
    """Guided diffusion over item embeddings; recommends the items nearest the generated one."""

    model_name = "dreamrec"
    config_class = DreamRecConfig
    inference_options = ("guidance_weight", "sampler", "sampling_steps")

    @property
    def trains_every_parameter(self) -> bool:
        """Whether each loss reaches every parameter: the null guidance only when p_u > 0."""
        return self.config.p_uncond > 0

    def _build_net(self, n_items: int, max_len: int) -> nn.Module:
        self._samplers: dict[tuple, Sampler] = {}
        return DreamRecNet(n_items, max_len, self.config)

    @property
    def stage_results(self) -> dict:
        """The SASRec item stage's training (``item_space.source=sasrec``), once fitted."""
        result = getattr(self, "items_result", None)
        return {"items": result} if result is not None else {}

    def fit(self, data, *, evaluate=None, on_event=None) -> DreamRec:
        """Train on ``data.train`` (see :meth:`SequentialRecommender.fit`); with
        ``item_space.source=sasrec`` a SASRec stage runs first and gives the item table."""
        self.items_result = None
        self._pretrained_items = None
        data = check_sequence_dataset(data)
        if self.config.item_space.source == "sasrec":
            self._pretrained_items = self._pretrain_items(data, evaluate, on_event)
        try:
            return super().fit(data, evaluate=evaluate, on_event=on_event)
        finally:
            self._pretrained_items = None
            if self.net is not None:  # frozen for training only, as a loaded model is
                self.net.encoder.item_embedding.weight.requires_grad_(True)

    def _pretrain_items(self, data, evaluate, on_event) -> torch.Tensor:
        """Train the SASRec stage (selected on validation through ``evaluate``) and return its
        ``[n_items + 1, dim]`` table (pad row last), item rows rescaled to ``item_space.rms``."""
        space = self.config.item_space
        settings = SASRecConfig(
            dim=self.config.dim,
            blocks=space.blocks,
            heads=space.heads,
            dropout=space.dropout,
            all_positions=space.all_positions,
        )
        if evaluate is None:
            warn(
                f"the SASRec item stage trains all {space.epochs} epochs (item_space.epochs) "
                "without selection: pass evaluate to fit to select its epoch on validation"
            )
        log = on_event or (lambda record: None)
        stage_log = lambda record: log({**record, "stage": "items"})  # noqa: E731
        sasrec = SASRec(settings, space.training(self.training))
        sasrec.trainer_settings = {"lr": "model.item_space.lr"}
        sasrec.fit(data, evaluate=evaluate, on_event=stage_log)
        self.items_result = sasrec.result
        table = sasrec.net.encoder.item_embedding.weight.detach().float().clone()
        if space.rms is not None:
            items = table[: data.n_items]
            norm = space.rms * self.config.dim**0.5
            items *= norm / items.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return table

    def _prepare(self, data) -> None:
        self.net.trained.copy_(torch.from_numpy(training_items(data.train, data.n_items)))
        if getattr(self, "_pretrained_items", None) is not None:
            weight = self.net.encoder.item_embedding.weight
            with torch.no_grad():
                weight.copy_(self._pretrained_items.to(weight))
            weight.requires_grad_(not self.config.item_space.freeze)

    @classmethod
    def _from_saved(cls, config, tensors):
        # Checkpoints written before the ``trained`` buffer existed: every item counts as trained.
        if "trained" not in tensors:
            tensors = {**tensors, "trained": torch.ones(int(config["n_items"]), dtype=torch.bool)}
        # ... and before the step MLP existed: their step embedding is one linear map.
        if "time_mlp" not in config["settings"]:
            config = {**config, "settings": {**config["settings"], "time_mlp": False}}
        # A run with its own table saved the SASRec stage's settings too, unused: later defaults
        # of those settings must not make it look set.
        space = config["settings"].get("item_space") or {}
        if space.get("source", "learned") == "learned":
            settings = {**config["settings"], "item_space": {"source": "learned"}}
            config = {**config, "settings": settings}
        elif "norm" in space:
            # The option's first name: a row norm, fixed whatever the dim; rms is norm / sqrt(dim)
            # (the same rows). The table itself is in the weights either way.
            space = {k: v for k, v in space.items() if k != "norm"}
            norm = config["settings"]["item_space"]["norm"]
            dim = config["settings"].get("dim", DreamRecConfig.model_fields["dim"].default)
            space["rms"] = None if norm is None else norm / dim**0.5
            config = {**config, "settings": {**config["settings"], "item_space": space}}
        diffusion = config["settings"].get("diffusion") or {}
        if diffusion.get("eta", 0.0) > 1:
            # Before eta was bounded by 1, a larger one was accepted (DDIM's sigma grew past
            # DDPM's). Only the ddim sampler reads it: a ddpm run loads unchanged with eta 1.
            if diffusion.get("sampler") == "ddim":
                warn(
                    f"this DreamRec run was saved with diffusion.eta={diffusion['eta']}; eta "
                    "is now bounded by 1 and the run loads with eta=1, so its DDIM samples "
                    "(and metrics) differ from those it recorded"
                )
            diffusion = {**diffusion, "eta": 1.0}
            config = {**config, "settings": {**config["settings"], "diffusion": diffusion}}
        return super()._from_saved(config, tensors)

    def sampler(self, sampler: str | None = None, steps: int | None = None) -> Sampler:
        """The reverse process used at inference (configured one by default).

        ``sampler`` and ``steps`` are checked as the config checks them: a typo or a step count
        of 0 would otherwise sample with the configured process, a sweep measuring nothing."""
        self._check_fitted()
        diffusion = self.config.diffusion
        kind = diffusion.sampler if sampler is None else sampler
        if kind not in SAMPLERS:
            raise ValueError(f"sampler must be one of {list(SAMPLERS)}, got {kind!r}")
        if steps is None:
            steps = diffusion.sampling_steps or diffusion.steps
        elif isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
            raise TypeError(f"sampling_steps must be an integer, got {steps!r}")
        elif not 1 <= steps <= diffusion.steps:
            raise ValueError(
                f"sampling_steps must lie in 1..{diffusion.steps} (the model's diffusion steps "
                f"T), got {steps}"
            )
        steps = int(steps)
        # Keyed by device too: a sampler's process tables must follow the net when it moves; and
        # by the process settings, so that a changed config.diffusion (eta, for a sweep) is used.
        key = (kind, steps, diffusion.model_dump_json(), self.device)
        if key not in self._samplers:
            schedule = diffusion.noise_schedule()
            if steps != schedule.num_steps:
                schedule = schedule.spaced(steps)
            process = GaussianDiffusion(schedule, prediction="x0").to(self.device)
            if kind == "ddim":
                self._samplers[key] = DDIMSampler(process, eta=diffusion.eta)
            else:  # "ddpm", checked above
                self._samplers[key] = DDPMSampler(process)
        return self._samplers[key]

    def generate(
        self,
        history: torch.Tensor,
        generator: Generators = None,
        guidance_weight: float | None = None,
        sampler: Sampler | None = None,
    ) -> torch.Tensor:
        """The generated "oracle" embeddings ``[batch, dim]`` for left-padded histories;
        ``generator`` may be one per row (each row then samples as it would alone). By default
        (the service, ``recommend``) every row samples as it would alone from ``sample_seed``: a
        history gets the same oracle in any batch (up to float rounding, which differs between
        batch sizes). A run's evaluation passes its own generators instead, one per block of
        examples (:class:`~recdiff.diffusion.RowBlocks`), so its metrics do not depend on
        ``eval.batch_size`` either, but a history's noise there is its block's draw."""
        net = self._check_fitted()
        w = self.config.guidance_weight if guidance_weight is None else guidance_weight
        _check_guidance_weight(w)
        if generator is None:
            seed = self.config.sample_seed
            generator = EachRowAlone(torch.Generator(device=history.device).manual_seed(seed))
        cond = net.encoder(history)
        noise = randn_rows(cond.shape, generator, cond.device, torch.float32)
        # The denoiser's own guidance: the same outputs as diffusion.guided up to rounding, with
        # the condition terms computed once per sampling rather than at each of the T steps.
        model_fn = net.denoiser.guided(cond, net.null, w)
        return (sampler or self.sampler()).sample(model_fn, noise, generator=generator)

    def _score_batch(self, history: torch.Tensor, generator: Generators, **options) -> torch.Tensor:
        """Inner products of the oracles (:meth:`_query_batch`, which takes ``options``) with
        every item."""
        oracle = self._query_batch(history, generator, **options)
        scores = oracle @ self.net.encoder.items.T.to(oracle.dtype)
        if self.config.exclude_untrained_items:
            scores = scores.masked_fill(~self.net.trained, float("-inf"))
        return scores

    ranks_by_inner_product = True

    def item_vectors(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        net = self._check_fitted()
        usable = net.trained.clone() if self.config.exclude_untrained_items else None
        return net.encoder.items.detach(), usable

    def _query_batch(
        self,
        history: torch.Tensor,
        generator: Generators,
        guidance_weight: float | None = None,
        sampler: str | None = None,
        sampling_steps: int | None = None,
    ) -> torch.Tensor:
        """The oracle embeddings that :meth:`_score_batch` ranks items by."""
        chosen = self.sampler(sampler, sampling_steps)
        return self.generate(history, generator, guidance_weight, chosen)

    def score_with(
        self,
        history: torch.Tensor | np.ndarray,
        generator: Generators = None,
        guidance_weight: float | None = None,
        sampler: str | None = None,
        sampling_steps: int | None = None,
    ) -> torch.Tensor:
        """Scores under another guidance weight or sampler than configured (for sweeps)."""
        return self.score(
            history,
            generator=generator,
            guidance_weight=guidance_weight,
            sampler=sampler,
            sampling_steps=sampling_steps,
        )
