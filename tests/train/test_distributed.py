"""Data-parallel training: sharding, the gathered loss statistics, and 2-process DDP (gloo, CPU)
against single-process training.

Processes draw their own noise, so DDP equals single-process training in distribution only. With
every random draw switched off (dropout 0, T = 1, Gaussian draws replaced by zeros) it must equal
it exactly, up to float rounding: that checks the sharding, the loss weighting of each shard,
the gradient synchronisation, the broadcast of rank 0's metrics and the early-stopping decision.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recdiff.data import demo_splits
from recdiff.data.synthetic_sequences import demo_sequences
from recdiff.diffusion import LossAwareSampler
from recdiff.models.diffrec import DiffRec, DiffRecConfig, DiffusionConfig
from recdiff.models.ldiffrec import LatentConfig, LDiffRec, LDiffRecConfig
from recdiff.models.multvae import MultVAE, MultVAEConfig
from recdiff.models.sasrec import SASRec, SASRecConfig
from recdiff.train import distributed
from recdiff.train.config import TrainConfig
from recdiff.train.distributed import epoch_batches, shard
from recdiff.train.trainer import Trainer

WORLD = 2
TORCHRUN = [
    sys.executable,
    "-m",
    "torch.distributed.run",
    "--standalone",
    f"--nproc_per_node={WORLD}",
]
EXACT_DIFFREC = DiffRecConfig(hidden_dims=[32], dropout=0.0, diffusion=DiffusionConfig(steps=1))
NOISY_DIFFREC = DiffRecConfig(hidden_dims=[32], dropout=0.2, diffusion=DiffusionConfig(steps=4))
# Batches of 25 split 12 + 13: uneven shards. Both runs stop early (checked below), so the
# broadcast stop decision and the restore of the best weights are exercised.
DIFFREC_TRAINING = TrainConfig(
    lr=1e-2, batch_size=25, epochs=12, eval_every=1, patience=2, progress=False, seed=5
)
EXACT_MULTVAE = MultVAEConfig(
    hidden_dims=(16,),
    latent_dim=8,
    dropout=0.0,
    lr=1e-2,
    batch_size=25,
    max_epochs=12,
    patience=2,
    valid_metric="ndcg@5",
    seed=5,
)
SPARSE_LDIFFREC = LDiffRecConfig(
    latent=LatentConfig(latent_dim=8, svd_dim=4, epochs=2, sparse_input=True),
    hidden_dims=[16],
    diffusion=DiffusionConfig(steps=4),
)
# SASRec's own objective averages over every real position of each user's window; windows differ
# in length, so shards of equal users hold unequal positions.
EXACT_SASREC = SASRecConfig(dim=8, dropout=0.0, all_positions=True)
SASREC_TRAINING = TrainConfig(lr=1e-2, batch_size=25, epochs=3, progress=False, seed=5)
# (t, loss) pairs of one step on each rank; rank 1 has fewer, as uneven shards do.
RANK_LOSSES = {0: ([0, 2, 2], [0.5, 1.5, 2.5]), 1: ([2, 1], [3.5, 4.5])}


def _splits():
    return demo_splits(seed=0, n_users=120, n_items=60, n_groups=4)


class _PartlyUsed:
    """A deterministic Trainable whose loss never touches one of its parameters (DDP must cope:
    some models leave parameters without gradient in a step)."""

    def __init__(self, n_items: int) -> None:
        torch.manual_seed(0)
        self.module = torch.nn.ModuleDict(
            {"used": torch.nn.Linear(n_items, 4), "unused": torch.nn.Linear(3, 3)}
        )

    def loss(self, rows: torch.Tensor) -> torch.Tensor:
        return (self.module["used"](rows) - 1.0).pow(2).mean()

    def score(self, rows):
        raise NotImplementedError


@contextlib.contextmanager
def no_gaussian_noise() -> Iterator[None]:
    """Diffusion noise and the VAE's reparameterisation draw zeros instead of N(0, I)."""
    with mock.patch.object(torch, "randn_like", torch.zeros_like):
        yield


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _train_all(splits) -> dict[str, object]:
    """Every model this file checks, trained as configured (1 or 2 processes alike)."""
    train, valid = splits.train.matrix, splits.valid.matrix
    out: dict[str, object] = {}
    partly_used = _PartlyUsed(train.shape[1])
    Trainer(DIFFREC_TRAINING.model_copy(update={"epochs": 3})).fit(partly_used, train)
    out["partly_used"] = _state(partly_used.module)
    with no_gaussian_noise():
        exact = DiffRec(EXACT_DIFFREC, DIFFREC_TRAINING).fit(train, valid)
        multvae = MultVAE(EXACT_MULTVAE).fit(train, valid)
    out["diffrec_exact"] = _state(exact.module)
    out["diffrec_exact_result"] = (exact.result.best_epoch, exact.result.epochs_run)
    out["diffrec_exact_valid"] = [e["valid/recall@20"] for e in exact.result.history]
    out["multvae"] = _state(multvae.module)
    out["multvae_best"] = (multvae.best_epoch_, len(multvae.fit_log_))
    noisy = DiffRec(NOISY_DIFFREC, DIFFREC_TRAINING).fit(train, valid)
    out["diffrec_noisy"] = _state(noisy.module)
    out["diffrec_noisy_history"] = noisy.timesteps.state_dict()
    out["diffrec_noisy_best"] = noisy.result.best_epoch
    ldiffrec = LDiffRec(SPARSE_LDIFFREC, DIFFREC_TRAINING.model_copy(update={"epochs": 2}))
    ldiffrec.fit(train)
    out["ldiffrec"] = _state(ldiffrec.module)
    sasrec = SASRec(EXACT_SASREC, SASREC_TRAINING).fit(demo_sequences(seed=0).with_layout("left"))
    out["sasrec_all_positions"] = _state(sasrec.module)
    return out


