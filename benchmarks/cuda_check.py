"""Everything recdiff runs with ``train.device=cuda``, checked on a CUDA machine in one command.

    python3 benchmarks/cuda_check.py --out DIR            # on a machine with a CUDA GPU
    python3 benchmarks/cuda_check.py --out DIR --device cpu   # the same checks on the CPU

Each model family trains for a couple of epochs on the built-in demo data (the ``demo-*`` presets,
no download) in fp32 and, where the model has the setting, bf16 (autocast), with validation
every epoch; then:

- the weights (and DiffRec's diffusion tables) are on the device;
- evaluation with a fixed seed gives the same metrics twice;
- the run's checkpoint reloads on the CPU (safetensors: no ``map_location``) and scores as the
  model on the device does; moved back to the device it scores identically; the run's
  ``Predictor`` (serving) recommends the same list twice;
- DreamRec samples with DDPM and DDIM, from per-row generators on the device and on the CPU (a
  row scores the same alone as in a batch), and repeats itself when re-seeded;
- timestep sampling (uniform and loss-aware) takes a generator on the device or on the CPU;
- an EMA run, and on machines with two GPUs or more a two-process DDP run over nccl (torchrun).

Writes ``DIR/cuda_check.json`` and ``DIR/cuda_check.md`` (one row per check); exit status 0 only
if every check passed, 1 if one failed, 2 when ``--device cuda`` finds no CUDA device.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common
import numpy as np
import torch

ROW_MODELS = ("diffrec", "ldiffrec", "ldiffrec-sparse", "multvae", "ease", "popularity")
SEQUENCE_MODELS = ("dreamrec", "sasrec")
ALL_MODELS = ROW_MODELS + SEQUENCE_MODELS
#: Models whose training has ``train.precision`` (Mult-VAE trains in fp32; EASE and popularity
#: are closed-form numpy).
HAS_PRECISION = {"diffrec", "ldiffrec", "ldiffrec-sparse", "dreamrec", "sasrec"}
NO_DEVICE = {"ease", "popularity"}  # numpy models: trained and scored on the CPU


def preset_and_overrides(model: str, device: str, precision: str, epochs: int) -> tuple[str, list]:
    """The demo preset of ``model`` and the overrides that make it a short run on ``device``."""
    train = [
        f"train.device={device}",
        f"train.epochs={epochs}",
        "train.progress=false",
        f"name=cuda-check-{model}-{precision}",
    ]
    if model in HAS_PRECISION:
        train += [f"train.precision={precision}", "train.eval_every=1"]
    if model in ("ldiffrec", "ldiffrec-sparse"):
        latent = [
            "model.name=ldiffrec",
            "model.latent.n_clusters=2",
            "model.latent.latent_dim=64",
            "model.latent.svd_dim=16",
            f"model.latent.epochs={epochs}",
        ]
        if model == "ldiffrec-sparse":
            latent.append("model.latent.sparse_input=true")
        return "demo-diffrec", train + latent
    if model == "multvae":
        return "demo-multvae", train
    if model in NO_DEVICE:
        return f"demo-{model}", [o for o in train if o.startswith("name=")]
    if model == "dreamrec":
        return "demo-dreamrec", [*train, "model.diffusion.steps=50"]
    return f"demo-{model}", train


class Checks:
    """Runs named checks, records each one's outcome, and never lets one failure stop the rest."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def run(self, name: str, check: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
        start = time.perf_counter()
        try:
            details = check() or {}
            row = {"check": name, "ok": True, "details": details}
        except Skipped as skip:
            details, row = None, {"check": name, "ok": True, "skipped": str(skip), "details": {}}
        except Exception as error:  # every failure is recorded, then reported
            details = None
            row = {
                "check": name,
                "ok": False,
                "error": f"{type(error).__name__}: {error}",
                "traceback": traceback.format_exc(limit=8)[-3000:],
                "details": {},
            }
        row["seconds"] = round(time.perf_counter() - start, 2)
        self.rows.append(row)
        status = "skip" if row.get("skipped") else ("ok" if row["ok"] else "FAIL")
        print(f"[{status:>4}] {name} ({row['seconds']} s) {row.get('error', '')}", flush=True)
        return details


