"""The first picture: the forward process (data -> noise) above the reverse process (noise -> data)."""

from __future__ import annotations

import os

import numpy as np
import torch
from matplotlib.figure import Figure  # no pyplot: the caller's backend stays as it was

from ..atomic import atomic_path
from .data import TOY_DATASETS
from .train import ToyModel

__all__ = ["plot_forward_reverse"]


@torch.no_grad()
def plot_forward_reverse(
    model: ToyModel, path: str | os.PathLike[str], n: int = 2000, panels: int = 6, seed: int = 0
) -> None:
    """Draw q(x_t | x_0) at evenly spaced t (top row) and the DDPM reverse chain (bottom row)."""
    process = model.process
    T = process.num_steps
    # Columns evenly spaced in log-SNR between the first and last step (t = 0 is the data, t = T
    # the noise), so each panel shows a visible part of the transition whatever the schedule.
    log_snr = process.snr.log().numpy()
    levels = np.linspace(log_snr[0], log_snr[-1], panels)[1:-1]
    shown = sorted({0, T} | {int(abs(log_snr - level).argmin()) + 1 for level in levels})
    generator = torch.Generator().manual_seed(seed)
    x0 = TOY_DATASETS[model.config.dataset](n, generator)
    forward = {0: x0}
    for t in shown[1:]:
        forward[t] = process.q_sample(
            x0, torch.full((n,), t - 1), torch.randn(n, 2, generator=generator)
        )
    x = torch.randn(n, 2, generator=generator)
    reverse = {T: x}
    sampler = model.sampler("ddpm")
    for state in sampler.iterate(model.model_fn, x, generator=generator):
        if state.t in shown:  # after the step from index t the chain is at x_t in paper steps
            reverse[state.t] = state.sample
    fig = Figure(figsize=(3 * len(shown), 6.4))
    axes = fig.subplots(2, len(shown), sharex=True, sharey=True, squeeze=False)
    for col, t in enumerate(shown):
        for row, (points, colour) in enumerate(
            [(forward[t], "tab:blue"), (reverse[t], "tab:orange")]
        ):
            ax = axes[row, col]
            ax.scatter(points[:, 0], points[:, 1], s=1.5, alpha=0.5, color=colour, rasterized=True)
            ax.set_xlim(-3.5, 3.5)
            ax.set_ylim(-3.5, 3.5)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            abar = 1.0 if t == 0 else float(process.alpha_bar[t - 1])
            # two significant digits: the last steps' abar (1e-3 .. 1e-5) is not "0.00"
            ax.set_title(rf"$t$ = {t}   ($\bar\alpha_t$ = {abar:.2g})", fontsize=9)
    axes[0, 0].set_ylabel("forward $q(x_t \\mid x_0)$\ndata → noise", fontsize=10)
    axes[1, 0].set_ylabel("reverse $p_\\theta(x_{t-1} \\mid x_t)$\nnoise → data", fontsize=10)
    cfg = model.config
    fig.suptitle(
        f"DDPM on a 2-D {cfg.dataset} ({cfg.prediction.value}-prediction, T = {T}): "
        "the forward process destroys the data, the learned reverse process rebuilds it",
        fontsize=11,
    )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format=os.path.splitext(str(path))[1].lstrip(".") or "png")