def _worker(rank: int, port: int, folder: str) -> None:
    """One process of the 2-process run, started by torch.multiprocessing with torchrun's env."""
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(WORLD),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    try:
        assert distributed.init_from_env("cpu")
        out = _train_all(_splits())
        t, losses = RANK_LOSSES[rank]
        sampler = LossAwareSampler(3, history=2)
        sampler.update(*distributed.gather_timestep_losses(torch.tensor(t), torch.tensor(losses)))
        out["gathered_sampler"] = sampler.state_dict()
        torch.save(out, Path(folder) / f"rank{rank}.pt")
    finally:
        distributed.shutdown()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> list[dict[str, object]]:
    folder = tmp_path_factory.mktemp("ddp")
    torch.multiprocessing.spawn(_worker, args=(_free_port(), str(folder)), nprocs=WORLD)
    return [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


@pytest.fixture(scope="module")
def one_process() -> dict[str, object]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_all(_splits())
    finally:
        torch.set_num_threads(before)


def _assert_same_weights(a, b, atol: float) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=atol, rtol=0, msg=name)


# ------------------------------------------------------------------------- sharding (no processes)
@pytest.mark.parametrize(("n", "batch_size"), [(120, 32), (97, 32), (7, 3), (64, 64)])
def test_shards_are_disjoint_cover_the_batch_and_keep_its_order(n, batch_size):
    order = np.random.default_rng(0).permutation(n)
    batches = epoch_batches(order, batch_size, WORLD)
    np.testing.assert_array_equal(np.concatenate(batches), order)
    for batch in batches:
        parts = [shard(batch, r, WORLD) for r in range(WORLD)]
        np.testing.assert_array_equal(np.concatenate(parts), batch)  # disjoint, covering, ordered
        sizes = [len(p) for p in parts]
        assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1