class Skipped(Exception):
    """A check that does not apply on this machine (e.g. DDP with one GPU)."""


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.equal(a.cpu(), b.cpu())


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().float().cpu() - b.detach().float().cpu()).abs().max())


def _close(a, b, what: str, rel: float) -> float:
    """Max abs difference of two score blocks; fails above ``rel`` x their scale."""
    a, b = torch.as_tensor(a).float().cpu(), torch.as_tensor(b).float().cpu()
    if a.shape != b.shape:
        raise AssertionError(f"{what}: shapes {tuple(a.shape)} and {tuple(b.shape)} differ")
    diff = _max_diff(a, b)
    scale = max(float(b.abs().max()), 1e-6)
    if not diff <= rel * scale:
        raise AssertionError(f"{what}: max |difference| {diff:.3g} above {rel:g} x {scale:.3g}")
    return diff


def _topk_overlap(a, b, k: int = 10) -> float:
    a, b = torch.as_tensor(a).float().cpu(), torch.as_tensor(b).float().cpu()
    top_a, top_b = a.topk(k, dim=1).indices.numpy(), b.topk(k, dim=1).indices.numpy()
    return float(np.mean([np.isin(x, y).mean() for x, y in zip(top_a, top_b, strict=True)]))


def _finite_metrics(metrics: dict[str, Any]) -> None:
    for split in ("valid", "test"):
        bad = {k: v for k, v in metrics[split].items() if not math.isfinite(v)}
        if bad:
            raise AssertionError(f"{split} metrics not finite: {bad}")


def _on_device(model, device: torch.device) -> dict[str, Any]:
    """Where the trained model's weights (and diffusion tables) are."""
    details = {}
    module = getattr(model, "module", None)
    if module is not None:
        kinds = {p.device.type for p in module.parameters()}
        details["weights"] = sorted(kinds)
        if kinds != {device.type}:
            raise AssertionError(f"weights on {kinds}, not on {device.type}")
    process = getattr(model, "process", None)
    if process is not None:  # DiffRec keeps its CPU process and a copy per device it ran on
        kinds = {process.betas.device.type} | {
            d.type for d in getattr(model, "_process_copies", {})
        }
        details["process"] = sorted(kinds)
        if device.type not in kinds:
            raise AssertionError(f"diffusion tables only on {sorted(kinds)}, not on {device}")
    return details


def _move(model, device: torch.device):
    """A loaded model (on the CPU) moved to ``device``."""
    from recdiff.models.multvae import MultVAE
    from recdiff.models.sequential import SequentialRecommender

    if isinstance(model, MultVAE):
        return model.to(device)
    if isinstance(model, SequentialRecommender):
        model.net.to(device)
    else:  # the DiffRec family: the trained module (its process follows the rows)
        model.module.to(device)
    return model


