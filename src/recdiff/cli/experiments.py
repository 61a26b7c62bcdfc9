"""``recdiff tune | experiment``: hyper-parameter search and multi-seed comparisons."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from recdiff.atomic import sigterm_unwinds
from recdiff.cli.errors import check_device, check_extras, fail, stopped, user_errors
from recdiff.cli.options import SetOption
from recdiff.config import ConfigError, load_config

__all__ = ["register"]


#: What an interrupted search or experiment leaves to do.
_AGAIN = "run the same command again to continue where it stopped"


def tune(
    config: Annotated[str, typer.Argument(help="The base config: a preset name or a YAML file.")],
    space: Annotated[
        str, typer.Option(help="A shipped search space (e.g. diffrec-paper) or a YAML file.")
    ],
    trials: Annotated[
        int,
        typer.Option(
            min=1, help="Finished (completed, pruned or diverged) trials the study should hold."
        ),
    ] = 20,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default: tuning/<config name>).")
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(
            help="Validation metric to maximise, e.g. valid/recall@20 (default: the config's "
            "train.metric); each trial's run selects its epoch on it too."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sampler.")] = 0,
    timeout: Annotated[
        float | None,
        typer.Option(min=1, help="Start no new trial after this many seconds of this call."),
    ] = None,
    prune: Annotated[
        bool, typer.Option(help="Stop trials below the median of earlier ones at the same epoch.")
    ] = True,
    warmup_epochs: Annotated[
        int, typer.Option(min=0, help="Epochs of a trial before it may be pruned.")
    ] = 0,
    jobs: Annotated[
        int,
        typer.Option(
            min=1,
            help="Trials run at once (processes, each with its share of the CPU threads and "
            "its own sampler seed).",
        ),
    ] = 1,
    overrides: SetOption = None,
) -> None:
    """Search hyper-parameters with Optuna, selected on validation; writes OUT/best.yaml.

    The study lives in OUT/study.db: the same command run again continues it (a larger
    --trials extends it).
    """
    from recdiff.experiments.space import load_space
    from recdiff.experiments.tune import import_optuna
    from recdiff.experiments.tune import tune as run_search
    from recdiff.experiments.tune_outputs import finished_trials

    sets = list(overrides or [])
    try:
        with sigterm_unwinds(), user_errors(ConfigError, FileNotFoundError, ValueError):
            base = load_config(config, sets)
            check_device(base.train.device)
            check_extras(base)
            import_optuna()  # without the tune extra: fail before announcing a study
            metric = metric or f"valid/{base.train.metric}"
            search_space = load_space(space)
            folder = out or Path("tuning") / base.name
            command = shlex.join(
                ["recdiff", "tune", config, "--space", space, "--metric", metric]
                + ["--seed", str(seed)]
                + [part for item in sets for part in ("--set", item)]
            )
            typer.echo(
                f"searching {len(search_space.params)} settings; study {folder / 'study.db'}"
            )
            result = run_search(
                base,
                search_space,
                trials,
                folder,
                metric=metric,
                seed=seed,
                timeout=timeout,
                prune=prune,
                warmup_epochs=warmup_epochs,
                report=typer.echo,
                command=command,
                jobs=jobs,
            )
    except (KeyboardInterrupt, SystemExit) as stop:
        stopped(stop, _AGAIN)
    counts = result.counts
    typer.echo(
        f"study {folder / 'study.db'}: {counts['complete']} complete, {counts['pruned']} pruned, "
        f"{counts['invalid']} invalid (skipped)"
        + (f", {counts['diverged']} diverged" if counts["diverged"] else "")
        + (f", {counts['fail']} failed" if counts["fail"] else "")
        + (f", {counts['running']} left running" if counts["running"] else "")
    )
    finished = finished_trials(counts)
    if timeout is not None and finished < trials:
        typer.echo(
            f"--timeout {timeout:g} s reached: {finished} of the {trials} trials finished; {_AGAIN}"
        )
    typer.echo(f"trials: {result.trials_path}")
    if result.best_number is None:
        typer.echo("no trial completed yet: nothing to select")
        return
    typer.echo(f"best trial {result.best_number}: valid/{result.metric} {result.best_value:.4f}")
    for key, value in (result.best_settings or {}).items():
        typer.echo(f"  {key} = {value}")
    typer.echo(f"best config: {result.best_path}")
    # best.yaml holds the --set overrides already; the base config needs them (scoped to it) to
    # run on the same data, else the comparison would be with the preset's own setting.
    scoped = [part for item in sets for part in ("--set", f"{config}:{item}")]
    if result.metric != base.train.metric:  # --metric: best.yaml selects on it, so must the base
        scoped += ["--set", f"{config}:train.metric={result.metric}"]
    next_command = ["recdiff", "experiment", str(result.best_path), config, "--seeds", "5"]
    typer.echo(f"next: {shlex.join(next_command + scoped)}")


def _bare_key(item: str) -> str:
    """The setting an ``--set [CONFIG:]key=value`` entry names, without its config."""
    return item.partition("=")[0].rpartition(":")[2].strip()


def overrides_for(config: str, overrides: list[str], configs: list[str]) -> list[str]:
    """The ``--set`` entries that apply to ``config``: unscoped ones, and ``CONFIG:key=value``
    ones whose CONFIG is ``config``. A scope that names none of ``configs`` is an error."""
    chosen = []
    for item in overrides:
        key, sep, value = item.partition("=")
        scope, colon, bare = key.rpartition(":")  # values may hold ':' (datasets:...), keys not
        if not colon:
            chosen.append(item)
            continue
        if scope not in configs:
            raise ConfigError(
                f"--set {item!r}: {scope!r} is not one of the configs compared "
                f"({', '.join(configs)}); write it as given on the command line"
            )
        if scope == config:
            chosen.append(f"{bare}{sep}{value}")
    return chosen


def experiment(
    configs: Annotated[
        list[str], typer.Argument(help="Presets or YAML files to compare (baselines included).")
    ],
    seeds: Annotated[int, typer.Option(min=1, help="Train each config with seeds 1..N.")] = 5,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default: experiments/<config names>).")
    ] = None,
    overrides: SetOption = None,
    jobs: Annotated[int, typer.Option(min=1, help="Runs trained at once (processes).")] = 1,
    metric: Annotated[
        str | None,
        typer.Option(
            help="Picks on validation the best baseline of each group of configs on the same "
            "data, and is tested per user on test (default: the first config's train.metric, "
            "e.g. recall@20)."
        ),
    ] = None,
    test: Annotated[str, typer.Option(help="Paired test: wilcoxon or ttest.")] = "wilcoxon",
    quiet: Annotated[bool, typer.Option(help="No progress bars, no data line.")] = False,
) -> None:
    """Train configs over seeds; write OUT/results.csv and OUT/results.md (mean ± std, p-values).

    Each config is tested against the best baseline (on validation) among the configs on the
    same data under the same protocol; one with no such baseline is named with the reason.

    --set applies to every config; --set CONFIG:key=value to the config named CONFIG only (as
    given here), e.g. a setting that only one model has. Run again to continue an interrupted
    experiment.
    """
    from recdiff.experiments.experiment import label_configs, run_experiment

    if test not in ("wilcoxon", "ttest"):
        fail(f"--test must be wilcoxon or ttest, got {test!r}")
    seeded = [item for item in overrides or [] if _bare_key(item) == "train.seed"]
    if seeded:
        # Each run's seed is its number: a train.seed given here would be silently replaced.
        fail(
            f"--set {seeded[0]!r}: experiment trains each config with train.seed 1 to --seeds "
            f"(now {seeds}), so train.seed would be ignored: remove it (train one seed with "
            "`recdiff train CONFIG --set train.seed=N`)"
        )
    if metric and metric.startswith("test/"):
        # Not "not computed": it is; but test values must not choose the baseline.
        fail(
            f"--metric {metric}: give the metric alone, e.g. --metric {metric[len('test/') :]}; "
            "the best baseline is chosen on its validation value and tested on its test value"
        )
    try:
        with sigterm_unwinds(), user_errors(ConfigError, FileNotFoundError, ValueError):
            loaded = [load_config(c, overrides_for(c, overrides or [], configs)) for c in configs]
            for run_config in loaded:
                check_device(run_config.train.device)
                check_extras(run_config)
            labels = [label for label, _ in label_configs(loaded)]
            folder = out or Path("experiments") / "_".join(labels)[:100]
            result = run_experiment(
                loaded,
                seeds,
                folder,
                jobs=jobs,
                metric=metric.removeprefix("valid/") if metric else None,
                test=test,
                progress=not quiet,
                report=typer.echo,
            )
    except (KeyboardInterrupt, SystemExit) as stop:
        stopped(stop, _AGAIN)
    from recdiff.train.distributed import is_main_process

    if not is_main_process():  # under torchrun every rank trains; rank 0 writes and reports
        return
    typer.echo("")
    typer.echo(result.markdown)
    typer.echo(f"wrote {result.csv_path} and {result.md_path}")


def register(app: typer.Typer) -> None:
    for command in (tune, experiment):
        app.command()(command)
