"""``recdiff reproduce``: a paper's preset over seeds, recdiff's test metrics beside the paper's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from recdiff.cli.errors import check_device, check_extras, fail, stopped, user_errors
from recdiff.cli.options import SetOption
from recdiff.cli.results import metrics_table, selection_line
from recdiff.config import ConfigError, load_config

__all__ = ["PAPER_RESULTS", "reproduce"]


# The paper's numbers beside which `reproduce` prints recdiff's (PAPERS.md, Table 2 of DiffRec).
_DIFFREC_ML1M = {"recall@10": 0.1058, "recall@20": 0.1787, "ndcg@10": 0.0901, "ndcg@20": 0.1148}
_LDIFFREC_ML1M = {"recall@10": 0.1060, "recall@20": 0.1809, "ndcg@10": 0.0868, "ndcg@20": 0.1122}
# DreamRec's Table 2 (Zhihu, HR@20 / NDCG@20) for DreamRec and its SASRec baseline; most-popular
# from PAPERS.md.
PAPER_RESULTS = {
    "diffrec-ml1m": _DIFFREC_ML1M,
    "diffrec-ml1m-tuned": _DIFFREC_ML1M,
    "ldiffrec-ml1m": _LDIFFREC_ML1M,
    "ldiffrec-ml1m-tuned": _LDIFFREC_ML1M,
    "ldiffrec-ml1m-search": _LDIFFREC_ML1M,
    "dreamrec-zhihu": {"hit_rate@20": 0.0226, "ndcg@20": 0.0079},
    "dreamrec-zhihu-sasrec-items": {"hit_rate@20": 0.0226, "ndcg@20": 0.0079},
    "sasrec-zhihu": {"hit_rate@20": 0.0162, "ndcg@20": 0.0060},
    "mostpop-zhihu": {"hit_rate@20": 0.0143, "ndcg@20": 0.0054},
}
#: Where a reference row comes from when it is not the paper's own table.
_REFERENCE_LABEL = {"mostpop-zhihu": "PAPERS.md"}


def reproduce(
    preset: Annotated[str, typer.Argument(help="A paper preset, e.g. diffrec-ml1m.")],
    seeds: Annotated[
        int, typer.Option(min=1, help="Train with seeds 1..N; report mean ± std.")
    ] = 1,
    overrides: SetOption = None,
    runs_dir: Annotated[
        Path, typer.Option(help="Folder that receives the run directories.")
    ] = Path("runs"),
    quiet: Annotated[bool, typer.Option(help="No progress bars, no data line.")] = False,
) -> None:
    """Run a paper's setting (over seeds) and print recdiff's test metrics beside the paper's."""
    import numpy as np

    from recdiff.train.distributed import is_main_process

    if preset not in PAPER_RESULTS:
        fail(f"no paper numbers for {preset!r}; reproducible presets: {sorted(PAPER_RESULTS)}")
    if any(item.partition("=")[0].strip() == "train.seed" for item in overrides or []):
        # Each run's seed is its number: a train.seed given here would be silently replaced.
        fail(
            f"reproduce trains with train.seed 1 to --seeds (now {seeds}), so --set train.seed "
            "would be ignored: remove it (train one seed with `recdiff train PRESET --set "
            "train.seed=N`)"
        )
    with user_errors(ConfigError, FileNotFoundError, ValueError):
        preset_config = load_config(preset, [])
        config = load_config(preset, list(overrides or []))
    # Checked before training: a metric the runs do not compute cannot stand beside the paper's.
    paper = {m: v for m, v in PAPER_RESULTS[preset].items() if _computes(config, m)}
    if not paper:
        fail(
            f"eval.metrics {config.eval.metrics} at eval.ks {config.eval.ks} compute none of "
            f"the paper's metrics ({', '.join(PAPER_RESULTS[preset])}): keep their cut-offs in "
            "eval.ks and their names in eval.metrics"
        )
    notes = _reproduce_notes(preset, preset_config, config, paper)
    tests = []
    for seed in range(1, seeds + 1):
        done = {1: "no run was written", 2: "seed 1 is a complete run"}.get(
            seed, f"seeds 1-{seed - 1} are complete runs"
        )
        try:
            with user_errors(ConfigError, FileNotFoundError, ValueError):
                config = load_config(preset, [*(overrides or []), f"train.seed={seed}"])
                check_device(config.train.device)
                check_extras(config)
            result = _seed_run(config, runs_dir, quiet, f"seed {seed} of {seeds}", done)
        except (KeyboardInterrupt, SystemExit) as stop:
            stopped(stop, f"{done} (in {runs_dir})", during=f" during seed {seed}")
        tests.append(result.metrics["test"])
        if is_main_process():  # under torchrun every rank trains; rank 0 reports
            typer.echo(f"seed {seed}: {selection_line(result.metrics)}, run {result.directory}")
    if not is_main_process():
        return
    mean = {m: float(np.mean([t[m] for t in tests])) for m in paper}
    rows = {_REFERENCE_LABEL.get(preset, "paper"): paper, f"recdiff (n={seeds})": mean}
    if seeds > 1:  # one table, so the std row keeps the columns of the labels above it
        rows["std"] = {m: float(np.std([t[m] for t in tests], ddof=1)) for m in paper}
    typer.echo(metrics_table(rows, list(paper)))
    for note in notes:
        typer.echo(f"note: {note}", err=True)