# ------------------------------------------------------------------------------ row models
def check_row_model(checks: Checks, name: str, precision: str, args, device: torch.device):
    from recdiff.config.loading import load_config
    from recdiff.eval.protocol import EvalTask
    from recdiff.models.base import SavedModel
    from recdiff.serving.predictor import Predictor
    from recdiff.train.datasets import load_splits
    from recdiff.train.run import run_training
    from recdiff.train.run_rows import model_inputs

    label = f"{name} {precision}"
    preset, overrides = preset_and_overrides(name, args.device, precision, args.epochs)
    config = load_config(preset, overrides)
    runs = args.out / "runs"
    result = checks.run(
        f"{label}: train {args.epochs} epochs, validate, test, save",
        lambda: _train(run_training, config, runs),
    )
    if result is None:
        return
    model, directory = result.pop("model"), Path(result["directory"])
    if name not in NO_DEVICE:
        checks.run(f"{label}: weights on {device.type}", lambda: _on_device(model, device))
    splits = load_splits(config.data)
    inputs = model_inputs(splits, config)
    task = EvalTask.validation(inputs, splits.valid.matrix)

    def repeatable():
        first = task.evaluate(model.score, ks=(10, 20), averaging="all_users").means
        again = task.evaluate(model.score, ks=(10, 20), averaging="all_users").means
        if first != again:
            raise AssertionError(f"seeded evaluation differs: {first} vs {again}")
        return {"valid": first}

    checks.run(f"{label}: seeded evaluation repeats exactly", repeatable)
    history = inputs[: min(64, inputs.shape[0])]

    def reload():
        here = model.score(history)
        loaded = SavedModel.load(directory / "model")
        on_cpu = loaded.score(history)
        details = {
            "max_diff_device_vs_cpu": _max_diff(torch.as_tensor(here), torch.as_tensor(on_cpu))
        }
        details["top10_overlap_device_vs_cpu"] = _topk_overlap(here, on_cpu)
        if precision == "fp32":  # bf16 autocast differs between CPU and CUDA kernels
            _close(on_cpu, here, "reloaded on the CPU vs trained model", 1e-3)
        if name not in NO_DEVICE:
            again = _move(loaded, device).score(history)
            details["bitwise_equal_after_reload_on_device"] = _same(
                torch.as_tensor(again), torch.as_tensor(here)
            )
            _close(again, here, "reloaded and moved to the device vs trained model", 1e-5)
        items, _ = loaded.recommend(history, 10)
        if items.shape != (history.shape[0], 10):
            raise AssertionError(f"recommend gave shape {items.shape}")
        return details

    checks.run(f"{label}: checkpoint reloads (CPU, then {device.type}) and recommends", reload)

    def serve():
        predictor = Predictor.load(directory)
        user = predictor.users.external(np.array([0])).tolist()[0]
        first = predictor.recommend(user=user, k=10)
        history_ids = predictor.items.external(np.arange(5)).tolist()
        new = predictor.recommend(history=history_ids, k=10)
        if first != predictor.recommend(user=user, k=10) or len(new.items) != 10:
            raise AssertionError("serving recommendations are not repeatable")
        return {"user": str(user), "items": [str(i) for i in first.items[:5]]}

    checks.run(f"{label}: serving Predictor recommends", serve)


def _train(run_training, config, runs: Path) -> dict[str, Any]:
    result = run_training(config, runs, progress=False)
    _finite_metrics(result.metrics)
    return {
        "model": result.model,
        "directory": str(result.directory),
        "valid": result.metrics["valid"],
        "test": result.metrics["test"],
        "best_epoch": result.metrics["best_epoch"],
        "fit_seconds": round(result.metrics["seconds"]["fit"], 2),
    }


