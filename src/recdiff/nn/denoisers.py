"""MLP denoisers f(x_t, t[, c]) over flat vectors.

DiffRec's denoiser (Wang et al. 2023, Sec. 3.3) is this MLP over [dropout(x_t) ; emb(t)] with tanh
between layers; ``hidden_dims=[600, 200, 600]`` is the released ML-1M "dims [200, 600]" network
(n_items + 10 -> 600 -> 200 -> 600 -> n_items). A condition vector c, when given, is concatenated
too (DreamRec's f(x_t, c, t)). :meth:`MLPDenoiser.guided` is classifier-free guidance over it
(:func:`recdiff.diffusion.guided`) that runs the part both passes share only once.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from recdiff.diffusion.guidance import check_guidance_cond, check_guidance_scale, guided
from recdiff.diffusion.parametrization import ModelFn

from .embeddings import SinusoidalTimeEmbedding

__all__ = ["ACTIVATIONS", "Dropout", "InputLayer", "MLPDenoiser"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
}


class Dropout(nn.Dropout):
    """Inverted dropout with the mask drawn by ``rand >= p``.

    Same distribution as :class:`torch.nn.Dropout`, but torch's CPU Bernoulli sampler is about
    3x slower than uniform draws, and on DiffRec's wide input rows it took a third of an epoch.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.rand_like(x) >= self.p
        return x * keep * (1.0 / (1.0 - self.p))


