"""The line a run prints before training, saying what data it read: counted by hand on the
demo data (data seed 0), and absent when progress output is off (``--quiet``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from recdiff.config import load_config
from recdiff.train.run import run_training

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROWS = "data: 1,000 users, 500 items; interactions 17,633 train / 2,635 valid / 5,577 test\n"
NEXT = (
    "data: 1,000 users, 200 items; next-item examples 16,238 train / 1,000 valid / 1,000 "
    "test, histories of 10\n"
)


@pytest.mark.parametrize(("preset", "line"), [("demo-popularity", ROWS), ("demo-sasrec", NEXT)])
def test_the_data_line_counts_what_was_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], preset: str, line: str
) -> None:
    config = load_config(preset, ["train.epochs=1", "train.eval_every=1"])
    result = run_training(config, tmp_path / "shown", progress=True)
    err = capsys.readouterr().err
    assert line in err and err.count("data: ") == 1
    data = result.metrics["data"]  # metrics.json records the same counts
    assert f"{data['train']:,} train / {data['valid']:,} valid / {data['test']:,} test" in line
    run_training(config, tmp_path / "quiet", progress=False)
    assert "data: " not in capsys.readouterr().err
