"""A run resumed on data changed since its checkpoint is refused, naming the data: before, a
catalogue of another size ended in a raw size-mismatch traceback when the weights loaded, and
one of the same size silently finished a run trained on two datasets."""

from __future__ import annotations

import numpy as np
import pytest

from recdiff.config import load_config
from recdiff.train.checkpoint import data_digest
from recdiff.train.run import resumable_from, resume_training, run_training


def _write(path, rows) -> None:
    path.write_text("user,item,ts\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))


ROWS = [(u, (u + 3 * t) % 40, t) for u in range(50) for t in range(10)]
# the same catalogue and users, one interaction moved to another item
SAME_SIZE = [(0, 39, 0) if (u, t) == (0, 0) else (u, i, t) for u, i, t in ROWS]
MORE_ITEMS = [*ROWS, (0, 99, 20), (1, 98, 20)]


@pytest.mark.parametrize(
    ("preset", "settings"),
    [
        ("demo-diffrec", ["model.hidden_dims=[16]", "model.diffusion.steps=4", "train.epochs=4"]),
        ("demo-sasrec", ["train.epochs=4", "model.dim=8"]),
    ],
)
@pytest.mark.parametrize("changed", [SAME_SIZE, MORE_ITEMS], ids=["same-size", "more-items"])
def test_resuming_on_changed_data_is_refused(interrupt_at, tmp_path, preset, settings, changed):
    log = tmp_path / "log.csv"
    _write(log, ROWS)
    split = "leave_one_out" if preset == "demo-sasrec" else "user_temporal"
    data = ["data.format=csv", f"data.source={log}", "data.time_col=ts", f"data.split={split}"]
    config = load_config(
        preset, [*data, *settings, "train.eval_every=1", "train.checkpoint_every=1"]
    )
    with pytest.raises(KeyboardInterrupt) as stop:
        run_training(config, tmp_path / "runs", progress=False, on_event=interrupt_at(2))
    run = resumable_from(stop.value)
    _write(log, changed)
    with pytest.raises(ValueError, match=rf"the run's data \({log}\) changed since its checkpoint"):
        resume_training(run, progress=False)
    _write(log, ROWS)  # put back, the run resumes and completes
    assert resume_training(run, progress=False).metrics["resumed"] is True


def test_the_digest_sees_values_shapes_and_types():
    ids = np.arange(5)
    assert data_digest(ids) == data_digest(np.arange(5))
    assert data_digest(ids) != data_digest(np.arange(1, 6))
    assert data_digest(ids) != data_digest(ids.astype(np.int32))
    assert data_digest(ids) != data_digest(ids.reshape(5, 1))
    assert data_digest(np.array(["a", "b"])) != data_digest(np.array(["a", "c"]))
