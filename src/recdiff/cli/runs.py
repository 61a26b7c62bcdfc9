"""``recdiff train | evaluate | recommend | reproduce | presets``: thin wrappers over the library."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from recdiff.cli.errors import check_device, check_extras, fail, stopped, user_errors
from recdiff.cli.options import (
    CandidatesOption,
    ExcludeItemsOption,
    SetOption,
    item_rules,
    top_k_option,
)
from recdiff.cli.serve import IndexKind, IndexOption, load_with_index
from recdiff.config import ConfigError, list_presets, load_config

__all__ = ["register"]


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
    "dreamrec-zhihu": {"hit_rate@20": 0.0226, "ndcg@20": 0.0079},
    "dreamrec-zhihu-sasrec-items": {"hit_rate@20": 0.0226, "ndcg@20": 0.0079},
    "sasrec-zhihu": {"hit_rate@20": 0.0162, "ndcg@20": 0.0060},
    "mostpop-zhihu": {"hit_rate@20": 0.0143, "ndcg@20": 0.0054},
}
#: Where a reference row comes from when it is not the paper's own table.
_REFERENCE_LABEL = {"mostpop-zhihu": "PAPERS.md"}


def _table(rows: dict[str, dict[str, float]], metrics: list[str]) -> str:
    width = max([14, *(len(label) + 1 for label in rows)])  # labels whole ("recdiff (n=100)")
    header = f"{'':<{width}}" + "".join(f"{m:>13}" for m in metrics)
    lines = [header]
    for label, values in rows.items():
        cells = "".join(f"{values[m]:>13.4f}" if m in values else f"{'-':>13}" for m in metrics)
        lines.append(f"{label:<{width}}{cells}")
    return "\n".join(lines)


def train(
    config: Annotated[
        str, typer.Argument(help="A preset name (see `recdiff presets`) or a YAML file.")
    ],
    overrides: SetOption = None,
    runs_dir: Annotated[Path, typer.Option(help="Folder that receives the run directory.")] = Path(
        "runs"
    ),
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Train a model, select its epoch on validation, evaluate on test, write a run directory."""
    from recdiff.train.run import run_training

    run_config = None
    try:
        with user_errors(ConfigError, FileNotFoundError, ValueError):
            run_config = load_config(config, overrides or [])
            check_device(run_config.train.device)
            check_extras(run_config)
            result = run_training(run_config, runs_dir, progress=not quiet)
    except (KeyboardInterrupt, SystemExit) as stop:
        every = run_config.train.checkpoint_every if run_config is not None else None
        if every:
            _stopped_run(
                stop,
                "no run was written: it stopped before its first resume checkpoint "
                f"(train.checkpoint_every={every}: one every {every} epoch(s) of each stage)",
            )
        _stopped_run(
            stop,
            "no run was written (a run folder appears only when complete; set "
            "train.checkpoint_every to make an interrupted run resumable)",
        )
    _report_run(result, run_config)


