"""`recdiff tune --jobs N`: several trials at once on one study, in worker processes.

Tiny DiffRec runs on the demo data; a search of two workers takes ~10 s here.
"""

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from tune_helpers import killed_on_failure, sets, start, study_of, wait_for_runs
from tune_helpers import rows as csv_rows
from typer.testing import CliRunner

from recdiff.cli.main import app
from recdiff.experiments.space import SearchSpace

optuna = pytest.importorskip("optuna")
runner = CliRunner()

SPACE = """\
train.lr: {type: float, low: 1e-4, high: 3e-3, log: true}
model.hidden_dims: {type: categorical, choices: [[16], [32, 16, 32]]}
"""
TINY = ["train.epochs=2", "train.eval_every=1", "model.diffusion.steps=4"]


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    """Five trials by two workers, then the same study continued to seven by one process."""
    folder = tmp_path_factory.mktemp("tune-jobs")
    (folder / "space.yaml").write_text(SPACE)
    out = folder / "out"
    command = ["tune", "demo-diffrec", "--space", str(folder / "space.yaml"), "--out", str(out)]
    first = runner.invoke(app, [*command, "--trials", "5", "--jobs", "2", *sets(TINY)])
    assert first.exit_code == 0, first.output
    rows = csv_rows(out / "trials.csv")
    second = runner.invoke(app, [*command, "--trials", "7", *sets(TINY)])
    assert second.exit_code == 0, second.output
    return {"out": out, "rows": rows, "output": first.output, "after": csv_rows(out / "trials.csv")}


def test_workers_fill_the_study_to_the_asked_number_of_trials(two_workers):
    rows = two_workers["rows"]
    # A worker starts no trial once finished and running ones reach --trials: none too many.
    assert [r["number"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert {r["state"] for r in rows} == {"COMPLETE"}
    out = two_workers["out"]
    assert all((out / r["run_dir"] / "metrics.json").is_file() for r in rows)
    assert not list(out.glob(".study-reserve*"))  # every worker gave its reserve back
    assert (out / "best.yaml").is_file()


def test_each_trial_is_reported_once_by_the_command(two_workers):
    lines = [line for line in two_workers["output"].splitlines() if line.startswith("trial ")]
    assert sorted(line.split(":")[0] for line in lines) == [f"trial {n}" for n in range(5)]
    assert "study" in two_workers["output"] and "5 complete" in two_workers["output"]


def test_the_workers_sample_apart(two_workers):
    """Trials 0 and 1 start together, one in each worker: with one sampler seed they would
    propose the very same settings."""
    first, second = two_workers["rows"][:2]
    assert first["train.lr"] != second["train.lr"]


def test_a_search_by_workers_continues_in_one_process(two_workers):
    after = two_workers["after"]
    assert after[:5] == two_workers["rows"]
    assert [r["number"] for r in after] == [str(n) for n in range(7)]
    assert {r["state"] for r in after} == {"COMPLETE"}
    # one run folder per trial, in the two commands together
    assert sorted(p.name for p in (two_workers["out"] / "runs").iterdir()) == sorted(
        Path(r["run_dir"]).name for r in after
    )


def test_a_failing_trial_in_a_worker_stops_the_search_and_is_listed(tmp_path):
    """A trial that raises (here a data file that is not there) stops every worker, as it
    stops a search of one: the error reaches the command, trials.csv lists the trial FAIL with
    it, nothing stays RUNNING in the study, and no run folder is left."""
    data = tmp_path / "good.csv"
    data.write_text(
        "user,item\n" + "".join(f"{u},{(u * 7 + k) % 40}\n" for u in range(60) for k in range(8))
    )
    missing = tmp_path / "missing.csv"
    (tmp_path / "space.yaml").write_text(
        SPACE + f"data.source: {{type: categorical, choices: [{missing}]}}\n"
    )
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "tune", "demo-diffrec", "--space", str(tmp_path / "space.yaml"), "--out", str(out),
            "--trials", "4", "--jobs", "2",
            *sets([*TINY, "data.format=csv", f"data.source={data}"]),
        ],
    )  # fmt: skip
    assert result.exit_code != 0
    assert f"{missing} not found" in result.output
    rows = csv_rows(out / "trials.csv")
    assert rows and {r["state"] for r in rows} == {"FAIL"}
    assert any(f"{missing} not found" in r["error"] for r in rows)
    assert not [t for t in study_of(out).get_trials() if t.state.name == "RUNNING"]
    assert list((out / "runs").iterdir()) == []
    assert not list(out.glob(".study-reserve*"))


