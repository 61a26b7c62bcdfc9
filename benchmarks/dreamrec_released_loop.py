"""DreamRec trained the way the released code trains it, outside recdiff (a diagnostic).

recdiff's DreamRec stays at chance on Zhihu once never-trained items are excluded
(``untrained_items.py``), and swapping in a released-style encoder did not change that
(``dreamrec_released_encoder.py``). This script removes every other recdiff part from the
question: it is a self-contained DreamRec written here from the facts of the released code
(read, not copied), with its whole training and evaluation procedure:

- item table ``[n + 1, dim]`` (row n is the padding id) and null vector, both N(0, 1);
  positions counted from the oldest item of right-padded histories, N(0, 1);
- one block: attention with layer-normalised queries over raw keys (key, causal and query masks,
  scale 1 / sqrt(dim)), residual onto the queries; a post-norm ReLU feed-forward; a final
  LayerNorm; the state at position ``seq_len - 1``;
- step embedding: sinusoid -> Linear(dim, 2 dim) -> GELU -> Linear(2 dim, dim);
- denoiser ``mlp1`` (the released Zhihu command): one Linear over [x_t ; c ; emb(t)];
  ``--denoiser mlp2`` adds a GELU hidden layer of 2 dim;
- linear betas 1e-4 .. 0.02, T 500, t uniform on 0..T-1, x0 prediction, MSE with the gradient
  into the target embedding, guidance dropped with probability 0.1;
- Adam (AdamW with no decay), lr 1e-2; an epoch is int(rows / 256) batches, each drawn at random;
- evaluation every 10 epochs with dropout left on, on whole batches of 100 (the rest dropped):
  DDPM from pure noise with (1 + w) f(x, c, t) - w f(x, null, t), w 4, inner product with every
  row of the item table (the padding row included).

Each evaluation records HR@20 / NDCG@20 of validation and test as the released code prints them,
HR@20 with the items absent from the training rows excluded, and their share of the top-20 slots.

    python3 benchmarks/dreamrec_released_loop.py --epochs 100 --seed 1

Writes ``benchmarks/results/dreamrec_released_loop_seed{S}[_NAME].json`` and ``.md``
(``--results-dir`` changes the folder).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from _common import (
    add_results_dir,
    machine,
    markdown_table,
    non_negative_float,
    pct,
    positive_float,
    positive_int,
    write_results,
)
from torch import nn

#: DreamRec's Zhihu split, as its released code reads it.
DATA_FILES = ("data_statis.df", "train_data.df", "val_data.df", "test_data.df")


def dataset_dir() -> Path:
    root = os.environ.get("RECDIFF_DATASETS")
    base = Path(root) if root else Path(__file__).resolve().parents[2] / "shared" / "datasets"
    return base / "dreamrec" / "zhihu"


def load(path: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    frame = pd.read_pickle(path)
    length = frame["seq_len"] if "seq_len" in frame else frame["len_seq"]
    target = frame["tgt"] if "tgt" in frame else frame["next"]
    return (
        torch.tensor(np.stack(frame["seq"].to_numpy()), dtype=torch.long),
        torch.tensor(length.to_numpy(), dtype=torch.long),
        torch.tensor(target.to_numpy().astype(np.int64)),
    )


class Sinusoid(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        half = dim // 2
        self.register_buffer("freqs", torch.exp(-math.log(10000) / (half - 1) * torch.arange(half)))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = t.float()[:, None] * self.freqs
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class ReleasedDreamRec(nn.Module):
    def __init__(self, n_items: int, dim: int, length: int, dropout: float, denoiser: str):
        super().__init__()
        self.n_items = n_items
        self.items = nn.Embedding(n_items + 1, dim)
        self.null = nn.Parameter(torch.randn(dim))
        self.positions = nn.Embedding(length, dim)
        nn.init.normal_(self.items.weight)
        self.drop = nn.Dropout(dropout)
        self.ln_query, self.ln_ff, self.ln_out = (nn.LayerNorm(dim) for _ in range(3))
        self.q, self.k, self.v = (nn.Linear(dim, dim) for _ in range(3))
        self.attn_drop = nn.Dropout(dropout)
        self.ff = nn.Sequential(
            nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.Dropout(dropout)
        )
        self.ff_norm = nn.LayerNorm(dim)
        self.step = nn.Sequential(
            Sinusoid(dim), nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim)
        )
        if denoiser == "mlp1":
            self.denoiser = nn.Linear(3 * dim, dim)
        else:
            self.denoiser = nn.Sequential(
                nn.Linear(3 * dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim)
            )

    def guidance(self, seq: torch.Tensor, seq_len: torch.Tensor) -> torch.Tensor:
        real = (seq != self.n_items).unsqueeze(-1).float()
        x = self.items(seq) + self.positions.weight
        x = self.drop(x) * real
        queries = self.ln_query(x)
        scores = self.q(queries) @ self.k(x).transpose(1, 2) / math.sqrt(x.shape[-1])
        length = seq.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool).tril()
        key_real = x.sum(-1) != 0
        scores = scores.masked_fill(~(causal & key_real[:, None, :]), -(2.0**32) + 1)
        weights = scores.softmax(-1) * (queries.sum(-1) != 0).unsqueeze(-1).float()
        attended = self.attn_drop(weights) @ self.v(x) + queries
        residual = self.ln_ff(attended)
        out = self.ff_norm(self.ff(residual) + residual) * real
        out = self.ln_out(out)
        return out[torch.arange(seq.shape[0]), seq_len - 1]

    def forward(self, x: torch.Tensor, c: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.denoiser(torch.cat([x, c, self.step(t)], dim=-1))


class Process:
    def __init__(self, steps: int, beta_start: float, beta_end: float) -> None:
        self.steps = steps
        betas = torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)
        alphas = 1 - betas
        bar = torch.cumprod(alphas, 0)
        bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), bar[:-1]])
        self.sqrt_bar = bar.sqrt().float()
        self.sqrt_one_minus_bar = (1 - bar).sqrt().float()
        self.coef_x0 = (betas * bar_prev.sqrt() / (1 - bar)).float()
        self.coef_xt = ((1 - bar_prev) * alphas.sqrt() / (1 - bar)).float()
        self.post_std = (betas * (1 - bar_prev) / (1 - bar)).sqrt().float()

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.sqrt_bar[t, None] * x0 + self.sqrt_one_minus_bar[t, None] * torch.randn_like(x0)

    @torch.no_grad()
    def sample(self, model: ReleasedDreamRec, c: torch.Tensor, w: float) -> torch.Tensor:
        x = torch.randn_like(c)
        null = model.null.expand_as(c)
        for n in reversed(range(self.steps)):
            t = torch.full((c.shape[0],), n, dtype=torch.long)
            x0 = (1 + w) * model(x, c, t) - w * model(x, null, t)
            x = self.coef_x0[n] * x0 + self.coef_xt[n] * x
            if n:
                x = x + self.post_std[n] * torch.randn_like(x)
        return x


@torch.no_grad()
def evaluate(model, process, split, trained: torch.Tensor, w: float, batch: int, k: int = 20):
    """HR@k / NDCG@k as ranked, HR@k with untrained items (and the padding row) excluded, and
    the share of top-k slots they take, on the split's whole batches of ``batch``."""
    seq, seq_len, target = split
    keep = len(target) // batch * batch  # whole batches only, as released
    seq, seq_len, target = seq[:keep], seq_len[:keep], target[:keep]
    oracle = process.sample(model, model.guidance(seq, seq_len), w)
    scores = oracle @ model.items.weight.T
    top = scores.topk(k, dim=1).indices
    hit = top == target[:, None]
    found = hit.any(1).float()
    untrained = torch.ones(scores.shape[1], dtype=torch.bool)
    untrained[: len(trained)] = ~trained
    masked = scores.masked_fill(untrained, float("-inf")).topk(k, dim=1).indices
    return {
        f"hr@{k}": found.mean().item(),
        f"ndcg@{k}": (found / torch.log2(hit.float().argmax(1) + 2.0)).mean().item(),
        f"hr@{k}_untrained_excluded": (masked == target[:, None]).any(1).float().mean().item(),
        "untrained_slots": untrained[top].float().mean().item(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=positive_int, default=100, help="training epochs")
    parser.add_argument(
        "--seed", type=int, default=1, help="torch seed of initialisation, batches and sampling"
    )
    parser.add_argument(
        "--lr", type=positive_float, default=1e-2, help="Adam learning rate (released: 1e-2)"
    )
    parser.add_argument(
        "--w", type=non_negative_float, default=4.0, help="guidance weight w at evaluation"
    )
    parser.add_argument(
        "--steps", type=positive_int, default=500, help="diffusion steps T (released: 500)"
    )
    parser.add_argument(
        "--denoiser",
        choices=["mlp1", "mlp2"],
        default="mlp1",
        help="mlp1: one Linear (the released Zhihu command); mlp2: a GELU hidden layer of 2 dim",
    )
    parser.add_argument(
        "--eval-every",
        type=positive_int,
        default=10,
        help="epochs between evaluations (released: 10; at most --epochs)",
    )
    parser.add_argument("--eval-dropout-off", action="store_true", help="call eval() first")
    parser.add_argument("--threads", type=positive_int, default=1, help="torch intra-op threads")
    parser.add_argument("--name", default="", help="suffix of the results file name (after _seedS)")
    add_results_dir(parser)
    args = parser.parse_args()
    if not 1 <= args.eval_every <= args.epochs:
        parser.error(
            f"--eval-every {args.eval_every} must lie in 1..--epochs ({args.epochs}): the loop "
            "evaluates every --eval-every epochs, as the released code does"
        )
    root = dataset_dir()
    missing = [n for n in DATA_FILES if not (root / n).is_file()]
    if missing:  # before any work, as a usage message: where the data was looked for
        parser.error(
            f"{root} holds no {', '.join(missing)}: set RECDIFF_DATASETS to the folder above "
            "dreamrec/zhihu (default: ../shared/datasets)"
        )
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    statis = pd.read_pickle(root / "data_statis.df")
    n_items, length = int(statis["item_num"][0]), int(statis["seq_size"][0])
    train = load(root / "train_data.df")
    splits = {"valid": load(root / "val_data.df"), "test": load(root / "test_data.df")}
    seen = torch.cat([train[0][train[0] < n_items], train[2]])
    trained = torch.bincount(seen, minlength=n_items) > 0

    model = ReleasedDreamRec(n_items, 64, length, 0.1, args.denoiser)
    process = Process(args.steps, 1e-4, 0.02)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, eps=1e-8, weight_decay=0.0)
    rows = len(train[2])
    curve = []
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        for _ in range(rows // 256):
            idx = torch.randperm(rows)[:256]
            seq, seq_len, target = (part[idx] for part in train)
            x0 = model.items(target)
            c = model.guidance(seq, seq_len)
            c = torch.where(torch.rand(len(idx), 1) < 0.1, model.null.expand_as(c), c)
            t = torch.randint(0, process.steps, (len(idx),))
            loss = F.mse_loss(model(process.q_sample(x0, t), c, t), x0)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if epoch % args.eval_every == 0:
            if args.eval_dropout_off:
                model.eval()
            norms = model.items.weight[:n_items].norm(dim=1)
            point = {
                "epoch": epoch,
                "loss": loss.item(),
                "norm_trained": norms[trained].mean().item(),
                "norm_untrained": norms[~trained].mean().item(),
            }
            for name, split in splits.items():
                point[name] = evaluate(model, process, split, trained, args.w, 100)
            curve.append(point)
            print(
                f"epoch {epoch} loss {point['loss']:.4f} norms {point['norm_trained']:.2f}/"
                f"{point['norm_untrained']:.2f} valid HR@20 {pct(point['valid']['hr@20'])}% "
                f"(excl {pct(point['valid']['hr@20_untrained_excluded'])}%) test HR@20 "
                f"{pct(point['test']['hr@20'])}% (excl "
                f"{pct(point['test']['hr@20_untrained_excluded'])}%) untrained slots "
                f"{pct(point['test']['untrained_slots'])}% [{time.perf_counter() - start:.0f} s]",
                flush=True,
            )
    best = max(curve, key=lambda p: p["valid"]["hr@20"])
    table = markdown_table(
        [
            "epoch",
            "valid HR@20 %",
            "valid excl. %",
            "test HR@20 %",
            "test NDCG@20 %",
            "test excl. %",
            "test slots untrained %",
            "norm trained / untrained",
        ],
        [
            [
                p["epoch"],
                pct(p["valid"]["hr@20"]),
                pct(p["valid"]["hr@20_untrained_excluded"]),
                pct(p["test"]["hr@20"]),
                pct(p["test"]["ndcg@20"]),
                pct(p["test"]["hr@20_untrained_excluded"]),
                pct(p["test"]["untrained_slots"]),
                f"{p['norm_trained']:.2f} / {p['norm_untrained']:.2f}",
            ]
            for p in curve
        ],
    )
    name = f"dreamrec_released_loop_seed{args.seed}" + (f"_{args.name}" if args.name else "")
    result = {
        "args": vars(args),
        "curve": curve,
        "best_valid": best,
        "seconds": time.perf_counter() - start,
        **machine(args.threads),
    }
    write_results(name, result, table, args.results_dir)
    print("\n".join(table))


if __name__ == "__main__":
    main()
