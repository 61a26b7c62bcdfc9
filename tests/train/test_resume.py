"""Resume checkpoints (train.checkpoint_every): a run interrupted and resumed ends exactly as one
that was never stopped, for every kind of training loop, pre-training stages included."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from typer.testing import CliRunner

from recdiff.cli.main import app
from recdiff.config import load_config
from recdiff.train.checkpoint import CHECKPOINT_FILE
from recdiff.train.run import resumable_from, resume_training, run_training

DIFFREC = ["train.epochs=10", "train.eval_every=1", "model.hidden_dims=[64]"]
DIFFREC += ["model.diffusion.steps=5"]
LDIFFREC = [*DIFFREC, "model.name=ldiffrec", "model.latent.epochs=4"]
DREAMREC_ITEMS = ["train.epochs=4", "train.eval_every=1", "model.item_space.source=sasrec"]
DREAMREC_ITEMS += ["model.item_space.epochs=3"]

# (preset, settings, the epoch record at which the run is interrupted: counted over all stages).
# Checkpoints every 2 epochs, so each case resumes from an earlier epoch than it stopped at.
CASES = {
    "diffrec, moving average": ("demo-diffrec", [*DIFFREC, "train.ema_decay=0.9"], 5),
    "l-diffrec, inside the autoencoder stage": ("demo-diffrec", LDIFFREC, 3),
    "l-diffrec, inside the diffusion stage": ("demo-diffrec", LDIFFREC, 7),
    "mult-vae": ("demo-multvae", ["train.epochs=6"], 4),
    "sasrec": ("demo-sasrec", ["train.epochs=6", "train.eval_every=1"], 5),
    "dreamrec, right after its sasrec item stage": ("demo-dreamrec", DREAMREC_ITEMS, 4),
}


def _events(run: Path) -> list[dict]:
    records = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def _same_run(left: Path, right: Path) -> None:
    a, b = (json.loads((run / "metrics.json").read_text()) for run in (left, right))
    for key in ("valid", "test", "best_epoch", "epochs_run", "stages", "stopped_early"):
        assert a[key] == b[key], key
    assert _events(left) == _events(right)
    wa, wb = (load_file(run / "model" / "weights.safetensors") for run in (left, right))
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[name], wb[name]) for name in wa)


@pytest.mark.parametrize("case", list(CASES))
def test_a_resumed_run_ends_as_the_run_that_was_never_stopped(interrupt_at, tmp_path, case):
    preset, settings, stop_at = CASES[case]
    config = load_config(preset, [*settings, "train.checkpoint_every=2"])
    whole = run_training(config, tmp_path / "whole", progress=False)
    with pytest.raises(KeyboardInterrupt) as stop:
        run_training(config, tmp_path / "cut", progress=False, on_event=interrupt_at(stop_at))
    run = resumable_from(stop.value)
    assert run is not None and run.parent == tmp_path / "cut" and not any(run.iterdir())
    hidden = run.parent / f".{run.name}.incomplete"
    assert (hidden / CHECKPOINT_FILE).is_file()

    resumed = resume_training(run, progress=False)

    assert resumed.directory == run
    _same_run(whole.directory, run)
    assert resumed.metrics["resumed"] and not whole.metrics["resumed"]
    assert sorted(p.name for p in (tmp_path / "cut").iterdir()) == [run.name]  # hidden one gone
    assert not (run / CHECKPOINT_FILE).exists()  # a complete run carries no checkpoint


def test_a_run_resumed_twice_and_from_its_hidden_folder_still_ends_the_same(interrupt_at, tmp_path):
    config = load_config("demo-diffrec", [*DIFFREC, "train.checkpoint_every=3"])
    whole = run_training(config, tmp_path / "whole", progress=False)
    with pytest.raises(KeyboardInterrupt) as stop:
        run_training(config, tmp_path / "cut", progress=False, on_event=interrupt_at(4))
    run = resumable_from(stop.value)
    hidden = run.parent / f".{run.name}.incomplete"
    with pytest.raises(KeyboardInterrupt) as again:
        resume_training(hidden, progress=False, on_event=interrupt_at(4))  # epochs 4..7
    assert resumable_from(again.value) == run
    resume_training(run, progress=False)
    _same_run(whole.directory, run)


def test_without_a_checkpoint_an_interrupted_run_leaves_nothing(interrupt_at, tmp_path):
    # Interrupted in epoch 1, before the first checkpoint (after epoch 2): removed, as ever.
    config = load_config("demo-diffrec", [*DIFFREC, "train.checkpoint_every=2"])
    with pytest.raises(KeyboardInterrupt) as stop:
        run_training(config, tmp_path, progress=False, on_event=interrupt_at(1))
    assert resumable_from(stop.value) is None
    assert list(tmp_path.iterdir()) == []


def test_an_error_other_than_an_interruption_removes_the_run_and_its_checkpoint(tmp_path):
    """It would recur on resuming (a pruned trial, a bug), so nothing is kept."""
    config = load_config("demo-diffrec", [*DIFFREC, "train.checkpoint_every=2"])

    def failing(record):
        if record["event"] == "epoch" and record["epoch"] == 5:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom") as error:
        run_training(config, tmp_path, progress=False, on_event=failing)
    assert resumable_from(error.value) is None
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def interrupted(interrupt_at, tmp_path):
    """A demo DiffRec run interrupted in epoch 5 with a checkpoint of epoch 4: (reserved, hidden)."""
    config = load_config("demo-diffrec", [*DIFFREC, "train.checkpoint_every=2"])
    with pytest.raises(KeyboardInterrupt) as stop:
        run_training(config, tmp_path, progress=False, on_event=interrupt_at(5))
    run = resumable_from(stop.value)
    return run, run.parent / f".{run.name}.incomplete"


def test_what_cannot_be_resumed_is_named(tmp_path, interrupted):
    run, hidden = interrupted
    with pytest.raises(ValueError, match="not an interrupted run"):
        resume_training(tmp_path / "elsewhere", progress=False)
    (hidden / CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"not a readable resume checkpoint.*damaged"):
        resume_training(run, progress=False)
    (hidden / CHECKPOINT_FILE).unlink()
    with pytest.raises(ValueError, match="stopped before its first resume checkpoint"):
        resume_training(run, progress=False)

    done = run_training(
        load_config("demo-diffrec", [*DIFFREC, "train.epochs=1"]), tmp_path, progress=False
    )
    with pytest.raises(ValueError, match="is a complete run"):
        resume_training(done.directory, progress=False)


def test_a_checkpoint_of_another_number_of_processes_is_refused(interrupted):
    run, hidden = interrupted
    checkpoint = torch.load(hidden / CHECKPOINT_FILE, weights_only=True)
    checkpoint["world_size"] = 2
    torch.save(checkpoint, hidden / CHECKPOINT_FILE)
    with pytest.raises(ValueError, match=r"written by 2 process.*same number of processes"):
        resume_training(run, progress=False)


def test_a_run_being_written_cannot_be_resumed_by_a_second_process(interrupted):
    run, hidden = interrupted
    handle = os.open(hidden, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as the process writing it holds
        with pytest.raises(ValueError, match="being written by another process"):
            resume_training(run, progress=False)
    finally:
        os.close(handle)
    assert (hidden / CHECKPOINT_FILE).is_file()  # untouched: still resumable
    resume_training(run, progress=False)
    assert (run / "metrics.json").is_file()


def test_models_without_a_training_loop_name_the_setting_as_ignored(tmp_path):
    config = load_config("demo-popularity", ["train.checkpoint_every=2"])
    with pytest.warns(UserWarning, match=r"train.checkpoint_every does not apply to popularity"):
        run_training(config, tmp_path, progress=False)


def _threads_of_this_process() -> dict[str, str]:
    """The environment for a run in a subprocess compared bit for bit with one in this process:
    the same number of threads, since a float sum split across another number of threads
    rounds differently (epoch 1's loss 195.2154297 with one thread, 195.2154312 with two)."""
    return {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}


@pytest.mark.slow  # moved out of the default run (~10 min on 2 cores); CI runs it
def test_ctrl_c_on_the_command_names_the_run_and_recdiff_resume_completes_it(tmp_path):
    """End to end: SIGINT to `recdiff train` once it has a checkpoint, then `recdiff resume`."""
    settings = ["train.epochs=200", "train.patience=1000", "train.checkpoint_every=2"]
    settings += ["model.hidden_dims=[64]"]
    args = ["train", "demo-diffrec", "--runs-dir", str(tmp_path / "cut"), "--quiet"]
    for setting in settings:
        args += ["--set", setting]
    job = subprocess.Popen(
        [sys.executable, "-m", "recdiff", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_threads_of_this_process(),
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        while not list((tmp_path / "cut").glob(f".*.incomplete/{CHECKPOINT_FILE}")):
            assert job.poll() is None and time.monotonic() < deadline, "no checkpoint written"
            time.sleep(0.05)
        job.send_signal(signal.SIGINT)
        _, stderr = job.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(job.pid, signal.SIGKILL)
    (run,) = [p for p in (tmp_path / "cut").iterdir() if not p.name.startswith(".")]
    assert job.returncode == 130
    assert stderr.strip().splitlines()[-1] == (
        f"error: interrupted; resume the run with: recdiff resume {run}"
    )

    result = CliRunner().invoke(app, ["resume", str(run), "--quiet"])
    assert result.exit_code == 0, result.output
    assert f"run: {run}" in result.output
    whole = run_training(load_config("demo-diffrec", settings), tmp_path / "whole", progress=False)
    _same_run(whole.directory, run)

    again = CliRunner().invoke(app, ["resume", str(run)])
    assert again.exit_code == 2
    assert f"error: {run} is a complete run: there is nothing to resume" in again.output


# Every process of a torchrun job is interrupted as its 4th epoch starts (Ctrl-C reaches them
# all); the checkpoint of epoch 2 holds each process's own generators.
_INTERRUPTED_RANKS = """
import sys
from recdiff.cli.main import app
from recdiff.train import trainer

epochs = []

def interrupted_batches(order, batch_size, world):
    epochs.append(1)
    if len(epochs) == 4:
        raise KeyboardInterrupt
    return original(order, batch_size, world)

original, trainer.epoch_batches = trainer.epoch_batches, interrupted_batches
app(sys.argv[1:])
"""


# three torchrun launches, ~19 s: resume and torchrun each have fast tests of their own
@pytest.mark.slow
def test_a_torchrun_job_resumes_under_torchrun_as_if_never_stopped(tmp_path):
    from tests.train.test_distributed import TORCHRUN

    settings = [*DIFFREC, "train.epochs=6", "train.checkpoint_every=2", "model.dropout=0.5"]
    train = ["train", "demo-diffrec", "--quiet"]
    for setting in settings:
        train += ["--set", setting]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def torchrun(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*TORCHRUN, *args], capture_output=True, text=True, env=env, timeout=180
        )

    whole = torchrun("-m", "recdiff", *train, "--runs-dir", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr[-3000:]
    script = tmp_path / "interrupted.py"
    script.write_text(_INTERRUPTED_RANKS)
    cut = torchrun(str(script), *train, "--runs-dir", str(tmp_path / "cut"))
    assert cut.returncode != 0
    (run,) = [p for p in (tmp_path / "cut").iterdir() if not p.name.startswith(".")]
    assert f"resume the run with: recdiff resume {run}" in cut.stderr

    resumed = torchrun("-m", "recdiff", "resume", str(run), "--quiet")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (done,) = (tmp_path / "whole").iterdir()
    _same_run(done, run)


def test_an_experiment_resumes_its_interrupted_run_instead_of_training_it_again(
    interrupt_at, tmp_path
):
    from recdiff.experiments.experiment import _seeded, run_experiment
    from recdiff.train.folders import remove_unfinished_runs

    config = load_config("demo-diffrec", [*DIFFREC, "train.checkpoint_every=2"])
    seeded = config.model_validate(_seeded(config, "diffrec", 1))  # as the experiment names it
    runs = tmp_path / "out" / "runs"
    with pytest.raises(KeyboardInterrupt) as stop:
        run_training(seeded, runs, progress=False, on_event=interrupt_at(5))
    run = resumable_from(stop.value)
    remove_unfinished_runs(runs, seeded.name)  # what a stopped experiment clears: not this one
    assert (runs / f".{run.name}.incomplete" / CHECKPOINT_FILE).is_file()

    done = run_experiment([config.model_copy(update={"name": "diffrec"})], [1], tmp_path / "out")
    (record,) = done.records
    assert Path(record.run_dir) == run  # the interrupted run, completed: no second run
    assert sorted(p.name for p in runs.iterdir()) == [run.name]
    whole = run_training(seeded, tmp_path / "whole", progress=False)
    _same_run(whole.directory, run)


def test_a_resumed_runs_tensorboard_holds_each_epoch_once(interrupt_at, tmp_path):
    """The interrupted process wrote the epochs after the checkpoint too; they are run again,
    and TensorBoard shows the records of events.jsonl, not both."""
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    config = load_config(
        "demo-diffrec", [*DIFFREC, "train.checkpoint_every=2", "train.tensorboard=true"]
    )
    with pytest.raises(KeyboardInterrupt) as stop:
        run_training(config, tmp_path, progress=False, on_event=interrupt_at(5))
    run = resume_training(resumable_from(stop.value), progress=False).directory

    scalars = accumulator.EventAccumulator(str(run / "tensorboard"))
    scalars.Reload()
    logged = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    epochs = [record for record in logged if record["event"] == "epoch"]
    seconds = scalars.Scalars("epoch/seconds")
    assert [event.step for event in seconds] == [record["epoch"] for record in epochs]
    assert [event.value for event in seconds] == pytest.approx([r["seconds"] for r in epochs])


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("hidden_dims", [128], "model.hidden_dims: [64] then, [128] now"),
        ("seed", 7, "train.seed: 1 then, 7 now"),
    ],
)
def test_a_config_yaml_changed_since_the_checkpoint_is_refused_naming_the_change(
    interrupted, key, value, named
):
    """Weights of another shape would not load (a traceback), and another seed would resume
    silently into a run that no config describes."""
    run, hidden = interrupted
    raw = yaml.safe_load((hidden / "config.yaml").read_text())
    raw["model" if key == "hidden_dims" else "train"][key] = value
    (hidden / "config.yaml").write_text(yaml.safe_dump(raw))

    result = CliRunner().invoke(app, ["resume", str(run), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "config.yaml differs from the config its checkpoint" in result.output
    assert named in result.output
    assert (hidden / CHECKPOINT_FILE).is_file()  # kept: resumable once config.yaml is restored


# Killed outright (SIGKILL) half-way through writing the checkpoint of epoch 4.
_KILLED_WRITING = """
import os, signal, sys
from recdiff.cli.main import app
from recdiff.train import checkpoint

writes, save = [], checkpoint.torch.save

def killed_half_way(checkpoint, fh):  # the open temporary file
    writes.append(fh)
    if len(writes) == 2:
        fh.write(b"PK half a checkpoint")
        fh.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    save(checkpoint, fh)

checkpoint.torch.save = killed_half_way
app(sys.argv[1:])
"""


def test_a_run_killed_while_writing_a_checkpoint_resumes_and_keeps_no_partial_file(tmp_path):
    settings = [*DIFFREC, "train.checkpoint_every=2"]
    args = ["train", "demo-diffrec", "--runs-dir", str(tmp_path / "cut"), "--quiet"]
    for setting in settings:
        args += ["--set", setting]
    script = tmp_path / "killed.py"
    script.write_text(_KILLED_WRITING)
    env = _threads_of_this_process()
    killed = subprocess.run([sys.executable, str(script), *args], env=env, timeout=180)
    assert killed.returncode == -signal.SIGKILL
    (run,) = [p for p in (tmp_path / "cut").iterdir() if not p.name.startswith(".")]
    hidden = run.parent / f".{run.name}.incomplete"
    assert [p.name for p in hidden.glob(".*.tmp")]  # what the killed write left

    resume_training(run, progress=False)  # from the whole checkpoint of epoch 2

    whole = run_training(load_config("demo-diffrec", settings), tmp_path / "whole", progress=False)
    _same_run(whole.directory, run)
    assert sorted(p.name for p in run.rglob("*")) == sorted(
        p.name for p in whole.directory.rglob("*")
    )


def test_a_run_killed_as_it_completes_is_not_lost(tmp_path, monkeypatch):
    """Killed after the run was written but before its folder took the final name: its
    checkpoint is still there, so resuming it completes it."""
    config = load_config("demo-diffrec", [*DIFFREC, "train.checkpoint_every=2"])
    replace = os.replace

    def killed_renaming_the_run(source, target):
        if str(source).endswith(".incomplete"):
            raise KeyboardInterrupt  # outside any clean-up, as SIGKILL would land
        replace(source, target)

    monkeypatch.setattr(os, "replace", killed_renaming_the_run)
    with pytest.raises(KeyboardInterrupt):
        run_training(config, tmp_path / "cut", progress=False)
    monkeypatch.setattr(os, "replace", replace)
    (run,) = [p for p in (tmp_path / "cut").iterdir() if not p.name.startswith(".")]

    resume_training(run, progress=False)

    _same_run(run_training(config, tmp_path / "whole", progress=False).directory, run)
    assert not (run / CHECKPOINT_FILE).exists()


def test_ctrl_c_before_the_first_checkpoint_says_so_rather_than_to_set_checkpoint_every(
    tmp_path, monkeypatch
):
    def interrupted(config, runs_dir, progress=None):
        raise KeyboardInterrupt

    monkeypatch.setattr("recdiff.train.run.run_training", interrupted)
    args = ["train", "demo-diffrec", "--runs-dir", str(tmp_path), "--quiet"]
    result = CliRunner().invoke(app, [*args, "--set", "train.checkpoint_every=3"])
    assert result.exit_code == 130
    assert (
        "no run was written: it stopped before its first resume checkpoint "
        "(train.checkpoint_every=3: one every 3 epoch(s) of each stage)"
    ) in result.output
    result = CliRunner().invoke(app, args)
    assert "set train.checkpoint_every to make an interrupted run resumable" in result.output


def test_a_search_trial_interrupted_leaves_no_folder(tmp_path):
    """A trial stopped by Ctrl-C is marked failed and never resumed: the folders a checkpoint
    would keep for `recdiff resume` are removed, as the search's other runs are."""
    pytest.importorskip("optuna")
    from recdiff.experiments.space import SearchSpace
    from recdiff.experiments.tune import PruningReporter, tune

    space = SearchSpace.from_dict(
        {"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}
    )
    config = load_config("demo-diffrec", [*DIFFREC, "train.checkpoint_every=2"])
    report = PruningReporter.__call__

    def interrupted_in_epoch_5(self, record):
        report(self, record)
        if record["event"] == "epoch" and record["epoch"] == 5:
            raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PruningReporter, "__call__", interrupted_in_epoch_5)
        with pytest.raises(KeyboardInterrupt) as stop:
            tune(config, space, 2, tmp_path, prune=False)
    assert resumable_from(stop.value) is None
    assert list((tmp_path / "runs").iterdir()) == []


def test_resuming_a_gpu_run_on_a_machine_without_one_says_so(interrupted, monkeypatch):
    run, hidden = interrupted
    config = hidden / "config.yaml"
    config.write_text(config.read_text().replace("device: cpu", "device: cuda"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = CliRunner().invoke(app, ["resume", str(run)])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: train.device is 'cuda', but torch sees no CUDA GPU here: resume it on a machine "
        "that has it (the run keeps the device it started on)\n"
    )
    assert (hidden / CHECKPOINT_FILE).is_file()  # nothing touched


def test_an_ended_stage_is_kept_as_it_ended_while_later_stages_train_on(interrupt_at, tmp_path):
    """L-DiffRec trained jointly trains its autoencoders on after their own stage: the record of
    that stage keeps the weights it ended with, not the ones they have become."""
    config = load_config(
        "demo-diffrec", [*LDIFFREC, "train.checkpoint_every=2", "model.latent.joint=true"]
    )
    with pytest.raises(KeyboardInterrupt) as stop:  # in epoch 5 of the joint stage
        run_training(config, tmp_path, progress=False, on_event=interrupt_at(9))
    run = resumable_from(stop.value)
    saved = torch.load(run.parent / f".{run.name}.incomplete" / CHECKPOINT_FILE, weights_only=True)
    (ended,) = saved["finished"]
    now = saved["progress"]["module"]
    encoder = [name for name in ended["module"] if "autoencoder" in name and "weight" in name]
    assert encoder and any(not torch.equal(ended["module"][k], now[k]) for k in encoder)
