"""curves.png: what is drawn for each kind of run, and that drawing leaves matplotlib alone."""

import os
import subprocess
import sys

from PIL import Image

from recdiff.train.curves import plot_curves


def test_importing_the_plotters_keeps_the_callers_backend():
    """A notebook's backend survives training: nothing here calls matplotlib.use or pyplot."""
    code = (
        "import matplotlib, recdiff.train.curves, recdiff.toy.plot; print(matplotlib.get_backend())"
    )
    env = {**os.environ, "MPLBACKEND": "pdf"}
    shown = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == "pdf"


def test_a_run_with_epochs_gets_loss_and_metric_panels(tmp_path):
    records = [
        {"event": "epoch", "epoch": 1, "loss": 2.0},
        {"event": "eval", "epoch": 1, "valid/recall@20": 0.1, "test/recall@20": 0.09},
    ]
    plot_curves(records, tmp_path / "curves.png", "recall@20")
    assert Image.open(tmp_path / "curves.png").size == (900, 342)  # two panels, 10 x 3.8 in


def test_a_model_without_epochs_gets_its_sweep_and_one_without_either_no_file(tmp_path):
    sweep = {"event": "select", "l2_lambda": 300.0, "valid": {"50.0": 0.40, "300.0": 0.45}}
    plot_curves([sweep], tmp_path / "sweep.png", "recall@20")
    assert Image.open(tmp_path / "sweep.png").size == (450, 342)  # one panel, 5 x 3.8 in
    plot_curves([], tmp_path / "none.png", "recall@20")
    assert not (tmp_path / "none.png").exists()


def test_a_pre_training_stage_gets_lines_of_its_own(tmp_path, monkeypatch):
    """Stage epochs restart at 1: drawn on the model's lines they would zigzag back in x."""
    from recdiff.train import curves

    drawn = []
    monkeypatch.setattr(curves, "_save", lambda fig, path: drawn.append(fig))
    records = [
        {"event": "epoch", "epoch": 1, "loss": 5.0, "stage": "items"},
        {"event": "epoch", "epoch": 2, "loss": 4.0, "stage": "items"},
        {"event": "eval", "epoch": 2, "valid/hit_rate@20": 0.02, "stage": "items"},
        {"event": "epoch", "epoch": 1, "loss": 0.6},
        {"event": "eval", "epoch": 1, "valid/hit_rate@20": 0.01},
    ]
    plot_curves(records, tmp_path / "curves.png", "hit_rate@20")
    ax_loss, ax_metric, ax_stage = drawn[0].axes  # the stage's loss on an axis of its own
    loss = {line.get_label(): list(line.get_xdata()) for line in ax_loss.lines}
    stage = {line.get_label(): list(line.get_ydata()) for line in ax_stage.lines}
    metric = {line.get_label(): list(line.get_ydata()) for line in ax_metric.lines}
    assert loss == {"loss": [1]} and stage == {"items: loss": [5.0, 4.0]}
    assert metric == {"items: valid": [0.02], "valid": [0.01]}