def test_a_last_batch_smaller_than_the_world_joins_the_one_before():
    order = np.arange(97)
    assert [len(b) for b in epoch_batches(order, 32, 1)] == [32, 32, 32, 1]  # one process: as is
    assert [len(b) for b in epoch_batches(order, 32, 2)] == [32, 32, 33]
    assert [len(b) for b in epoch_batches(order, 32, 4)] == [32, 32, 33]
    with pytest.raises(ValueError, match="cannot be shared by 4 processes"):
        epoch_batches(np.arange(3), 32, 4)
    with pytest.raises(ValueError, match="at least 4"):
        epoch_batches(np.arange(30), 3, 4)


def test_rank_seeds_differ_by_rank_and_repeat():
    seeds = {distributed.rank_seed(5, r) for r in range(8)}
    assert len(seeds) == 8 and distributed.rank_seed(5, 3) == distributed.rank_seed(5, 3)


def test_one_process_communicates_nothing(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed.init_from_env("cpu") and not distributed.is_distributed()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main_process()) == (
        0,
        1,
        True,
    )
    t, losses = torch.tensor([1, 2]), torch.tensor([0.5, 0.25])
    assert distributed.gather_timestep_losses(t, losses) == (t, losses)
    assert distributed.broadcast_object({"a": 1}) == {"a": 1}
    assert distributed.all_reduce_sum([1.5, 2]) == [1.5, 2.0]
    model = DiffRec(EXACT_DIFFREC).build(5)
    assert distributed.data_parallel_loss(model, "cpu") == model.loss  # no DDP wrapper


def test_misconfigured_environments_say_what_to_fix(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match="torchrun"):
        distributed.init_from_env("cpu")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "1")
    with pytest.raises(ValueError, match=r"set train\.device=cuda"):
        distributed.init_from_env("cuda:1")
    with pytest.raises(ValueError, match=r"cpu \(gloo\) or cuda \(nccl\)"):
        distributed.init_from_env("meta")
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE"):
        distributed.init_from_env("cpu")


# ------------------------------------------------------------------------ two processes (gloo)
def test_gathered_loss_statistics_are_identical_and_in_batch_order(two_processes):
    single = LossAwareSampler(3, history=2)
    single.update(
        torch.tensor(RANK_LOSSES[0][0] + RANK_LOSSES[1][0]),
        torch.tensor(RANK_LOSSES[0][1] + RANK_LOSSES[1][1]),
    )
    for out in two_processes:
        got = out["gathered_sampler"]
        torch.testing.assert_close(got["loss_history"], single.loss_history, rtol=0, atol=0)
        torch.testing.assert_close(got["counts"], single.counts, rtol=0, atol=0)
    # Steps 0 and 1 each saw one loss; step 2 saw 1.5, 2.5 (rank 0) then 3.5 (rank 1).
    assert single.counts.tolist() == [1, 1, 3]


def test_diffrec_without_random_draws_matches_one_process(two_processes, one_process):
    best_epoch, epochs_run = one_process["diffrec_exact_result"]
    assert best_epoch < epochs_run < DIFFREC_TRAINING.epochs, "must stop early and restore"
    for out in two_processes:
        _assert_same_weights(out["diffrec_exact"], one_process["diffrec_exact"], atol=1e-5)
        assert out["diffrec_exact_result"] == one_process["diffrec_exact_result"]
        np.testing.assert_allclose(
            out["diffrec_exact_valid"], one_process["diffrec_exact_valid"], atol=1e-4
        )


def test_a_parameter_without_gradient_trains_alike(two_processes, one_process):
    for out in two_processes:
        _assert_same_weights(out["partly_used"], one_process["partly_used"], atol=1e-6)
    assert torch.equal(
        two_processes[0]["partly_used"]["unused.weight"], _PartlyUsed(60).module["unused"].weight
    )


def test_multvae_without_random_draws_matches_one_process(two_processes, one_process):
    best_epoch, epochs_run = one_process["multvae_best"]
    assert best_epoch < epochs_run < EXACT_MULTVAE.max_epochs, "must stop early and restore"
    for out in two_processes:
        _assert_same_weights(out["multvae"], one_process["multvae"], atol=1e-5)
        assert out["multvae_best"] == one_process["multvae_best"]