class MLPDenoiser(nn.Module):
    """An MLP on the concatenation of the (normalised, dropped-out) input, the step embedding and c.

    Args:
        dim: size of x_t (and of the output).
        hidden_dims: widths of the hidden layers, in order.
        time_dim: size of the step embedding.
        cond_dim: size of the condition vector; 0 for an unconditional denoiser.
        dropout: dropout on the input x_t (DiffRec: 0.5).
        activation: name in :data:`ACTIVATIONS`, used between layers (not after the last).
        normalize_input: L2-normalise x_t first (DiffRec's option for interaction vectors).
        time_hidden: > 0 maps the step's sinusoids through an MLP with this hidden width (GELU)
            instead of one linear layer (DreamRec's released step MLP: 2 x time_dim).
    """

    def __init__(
        self,
        dim: int,
        hidden_dims: Sequence[int],
        time_dim: int = 10,
        cond_dim: int = 0,
        dropout: float = 0.0,
        activation: str = "tanh",
        normalize_input: bool = False,
        time_hidden: int = 0,
    ) -> None:
        super().__init__()
        if dim < 1 or any(h < 1 for h in hidden_dims):
            raise ValueError(
                f"dim and hidden_dims must be positive, got {dim} and {list(hidden_dims)}"
            )
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}"
            )
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.dim, self.cond_dim, self.normalize_input = dim, cond_dim, normalize_input
        self.time_embedding = SinusoidalTimeEmbedding(time_dim, hidden=time_hidden)
        self.dropout = Dropout(dropout)
        widths = [dim + time_dim + cond_dim, *hidden_dims, dim]
        layers: list[nn.Module] = [InputLayer((dim, time_dim, cond_dim), widths[1])]
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
            if i:
                layers.append(nn.Linear(fan_in, fan_out))
            if i < len(widths) - 2:
                layers.append(ACTIVATIONS[activation]())
        self.layers = nn.Sequential(*layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-normal weights and small normal biases, as DiffRec initialises its MLP."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_normal_(module.weight)
                nn.init.normal_(module.bias, std=1e-3)
            elif isinstance(module, InputLayer):
                module.reset_parameters()

    def forward(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        self._check_inputs(x_t, cond)
        out = self._first_layer_without_cond(x_t, t)
        if self.cond_dim:
            out = out + self._cond_term(cond, out.dtype)
        return self.layers[1:](out)

    def guided(self, cond: torch.Tensor, null: torch.Tensor, scale: float) -> ModelFn:
        """``recdiff.diffusion.guided(self, cond, null, scale)``, equal up to float rounding:
        the ``model_fn(x_t, t)`` giving (1 + w) f(x_t, c, t) - w f(x_t, null, t), w = ``scale``.

        The two passes differ only in the first layer's condition term, so the rest of that
        layer, u = W_x x_t + b + W_t emb(t), is computed once per call for both, and W_c c and
        W_c null once per model_fn (c does not change while sampling); only the layers after
        the first run on both halves. Without hidden layers (DreamRec's released denoiser) f is
        that layer, and (1 + w)(u + W_c c) - w (u + W_c null) = u + W_c ((1 + w) c - w null):
        one pass over the batch.

        ``cond`` ([batch, cond_dim] or [1, cond_dim]), ``scale`` and w = 0 behave as in
        ``guided``, with the same errors (naming the shape of the ``cond`` given, where
        ``guided`` names that of the doubled batch it passes on). With gradients off the
        condition terms are computed once and reused until the weights, c or null change (an
        optimizer step counts); with gradients on, at every call. In training mode with input
        dropout the two halves of ``guided`` draw different masks, so the model_fn calls
        ``guided`` itself there.
        """
        check_guidance_scale(scale)
        generic = guided(self, cond, null, scale)
        after_first = self.layers[1:]
        one_pass = scale == 0 or not len(after_first)
        cached: dict[tuple, torch.Tensor] = {}

        def cond_terms(dtype: torch.dtype) -> torch.Tensor:
            """W_c c if one pass suffices ((1 + w) W_c c - w W_c null for a linear f), else
            [W_c c, W_c null] stacked [2, rows, width] to add to both halves at once."""
            cond_term = self._cond_term(cond, dtype)
            if scale == 0:
                return cond_term
            null_term = self._cond_term(null.to(cond.dtype), dtype)
            if one_pass:
                wide = torch.promote_types(dtype, torch.float32)  # mixed once: keep precision
                mixed = (1 + scale) * cond_term.to(wide) - scale * null_term.to(wide)
                return mixed.to(dtype)
            return torch.stack(torch.broadcast_tensors(cond_term, null_term))

        def model_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            if self.training and self.dropout.p > 0:
                return generic(x_t, t)
            check_guidance_cond(cond, x_t.shape[0])
            self._check_inputs(x_t, cond)
            shared = self._first_layer_without_cond(x_t, t)
            if torch.is_grad_enabled():  # a fresh graph for each call's backward
                terms = cond_terms(shared.dtype)
            else:  # sampling: once, until the weights, c or null change (in place too)
                weight = self.layers[0].weight_c
                key = (shared.dtype, shared.device, weight._version, cond._version, null._version)
                if key not in cached:
                    cached.clear()
                    cached[key] = cond_terms(shared.dtype)
                terms = cached[key]
            if one_pass:
                return after_first(shared + terms)
            # [2, batch, width] -> the conditional rows, then the unconditional ones
            both = after_first((shared + terms).flatten(0, 1))
            conditional, unconditional = both[: x_t.shape[0]], both[x_t.shape[0] :]
            return (1 + scale) * conditional - scale * unconditional

        return model_fn

    def _check_inputs(self, x_t: torch.Tensor, cond: torch.Tensor | None) -> None:
        if x_t.shape[-1] != self.dim:
            raise ValueError(f"expected x_t of width {self.dim}, got {x_t.shape[-1]}")
        self._check_cond(cond, x_t.shape[0])

    def _first_layer_without_cond(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The first layer before its condition term: W_x dropout(x_t) + b + W_t emb(t)."""
        h = F.normalize(x_t, dim=-1) if self.normalize_input else x_t
        # The first layer acts on [x_t ; emb(t) ; c] but is applied blockwise, which avoids
        # copying x_t into a concatenation, and embeds each distinct step once (a sampler
        # passes one step for the whole batch, whose term then broadcasts).
        first = self.layers[0]
        out = F.linear(self.dropout(h), first.weight_x, first.bias)
        steps, which = torch.unique(t, return_inverse=True)
        step_term = F.linear(self.time_embedding(steps), first.weight_t)
        return out + (step_term[0] if len(steps) == 1 else step_term[which]).to(out.dtype)

    def _cond_term(self, cond: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """W_c c in the first layer's output ``dtype``."""
        return F.linear(cond.to(dtype), self.layers[0].weight_c).to(dtype)

    def _check_cond(self, cond: torch.Tensor | None, batch: int) -> None:
        """A condition exactly when the denoiser takes one, [batch or 1, cond_dim]: a condition
        given to an unconditional denoiser would be ignored without a word (classifier-free
        guidance over it then silently returns the unguided output)."""
        if not self.cond_dim:
            if cond is not None:
                raise ValueError(
                    f"this denoiser takes no condition (cond_dim=0), got one of shape "
                    f"{tuple(cond.shape)}: build it with cond_dim={cond.shape[-1]} to condition "
                    "on it, or pass none"
                )
            return
        if cond is None or cond.dim() == 0 or cond.shape[-1] != self.cond_dim:
            got = "none" if cond is None else f"shape {tuple(cond.shape)}"
            raise ValueError(f"this denoiser needs a condition of width {self.cond_dim}, got {got}")
        if cond.dim() > 1 and cond.shape[0] not in (1, batch):
            raise ValueError(
                f"cond must have x_t's batch {batch} (or 1, shared), got shape {tuple(cond.shape)}"
            )

    def chain_saves_work(self, batch: int, steps: int) -> bool:
        """Whether :meth:`reverse_mean_chain` applies here and needs fewer multiply-adds than
        ``steps`` step-by-step calls on ``batch`` rows.

        It needs an affine map from x_t into the first layer (no input normalisation) and at
        least one hidden layer. Per row and step it replaces the two outer layers,
        ``dim x (h_1 + h_L)``, by the ``h_1 x h_L`` matrix M = W_x W_L, which costs
        ``h_1 x h_L x dim`` once per call (on ML-1M it pays from about 9 rows at T = 40).
        """
        if self.normalize_input or not isinstance(self.layers[-1], nn.Linear):
            return False  # x_t not affine in, or no hidden layer (the input layer is the last)
        h_first, h_last = self.layers[0].bias.shape[0], self.layers[-1].in_features
        saved = batch * steps * (self.dim * (h_first + h_last) - h_first * h_last)
        return saved > h_first * h_last * self.dim

    @torch.no_grad()
    def reverse_mean_chain(
        self,
        x: torch.Tensor,
        steps: Sequence[tuple[int, float, float]],
        cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Iterate ``x <- a x + b f(x, t)`` over ``steps`` = [(model step t, a, b), ...].

        This is a deterministic reverse process (the posterior mean only, as DiffRec infers),
        with each step's mean written as ``a x_t + b f`` (:meth:`GaussianDiffusion.
        mean_coefficients`). Since f ends in an affine layer (``W_L h + b_L``) and x_t enters
        the network only through ``W_x x_t``, the chain can be carried in the first layer's
        width: ``z = W_x x`` follows ``z <- a z + b (M h + W_x b_L)`` with ``M = W_x W_L``, and
        the item-space result is rebuilt once at the end from a running sum of the h's.
        On DiffRec's ML-1M network this replaces two 2,810 x 600 matmuls per step by one
        600 x 600 one, the same arithmetic regrouped (equal up to floating-point rounding).
        Dropout must be inactive (``eval()``). The result is float32 whatever the network's
        dtype (float64 for a network cast to float64): the chain is accumulated at least there.
        """
        if self.training and self.dropout.p > 0:
            raise RuntimeError("reverse_mean_chain needs the denoiser in eval() mode")
        if self.normalize_input:
            raise ValueError("reverse_mean_chain needs x_t to enter affinely (normalize_input off)")
        self._check_cond(cond, x.shape[0])
        first, last = self.layers[0], self.layers[-1]
        if not isinstance(last, nn.Linear):
            raise ValueError("reverse_mean_chain needs at least one hidden layer")
        hidden = self.layers[1:-1]
        # The chain is carried in float32, or float64 for a network cast to it; the hidden
        # layers get their weights' dtype (autocast, where on, casts for them as before).
        weights = first.weight_x.dtype
        wide = torch.promote_types(weights, torch.float32)
        with torch.autocast(x.device.type, enabled=False):
            w_x = first.weight_x.to(wide)
            through = w_x @ last.weight.to(wide)  # M = W_x W_L: [h_1, h_L]
            through_bias = w_x @ last.bias.to(wide)
        z = F.linear(x, first.weight_x).to(wide)
        offset = first.bias.to(wide)
        if self.cond_dim:  # as forward: a condition counts only for a conditional denoiser
            offset = offset + F.linear(cond.to(weights), first.weight_c).to(wide)
        model_steps = torch.tensor([t for t, _, _ in steps], dtype=torch.long, device=x.device)
        distinct, which = torch.unique(model_steps, return_inverse=True)
        step_terms = F.linear(self.time_embedding(distinct), first.weight_t).to(wide)
        scale_x, scale_bias = 1.0, 0.0
        summed = x.new_zeros((x.shape[0], last.in_features), dtype=wide)
        for i, (_, a, b) in enumerate(steps):
            h = hidden((z + offset + step_terms[which[i]]).to(weights)).to(wide)
            if i + 1 < len(steps):  # the last step's z is never used
                z = a * z + b * F.linear(h, through, through_bias).to(wide)
            summed = summed.mul_(a).add_(h, alpha=b)
            scale_x, scale_bias = a * scale_x, a * scale_bias + b
        out = F.linear(summed, last.weight.to(wide)).to(wide) + scale_bias * last.bias.to(wide)
        return out if scale_x == 0 else out.add_(x.to(wide), alpha=scale_x)


class InputLayer(nn.Module):
    """The first linear layer over [x_t ; emb(t) ; c], its weight kept as one block per input.

    Separate parameters (rather than slices of one matrix) let autocast cast each to bfloat16
    once per autocast region instead of at every reverse step: slices are not cached, and the
    re-casts cost a quarter of a one-user DiffRec call on ML-1M. Checkpoints with the single
    ``weight`` matrix of ``nn.Linear`` still load.
    """

    def __init__(self, in_dims: tuple[int, int, int], out_dim: int) -> None:
        super().__init__()
        x_dim, t_dim, c_dim = in_dims
        self.in_dims = in_dims
        # Drawn as nn.Linear draws its weight and bias, then split, so seeds give the same
        # networks as when this layer was one nn.Linear.
        whole = torch.empty(out_dim, x_dim + t_dim + c_dim)
        nn.init.kaiming_uniform_(whole, a=math.sqrt(5))
        bound = 1 / math.sqrt(whole.shape[1]) if whole.shape[1] else 0.0
        self.bias = nn.Parameter(torch.empty(out_dim).uniform_(-bound, bound))
        self.weight_x = nn.Parameter(whole[:, :x_dim].clone())
        self.weight_t = nn.Parameter(whole[:, x_dim : x_dim + t_dim].clone())
        # No condition, no parameter (a zero-width one would never get a gradient, which
        # DistributedDataParallel reports as unused).
        self.weight_c = nn.Parameter(whole[:, x_dim + t_dim :].clone()) if c_dim else None

    @property
    def weight(self) -> torch.Tensor:
        """The whole ``[out, x + t + c]`` matrix (as ``nn.Linear`` would hold it)."""
        blocks = [self.weight_x, self.weight_t]
        return torch.cat(blocks if self.weight_c is None else [*blocks, self.weight_c], dim=1)

    def forward(self, concatenated: torch.Tensor) -> torch.Tensor:
        """The layer on an explicit concatenation ``[x_t ; emb(t) ; c]`` (reference path)."""
        return F.linear(concatenated, self.weight, self.bias)

    def reset_parameters(self) -> None:
        """Xavier-normal over the whole fan-in, drawn as for one ``nn.Linear`` and split."""
        whole = torch.empty(self.bias.shape[0], sum(self.in_dims))
        nn.init.xavier_normal_(whole)
        x_dim, t_dim, _ = self.in_dims
        with torch.no_grad():
            self.weight_x.copy_(whole[:, :x_dim])
            self.weight_t.copy_(whole[:, x_dim : x_dim + t_dim])
            if self.weight_c is not None:
                self.weight_c.copy_(whole[:, x_dim + t_dim :])
        nn.init.normal_(self.bias, std=1e-3)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if self.weight_c is None:  # checkpoints of unconditional denoisers with a 0-wide block
            empty = state_dict.get(prefix + "weight_c")
            if empty is not None and empty.numel() == 0:
                del state_dict[prefix + "weight_c"]
        whole = state_dict.pop(prefix + "weight", None)
        if whole is not None:  # a checkpoint written when this layer was one nn.Linear
            x_dim, t_dim, _ = self.in_dims
            state_dict[prefix + "weight_x"] = whole[:, :x_dim]
            state_dict[prefix + "weight_t"] = whole[:, x_dim : x_dim + t_dim]
            if self.weight_c is not None:
                state_dict[prefix + "weight_c"] = whole[:, x_dim + t_dim :]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
