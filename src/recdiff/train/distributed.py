"""Data-parallel training over several processes: torch DistributedDataParallel under torchrun.

``torchrun --nproc_per_node=N -m recdiff train PRESET`` (or ``--nnodes``/``--rdzv-endpoint`` across
machines) starts N processes with torchrun's environment (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``, ``MASTER_PORT``). :func:`init_from_env` turns it into a process group (gloo for
CPU training, nccl for CUDA, each process on GPU ``LOCAL_RANK``) and :class:`~recdiff.train.
trainer.Trainer` does the rest. Without that environment, or with ``WORLD_SIZE=1``, nothing here
communicates and training takes the single-process path unchanged.

How an epoch is shared so that W processes reproduce single-process training:

- every process draws the same permutation of the examples from the shared seed and cuts it into
  the same global batches of ``batch_size`` examples (``train.batch_size`` is the global batch);
- each global batch is cut into W contiguous shards whose sizes differ by at most one (about
  ``batch_size / W`` each); process r trains on shard r and weights its mean loss by its share of
  the batch, so DDP's averaged gradient is exactly the gradient of the global batch's mean loss;
- a last global batch with fewer than W examples joins the batch before it, so every process takes
  the same number of steps, each with at least one example (the only departure from one process).

Random draws inside the model (noise, timesteps, dropout) use a per-process seed: processes see
different examples and must not share noise, so DDP training equals single-process training in
distribution, and exactly when the model draws nothing. Evaluation and everything written to disk
belong to rank 0; the others wait for its metrics, which are broadcast, so every process makes the
same early-stopping decision and restores the same best weights.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import inspect
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "COLLECTIVE_TIMEOUT",
    "LaunchError",
    "all_reduce_sum",
    "broadcast_object",
    "data_parallel_loss",
    "epoch_batches",
    "failure_is_final",
    "gather_object",
    "gather_timestep_losses",
    "init_from_env",
    "is_distributed",
    "is_main_process",
    "rank",
    "rank_seed",
    "shard",
    "shutdown",
    "world_size",
]

#: How long a process waits in a collective. Rank 0 evaluates while the others wait for its
#: metrics, and a full-ranking evaluation of a large dataset can take long.
COLLECTIVE_TIMEOUT = datetime.timedelta(hours=2)


class LaunchError(RuntimeError, ValueError):
    """The processes were started or configured so that they cannot train together (torchrun's
    variables missing, more processes than GPUs, no CUDA for ``train.device=cuda``).

    A ``ValueError`` as well, so that the command line reports it as a one-line error that says
    what to fix, as it reports any other setting a user got wrong, rather than as a traceback."""


def env_world_size() -> int:
    """``WORLD_SIZE`` as torchrun sets it (1 when absent)."""
    value = os.environ.get("WORLD_SIZE", "1")
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"WORLD_SIZE must be a positive integer, got {value!r}")
    return int(value)


def init_from_env(device: str | torch.device = "cpu") -> bool:
    """Initialise the default process group from torchrun's environment; idempotent.

    Returns True when training is distributed (more than one process). The backend follows the
    training device: gloo for ``cpu``, nccl for ``cuda`` (each process then uses GPU
    ``LOCAL_RANK``, so give ``train.device=cuda`` without an index).
    """
    device = torch.device(device)
    if dist.is_available() and dist.is_initialized():
        _check_backend(device)
        if dist.get_backend() == "nccl" and device.index is None and "LOCAL_RANK" in os.environ:
            # A group the caller made: 'cuda' still means LOCAL_RANK's GPU, unless the launcher
            # shows each process fewer GPUs than that (one bound GPU each): then it is the one.
            local_rank = int(os.environ["LOCAL_RANK"])
            if local_rank < torch.cuda.device_count():
                torch.cuda.set_device(local_rank)
        return dist.get_world_size() > 1
    world = env_world_size()
    if world == 1:
        return False
    if not dist.is_available():
        raise LaunchError(
            f"WORLD_SIZE={world} asks for distributed training, but this torch build has no "
            "torch.distributed: install a build with it or start a single process"
        )
    missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise LaunchError(
            f"WORLD_SIZE={world} but {', '.join(missing)} not set: start the processes with "
            "torchrun (e.g. torchrun --nproc_per_node=2 -m recdiff train PRESET), which sets them"
        )
    dist.init_process_group(_backend_for(device), timeout=COLLECTIVE_TIMEOUT)
    # A group left alive at interpreter exit can abort the process ("terminate called without
    # an active exception") after a successful run: whoever creates it tears it down.
    atexit.register(shutdown)
    return True


def _backend_for(device: torch.device) -> str:
    if device.type == "cpu":
        return "gloo"
    if device.type != "cuda":
        raise ValueError(
            f"distributed training runs on cpu (gloo) or cuda (nccl) devices, got {device}"
        )
    if device.index is not None:
        raise ValueError(
            f"train.device={device} names one GPU, but under torchrun each process uses GPU "
            "LOCAL_RANK: set train.device=cuda"
        )
    if not torch.cuda.is_available():
        raise LaunchError("train.device=cuda but CUDA is not available: set train.device=cpu")
    if not dist.is_nccl_available():
        raise LaunchError("train.device=cuda needs the nccl backend, which this torch lacks")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if local_rank >= torch.cuda.device_count():
        raise LaunchError(
            f"LOCAL_RANK={local_rank} but this machine has {torch.cuda.device_count()} GPUs: "
            "start at most one process per GPU (--nproc_per_node)"
        )
    torch.cuda.set_device(local_rank)
    return "nccl"


def _check_backend(device: torch.device) -> None:
    """An existing group must be able to reduce tensors on ``device``."""
    backend = dist.get_backend()
    if backend == "nccl" and device.type != "cuda":
        raise LaunchError(
            f"the process group uses nccl, which reduces CUDA tensors only, but training runs on "
            f"{device}: set train.device=cuda, or initialise the group with gloo for CPU training"
        )


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without distributed training)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of training processes (1 without distributed training)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Rank 0: the process that evaluates, logs and writes."""
    return rank() == 0


