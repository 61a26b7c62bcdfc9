"""What a reader of a run sees: curves.png read back through matplotlib's objects (scales,
marks, where legends sit), the report's rows against hand-written metrics.json values, and the
DreamRec guidance plot of benchmarks/dreamrec_sampling.py."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import pytest
import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg

from recdiff.serving.report import build_report
from recdiff.train import curves
from recdiff.train.curves import plot_curves

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

# A DiffRec run at lr 1e3 (demo data, 10 epochs): the loss falls over four decades, and the
# validation/test values zigzag over the whole panel. (epoch, loss, valid, test recall@20)
ZIGZAG = [
    (1, 1.25e13, 0.0393, 0.0354),
    (2, 4.12e12, 0.0393, 0.0334),
    (3, 1.52e12, 0.0429, 0.0405),
    (4, 5.54e11, 0.0368, 0.0337),
    (5, 2.09e11, 0.0384, 0.0429),
    (6, 7.72e10, 0.0336, 0.0337),
    (7, 2.93e10, 0.0423, 0.0398),
    (8, 1.04e10, 0.0454, 0.0427),
    (9, 3.87e09, 0.0423, 0.0381),
    (10, 1.42e09, 0.0391, 0.0431),
]


def _records(rows, stage=None):
    extra = {"stage": stage} if stage else {}
    out = []
    for epoch, loss, valid, test in rows:
        out.append({"event": "epoch", "epoch": epoch, "loss": loss, **extra})
        out.append(
            {"event": "eval", "epoch": epoch, "valid/recall@20": valid, "test/recall@20": test}
            | extra
        )
    return out


@pytest.fixture
def drawn(monkeypatch):
    """The figures plot_curves would save (nothing is written)."""
    figures = []
    monkeypatch.setattr(curves, "_save", lambda fig, path: figures.append(fig))
    return figures


def _is_data(line) -> bool:
    return line.get_transform() is line.axes.transData


def _points_under_legends(fig) -> list[tuple[str, float, float]]:
    """(label, x, y) of every data point that a legend's box covers, in display coordinates
    after the figure is laid out and drawn."""
    fig.tight_layout()
    FigureCanvasAgg(fig).draw()
    covered = []
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is None:
            continue
        box = legend.get_window_extent()
        for other in fig.axes:  # a twin axis shares the panel
            if other.bbox.bounds != ax.bbox.bounds:
                continue
            for line in filter(_is_data, other.lines):
                for x, y in zip(line.get_xdata(), line.get_ydata(), strict=True):
                    if math.isfinite(y) and box.contains(*other.transData.transform((x, y))):
                        covered.append((line.get_label(), x, y))
    return covered


# ------------------------------------------------------------------------------------ curves
def test_a_loss_spanning_decades_gets_a_log_axis_and_a_narrow_one_stays_linear(drawn, tmp_path):
    """A linear axis drew epochs 4-10 of ZIGZAG as a flat line at zero under an offset 1e13."""
    plot_curves(_records(ZIGZAG), tmp_path / "c.png", "recall@20", selected=8)
    assert drawn[0].axes[0].get_yscale() == "log"
    narrow = [(e, 0.9 - 0.05 * e, v, t) for e, _, v, t in ZIGZAG]  # 0.85 .. 0.40
    plot_curves(_records(narrow), tmp_path / "c.png", "recall@20", selected=8)
    assert drawn[1].axes[0].get_yscale() == "linear"
    # A stage's loss on its own axis is scaled on its own: wide stage, narrow model.
    stage = [(e, 10.0**-e, v, t) for e, _, v, t in ZIGZAG[:4]]
    plot_curves(_records(stage, "autoencoder") + _records(narrow), tmp_path / "c.png", "recall@20")
    ax_loss, _, ax_stage = drawn[2].axes
    assert (ax_loss.get_yscale(), ax_stage.get_yscale()) == ("linear", "log")


def test_legends_hide_no_point_of_the_curves(drawn, tmp_path):
    """matplotlib's "best" legend place put the box over ZIGZAG's test value at epoch 5."""
    plot_curves(_records(ZIGZAG), tmp_path / "c.png", "recall@20", selected=8)
    assert drawn[0].axes[1].get_legend() is not None
    assert _points_under_legends(drawn[0]) == []
    stage = [(e, 5.0 - e, v + 0.01, t + 0.01) for e, _, v, t in ZIGZAG[:4]]
    plot_curves(_records(stage, "items") + _records(ZIGZAG), tmp_path / "c.png", "recall@20")
    assert drawn[1].axes[0].get_legend() is not None  # the stage's loss is named
    assert _points_under_legends(drawn[1]) == []


def test_an_early_stopped_run_marks_where_it_stopped(drawn, tmp_path):
    """Three epochs of a run configured for forty looked like a run of three."""
    records = _records(ZIGZAG[:6])
    plot_curves(records, tmp_path / "c.png", "recall@20", selected=3, stopped_early=True)
    marks = {
        line.get_label(): list(line.get_xdata())
        for line in drawn[0].axes[1].lines
        if not _is_data(line)
    }
    assert marks == {"selected: epoch 3": [3, 3], "stopped early: epoch 6": [6, 6]}
    legend = [t.get_text() for t in drawn[0].axes[1].get_legend().get_texts()]
    assert "stopped early: epoch 6" in legend
    # A divergence also ends training early: it is marked as such, not twice.
    diverged = [*records, {"event": "diverged", "epoch": 6, "loss": math.nan}]
    plot_curves(diverged, tmp_path / "c.png", "recall@20", selected=3, stopped_early=True)
    labels = [line.get_label() for ax in drawn[1].axes for line in ax.lines]
    assert "diverged" in labels and not any(label.startswith("stopped") for label in labels)


# ------------------------------------------------------------------------------------ report
def _run(folder: Path, name: str, model: str, metrics: dict, train: dict | None = None) -> Path:
    """A run directory with a hand-written config.yaml and metrics.json."""
    run = folder / name
    run.mkdir(parents=True)
    config = {
        "name": name,
        "data": {"format": "demo", "seed": 0},
        "model": {"name": model},
        "train": {"metric": "recall@20", "epochs": 40, **(train or {})},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    base = {"model": model, "averaging": "all_users", "data": {"n_users": 10, "n_items": 5}}
    (run / "metrics.json").write_text(json.dumps(base | metrics))
    return run


def _row(page: str, name: str) -> str:
    found = re.search(rf"<tr><th>{re.escape(name)}</th><td>(.*?)</td></tr>", page)
    return found.group(1) if found else ""


VALID = {"valid": {"recall@20": 0.25}, "test": {"recall@20": 0.2}}


def test_the_report_says_how_training_ended(tmp_path):
    """The overview gave "epochs run 3" alike for a run of 3 epochs, one stopped by patience
    after 3 of 40, and one whose loss diverged."""
    ended = {"best_epoch": 1, "epochs_run": 3, "validated": True}
    stopped = _run(
        tmp_path, "stopped", "multvae", VALID | ended | {"stopped_early": True}, {"patience": 2}
    )
    diverged = _run(
        tmp_path,
        "diverged",
        "diffrec",
        VALID | ended | {"stopped_early": True, "diverged_epoch": 3},
    )
    full = _run(tmp_path, "full", "diffrec", VALID | ended | {"stopped_early": False})
    ease = _run(tmp_path, "ease", "ease", VALID | {"best_epoch": None, "epochs_run": None})
    assert _row(build_report(stopped), "training") == (
        "stopped early after epoch 3: no gain on validation for train.patience = 2 epochs"
    )
    assert _row(build_report(diverged), "training").startswith("diverged in epoch 3 ")
    assert _row(build_report(full), "training") == "ran all 3 epochs"
    page = build_report(ease)  # fitted without epochs: nothing to say
    assert _row(page, "training") == "" and _row(page, "best epoch") == "-"


def test_the_report_shows_each_pre_training_stage_with_its_own_numbers(tmp_path):
    """L-DiffRec's autoencoder stage was nowhere in the report, though metrics.json has it."""
    autoencoder = {
        "best_epoch": 4,
        "epochs_run": 6,
        "validated": True,
        "stopped_early": True,
        "diverged_epoch": None,
        "valid": {"recall@20": 0.2646666},
    }
    metrics = VALID | {"best_epoch": 10, "epochs_run": 10, "stages": {"autoencoder": autoencoder}}
    page = build_report(_run(tmp_path, "ldiffrec", "ldiffrec", metrics))
    table = re.search(r"<h2>Pre-training stages</h2>.*?</table>", page).group(0)
    header = re.findall(r"<th>(.*?)</th>", table)
    cells = re.findall(r"<td>(.*?)</td>", table)
    assert header == ["stage", "best epoch", "epochs run", "training", "valid recall@20"]
    assert cells == [
        "autoencoder",
        "4",
        "6",
        "stopped early after epoch 6: no gain on validation",
        "0.2647",
    ]
    plain = build_report(_run(tmp_path, "diffrec", "diffrec", VALID | {"best_epoch": 2}))
    assert "Pre-training stages" not in plain