def test_sasrec_all_positions_weighs_shards_by_positions_like_one_process(
    two_processes, one_process
):
    """Shards weighted by examples miss one process by up to 7e-2 here; by positions, 4e-7."""
    dim = EXACT_SASREC.dim

    def without_key_bias(state):
        # The key bias cannot change attention (softmax ignores a per-query constant): its true
        # gradient is 0, and Adam turns the rounding noise in it into full-size steps.
        state = dict(state)
        bias = state.pop("encoder.blocks.0.self_attn.in_proj_bias")
        state["query_and_value_bias"] = torch.cat([bias[:dim], bias[2 * dim :]])
        return state

    for out in two_processes:
        _assert_same_weights(
            without_key_bias(out["sasrec_all_positions"]),
            without_key_bias(one_process["sasrec_all_positions"]),
            atol=1e-5,
        )


def test_sasrec_loss_weight_counts_real_positions_with_all_positions():
    model = SASRec(EXACT_SASREC).build(n_items=6, max_len=4)
    pad = model.net.encoder.pad_id
    batch = {
        "history": torch.tensor([[pad, pad, 1, 2], [3, 4, 5, 0]]),
        "targets": torch.tensor([3, 1]),
    }
    assert model.loss_weight(batch) == 6.0  # 2 + 4 real positions
    assert SASRec(SASRecConfig(dim=8)).build(n_items=6, max_len=4).loss_weight(batch) is None
    # A shard of empty histories has nothing to predict: a zero loss that still backpropagates.
    empty = {"history": torch.full((2, 4), pad), "targets": torch.tensor([3, 1])}
    loss = model.loss(empty)
    loss.backward()
    assert model.loss_weight(empty) == 0.0 and loss.item() == 0.0


def test_noisy_training_keeps_every_process_identical(two_processes, one_process):
    """With noise the processes draw differently from one process, but never from each other's
    view of the model: same weights, same loss-aware histories, on every rank."""
    first, second = two_processes
    for key in ("diffrec_noisy", "diffrec_noisy_history", "ldiffrec"):
        _assert_same_weights(first[key], second[key], atol=0)
    # Every process recorded the loss of every example up to the restored (best) epoch.
    n_examples = _splits().train.matrix.shape[0]
    counts = first["diffrec_noisy_history"]["counts"]
    assert (
        counts.sum()
        == n_examples * first["diffrec_noisy_best"]
        == n_examples * (second["diffrec_noisy_best"])
    )


def _torchrun_train(runs: Path, *settings: str) -> subprocess.CompletedProcess:
    command = [*TORCHRUN, "-m", "recdiff", "train", "demo-diffrec", "--quiet"]
    command += ["--runs-dir", str(runs), "--set", "model.hidden_dims=[32]"]
    command += ["--set", "model.diffusion.steps=4", *settings]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def test_torchrun_writes_one_run_directory(tmp_path):
    """``torchrun --nproc_per_node=2 -m recdiff train``: rank 0 alone writes the run."""
    done = _torchrun_train(tmp_path, "--set", "train.epochs=2", "--set", "train.eval_every=1")
    runs = list(tmp_path.iterdir())
    assert len(runs) == 1, runs
    events = (runs[0] / "events.jsonl").read_text().splitlines()
    assert sum('"event": "eval"' in line for line in events) == 2
    assert (runs[0] / "metrics.json").is_file() and (runs[0] / "model").is_dir()
    # DiffRec trains every parameter, so DDP neither searches for unused ones nor warns of it.
    assert "find_unused_parameters" not in done.stderr


@pytest.mark.slow  # moved out of the default run (~10 min on 2 cores); CI runs it
def test_torchrun_trains_dreamrecs_sasrec_item_stage_then_dreamrec(tmp_path):
    """Both stages run under DDP, the frozen item table included, and rank 0 writes one run."""
    command = [*TORCHRUN, "-m", "recdiff", "train", "demo-dreamrec", "--quiet"]
    command += ["--runs-dir", str(tmp_path), "--set", "model.item_space.source=sasrec"]
    for setting in ("model.item_space.epochs=2", "train.epochs=2", "train.eval_every=1"):
        command += ["--set", setting]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    (run,) = tmp_path.iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["stages"]["items"]["epochs_run"] == 2 and metrics["epochs_run"] == 2
    assert "find_unused_parameters" not in done.stderr