def shutdown() -> None:
    """Destroy the process group, if one was initialised (registered at exit by
    :func:`init_from_env`).

    Gloo's worker threads release the tensors of finished collectives, which takes the GIL; once
    DDP has run they outlive ``destroy_process_group`` (DDP keeps the group alive), and one still
    waiting for the GIL when the interpreter finalises aborts a successful run ("terminate called
    without an active exception", 1 run in 8-18 here). So with gloo every process first meets the
    others (none starts another collective after that), then sleeps briefly without the GIL so the
    threads finish: 0 aborts in 36 runs that way, against 2 in 36 with the barrier alone.

    A process whose training failed (:func:`failure_is_final`) skips that meeting: the others are
    waiting in another collective, which the barrier would never match, and its pending work would
    then hold ``destroy_process_group`` (and the exit) for the collective timeout, so that torchrun
    would not see the failure and stop the others for hours.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    if dist.get_backend() == "gloo" and dist.get_world_size() > 1 and not _failed:
        with contextlib.suppress(RuntimeError):  # a process that failed elsewhere never comes
            dist.barrier(async_op=True).wait(timeout=_EXIT_WAIT)
        time.sleep(_GLOO_RELEASE_PAUSE_S)
    dist.destroy_process_group()


_GLOO_RELEASE_PAUSE_S = 0.2
_EXIT_WAIT = datetime.timedelta(seconds=30)
_failed = False  # set by failure_is_final


@contextlib.contextmanager
def failure_is_final() -> Iterator[None]:
    """Training code runs in this block: an exception leaving it (an error, Ctrl-C, SIGTERM)
    marks this process as failed, so that :func:`shutdown` lets it exit at once and torchrun can
    stop the other processes (which would otherwise wait for it in a collective).

    Entering the block clears an earlier mark: a process that goes on to train again after a
    failure it handled (a pruned trial of a search, say) meets the others at exit as usual."""
    global _failed
    _failed = False
    try:
        yield
    except BaseException:
        _failed = True
        raise


def rank_seed(seed: int, rank: int) -> int:
    """A seed for process ``rank``'s own random draws, derived from the shared ``seed``."""
    return int(np.random.SeedSequence([seed % 2**32, rank]).generate_state(1)[0])


