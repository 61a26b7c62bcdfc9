"""Re-evaluating a saved run on the data it was trained on (``recdiff evaluate``,
``Predictor.evaluate``): the data is read again as the run read it, and refused, with what to
do, when it is not what the run saw (moved, or changed since: other ids, other train rows, held-out
interactions the run never had, other split sizes than metrics.json recorded)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from recdiff.eval.evaluator import as_binary_csr

if TYPE_CHECKING:
    from recdiff.serving.predictor import Predictor

__all__ = ["check_recorded_sizes", "data_changed", "evaluate_rows"]


def evaluate_rows(
    predictor: Predictor, averaging: str | None = None, exclude_history: bool | None = None
) -> dict[str, dict[str, float]]:
    """Valid and test metrics of a row model's run (see :meth:`Predictor.evaluate`)."""
    from recdiff.eval.multi import evaluate_many
    from recdiff.eval.protocol import EvalTask
    from recdiff.train.datasets import load_as_saved, load_splits
    from recdiff.train.run_rows import evaluation_scorer

    if averaging is None:
        averaging = predictor.config.eval.averaging
    if exclude_history is not None:
        raise ValueError(
            "--exclude-history/--keep-history apply to next-item runs; this model ranks "
            "interaction rows, and their seen items are always masked"
        )

    def same_ids(splits) -> bool:
        return splits.items == predictor.items and splits.users == predictor.users

    try:
        splits = load_as_saved(load_splits, predictor.config.data, same_ids)
    except FileNotFoundError as error:
        config = "data.source in its config.yaml"
        if predictor.directory is not None:
            config = f"data.source in {predictor.directory / 'config.yaml'}"
        raise FileNotFoundError(
            f"{error}; the run was trained on it ({config}): put the data back, or set "
            "data.source there to where it is now"
        ) from None
    if not same_ids(splits):
        raise ValueError("the run's data changed since training: its vocabularies differ")
    inputs = predictor.inputs
    if (
        splits.train.matrix.shape != inputs.shape
        or (
            # the stored entries, whatever their values (a rating of 0 is an interaction)
            as_binary_csr(splits.train.matrix, "train") != as_binary_csr(inputs, "inputs")
        ).nnz
    ):
        raise ValueError("the run's data changed since training: its train interactions differ")
    _check_held_out(predictor, splits)
    tasks = {
        "valid": EvalTask.validation(inputs, splits.valid.matrix),
        "test": EvalTask.test(inputs, splits.valid.matrix, splits.test.matrix),
    }
    ev = predictor.config.eval
    model = predictor.model
    results = evaluate_many(
        evaluation_scorer(model, model.score),  # the run's own draws
        inputs,
        tasks,
        ks=ev.ks,
        metrics=ev.metrics,
        batch_size=ev.batch_size,
        averaging=averaging,
    )
    return {split: result.means for split, result in results.items()}


def _check_held_out(predictor: Predictor, splits) -> None:
    """Refuse valid/test interactions other than the run's: each must be one the run saw
    its user have, and there must be as many as the run recorded (if it did)."""
    seen = as_binary_csr(predictor.seen, "seen")
    for name, part in (("valid", splits.valid), ("test", splits.test)):
        held_out = as_binary_csr(part.matrix, name)
        new = held_out.nnz - held_out.multiply(seen).nnz
        if new:
            raise data_changed(f"{new} of its {part.nnz} {name} interactions are new to the run")
    sizes = {"valid": splits.valid.nnz, "test": splits.test.nnz}
    check_recorded_sizes(predictor.metrics, sizes, "interactions")


def check_recorded_sizes(metrics: dict[str, Any], sizes: dict[str, int], unit: str) -> None:
    """Refuse data whose split sizes differ from those the run recorded in metrics.json
    (``data``), where it did."""
    recorded = metrics.get("data") or {}
    for name, size in sizes.items():
        if recorded.get(name, size) != size:
            raise data_changed(f"it has {size} {name} {unit}, the run had {recorded[name]}")


def data_changed(problem: str) -> ValueError:
    return ValueError(
        f"the run's data changed since training: {problem}; evaluate it on the data it was "
        "trained on (data.source in its config.yaml), or train again"
    )
