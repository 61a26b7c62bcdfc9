"""Multi-seed experiments: each config trained with ``train.seed = 1..N``, compared on test.

Output folder::

    runs/                       the run directories (``recdiff train``'s layout)
    records/LABEL/seed-S.json   the run's valid/test means and data statistics, its directory
                                (relative to the output folder) and its config
    records/LABEL/seed-S.npz    per-user test metrics (NaN: user without test items)
    results.csv                 one row per config and seed: its run (relative to the output
                                folder, as in tune's trials.csv), valid and test metrics
    results.md                  mean ± std per config; paired tests of each config against the
                                best baseline (on validation) among the comparable runs

A config's label is its ``name`` (made unique with a suffix). Re-running the same command skips
the (config, seed) pairs whose record exists with the same resolved config, so an interrupted
experiment continues where it stopped, whichever way the output folder is spelled (records name
their files relative to it; older records, which named them from the working folder of the
time, are read by the files' names, which do not depend on it).

A deterministic config (a model that draws no random numbers, on data the seed does not change:
:mod:`recdiff.experiments.reuse`) trains one run; its other seeds' records repeat it
(``same_as_seed``), also for seeds added when the experiment is continued with more.

With ``jobs > 1`` the runs train in worker processes (:mod:`recdiff.experiments.workers`): a
failed run, Ctrl-C or SIGTERM cancels the queued runs and stops the running ones at once, and a
stopped run leaves no folder behind; workers whose command has died stop too.

Under torchrun (``WORLD_SIZE`` > 1) every process trains every run (DDP needs them all), but only
rank 0 decides which runs are left, scores users, writes the folder and reports; the others write
nothing and return rank 0's result.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recdiff.atomic import atomic_path, atomic_write_text
from recdiff.config.schema import RunConfig
from recdiff.config.sources import check_sources
from recdiff.eval.metrics import PER_USER_METRICS, canonical_metric, metric_cutoff
from recdiff.experiments.records import (
    ExperimentError,
    SeedRecord,
    existing_record,
    record_in,
    record_paths,
    results_table,
)
from recdiff.experiments.reuse import reuse_record, shared_run_key
from recdiff.experiments.stats import METHOD_NAMES
from recdiff.experiments.workers import cpu_share, stoppable, worker_pool
from recdiff.train.distributed import (
    broadcast_object,
    env_world_size,
    failure_is_final,
    init_from_env,
    is_main_process,
)

__all__ = [
    "BASELINE_MODELS",
    "ExperimentError",
    "ExperimentResult",
    "SeedRecord",
    "label_configs",
    "results_table",
    "run_experiment",
]

#: Models that count as baselines when picking the ones the others are tested against.
BASELINE_MODELS = frozenset({"popularity", "ease", "multvae", "sasrec", "mostpop"})


@dataclass
class ExperimentResult:
    """The records of every run and the written tables. ``tests``: each config's paired test
    (or why there is none); ``baselines``: the baseline each of them is tested against (None:
    no baseline on its data); ``best_baseline``: the best baseline, the first group's when the
    configs are on several data."""

    out: Path
    records: list[SeedRecord]
    csv_path: Path
    md_path: Path
    markdown: str
    best_baseline: str | None = None
    tests: dict[str, Any] = field(default_factory=dict)
    baselines: dict[str, str | None] = field(default_factory=dict)


def label_configs(configs: Sequence[RunConfig]) -> list[tuple[str, RunConfig]]:
    """Pair each config with a unique label: its name, then ``name-2``, ``name-3``..."""
    labelled, used = [], set()
    for config in configs:
        label, n = config.name, 1
        while label in used:
            n += 1
            label = f"{config.name}-{n}"
        used.add(label)
        labelled.append((label, config))
    return labelled


def _seeded(config: RunConfig, label: str, seed: int) -> dict[str, Any]:
    raw = config.model_dump(mode="json")
    raw["name"] = f"{label}-seed{seed}"
    raw["train"]["seed"] = seed
    return json.loads(json.dumps(raw))  # as it reads back from a record


def _run_one(task: dict[str, Any]) -> dict[str, Any]:
    """Train one (config, seed), score its users on test, write its record (a process-pool job)."""
    if task["threads"]:
        import torch

        torch.set_num_threads(task["threads"])
    from recdiff.experiments.per_user import check_against_run, per_user_test_metrics_from_run
    from recdiff.train.folders import find_resumable_run
    from recdiff.train.run import resume_training, run_training

    config = RunConfig.model_validate(task["config"])
    out = Path(task["out"])
    json_path, npz_path = record_paths(out, task["label"], config.train.seed)
    # A run of this config interrupted after a resume checkpoint (train.checkpoint_every)
    # continues where it stopped.
    interrupted = find_resumable_run(out / "runs", config)
    if interrupted is not None:
        result = resume_training(interrupted, progress=task["progress"])
    else:
        result = run_training(config, out / "runs", progress=task["progress"])
    record: dict[str, Any] = {
        "label": task["label"],
        "model": config.model.name,
        "seed": config.train.seed,
        # relative to OUT: the record stays valid however OUT is spelled or wherever it moves
        "run_dir": f"runs/{result.directory.name}",
        "valid": result.metrics["valid"],
        "test": result.metrics["test"],
        "data": result.metrics.get("data"),
    }
    if not is_main_process():  # another torchrun process: it trained beside rank 0, which writes
        return record
    try:
        per_user = per_user_test_metrics_from_run(result.directory)
    except NotImplementedError as error:
        record["per_user_error"] = str(error)
    else:
        npz_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(npz_path) as tmp, tmp.open("wb") as fh:
            np.savez_compressed(fh, **per_user)
        record["per_user_path"] = npz_path.relative_to(out).as_posix()
        record["per_user_gap"] = check_against_run(per_user, result.metrics)
    atomic_write_text(json_path, json.dumps({**record, "config": task["config"]}, indent=2))
    return record


def run_experiment(
    configs: Sequence[RunConfig],
    seeds: int | Sequence[int],
    out: str | Path,
    jobs: int = 1,
    metric: str | None = None,
    test: str = "wilcoxon",
    progress: bool = False,
    report: Callable[[str], None] | None = None,
) -> ExperimentResult:
    """Train every config with each seed (``seeds`` = N means 1..N), then write results.csv and
    results.md. ``metric`` (default: the first config's ``train.metric``) picks on validation
    the best baseline of each group of comparable configs (same data and protocol, see
    :mod:`recdiff.experiments.comparable`), and is the per-user test metric of the paired tests
    of each config against its group's (``test``: wilcoxon or ttest). ``jobs > 1`` trains in
    that many processes, each with a share of the CPU threads.

    Under torchrun only rank 0 writes and calls ``report``; every process returns its result."""
    from recdiff.experiments.report import choose_baselines, render_markdown

    report = report or (lambda line: None)
    if not configs:
        raise ExperimentError("give at least one config")
    if jobs < 1:
        raise ExperimentError(f"jobs must be at least 1, got {jobs}")
    seed_list = list(range(1, seeds + 1)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise ExperimentError("give at least one seed")
    repeated = sorted({seed for seed in seed_list if seed_list.count(seed) > 1})
    if repeated:
        # The same run twice would count twice in the mean ± std and the per-user averages.
        raise ExperimentError(
            f"seeds {seed_list} repeat {', '.join(map(str, repeated))}: give each seed once"
        )
    if test not in METHOD_NAMES:  # before training, not once every run has finished
        raise ExperimentError(f"test must be one of {sorted(METHOD_NAMES)}, got {test!r}")
    metric = metric or configs[0].train.metric
    labelled = label_configs(configs)
    parsed = metric_cutoff(metric)
    for label, config in labelled:
        if (
            parsed is None
            or parsed[0] not in config.eval.metrics
            or parsed[1] not in config.eval.ks
        ):
            raise ExperimentError(
                f"metric {metric!r} is not computed by config {label!r} (eval.metrics "
                f"{config.eval.metrics}, eval.ks {config.eval.ks}); pick one all configs compute"
            )
    metric = canonical_metric(metric)  # as the evaluator names it: recall@020 is recall@20
    for label, config in labelled:  # before any training, not when the config's turn comes
        try:
            check_sources(config)
        except FileNotFoundError as error:
            raise ExperimentError(f"config {label!r}: {error}") from None
    if metric.partition("@")[0] not in PER_USER_METRICS:
        raise ExperimentError(
            f"metric {metric!r} is measured over the whole catalogue, not per user, so the "
            f"paired tests cannot use it; pick one of {', '.join(PER_USER_METRICS)} (e.g. "
            f"{PER_USER_METRICS[0]}@20)"
        )
    world = env_world_size()
    if world > 1:
        if jobs > 1:
            # Pool workers would inherit torchrun's environment and each join the process group.
            raise ExperimentError(
                f"jobs={jobs} trains in processes of its own, but under torchrun (WORLD_SIZE="
                f"{world}) the processes train each run together: leave jobs (--jobs) at 1"
            )
        init_from_env(configs[0].train.device)  # the rank must be known before anything is written
    # Under torchrun, a process that fails anywhere below (rank 0 alone reads old records, scores
    # users and writes) must exit at once rather than leave the others waiting in a collective.
    with failure_is_final():
        main = is_main_process()
        if not main:
            report = lambda line: None  # noqa: E731
        out = Path(out)
        if main:
            out.mkdir(parents=True, exist_ok=True)
        threads = cpu_share(jobs) if jobs > 1 else None
        records: dict[tuple[str, int], SeedRecord] = {}
        tasks = []
        # (label, seed whose run it repeats) -> the (seed, seeded config) of deterministic
        # configs' other seeds
        repeats: dict[tuple[str, int], list[tuple[int, dict[str, Any]]]] = {}
        for label, config in labelled:
            seeded = {seed: _seeded(config, label, seed) for seed in seed_list}
            for seed, raw in seeded.items():
                # Only rank 0's reading counts (broadcast below); the others need not read.
                json_path = record_paths(out, label, seed)[0]
                done = existing_record(out, json_path, raw, label, metric, report) if main else None
                if done is not None:
                    records[label, seed] = done
                    report(f"{label} seed {seed}: done before ({done.run_dir})")
            # A deterministic config trains once: its other seeds repeat the run of one seed
            # with the same key, done before (the seeds of a continued experiment come first)
            # or trained now.
            serving: dict[str, int] = {}
            before = [seed for seed in seed_list if (label, seed) in records]
            for seed in [*before, *(seed for seed in seed_list if seed not in before)]:
                key = shared_run_key(seeded[seed])
                if key is not None and key in serving and seed not in before:
                    repeats.setdefault((label, serving[key]), []).append((seed, seeded[seed]))
                    continue
                if key is not None:
                    serving.setdefault(key, seed)
                if seed in before:
                    continue
                tasks.append(
                    {
                        "config": seeded[seed],
                        "label": label,
                        "out": str(out),
                        "threads": threads,
                        "progress": progress and jobs == 1,
                    }
                )
        # Rank 0's records decide which runs are left: every process must train the same ones.
        tasks, records, repeats = broadcast_object((tasks, records, repeats))
        if main:
            for record in list(records.values()):  # seeds added to a config trained once
                _repeat(out, record, repeats, records, report)
        if jobs == 1:
            finished = (_run_one(task) for task in tasks)
            _collect(out, finished, tasks, records, repeats, metric, report)
        else:
            try:
                with worker_pool(jobs) as pool:
                    finished = pool.map(functools.partial(stoppable, _run_one), tasks)
                    _collect(out, finished, tasks, records, repeats, metric, report)
            except BaseException:  # the workers have stopped: see what they left
                _remove_unfinished_runs(out / "runs", tasks, records)
                raise
        if not main:
            return broadcast_object(None)  # rank 0's result, once it has written it
        ordered = [records[label, seed] for label, _ in labelled for seed in seed_list]
        csv_path, md_path = out / "results.csv", out / "results.md"
        atomic_write_text(csv_path, results_table(ordered))
        choice = choose_baselines(labelled, ordered, metric)
        markdown, best, tests = render_markdown(labelled, ordered, metric, test, choice)
        atomic_write_text(md_path, markdown)
        return broadcast_object(
            ExperimentResult(out, ordered, csv_path, md_path, markdown, best, tests, choice.against)
        )


def _collect(
    out: Path, finished, tasks, records, repeats, metric: str, report: Callable[[str], None]
) -> None:
    """Records of the ``finished`` runs, which come in the order of ``tasks``, and of the seeds
    that ``repeats`` them; a run that raised is named before its error stops the experiment."""
    finished = iter(finished)
    for task in tasks:
        try:
            data = next(finished)
        except Exception:
            report(
                f"{task['label']} seed {task['config']['train']['seed']}: failed; the runs that "
                "finished keep their records (run the same command again to continue)"
            )
            raise
        record = record_in(out, data)
        records[record.label, record.seed] = record
        report(
            f"{record.label} seed {record.seed}: valid {metric} {record.valid[metric]:.4f}, "
            f"test {metric} {record.test[metric]:.4f} ({record.run_dir})"
        )
        if is_main_process():  # (the others write nothing)
            _repeat(out, record, repeats, records, report)


def _repeat(out: Path, record: SeedRecord, repeats, records, report) -> None:
    """Records of the seeds whose run is ``record``'s (a deterministic config's other seeds)."""
    for seed, config in repeats.pop((record.label, record.seed), []):
        repeat = reuse_record(out, record, seed, config)
        records[record.label, seed] = repeat
        report(
            f"{record.label} seed {seed}: same as seed {repeat.same_as_seed or record.seed}: "
            f"deterministic ({repeat.run_dir})"
        )


def _remove_unfinished_runs(runs: Path, tasks, records) -> None:
    """What stopped workers left of the runs without a record (a worker killed after the grace
    time cannot remove its own run's folders)."""
    from recdiff.train.folders import remove_unfinished_runs

    for task in tasks:
        if (task["label"], task["config"]["train"]["seed"]) not in records:
            remove_unfinished_runs(runs, task["config"]["name"])
