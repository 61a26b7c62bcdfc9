"""DreamRec with a history encoder built the way the released code builds its own (an experiment).

recdiff's DreamRec encodes histories with a pre-norm ``nn.TransformerEncoderLayer`` (GELU), learned
positions anchored at the newest item and initialised N(0, 1/dim), and a null guidance vector
N(0, 1/dim). The released DreamRec code, read for facts, differs:

- the attention's residual adds the layer-normalised input, not the raw embeddings;
- a post-norm ReLU feed-forward with its own LayerNorm follows, then a final LayerNorm;
- positions count from the oldest item (its histories are right-padded) and are initialised
  N(0, 1) like the items;
- the null embedding is initialised N(0, 1).

This swaps in an encoder with those traits (written here, not taken from that code) and trains
DreamRec with the preset's other settings, ranking with never-trained items excluded so that
validation measures what was learned (see ``untrained_items.py``). It exists to test whether
the encoder explains the gap to the paper; it is not a library option.

Run from the repository root (needs ../shared/datasets or $RECDIFF_DATASETS)::

    python3 benchmarks/dreamrec_released_encoder.py [--set "model.hidden_dims=[128]"] [--epochs 30]

(The preset's denoiser is one linear layer with the released step MLP since 2026-11-28; the
results in docs/results.md labelled MLP [128] were measured with ``--set "model.hidden_dims=[128]"
--set model.time_mlp=false``, the defaults then.)

Writes ``benchmarks/results/dreamrec_released_encoder[_NAME].json`` and ``.md`` (``--results-dir``
changes the folder).
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F
from _common import (
    add_results_dir,
    check_model_kind,
    load_config_or_exit,
    machine,
    markdown_table,
    pct,
    positive_int,
    write_results,
)
from torch import nn


class ReleasedStyleEncoder(nn.Module):
    """One causal self-attention block with the released code's normalisation and residuals.

    Takes left-padded ``[batch, L]`` histories (pad id ``n_items``) like
    :class:`recdiff.nn.HistoryEncoder` and returns the state at the newest item.
    """

    def __init__(self, n_items: int, dim: int, max_len: int, dropout: float) -> None:
        super().__init__()
        self.n_items, self.dim, self.pad_id = n_items, dim, n_items
        self.item_embedding = nn.Embedding(n_items + 1, dim)
        self.position_embedding = nn.Embedding(max_len, dim)
        nn.init.normal_(self.item_embedding.weight, std=1.0)
        nn.init.normal_(self.position_embedding.weight, std=1.0)
        self.dropout = nn.Dropout(dropout)
        self.norm_query, self.norm_ff, self.norm_out = (nn.LayerNorm(dim) for _ in range(3))
        self.query, self.key, self.value = (nn.Linear(dim, dim) for _ in range(3))
        self.attention_dropout = nn.Dropout(dropout)
        self.ff_in, self.ff_out = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.ff_norm, self.ff_dropout = nn.LayerNorm(dim), nn.Dropout(dropout)

    @property
    def items(self) -> torch.Tensor:
        return self.item_embedding.weight[: self.n_items]

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        length = history.shape[1]
        real = history != self.pad_id
        pads = (~real).sum(dim=1, keepdim=True)
        positions = (torch.arange(length, device=history.device) - pads).clamp(min=0)
        x = self.item_embedding(history) + self.position_embedding(positions)
        x = self.dropout(x) * real.unsqueeze(-1)
        queries = self.norm_query(x)
        scores = self.query(queries) @ self.key(x).transpose(1, 2) / math.sqrt(self.dim)
        causal = torch.ones(length, length, dtype=torch.bool, device=x.device).tril()
        scores = scores.masked_fill(
            ~(real[:, None, :] & causal), -1e9
        )  # finite: pad rows stay defined
        weights = self.attention_dropout(scores.softmax(dim=-1) * real.unsqueeze(-1))
        attended = self.norm_ff(weights @ self.value(x) + queries)
        hidden = self.ff_out(F.relu(self.ff_in(attended)))
        block = self.ff_norm(self.ff_dropout(hidden) + attended) * real.unsqueeze(-1)
        return self.norm_out(block)[:, -1]


def settings_for(overrides: list[str], epochs: int) -> list[str]:
    """The preset's overrides: ``epochs`` with patience to match (every evaluation counts),
    never-trained items excluded from ranking, then the user's ``overrides``."""
    return [
        f"train.epochs={epochs}",
        f"train.patience={epochs}",
        "train.progress=false",
        "model.exclude_untrained_items=true",
        *overrides,
    ]


