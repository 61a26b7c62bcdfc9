"""The ``recdiff`` command. Thin: it parses arguments and calls the library."""

from __future__ import annotations

import inspect
import os
import time
import warnings
from pathlib import Path
from typing import Annotated

import typer

import recdiff
from recdiff.cli.experiments import register as register_experiment_commands
from recdiff.cli.runs import register as register_run_commands
from recdiff.cli.serve import register as register_serve_commands

app = typer.Typer(
    name="recdiff",
    help="Diffusion-model recommenders (DiffRec, DreamRec) on a clean DDPM core.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(recdiff.__version__)
        raise typer.Exit()


@app.callback()
def _everywhere(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the recdiff version and exit (as `recdiff version`).",
        ),
    ] = False,
) -> None:
    # A user reads a warning as a line of advice, not as Python's file:line and source code.
    warnings.formatwarning = _warning_line
    # Under torchrun every process meets the same warnings; rank 0 alone says them, as it alone
    # prints the results. (Errors still come from the process that has them.)
    # A stray RANK without a WORLD_SIZE above 1 is no torchrun job: its warnings are shown.
    other_rank = os.environ.get("RANK", "0").strip() not in ("", "0")
    if other_rank and os.environ.get("WORLD_SIZE", "1").strip() not in ("", "1"):
        warnings.simplefilter("ignore")


def _warning_line(message, category, filename, lineno, line=None) -> str:
    kind = "" if category is UserWarning else f" ({category.__name__})"
    return f"warning{kind}: {message}\n"


demo_app = typer.Typer(help="Small demonstrations that run on any machine, no downloads.")
app.add_typer(demo_app, name="demo")
register_run_commands(app)
register_serve_commands(app)
register_experiment_commands(app)


@app.command()
def version() -> None:
    """Print the recdiff version."""
    typer.echo(recdiff.__version__)


@demo_app.command("ddpm")
def demo_ddpm(
    out: Annotated[Path, typer.Option(help="Where to write the PNG.")] = Path("ddpm.png"),
    dataset: Annotated[str, typer.Option(help="Toy distribution: mixture or moons.")] = "mixture",
    prediction: Annotated[str, typer.Option(help="Denoiser target: eps, x0 or v.")] = "eps",
    iterations: Annotated[int, typer.Option(min=1, help="Training iterations.")] = 4000,
    steps: Annotated[
        int,
        # the toy's betas scale as 1000 / T: beta_T = 20 / T reaches 1 below 21 steps
        typer.Option(min=21, help="Diffusion steps T (at least 21)."),
    ] = 100,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Train a 2-D DDPM and draw the forward (data -> noise) and reverse (noise -> data) processes."""
    import torch

    from recdiff.diffusion import Prediction
    from recdiff.toy import TOY_DATASETS, ToyConfig, energy_distance, train_toy
    from recdiff.toy.plot import plot_forward_reverse

    if dataset not in TOY_DATASETS:
        raise typer.BadParameter(f"choose one of {sorted(TOY_DATASETS)}", param_hint="--dataset")
    try:
        target = Prediction(prediction)
    except ValueError:
        raise typer.BadParameter("choose eps, x0 or v", param_hint="--prediction") from None
    if out.suffix.lower() not in {".png", ".pdf", ".svg"}:
        raise typer.BadParameter("the file must end in .png, .pdf or .svg", param_hint="--out")
    # A 2-D model gains nothing from intra-op threads, and spinning threads stall badly when the
    # machine is busy (measured: 6 s alone, over 300 s beside another 2-thread job).
    torch.set_num_threads(1)
    start = time.perf_counter()
    config = ToyConfig(
        dataset=dataset, prediction=target, iterations=iterations, steps=steps, seed=seed
    )
    model = train_toy(config)
    held_out = TOY_DATASETS[dataset](2000, torch.Generator().manual_seed(seed + 12345))
    prior = energy_distance(
        torch.randn(2000, 2, generator=torch.Generator().manual_seed(seed)), held_out
    )
    typer.echo(
        f"trained {iterations} iterations in {model.seconds:.1f} s; "
        f"held-out NLL bound {model.nll_curve[0][1]:.2f} -> {model.nll_curve[-1][1]:.2f} nats"
    )
    typer.echo(f"energy distance to held-out data: N(0, I) prior {prior:.4f}")
    for kind, n_steps in [("ddpm", None), ("ddim", None), ("ddim", 20)]:
        samples = model.sample(2000, kind, n_steps, seed=seed)
        label = f"{kind} ({n_steps or steps} steps)"
        typer.echo(f"  {label:<18} {energy_distance(samples, held_out):.4f}")
    plot_forward_reverse(model, out, seed=seed)
    typer.echo(f"wrote {out} in {time.perf_counter() - start:.1f} s total")


def _unwrap(doc: str) -> str:
    """A docstring with each paragraph on one line: typer's help keeps the source's line breaks
    inside paragraphs after the first, which then break mid-sentence beside the terminal's own."""
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(" ".join(p.split("\n")) for p in paragraphs)


for _info in (*app.registered_commands, *demo_app.registered_commands):
    if _info.help is None and _info.callback is not None and _info.callback.__doc__:
        _info.help = _unwrap(_info.callback.__doc__)


def main() -> None:  # pragma: no cover - the console script calls ``app`` directly
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