@pytest.mark.parametrize(
    ("sig", "code", "reason", "group"),
    [
        (signal.SIGTERM, 143, "stopped by SIGTERM", False),
        (signal.SIGINT, 130, "interrupted (Ctrl-C)", False),
        (signal.SIGHUP, 129, "stopped by SIGHUP", True),
    ],
)
def test_a_signal_stops_every_worker_and_fails_their_trials_with_its_reason(
    tmp_path, signal_while_training, sig, code, reason, group
):
    """Workers ignore Ctrl-C and are stopped by SIGTERM: their trials said "stopped by SIGTERM"
    though the user pressed Ctrl-C. Now the command's reason, its exit status, every trial FAIL
    in trials.csv and the study, and nothing left in the folder. A closed terminal sends SIGHUP
    to the command and its workers at once (``group``): the workers ignore it, and the command
    stops them (a hang-up used to end every process on the spot)."""
    (tmp_path / "space.yaml").write_text(SPACE)
    out = tmp_path / "out"
    long = ["train.epochs=100000", "train.patience=100000", "model.diffusion.steps=4"]
    command = [
        "tune", "demo-diffrec", "--space", str(tmp_path / "space.yaml"), "--trials", "4",
        "--out", str(out), "--jobs", "2",
    ]  # fmt: skip
    status, stderr = signal_while_training(
        [*command, *sets(long)], out / "runs", training=2, sig=sig, group=group
    )
    assert status == code, stderr[-2000:]
    if sig == signal.SIGTERM:
        assert stderr.splitlines()[-1] == (
            "error: stopped by SIGTERM; run the same command again to continue where it stopped"
        )
    if sig == signal.SIGHUP:
        assert stderr.splitlines()[-1].startswith("error: stopped by SIGHUP")
    trials = csv_rows(out / "trials.csv")
    assert [(r["state"], r["error"]) for r in trials] == [("FAIL", reason)] * 2
    assert [t.state.name for t in study_of(out).get_trials()] == ["FAIL", "FAIL"]
    assert list((out / "runs").iterdir()) == []
    assert not list(out.glob(".stopped-*")) and not list(out.glob(".study-reserve*"))


def test_jobs_below_one_are_refused(tmp_path):
    from recdiff.config import load_config
    from recdiff.experiments.space import SearchSpace
    from recdiff.experiments.tune import TuneError, tune

    space = SearchSpace.from_dict({"train.lr": {"type": "float", "low": 1e-4, "high": 1e-3}})
    with pytest.raises(TuneError, match="jobs must be at least 1, got 0"):
        tune(load_config("demo-diffrec"), space, 2, tmp_path / "out", jobs=0)
    assert not (tmp_path / "out").exists()


def _first_sample(space: SearchSpace, seed: int, worker: int, before: int) -> dict:
    """What a worker samples first in a study of ``before`` trials (its sampler seed: seed +
    trials before + 1000 x worker)."""
    sampler = optuna.samplers.TPESampler(
        seed=seed + before + 1000 * worker, n_startup_trials=5, constant_liar=True
    )
    study = optuna.create_study(sampler=sampler, direction="maximize")
    return space.suggest(study.ask())