def resume(
    run: Annotated[
        Path,
        typer.Argument(
            help="The run folder an interrupted `recdiff train` named (runs/NAME-STAMP)."
        ),
    ],
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Continue a run interrupted after a resume checkpoint (train.checkpoint_every) to the
    result it would have had."""
    from recdiff.train.folders import resumable_run
    from recdiff.train.run import resume_training

    try:
        again = f"resume it again: recdiff resume {run}"
        with user_errors(ConfigError, FileNotFoundError, ValueError, retry=again):
            _, work = resumable_run(run)
            run_config = load_config(str(work / "config.yaml"))
            check_device(
                run_config.train.device,
                fix="resume it on a machine that has it (the run keeps the device it started on)",
            )
            check_extras(run_config)
            result = resume_training(run, progress=not quiet)
    except (KeyboardInterrupt, SystemExit) as stop:
        _stopped_run(stop, f"the run was not resumed; resume it with: recdiff resume {run}")
    _report_run(result)


def _stopped_run(stop: KeyboardInterrupt | SystemExit, otherwise: str) -> NoReturn:
    """Name the run to resume when the interruption left it resumable, else say ``otherwise``."""
    from recdiff.train.run import resumable_from

    run = resumable_from(stop)
    if run is not None:
        stopped(stop, f"resume the run with: recdiff resume {run}")
    stopped(stop, otherwise)


def _report_run(result, run_config=None) -> None:
    """The table of a finished run's metrics, what was selected, and where it was written."""
    from recdiff.train.distributed import is_main_process

    if not is_main_process():  # under torchrun every rank returns; rank 0 reports
        return
    if run_config is None:
        run_config = load_config(str(result.directory / "config.yaml"))
    metrics = result.metrics
    shown = [f"{m}@{k}" for m in run_config.eval.metrics[:2] for k in run_config.eval.ks]
    typer.echo(_table({"valid": metrics["valid"], "test": metrics["test"]}, shown))
    typer.echo(f"{_selection_line(metrics)}, {metrics['seconds']['total']:.1f} s")
    typer.echo(f"run: {result.directory}")
    note = _averaging_note(metrics, run_config.train.metric)
    if note:
        typer.echo(f"note: {note}", err=True)


def _selection_line(metrics: dict) -> str:
    """What validation chose: the epoch, or a setting for models without epochs (EASE); for a
    training loop that never validated, which weights it kept instead."""
    if metrics.get("best_epoch") is not None and metrics.get("validated") is False:
        last = metrics.get("epochs_run", metrics["best_epoch"])
        kept = "moving average of the weights" if metrics.get("weight_average") else "weights"
        return f"no validation ran: kept the {kept} of the last epoch ({last})"
    if metrics.get("best_epoch") is not None:
        return f"best epoch {metrics['best_epoch']}"
    chosen = ", ".join(f"{key} {value:g}" for key, value in metrics.get("selected", {}).items())
    return f"chosen on validation: {chosen}" if chosen else "no training loop"


def _averaging_note(metrics: dict, metric: str) -> str | None:
    """When all-users averaging counts users without test items as 0, say how many and what
    the users with test items score."""
    data = metrics.get("data", {})
    users, tested = data.get("n_users"), data.get("test_users")
    if metrics.get("averaging") != "all_users" or users is None or tested is None:
        return None
    if tested == users:
        return None
    value = metrics["by_averaging"]["test_users"]["test"].get(metric)
    over = f": test {metric} {value:.4f}" if value is not None else ""
    return (
        f"only {tested} of {users} users have test items; eval.averaging=all_users (the DiffRec "
        f"paper's protocol) counts the others as 0. Over the users with test items{over} "
        "(eval.averaging=test_users)"
    )


def evaluate(
    run: Annotated[Path, typer.Argument(help="A run directory written by `recdiff train`.")],
    averaging: Annotated[
        str | None,
        typer.Option(help="all_users or test_users (default: as the run's eval.averaging)."),
    ] = None,
    exclude_history: Annotated[
        bool | None,
        typer.Option(
            "--exclude-history/--keep-history",
            help="Next-item runs: mask (or rank) the items each user had before the target "
            "(default: as the run's eval.exclude_history).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Re-evaluate a saved run's model on its data (valid and test) and print the metrics."""
    from recdiff.serving.predictor import Predictor

    with user_errors(FileNotFoundError, ValueError, run=run):
        predictor = Predictor.load(run)
        averaging = averaging or predictor.config.eval.averaging
        results = predictor.evaluate(averaging=averaging, exclude_history=exclude_history)
    metrics = sorted({name for r in results.values() for name in r})
    typer.echo(_table(results, metrics))
    from recdiff.serving.sequence_predictor import SequencePredictor

    if isinstance(predictor, SequencePredictor):  # one target an example: averagings agree
        typer.echo("averaging: over examples, one target each")
    else:
        typer.echo(f"averaging: {averaging}")


def recommend(
    run: Annotated[Path, typer.Argument(help="A run directory written by `recdiff train`.")],
    user: Annotated[str | None, typer.Option(help="A known user's external id.")] = None,
    history: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated external item ids of a new user, oldest first (an id holding "
            "a comma in double quotes, as in CSV: '\"a,b\",c')."
        ),
    ] = None,
    k: top_k_option("How many items.", 10) = None,
    ignore_unknown: Annotated[
        bool, typer.Option(help="Drop unknown items from --history.")
    ] = False,
    include_seen: Annotated[
        bool, typer.Option("--include-seen", help="Also recommend items the user already has.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    index: IndexOption = IndexKind.exact,
    exclude_items: ExcludeItemsOption = None,
    candidates: CandidatesOption = None,
) -> None:
    """Top-k items for a known user (--user) or a new user's history (--history).

    Ids lose surrounding whitespace. Fewer than k items come back when fewer can be recommended
    (e.g. the history holds every catalogue item); a note on stderr (in --json: "note") says why.
    """
    from recdiff.data.errors import UnknownIdError
    from recdiff.serving.ids import split_id_list

    if (user is None) == (history is None):
        fail("give exactly one of --user ID or --history ITEM,ITEM,...")
    seen_remedy = "pass --include-seen"
    with user_errors(FileNotFoundError, KeyError, ValueError, ImportError, run=run):
        rules = item_rules(exclude_items, candidates)
        predictor = load_with_index(run, index)
        if user is not None:
            try:
                recs = predictor.recommend(
                    user=predictor.parse_user(user),
                    k=k,
                    exclude_seen=not include_seen,
                    seen_remedy=seen_remedy,
                    **rules,
                )
            except UnknownIdError:
                raise ValueError(
                    f"user {user!r} is not among the {len(predictor.users)} users of this model; "
                    "check the id (the raw data's user ids), or recommend from their items "
                    "instead: --history ITEM,ITEM,..."
                ) from None
        else:
            recs = predictor.recommend(
                history=split_id_list(history, "--history"),
                k=k,
                exclude_seen=not include_seen,
                ignore_unknown=ignore_unknown,
                seen_remedy=seen_remedy,
                **rules,
            )
    if as_json:
        typer.echo(json.dumps(recs.to_dict()))
        return
    for rank, (item, score) in enumerate(zip(recs.items, recs.scores, strict=True), start=1):
        typer.echo(f"{rank:>3}  {item!s:<12} {score:.4f}")
    if recs.note is not None:
        typer.echo(f"note: {recs.note}", err=True)


def reproduce(
    preset: Annotated[str, typer.Argument(help="A paper preset, e.g. diffrec-ml1m.")],
    seeds: Annotated[
        int, typer.Option(min=1, help="Train with seeds 1..N; report mean ± std.")
    ] = 1,
    overrides: SetOption = None,
    runs_dir: Annotated[
        Path, typer.Option(help="Folder that receives the run directories.")
    ] = Path("runs"),
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
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
            typer.echo(f"seed {seed}: {_selection_line(result.metrics)}, run {result.directory}")
    if not is_main_process():
        return
    mean = {m: float(np.mean([t[m] for t in tests])) for m in paper}
    rows = {_REFERENCE_LABEL.get(preset, "paper"): paper, f"recdiff (n={seeds})": mean}
    if seeds > 1:  # one table, so the std row keeps the columns of the labels above it
        rows["std"] = {m: float(np.std([t[m] for t in tests], ddof=1)) for m in paper}
    typer.echo(_table(rows, list(paper)))
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


def presets() -> None:
    """List the shipped presets."""
    for name in list_presets():
        typer.echo(name)


def register(app: typer.Typer) -> None:
    for command in (train, resume, evaluate, recommend, reproduce, presets):
        app.command()(command)