def test_torchrun_says_a_warning_once(tmp_path):
    done = _torchrun_train(tmp_path, "--set", "train.epochs=1", "--set", "data.max_len=5")
    assert done.stderr.count("warning: data.max_len (5)") == 1, done.stderr[-4000:]


def test_sparse_row_batches_hold_exactly_the_rows_of_a_shard():
    """The sparse batches L-DiffRec trains on hold exactly the CSR rows of the shard."""
    from recdiff.train.batches import SparseRowBatches

    rows = sp.random(10, 7, density=0.4, format="csr", dtype=np.float32, random_state=0)
    batches = SparseRowBatches(rows)
    index = shard(np.arange(len(batches)), 1, WORLD)
    block = batches.batch(index, "cpu")
    assert block.is_sparse and block.shape == (len(index), 7)
    np.testing.assert_array_equal(block.to_dense().numpy(), rows[batches.rows[index]].toarray())


# One rank of a torchrun job fails: in training (rank 1; rank 0 then waits in a gradient
# all-reduce) or in validation (rank 0; rank 1 then waits for the broadcast metrics).
_FAILING_RANK = """
import sys
from recdiff.cli.main import app
from recdiff.train import trainer
from recdiff.train.distributed import shard

failing, where, steps = int(sys.argv[1]), sys.argv[2], []

def failing_shard(batch, rank, world):
    steps.append(rank)
    if where == "training" and rank == failing and len(steps) == 3:
        raise RuntimeError(f"rank {rank} fails in training")
    return shard(batch, rank, world)

def failing_validate(self, model):
    raise RuntimeError("rank 0 fails in validation")

trainer.shard = failing_shard
if where == "validation":
    trainer.Trainer._validate = failing_validate
app(sys.argv[3:])
"""


@pytest.mark.slow
@pytest.mark.parametrize(("failing", "where"), [(1, "training"), (0, "validation")])
def test_a_failing_rank_ends_the_torchrun_job_at_once(
    tmp_path, torchrun_failing_job, failing, where
):
    """The failed process must exit (not meet the others at a barrier they never reach), so that
    torchrun sees the failure and stops the rest instead of all waiting for the 2-hour collective
    timeout; nothing is left in the runs folder."""
    script = tmp_path / "failing_rank.py"
    script.write_text(_FAILING_RANK)
    runs = tmp_path / "runs"
    log = torchrun_failing_job(
        str(script),
        str(failing),
        where,
        *("train", "demo-diffrec", "--quiet", "--runs-dir", str(runs)),
        *("--set", "train.epochs=3", "--set", "train.eval_every=1"),
        *("--set", "model.hidden_dims=[32]", "--set", "model.diffusion.steps=4"),
    )
    assert f"rank {failing} fails in {where}" in log
    assert list(runs.iterdir()) == []


def test_a_group_made_by_the_caller_still_puts_each_process_on_its_local_gpu(monkeypatch):
    """With an NCCL group already set up, train.device=cuda is still GPU LOCAL_RANK (no GPU
    needed: the calls are recorded)."""
    chosen = []
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed.dist, "get_backend", lambda: "nccl")
    monkeypatch.setattr(distributed.dist, "get_world_size", lambda: 4)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert distributed.init_from_env("cuda")
    assert chosen == [3]
    monkeypatch.delenv("LOCAL_RANK")  # not started by torchrun: the caller's choice stands
    assert distributed.init_from_env("cuda") and chosen == [3]
    # A launcher that shows each process only its own GPU (LOCAL_RANK 5 of 4 visible): the
    # current device is that GPU, and it stays.
    monkeypatch.setenv("LOCAL_RANK", "5")
    assert distributed.init_from_env("cuda") and chosen == [3]