# ------------------------------------------------------------------------- next-item models
def check_sequence_model(checks: Checks, name: str, precision: str, args, device: torch.device):
    from recdiff.config.loading import load_config
    from recdiff.models.base import SavedModel
    from recdiff.serving.predictor import Predictor
    from recdiff.train.datasets import load_sequences
    from recdiff.train.run import run_training
    from recdiff.train.run_sequential import evaluate_sequential

    label = f"{name} {precision}"
    preset, overrides = preset_and_overrides(name, args.device, precision, args.epochs)
    config = load_config(preset, overrides)
    result = checks.run(
        f"{label}: train {args.epochs} epochs, validate, test, save",
        lambda: _train(run_training, config, args.out / "runs"),
    )
    if result is None:
        return
    model, directory = result.pop("model"), Path(result["directory"])
    checks.run(f"{label}: weights on {device.type}", lambda: _on_device(model, device))
    data, _ = load_sequences(config.data)
    data = data.with_layout("left")

    def repeatable():
        first = evaluate_sequential(model, data, config, ("valid",))["valid"].means
        again = evaluate_sequential(model, data, config, ("valid",))["valid"].means
        if first != again:
            raise AssertionError(f"seeded evaluation differs: {first} vs {again}")
        generator = model.sampling_generator(0)
        if generator.device.type != device.type:
            raise AssertionError(f"evaluation's generator is on {generator.device}")
        return {"valid": first}

    checks.run(f"{label}: seeded evaluation repeats exactly", repeatable)
    history = data.test.take(np.arange(min(64, len(data.test)))).to_torch()["history"]

    def reload():
        # A CPU generator on both sides: the same noise on the device and on the CPU.
        here = model.score(history, generator=torch.Generator().manual_seed(0))
        loaded = SavedModel.load(directory / "model")
        on_cpu = loaded.score(history, generator=torch.Generator().manual_seed(0))
        details = {"max_diff_device_vs_cpu": _max_diff(here, on_cpu)}
        details["top10_overlap_device_vs_cpu"] = _topk_overlap(here, on_cpu)
        if precision == "fp32":
            _close(on_cpu, here, "reloaded on the CPU vs trained model", 1e-3)
        seeded = model.score(history, generator=model.sampling_generator(0))
        again = _move(loaded, device).score(history, generator=loaded.sampling_generator(0))
        details["bitwise_equal_after_reload_on_device"] = _same(again, seeded)
        _close(again, seeded, "reloaded and moved to the device vs trained model", 1e-5)
        items, _ = loaded.recommend([[1, 2, 3], [4, 5]], 10)
        if items.shape != (2, 10):
            raise AssertionError(f"recommend gave shape {items.shape}")
        return details

    checks.run(f"{label}: checkpoint reloads (CPU, then {device.type}) and recommends", reload)

    def serve():
        predictor = Predictor.load(directory)
        ids = predictor.items.external(np.arange(4)).tolist()
        first = predictor.recommend(history=ids, k=10)
        if first != predictor.recommend(history=ids, k=10):
            raise AssertionError("serving recommendations are not repeatable")
        return {"items": [str(i) for i in first.items[:5]]}

    checks.run(f"{label}: serving Predictor recommends", serve)
    if name == "dreamrec":
        check_dreamrec_sampling(checks, model, history, label, device)


def check_dreamrec_sampling(checks: Checks, model, history, label: str, device: torch.device):
    rows = history[:8].to(device)
    # A row alone and in a batch draws the same noise; the arithmetic may still differ by the
    # kernels a batch size picks, which bf16 autocast turns into visible differences.
    tolerance = 1e-4 if model.training.precision == "fp32" else 5e-2
    for sampler, steps in (("ddpm", None), ("ddim", 10)):
        options = {"sampler": sampler, "sampling_steps": steps}

        def seeded(options=options, sampler=sampler):
            first = model.score(rows, **options)  # the model's own seed, on its device
            again = model.score(rows, **options)
            other = model.score(rows, generator=model.sampling_generator(1), **options)
            if not _same(first, again):
                raise AssertionError("re-seeded sampling differs")
            if sampler == "ddpm" and _same(first, other):
                raise AssertionError("another seed gave the same DDPM samples")
            return {}

        def per_row(options=options, where=device):
            def gens(n):
                return [torch.Generator(where).manual_seed(9) for _ in range(n)]

            batch = model.score(rows, generator=gens(len(rows)), **options)
            alone = torch.cat(
                [
                    model.score(rows[i : i + 1], generator=gens(1), **options)
                    for i in range(len(rows))
                ]
            )
            diff = _close(batch, alone, "per-row generators: batch vs alone", tolerance)
            return {"max_diff_batch_vs_alone": diff}

        checks.run(f"{label}: {sampler} sampling repeats when re-seeded", seeded)
        checks.run(f"{label}: {sampler} per-row {device.type} generators", per_row)
        checks.run(
            f"{label}: {sampler} per-row CPU generators on {device.type}",
            lambda options=options: per_row(options, torch.device("cpu")),
        )


# ------------------------------------------------------------------------------ other paths
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
                if not _same(t, again):
                    raise AssertionError("seeded timesteps differ")
                details[f"{type(sampler).__name__} {where} generator"] = "ok"
        return details

    def cross_device_noise():
        on_device = randn_rows((4, 3), torch.Generator().manual_seed(2), device)
        on_cpu = torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
        if on_device.device.type != device.type or not _same(on_device, on_cpu):
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
        result = _train(run_training, config, args.out / "runs")
        return {**_on_device(result.pop("model"), device), **result}

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
        _finite_metrics(metrics)
        return {"valid": metrics["valid"], "stdout": done.stdout[-500:]}

    checks.run("DDP: 2 processes over nccl (torchrun)", ddp)