def test_user_given_names_are_escaped_and_the_page_loads_nothing(tmp_path):
    """Run folders and config names come from the user: a run named <script> stays text, in
    the title, the overview and the comparison with a neighbour named alike."""
    metrics = VALID | {"best_epoch": 2, "epochs_run": 2}
    run = _run(tmp_path, "<script>alert(1)", "diffrec", metrics)
    _run(tmp_path, "<img src=x onerror=alert(2)>", "diffrec", metrics)
    page = build_report(run)
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)" in page and "&lt;img src=x onerror=alert(2)&gt;" in page
    assert not re.search(r"(?:src|href)=[\"']?(?:https?:)?//", page)  # nothing fetched


# --------------------------------------------------------------------------------- benchmarks
def test_the_guidance_plot_marks_the_w_validation_chose(monkeypatch, tmp_path):
    """The sweep's plot showed valid and test alike, and not which w the benchmark chose."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import dreamrec_sampling
    finally:
        sys.path.remove(str(BENCHMARKS))
    saved = []
    monkeypatch.setattr(dreamrec_sampling, "save_figure", lambda fig, path: saved.append(fig))
    sweep = [
        {"w": w, "valid": {"hit_rate@20": v}, "test": {"hit_rate@20": t}}
        for w, v, t in [(0, 0.389, 0.402), (2, 0.585, 0.584), (4, 0.595, 0.599)]
    ]
    dreamrec_sampling._plot(sweep, 4, tmp_path / "g.png")
    (ax,) = saved[0].axes
    lines = {line.get_label(): line for line in ax.lines}
    assert list(lines["chosen on valid: w = 4"].get_xdata()) == [4, 4]
    assert list(lines["valid"].get_ydata()) == pytest.approx([38.9, 58.5, 59.5])
    assert lines["valid"].get_linestyle() == "-" and lines["test"].get_linestyle() == "--"
