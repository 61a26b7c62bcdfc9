"""``recdiff train | resume | evaluate | recommend | presets`` (and ``reproduce``, from
:mod:`recdiff.cli.reproduce`): thin wrappers over the library."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from recdiff.cli.errors import check_device, check_extras, fail, stopped, user_errors
from recdiff.cli.options import (
    CandidatesOption,
    ExcludeItemsOption,
    ItemFieldsOption,
    ItemIdColOption,
    ItemInfoOption,
    SetOption,
    item_info,
    item_rules,
    top_k_option,
)
from recdiff.cli.reproduce import reproduce
from recdiff.cli.results import metric_names, metrics_table, report_run
from recdiff.cli.serve import IndexKind, IndexOption, load_with_index
from recdiff.config import ConfigError, list_presets, load_config

__all__ = ["register"]


def train(
    config: Annotated[
        str, typer.Argument(help="A preset name (see `recdiff presets`) or a YAML file.")
    ],
    overrides: SetOption = None,
    runs_dir: Annotated[Path, typer.Option(help="Folder that receives the run directory.")] = Path(
        "runs"
    ),
    quiet: Annotated[bool, typer.Option(help="No progress bars, no data line.")] = False,
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
    report_run(result, run_config)


def resume(
    run: Annotated[
        Path,
        typer.Argument(
            help="The run folder an interrupted `recdiff train` named (runs/NAME-STAMP)."
        ),
    ],
    quiet: Annotated[bool, typer.Option(help="No progress bars, no data line.")] = False,
) -> None:
    """Continue an interrupted run to the result it would have had.

    Needs a resume checkpoint, written every train.checkpoint_every epochs."""
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
    report_run(result)


def _stopped_run(stop: KeyboardInterrupt | SystemExit, otherwise: str) -> NoReturn:
    """Name the run to resume when the interruption left it resumable, else say ``otherwise``."""
    from recdiff.train.run import resumable_from

    run = resumable_from(stop)
    if run is not None:
        stopped(stop, f"resume the run with: recdiff resume {run}")
    stopped(stop, otherwise)


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
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help='Print JSON: {"valid": {...}, "test": {...}, "averaging": ...}.'
        ),
    ] = False,
) -> None:
    """Re-evaluate a saved run's model on its data (valid and test) and print the metrics."""
    from recdiff.serving.predictor import Predictor
    from recdiff.serving.sequence_predictor import SequencePredictor

    with user_errors(FileNotFoundError, ValueError, run=run):
        predictor = Predictor.load(run)
        averaging = predictor.config.eval.averaging if averaging is None else averaging
        results = predictor.evaluate(averaging=averaging, exclude_history=exclude_history)
    # one target an example: the averagings agree
    over = "examples" if isinstance(predictor, SequencePredictor) else averaging
    if as_json:
        typer.echo(json.dumps({**results, "averaging": over}))
        return
    # in the run's order, as train printed them
    names = {name for r in results.values() for name in r}
    ordered = [name for name in metric_names(predictor.config.eval) if name in names]
    typer.echo(metrics_table(results, ordered + sorted(names - set(ordered))))
    from recdiff.serving.report import OVER_EXAMPLES

    typer.echo(f"averaging: {OVER_EXAMPLES if over == 'examples' else over}")


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
    item_info_file: ItemInfoOption = None,
    item_fields: ItemFieldsOption = None,
    item_id_col: ItemIdColOption = None,
) -> None:
    """Top-k items for a known user (--user) or a new user's history (--history).

    Ids lose surrounding whitespace. Fewer than k items come back when fewer can be recommended
    (e.g. the history holds every catalogue item); a note on stderr (in --json: "note") says why.
    """
    from recdiff.data.errors import UnknownIdError
    from recdiff.serving.ids import NOT_A_USER, split_id_list
    from recdiff.serving.item_info import describe_item

    if (user is None) == (history is None):
        fail("give exactly one of --user ID or --history ITEM,ITEM,...")
    seen_remedy = "pass --include-seen"
    with user_errors(FileNotFoundError, KeyError, ValueError, ImportError, run=run):
        rules = item_rules(exclude_items, candidates)
        predictor = load_with_index(run, index)
        info = item_info(item_info_file, item_fields, predictor, item_id_col)
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
                    f"check the id ({NOT_A_USER}), or recommend from their items instead: "
                    "--history ITEM,ITEM,..."
                ) from None
        else:
            try:
                recs = predictor.recommend(
                    history=split_id_list(history, "--history"),
                    k=k,
                    exclude_seen=not include_seen,
                    ignore_unknown=ignore_unknown,
                    seen_remedy=seen_remedy,
                    **rules,
                )
            except UnknownIdError as error:  # its own remedy names the Python argument
                raise ValueError(
                    error.restated(
                        "item", "remove them from --history, or pass --ignore-unknown to drop them"
                    )
                ) from None
    details = info.lookup(recs.items) if info is not None else None
    if as_json:
        typer.echo(json.dumps({**recs.to_dict(), **({} if details is None else {"info": details})}))
        return
    # ids as wide as the longest (Yelp's run to 22 characters), so the scores stay in a column
    width = max([12, *(len(str(item)) for item in recs.items)])
    for rank, (item, score) in enumerate(zip(recs.items, recs.scores, strict=True), start=1):
        line = f"{rank:>3}  {item!s:<{width}} {score:.4f}"
        if details is not None:
            line += f"  {describe_item(details[rank - 1])}"
        typer.echo(line)
    if recs.unknown_items:  # dropped by --ignore-unknown: said, as --json lists them
        from recdiff.serving.ids import shown

        count = len(recs.unknown_items)
        typer.echo(f"note: ignored {count} unknown item(s): {shown(recs.unknown_items)}", err=True)
    if recs.note is not None:
        typer.echo(f"note: {recs.note}", err=True)


def presets(
    name: Annotated[
        str | None, typer.Argument(help="A preset to show: its file, comment included.")
    ] = None,
    resolved: Annotated[
        bool,
        typer.Option(
            help="With NAME: every setting, defaults filled in (a run's config.yaml lists the "
            "model settings set, its model/config.json all of them)."
        ),
    ] = False,
    names: Annotated[bool, typer.Option(help="Names only, one a line (for scripts).")] = False,
) -> None:
    """List the shipped presets: name, model and data; or show one (NAME)."""
    from recdiff.config import preset_text
    from recdiff.config.loading import resolved_yaml

    with user_errors(ConfigError):
        if name is None:
            if resolved:
                raise ConfigError("--resolved shows one preset: give its NAME")
            _list_presets(names)
        elif resolved:
            typer.echo(resolved_yaml(load_config(name), model_defaults=True), nl=False)
        else:
            typer.echo(preset_text(name), nl=False)


def _list_presets(names_only: bool) -> None:
    from recdiff.config import preset_text
    from recdiff.config.yaml_io import load_yaml

    if names_only:
        typer.echo("\n".join(list_presets()))
        return
    rows = [("preset", "model", "data")]
    for name in list_presets():
        raw = load_yaml(preset_text(name))  # the file alone: validating all takes seconds
        source = (raw.get("data") or {}).get("source") or "built-in demo"
        rows.append((name, raw["model"]["name"], source))
    width = [max(len(row[i]) for row in rows) for i in range(2)]
    for row in rows:
        typer.echo(f"{row[0]:<{width[0]}}  {row[1]:<{width[1]}}  {row[2]}".rstrip())
    typer.echo("\n`recdiff presets NAME` shows one: what it is, and where its settings come from.")


def register(app: typer.Typer) -> None:
    for command in (train, resume, evaluate, recommend, reproduce, presets):
        app.command()(command)