def epoch_batches(order: np.ndarray, batch_size: int, world: int = 1) -> list[np.ndarray]:
    """The global batches of one epoch: ``order`` cut every ``batch_size`` (last one kept).

    With ``world`` processes a last batch smaller than ``world`` joins the one before it, so each
    process gets at least one example per step.
    """
    if len(order) < world:
        raise ValueError(
            f"{len(order)} training examples cannot be shared by {world} processes: start at "
            f"most {len(order)} (torchrun --nproc_per_node) or train on more data"
        )
    if batch_size < world:
        raise ValueError(
            f"train.batch_size={batch_size} is the global batch, shared by {world} processes: "
            f"set it to at least {world} or start fewer processes"
        )
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    if world > 1 and len(batches) > 1 and len(batches[-1]) < world:
        batches[-2:] = [np.concatenate(batches[-2:])]
    return batches


def shard(batch: np.ndarray, rank: int, world: int) -> np.ndarray:
    """Process ``rank``'s contiguous part of a global batch (sizes differ by at most one).

    Contiguous shards keep the batch's order when the ranks' parts are concatenated in rank order,
    which :func:`gather_timestep_losses` relies on.
    """
    if world == 1:
        return batch
    bounds = len(batch) * np.arange(world + 1) // world
    return batch[bounds[rank] : bounds[rank + 1]]


def gather_timestep_losses(
    t: torch.Tensor, losses: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every process's ``(t, loss)`` pairs of this step, concatenated in rank order.

    Called by every process at every step, so that a loss-aware timestep sampler updated with the
    result holds the same history everywhere (and, with contiguous shards, the history a single
    process would have built from the same global batch). Returns the inputs unchanged in a
    single process.
    """
    if not is_distributed():
        return t, losses
    local = torch.stack([t.detach().to(torch.float64), losses.detach().to(torch.float64)])
    count = torch.tensor([local.shape[1]], dtype=torch.int64, device=local.device)
    counts = [torch.zeros_like(count) for _ in range(dist.get_world_size())]
    dist.all_gather(counts, count)
    sizes = [int(c) for c in counts]
    padded = local.new_zeros(2, max(sizes))
    padded[:, : local.shape[1]] = local
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    joined = torch.cat([part[:, :size] for part, size in zip(parts, sizes, strict=True)], dim=1)
    return joined[0].long(), joined[1]


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` (any picklable value) on every process; ``obj`` in one process."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_object(obj: Any) -> list[Any]:
    """Every process's ``obj``, in rank order, on every process (``[obj]`` in one process)."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def all_reduce_sum(values: Sequence[float], device: str | torch.device = "cpu") -> list[float]:
    """Element-wise sums of ``values`` over all processes (the values themselves in one)."""
    if not is_distributed():
        return [float(v) for v in values]
    total = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return total.tolist()


class _LossForward(nn.Module):
    """``model.loss`` as a module's forward, so that DDP sees (and synchronises) each step.

    DDP only reduces gradients of a backward that follows a forward through the DDP wrapper; any
    model's loss, whatever it calls inside, goes through the wrapper this way.
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.trained = model.module  # registers the parameters DDP synchronises
        self.compute = model.loss

    def forward(self, batch: Any) -> torch.Tensor:
        return self.compute(batch)


def data_parallel_loss(model: Any, device: str | torch.device) -> Callable[[Any], torch.Tensor]:
    """``model.loss`` itself in one process; under DDP a wrapper that synchronises gradients.

    The wrapper broadcasts rank 0's parameters once (every process then starts from the same
    weights) and all-reduces gradients during each backward. Buffers are not re-broadcast each
    step: recdiff's are constants (item groups, step tables). A step of some models leaves a
    trainable parameter without gradient (DreamRec's null guidance when p_u is 0), so DDP looks
    for unused parameters unless the model says it ``trains_every_parameter``; the graph walk
    that costs was within noise on Mult-VAE (1.66-1.84 s per epoch either way, 2 processes),
    but DDP warns on every rank when it finds none.
    """
    if not is_distributed():
        return model.loss
    device = torch.device(device)
    return nn.parallel.DistributedDataParallel(
        _LossForward(model),
        device_ids=[torch.cuda.current_device()] if device.type == "cuda" else None,
        find_unused_parameters=not getattr(model, "trains_every_parameter", False),
        **{_NO_FORWARD_BUFFER_SYNC: False},
    )


# torch 2.13 renamed DDP's per-forward buffer broadcast; older versions only know the old name.
_NO_FORWARD_BUFFER_SYNC = (
    "forward_sync_buffers"
    if "forward_sync_buffers" in inspect.signature(nn.parallel.DistributedDataParallel).parameters
    else "broadcast_buffers"
)