def _seed_run(config, runs_dir: Path, quiet: bool, which: str, done: str):
    """One seed's run. A user's error in a later seed (it diverged, the disk filled up) names
    the seed and the runs the earlier seeds left, as an interruption does."""
    from recdiff.cli.errors import describe
    from recdiff.train.run import run_training

    try:
        return run_training(config, runs_dir, progress=not quiet)
    except Exception as error:
        message = describe(error, (ConfigError, FileNotFoundError, ValueError))
        if message is None:
            raise
        if config.train.seed > 1:
            message = f"{which} failed: {message}; {done} (in {runs_dir})"
        fail(message)


def _computes(config, metric: str) -> bool:
    """Whether runs with ``config`` report ``metric`` (e.g. ``recall@10``)."""
    name, _, k = metric.partition("@")
    return name in config.eval.metrics and int(k) in config.eval.ks


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _reproduce_notes(preset: str, preset_config, config, shown: dict[str, float]) -> list[str]:
    """What makes the paper's row and recdiff's differ in kind rather than in result: paper
    metrics the overrides left uncomputed, and overridden data or evaluation settings (the
    paper's numbers are for the preset's data, ranked and averaged as the preset does)."""
    from recdiff.experiments.comparable import data_section, is_next_item

    notes = []
    missing = [m for m in PAPER_RESULTS[preset] if m not in shown]
    if missing:
        notes.append(
            f"the paper's {_and(missing)} {'is' if len(missing) == 1 else 'are'} not shown: "
            f"eval.ks {config.eval.ks} and eval.metrics {config.eval.metrics} do not "
            "compute them"
        )

    def shown_value(value) -> str:
        return value if isinstance(value, str) else json.dumps(value)

    before, after = preset_config.model_dump(mode="json"), config.model_dump(mode="json")
    # The data settings that either config's format reads, as each config holds them: a setting
    # the preset's format ignores (a DiffRec folder's data.seed) is left out of its
    # data_section, which would make it look changed from null.
    read = dict.fromkeys([*data_section(before), *data_section(after)])
    sections = {"data": tuple({key: c["data"].get(key) for key in read} for c in (before, after))}
    protocol = ["averaging", *(["exclude_history"] if is_next_item(after) else [])]
    sections["eval"] = tuple({key: c["eval"][key] for key in protocol} for c in (before, after))
    changed = [
        f"{section}.{key}={shown_value(new.get(key))} (preset {shown_value(old.get(key))})"
        for section, (old, new) in sections.items()
        for key in dict.fromkeys([*old, *new])
        if old.get(key) != new.get(key)
    ]
    if changed:
        notes.append(
            f"these runs use {', '.join(changed)}: the paper's row is for the preset's data "
            "and evaluation, not a like-for-like comparison"
        )
    return notes