def _command(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    """``recdiff ARGS`` in a session of its own, killed with its workers should it hang."""
    with killed_on_failure(start(args)) as job:
        try:
            out, err = job.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running after {timeout:.0f} s: {args}")
    return subprocess.CompletedProcess(args, job.returncode, out, err)


@pytest.mark.slow  # moved out of the default run (~10 min on 2 cores); CI runs it
def test_a_failing_trial_in_the_second_worker_stops_the_first(tmp_path):
    """The command waited on the first worker, whose trial trains for 100,000 epochs, before it
    looked at the second's error: the search went on for as long as the first worker did."""
    data = tmp_path / "good.csv"
    data.write_text(
        "user,item\n" + "".join(f"{u},{(u * 7 + k) % 40}\n" for u in range(60) for k in range(8))
    )
    missing = tmp_path / "missing.csv"
    choices = {"type": "categorical", "choices": [str(data), str(missing)]}
    space = SearchSpace.from_dict({"data.source": choices})
    # A seed whose first worker trains (on the good file) and whose second fails at once,
    # whichever of them opens the study first (0 or 1 trials before it).
    seed = next(
        s
        for s in range(200)
        if all(
            _first_sample(space, s, worker, before)["data.source"] == str(source)
            for worker, source in enumerate((data, missing))
            for before in (0, 1)
        )
    )
    (tmp_path / "space.yaml").write_text(f"data.source: {json.dumps(choices)}\n")
    out = tmp_path / "out"
    settings = ["data.format=csv", f"data.source={data}", "data.split=random"]
    settings += ["train.epochs=100000"]
    settings += ["train.patience=100000", "model.diffusion.steps=4"]
    done = _command(
        [
            "tune", "demo-diffrec", "--space", str(tmp_path / "space.yaml"), "--out", str(out),
            "--trials", "4", "--jobs", "2", "--seed", str(seed), *sets(settings),
        ]
    )  # fmt: skip
    assert done.returncode != 0 and f"{missing} not found" in done.stderr, done.stderr[-2000:]
    rows = {r["data.source"]: r for r in csv_rows(out / "trials.csv")}
    assert rows[str(missing)]["state"] == "FAIL" and "not found" in rows[str(missing)]["error"]
    if str(data) in rows:  # unless the first worker was stopped before its trial began
        assert rows[str(data)]["state"] == "FAIL" and "stopped" in rows[str(data)]["error"]
    assert list((out / "runs").iterdir()) == []
    assert not list(out.glob(".study-reserve*"))


@pytest.mark.slow  # moved out of the default run (~10 min on 2 cores); CI runs it
def test_a_trial_left_running_by_a_killed_process_does_not_count(tmp_path):
    """A killed command's trial stays RUNNING until its heartbeat is stale (3 minutes): the
    search, continued at once, still runs as many trials as asked, with one worker or two."""
    (tmp_path / "space.yaml").write_text(SPACE)
    for jobs in ("1", "2"):
        out = tmp_path / f"out{jobs}"
        command = ["tune", "demo-diffrec", "--space", str(tmp_path / "space.yaml")]
        command += ["--out", str(out), "--jobs", jobs, *sets(TINY)]
        first = runner.invoke(app, [*command, "--trials", "1"])
        assert first.exit_code == 0, first.output
        study_of(out).ask()  # as a process killed during its trial leaves it: RUNNING
        again = runner.invoke(app, [*command, "--trials", "3"])
        assert again.exit_code == 0, again.output
        states = [t.state.name for t in study_of(out).get_trials()]
        assert states.count("COMPLETE") == 3 and states.count("RUNNING") == 1, (jobs, states)


def test_no_more_workers_start_than_trials_are_left(tmp_path):
    (tmp_path / "space.yaml").write_text(SPACE)
    out = tmp_path / "out"
    command = ["tune", "demo-diffrec", "--space", str(tmp_path / "space.yaml"), "--out", str(out)]
    result = runner.invoke(app, [*command, "--trials", "2", "--jobs", "4", *sets(TINY)])
    assert result.exit_code == 0, result.output
    assert [r["state"] for r in csv_rows(out / "trials.csv")] == ["COMPLETE", "COMPLETE"]


def test_the_invalid_run_is_counted_in_the_order_trials_ended():
    """With several workers, trial numbers are the order trials started, not ended: the run
    of invalid trials that stops a search is read by the time each ended."""
    import datetime

    from recdiff.experiments.tune import invalid_run

    start = datetime.datetime(2026, 1, 1)

    def ended(number, minute, invalid):
        attrs = {"invalid": True, "error": f"e{number}"} if invalid else {}
        trial = optuna.trial.create_trial(
            state=optuna.trial.TrialState.PRUNED if invalid else optuna.trial.TrialState.COMPLETE,
            value=None if invalid else 0.1,
            user_attrs=attrs,
        )
        trial.number = number
        trial.datetime_start = start
        trial.datetime_complete = start + datetime.timedelta(minutes=minute)
        return trial

    # trial 1 (valid) ended last: no invalid run, though the highest numbers are invalid
    trials = [ended(0, 1, True), ended(1, 9, False), ended(2, 2, True), ended(3, 3, True)]
    assert invalid_run(trials) == []
    trials = [ended(0, 1, False), ended(1, 2, True), ended(2, 4, True), ended(3, 3, True)]
    assert invalid_run(trials) == ["e1", "e3", "e2"]
    running = optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, value=0.1)
    running.state = optuna.trial.TrialState.RUNNING
    assert invalid_run([*trials, running]) == ["e1", "e3", "e2"]  # not ended: not counted