def run(preset: str, overrides: list[str], epochs: int) -> dict:
    from recdiff.config import load_config
    from recdiff.models.dreamrec import DreamRec
    from recdiff.models.dreamrec_config import DreamRecConfig
    from recdiff.train.datasets import load_sequences
    from recdiff.train.run_sequential import evaluate_sequential

    class WithReleasedEncoder(DreamRec):
        def _build_net(self, n_items: int, max_len: int) -> nn.Module:
            net = super()._build_net(n_items, max_len)
            dim = self.config.dim
            net.encoder = ReleasedStyleEncoder(n_items, dim, max_len, self.config.dropout)
            net.null = nn.Parameter(torch.randn(dim))
            return net

    settings = settings_for(overrides, epochs)
    config = load_config(preset, settings)
    model_config = DreamRecConfig(**config.model.params())
    if model_config.item_space.source != "learned":
        raise SystemExit(
            "error: this benchmark swaps in its own history encoder and item table; "
            "model.item_space.source must stay learned"
        )
    data = load_sequences(config.data)[0].with_layout("left")
    model = WithReleasedEncoder(model_config, config.train)
    metric = config.train.metric
    curve: list[dict] = []
    epochs_seen: list[int] = []

    def evaluate(_score) -> dict:
        valid = evaluate_sequential(model, data, config, ("valid",))["valid"].means
        curve.append({"epoch": epochs_seen[-1], "valid": valid[metric]})
        print(f"epoch {epochs_seen[-1]}: valid {metric} {pct(valid[metric])}%", flush=True)
        return {"valid": valid}

    def on_event(record: dict) -> None:
        if record.get("event") == "epoch":
            epochs_seen.append(int(record["epoch"]))

    start = time.perf_counter()
    model.fit(data, evaluate=evaluate, on_event=on_event)
    final = evaluate_sequential(model, data, config)
    return {
        "preset": preset,
        "settings": settings,
        "curve": curve,
        "best_epoch": model.result.best_epoch,
        "valid": final["valid"].means,
        "test": final["test"].means,
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--preset",
        default="dreamrec-zhihu",
        help="DreamRec preset or YAML file whose other settings are kept (default: dreamrec-zhihu)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help='config override, repeatable (e.g. "model.hidden_dims=[128]")',
    )
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=30,
        help="training epochs; patience is set to match, so the best of all evaluations is kept",
    )
    parser.add_argument("--threads", type=positive_int, default=1, help="torch intra-op threads")
    parser.add_argument("--name", default="", help="suffix of the results file name")
    add_results_dir(parser)
    args = parser.parse_args()
    # The kind first: the DreamRec settings added to the preset would fail on another model.
    config = load_config_or_exit(parser, args.preset, args.overrides)
    check_model_kind(parser, config.model.name, "preset", args.preset, dreamrec_only=True)
    load_config_or_exit(parser, args.preset, settings_for(args.overrides, args.epochs))
    torch.set_num_threads(args.threads)
    result = run(args.preset, args.overrides, args.epochs)
    table = markdown_table(
        [
            "settings",
            "valid HR@20 % over evaluations",
            "best epoch",
            "test HR@20 %",
            "test NDCG@20 %",
        ],
        [
            [
                " ".join(args.overrides) or "preset",
                " / ".join(pct(p["valid"]) for p in result["curve"]),
                result["best_epoch"],
                pct(result["test"]["hit_rate@20"]),
                pct(result["test"]["ndcg@20"]),
            ]
        ],
    )
    name = "dreamrec_released_encoder" + (f"_{args.name}" if args.name else "")
    write_results(name, {**result, **machine(args.threads)}, table, args.results_dir)
    print("\n".join(table))


if __name__ == "__main__":
    main()
