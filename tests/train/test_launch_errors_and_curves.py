"""A torchrun environment set up wrong, and curves.png for short, diverged and staged runs."""

import math

import pytest
from matplotlib.colors import to_hex
from typer.testing import CliRunner

from recdiff.cli.main import app
from recdiff.train import curves, distributed
from recdiff.train.curves import plot_curves

runner = CliRunner()


# ----------------------------------------------------------------------- distributed launch
def test_a_world_size_without_torchrun_is_a_one_line_error(monkeypatch, tmp_path):
    """WORLD_SIZE left in the environment (a batch system, another job) without the rest of
    torchrun's variables: the command says what to do instead of printing a traceback."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["train", "demo-diffrec", "--quiet", "--runs-dir", str(runs)])
    assert result.exit_code == 2, result.exception
    assert result.stderr == (
        "error: WORLD_SIZE=2 but RANK, MASTER_ADDR, MASTER_PORT not set: start the processes "
        "with torchrun (e.g. torchrun --nproc_per_node=2 -m recdiff train PRESET), which sets "
        "them\n"
    )
    assert not runs.exists()


def test_a_failure_marks_the_process_until_it_trains_again(monkeypatch):
    """shutdown() skips the exit meeting of a failed process; one that handled the failure and
    trained again (a search's next trial) meets the others as usual."""
    monkeypatch.setattr(distributed, "_failed", False)
    with pytest.raises(RuntimeError), distributed.failure_is_final():
        raise RuntimeError("a trial fails")
    assert distributed._failed
    with distributed.failure_is_final():
        pass  # the next trial trains
    assert not distributed._failed


def test_launch_errors_are_still_runtime_errors(monkeypatch):
    """Callers that caught RuntimeError still do; the command line sees a ValueError."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(distributed.LaunchError) as caught:
        distributed.init_from_env("cpu")
    assert isinstance(caught.value, RuntimeError) and isinstance(caught.value, ValueError)


# ------------------------------------------------------------------------------------ curves
@pytest.fixture
def drawn(monkeypatch):
    """The figures plot_curves would save (nothing is written)."""
    figures = []
    monkeypatch.setattr(curves, "_save", lambda fig, path: figures.append(fig))
    return figures


def _marked(line) -> list[int]:
    """Indices of the points of ``line`` that show a marker."""
    if line.get_marker() in (None, "None", ""):
        return []
    every = line.get_markevery()
    return list(range(len(line.get_xdata()))) if every is None else list(every)


def test_a_single_epoch_loss_is_visible(drawn, tmp_path):
    """One epoch: a line through one point draws nothing, so the point gets a marker."""
    plot_curves([{"event": "epoch", "epoch": 1, "loss": 0.7}], tmp_path / "c.png", "recall@20")
    ax_loss, ax_metric = drawn[0].axes
    (loss,) = ax_loss.lines
    assert _marked(loss) == [0]
    # whole-epoch ticks around the one epoch, not 0.96 ... 1.04
    ticks = [t for t in ax_loss.get_xticks() if ax_loss.get_xlim()[0] <= t]
    assert ticks and all(float(t).is_integer() for t in ticks) and 1.0 in ticks
    # no evaluation: the empty metric panel says so
    assert [t.get_text() for t in ax_metric.texts] == ["no evaluation computed recall@20"]


def test_a_diverged_run_marks_its_last_finite_loss_and_the_divergence(drawn, tmp_path):
    nan = float("nan")
    records = [
        {"event": "epoch", "epoch": 1, "loss": 0.9},
        {"event": "eval", "epoch": 1, "valid/recall@20": 0.1},
        {"event": "epoch", "epoch": 2, "loss": 0.5},
        {"event": "epoch", "epoch": 3, "loss": nan},
        {"event": "diverged", "epoch": 3, "loss": nan},
    ]
    plot_curves(records, tmp_path / "c.png", "recall@20")
    ax_loss = drawn[0].axes[0]
    loss, diverged = ax_loss.lines
    assert _marked(loss) == []  # epochs 1-2 are joined by the line
    assert list(diverged.get_xdata()) == [3, 3] and diverged.get_label() == "diverged"
    assert [t.get_text() for t in ax_loss.get_legend().get_texts()] == ["diverged"]

    drawn.clear()
    records = [records[0], records[3], records[4]]  # epoch 1, then NaN: an isolated point
    plot_curves(records, tmp_path / "c.png", "recall@20")
    loss = drawn[0].axes[0].lines[0]
    assert _marked(loss) == [0] and math.isnan(loss.get_ydata()[1])


def test_a_stage_keeps_one_colour_in_both_panels(drawn, tmp_path):
    """DreamRec's SASRec item stage: its loss and its validation share a colour, distinct from
    the model's; test lines are dashed beside their valid lines."""
    records = [
        {"event": "epoch", "epoch": 1, "loss": 5.0, "stage": "items"},
        {"event": "epoch", "epoch": 2, "loss": 4.0, "stage": "items"},
        {"event": "eval", "epoch": 2, "valid/hit_rate@20": 0.6, "stage": "items"},
        {"event": "epoch", "epoch": 1, "loss": 0.7},
        {"event": "epoch", "epoch": 2, "loss": 0.3},
        {"event": "eval", "epoch": 2, "valid/hit_rate@20": 0.5, "test/hit_rate@20": 0.4},
    ]
    plot_curves(records, tmp_path / "c.png", "hit_rate@20")
    ax_loss, ax_metric, ax_stage = drawn[0].axes
    colour = {line.get_label(): to_hex(line.get_color()) for line in ax_loss.lines}
    colour |= {line.get_label(): to_hex(line.get_color()) for line in ax_stage.lines}
    metric = {line.get_label(): line for line in ax_metric.lines}
    assert to_hex(metric["items: valid"].get_color()) == colour["items: loss"]
    assert to_hex(metric["valid"].get_color()) == colour["loss"] != colour["items: loss"]
    assert to_hex(metric["test"].get_color()) == colour["loss"]
    assert metric["valid"].get_linestyle() == "-" and metric["test"].get_linestyle() == "--"
    assert _marked(metric["items: valid"]) == [0]  # one evaluation of the stage: still visible


def test_a_failed_drawing_leaves_the_old_file_and_no_temporary(monkeypatch, tmp_path):
    """curves.png is replaced only by a complete file."""
    from matplotlib.figure import Figure

    path = tmp_path / "curves.png"
    path.write_bytes(b"old")

    def half_written(self, fname, **kwargs):
        with open(fname, "wb") as fh:
            fh.write(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", half_written)
    with pytest.raises(KeyboardInterrupt):
        plot_curves([{"event": "epoch", "epoch": 1, "loss": 1.0}], path, "recall@20")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png"]


def test_the_epoch_validation_selected_is_marked(drawn, tmp_path):
    records = [
        {"event": "epoch", "epoch": 1, "loss": 0.9},
        {"event": "eval", "epoch": 1, "valid/recall@20": 0.1},
        {"event": "epoch", "epoch": 2, "loss": 0.5},
        {"event": "eval", "epoch": 2, "valid/recall@20": 0.3},
        {"event": "epoch", "epoch": 3, "loss": 0.4},
        {"event": "eval", "epoch": 3, "valid/recall@20": 0.2},
    ]
    plot_curves(records, tmp_path / "c.png", "recall@20", selected=2)
    ax_metric = drawn[0].axes[1]
    marks = [line for line in ax_metric.lines if line.get_label().startswith("selected")]
    assert [(m.get_label(), list(m.get_xdata())) for m in marks] == [("selected: epoch 2", [2, 2])]
    plot_curves(records, tmp_path / "c.png", "recall@20")  # nothing selected: nothing marked
    assert not [line for line in drawn[1].axes[1].lines if line.get_label().startswith("sel")]


def test_a_run_marks_the_epoch_it_kept(drawn, tmp_path):
    from recdiff.config import load_config
    from recdiff.train.run import run_training

    config = load_config(
        "demo-diffrec",
        [
            "train.epochs=4",
            "train.eval_every=1",
            "model.hidden_dims=[16]",
            "model.diffusion.steps=3",
        ],
    )
    run = run_training(config, tmp_path, progress=False)
    (mark,) = [line for line in drawn[-1].axes[1].lines if line.get_label().startswith("selected")]
    assert list(mark.get_xdata()) == [run.metrics["best_epoch"]] * 2