def _workers_of(pid: int) -> list[int]:
    """The spawned worker processes among ``pid``'s children (not multiprocessing's tracker)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if int(fields[1]) == pid and "spawn_main" in cmdline:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc to find workers")
def test_a_worker_killed_outright_fails_every_trial_of_the_command(tmp_path):
    """SIGKILL (or the out-of-memory killer) on one worker: the pool breaks, the other worker is
    stopped. The command said so with a BrokenProcessPool traceback and left both trials
    RUNNING; now one error line, both trials FAIL, no run folder and no reserve left."""
    (tmp_path / "space.yaml").write_text(SPACE)
    out = tmp_path / "out"
    long = ["train.epochs=100000", "train.patience=100000", "model.diffusion.steps=4"]
    args = ["tune", "demo-diffrec", "--space", str(tmp_path / "space.yaml"), "--trials", "4"]
    args += ["--out", str(out), "--jobs", "2", *sets(long)]
    with killed_on_failure(start(args)) as job:
        wait_for_runs(job, out / "runs", 2)
        os.kill(_workers_of(job.pid)[0], signal.SIGKILL)
        _, stderr = job.communicate(timeout=60)
    assert job.returncode == 2, stderr[-2000:]
    assert "Traceback" not in stderr
    assert (
        stderr.strip()
        .splitlines()[-1]
        .startswith("error: a worker process of the search ended while it trained")
    )
    assert [t.state.name for t in study_of(out).get_trials()] == ["FAIL", "FAIL"]
    trials = csv_rows(out / "trials.csv")
    assert all(r["error"] for r in trials)
    assert list((out / "runs").iterdir()) == [], trials
    assert not list(out.glob(".study-reserve*"))


@pytest.mark.slow  # moved out of the default run (~10 min on 2 cores); CI runs it
def test_a_command_reports_and_frees_only_what_is_its_own(tmp_path):
    """Another command's trial on the same study ends while this one runs: it was reported as
    this command's, and the reserves this command removed at its end went by worker number,
    another command's with them."""
    (tmp_path / "space.yaml").write_text(SPACE)
    out = tmp_path / "out"
    command = ["tune", "demo-diffrec", "--space", str(tmp_path / "space.yaml"), "--out", str(out)]
    long = ["train.epochs=30", "train.eval_every=1", "model.diffusion.steps=4"]
    first = runner.invoke(app, [*command, "--trials", "1", *sets(long)])
    assert first.exit_code == 0, first.output
    study = study_of(out)
    foreign = study.ask()  # another command's trial, RUNNING
    theirs = [out / ".study-reserve-0", out / ".study-reserve-1"]  # as named before
    for path in theirs:
        path.write_bytes(b"x")
    with killed_on_failure(start([*command, "--trials", "3", "--jobs", "2", *sets(long)])) as job:
        wait_for_runs(job, out / "runs", 1)
        study.tell(foreign, 0.0)  # ends while this command's trials train (not the best)
        stdout, stderr = job.communicate(timeout=120)
    assert job.returncode == 0, stderr[-2000:]
    reported = sorted(
        line.split(":")[0] for line in stdout.splitlines() if line.startswith("trial ")
    )
    # trial 0: the first command's; 1: the foreign one (which counts towards --trials, so this
    # command ran one trial or two, as it ended before or after the command's second decision)
    ours = [f"trial {t.number}" for t in study_of(out).get_trials() if t.number > foreign.number]
    assert reported == ours and ours[:1] == ["trial 2"]
    assert all(path.exists() for path in theirs)
