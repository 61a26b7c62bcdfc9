"""The checks of ``cuda_check.py`` on a trained run of each model family: a short run of its demo
preset on the device, then its weights, seeded evaluation, checkpoint reload, serving and (for
DreamRec) sampling. Row models and next-item models differ in their data and their scoring, so
each has its own sequence of checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from _cuda_check_harness import (
    Checks,
    close_enough,
    finite_metrics,
    max_diff,
    moved_to,
    on_device,
    same,
    topk_overlap,
)

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
        lambda: train_run(run_training, config, runs),
    )
    if result is None:
        return
    model, directory = result.pop("model"), Path(result["directory"])
    if name not in NO_DEVICE:
        checks.run(f"{label}: weights on {device.type}", lambda: on_device(model, device))
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
            "max_diff_device_vs_cpu": max_diff(torch.as_tensor(here), torch.as_tensor(on_cpu))
        }
        details["top10_overlap_device_vs_cpu"] = topk_overlap(here, on_cpu)
        if precision == "fp32":  # bf16 autocast differs between CPU and CUDA kernels
            close_enough(on_cpu, here, "reloaded on the CPU vs trained model", 1e-3)
        if name not in NO_DEVICE:
            again = moved_to(loaded, device).score(history)
            details["bitwise_equal_after_reload_on_device"] = same(
                torch.as_tensor(again), torch.as_tensor(here)
            )
            close_enough(again, here, "reloaded and moved to the device vs trained model", 1e-5)
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


def train_run(run_training, config, runs: Path) -> dict[str, Any]:
    result = run_training(config, runs, progress=False)
    finite_metrics(result.metrics)
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
        lambda: train_run(run_training, config, args.out / "runs"),
    )
    if result is None:
        return
    model, directory = result.pop("model"), Path(result["directory"])
    checks.run(f"{label}: weights on {device.type}", lambda: on_device(model, device))
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
        details = {"max_diff_device_vs_cpu": max_diff(here, on_cpu)}
        details["top10_overlap_device_vs_cpu"] = topk_overlap(here, on_cpu)
        if precision == "fp32":
            close_enough(on_cpu, here, "reloaded on the CPU vs trained model", 1e-3)
        seeded = model.score(history, generator=model.sampling_generator(0))
        again = moved_to(loaded, device).score(history, generator=loaded.sampling_generator(0))
        details["bitwise_equal_after_reload_on_device"] = same(again, seeded)
        close_enough(again, seeded, "reloaded and moved to the device vs trained model", 1e-5)
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
            if not same(first, again):
                raise AssertionError("re-seeded sampling differs")
            if sampler == "ddpm" and same(first, other):
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
            diff = close_enough(batch, alone, "per-row generators: batch vs alone", tolerance)
            return {"max_diff_batch_vs_alone": diff}

        checks.run(f"{label}: {sampler} sampling repeats when re-seeded", seeded)
        checks.run(f"{label}: {sampler} per-row {device.type} generators", per_row)
        checks.run(
            f"{label}: {sampler} per-row CPU generators on {device.type}",
            lambda options=options: per_row(options, torch.device("cpu")),
        )