# ---------------------------------------------------------------------------------- report
def environment(device: torch.device) -> dict[str, Any]:
    import recdiff

    env = {
        "recdiff": recdiff.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
    }
    if device.type == "cuda":
        env.update(
            cuda=torch.version.cuda,
            gpu=torch.cuda.get_device_name(device),
            gpus=torch.cuda.device_count(),
            bf16_supported=torch.cuda.is_bf16_supported(),
            nccl_available=torch.distributed.is_nccl_available(),
        )
    return env


def write_results(out: Path, env: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    passed = all(row["ok"] for row in rows)
    table = [
        f"# recdiff CUDA check: {'all passed' if passed else 'FAILED'}",
        "",
        ", ".join(f"{k} {v}" for k, v in env.items()),
        "",
    ]
    table += _common.markdown_table(
        ["check", "result", "seconds", "notes"],
        [
            [
                row["check"],
                "skipped" if row.get("skipped") else ("ok" if row["ok"] else "**FAIL**"),
                row["seconds"],
                row.get("error") or row.get("skipped") or _short(row["details"]),
            ]
            for row in rows
        ],
    )
    summary = {"passed": passed, "environment": env, "checks": rows}
    _common.write_results("cuda_check", summary, table, out)


def _short(details: dict[str, Any]) -> str:
    shown = {k: v for k, v in details.items() if k not in ("directory", "stdout")}
    text = json.dumps(shown, default=str)
    return (text[:300] + "...") if len(text) > 300 else text.replace("|", "/")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the results files")
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument(
        "--epochs", type=_common.positive_int, default=2, help="training epochs per run"
    )
    parser.add_argument("--models", nargs="+", choices=ALL_MODELS, default=list(ALL_MODELS))
    parser.add_argument(
        "--precisions", nargs="+", choices=("fp32", "bf16"), default=["fp32", "bf16"]
    )
    parser.add_argument("--skip-extras", action="store_true", help="no timestep/EMA/DDP checks")
    parser.add_argument(
        "--threads", type=_common.positive_int, default=None, help="torch CPU threads"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:  # torch's own message for a bad string is a traceback listing every device type
        device = torch.device(args.device)
    except RuntimeError:
        parser.error(f"--device must be cuda[:N] or cpu, got {args.device}")
    if device.type == "cuda" and not torch.cuda.is_available():
        print(
            f"cuda_check: --device {args.device} but torch {torch.__version__} sees no CUDA "
            "device (CPU-only build or no GPU): run it on a CUDA machine, or pass --device cpu "
            "to exercise the same checks on the CPU",
            file=sys.stderr,
        )
        return 2
    if device.type not in ("cuda", "cpu"):
        parser.error(f"--device must be cuda[:N] or cpu, got {args.device}")
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    args.out.mkdir(parents=True, exist_ok=True)
    checks = Checks()
    env = environment(device)
    print(f"cuda_check on {env}", flush=True)
    for name in args.models:
        for precision in args.precisions:
            if precision != "fp32" and name not in HAS_PRECISION:
                continue
            if name in SEQUENCE_MODELS:
                check_sequence_model(checks, name, precision, args, device)
            else:
                check_row_model(checks, name, precision, args, device)
    if not args.skip_extras:
        check_timesteps(checks, device)
        check_ema(checks, args, device)
        check_ddp(checks, args, device)
    write_results(args.out, env, checks.rows)
    failed = [row["check"] for row in checks.rows if not row["ok"]]
    print(
        f"{len(checks.rows) - len(failed)}/{len(checks.rows)} checks passed; results in "
        f"{args.out / 'cuda_check.md'}"
    )
    if failed:
        print("failed: " + "; ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
