"""The checks of ``cuda_check.py`` that are not one model family's run: timestep sampling and
noise with generators on either side, an EMA run, and DDP over nccl on two GPUs or more."""

from __future__ import annotations

import json
import shutil
import subprocess

import torch
from _cuda_check_harness import Checks, Skipped, finite_metrics, on_device, same
from _cuda_check_models import preset_and_overrides, train_run


def check_timesteps(checks: Checks, device: torch.device) -> None:
    from recdiff.diffusion import LossAwareSampler, UniformSampler, randn_rows

    def timesteps():
        details = {}
        for sampler in (UniformSampler(10), LossAwareSampler(10, history=2)):
            for _ in range(3):  # warm the loss-aware history up
                t = torch.arange(10, device=device)
                sampler.update(t, torch.rand(10, device=device))
            for where in ("cpu", device.type):
                generator = torch.Generator(where).manual_seed(0)
                t, weights = sampler.sample(64, device, generator)
                if t.device.type != device.type or weights.device.type != device.type:
                    raise AssertionError(f"steps on {t.device}, weights on {weights.device}")
                again, _ = sampler.sample(64, device, torch.Generator(where).manual_seed(0))
                if not same(t, again):
                    raise AssertionError("seeded timesteps differ")
                details[f"{type(sampler).__name__} {where} generator"] = "ok"
        return details

    def cross_device_noise():
        on_device = randn_rows((4, 3), torch.Generator().manual_seed(2), device)
        on_cpu = torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
        if on_device.device.type != device.type or not same(on_device, on_cpu):
            raise AssertionError("a CPU generator's draws changed on the way to the device")
        return {}

    checks.run("timestep samplers take generators on the CPU and the device", timesteps)
    checks.run("randn_rows: a CPU generator's draws, moved to the device", cross_device_noise)


def check_ema(checks: Checks, args, device: torch.device) -> None:
    from recdiff.config.loading import load_config
    from recdiff.train.run import run_training

    preset, overrides = preset_and_overrides("diffrec", args.device, "bf16", args.epochs)
    config = load_config(preset, [*overrides, "train.ema_decay=0.9", "name=cuda-check-ema"])

    def ema():
        result = train_run(run_training, config, args.out / "runs")
        return {**on_device(result.pop("model"), device), **result}

    checks.run("diffrec bf16 with EMA weights", ema)


def check_ddp(checks: Checks, args, device: torch.device) -> None:
    def ddp():
        if device.type != "cuda" or torch.cuda.device_count() < 2:
            raise Skipped(
                "DDP over nccl needs 2 GPUs (one process per GPU); this machine has "
                f"{torch.cuda.device_count() if device.type == 'cuda' else 0}"
            )
        torchrun = shutil.which("torchrun")
        if torchrun is None:
            raise AssertionError("torchrun not found on PATH")
        command = [
            torchrun, "--standalone", "--nproc_per_node=2", "-m", "recdiff", "train",
            "demo-diffrec", "--runs-dir", str(args.out / "ddp"), "--quiet",
            *("--set", "train.device=cuda", "--set", f"train.epochs={args.epochs}"),
            *("--set", "train.eval_every=1", "--set", "name=cuda-check-ddp"),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise AssertionError(f"torchrun failed ({done.returncode}): {done.stderr[-2000:]}")
        runs = list((args.out / "ddp").glob("cuda-check-ddp-*/metrics.json"))
        if len(runs) != 1:
            raise AssertionError(f"expected one run directory, found {len(runs)}")
        metrics = json.loads(runs[0].read_text())
        finite_metrics(metrics)
        return {"valid": metrics["valid"], "stdout": done.stdout[-500:]}

    checks.run("DDP: 2 processes over nccl (torchrun)", ddp)
