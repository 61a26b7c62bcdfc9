"""events.jsonl and metrics.json are strict JSON: a browser's JSON.parse reads them too."""

import json
import math

from recdiff.train.run_files import EventLog, json_text


def _strict(text: str):
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_are_written_as_null_at_any_depth():
    metrics = {
        "loss": float("nan"),
        "by_averaging": {"test_users": {"test": {"recall@20": float("inf"), "ndcg@20": 0.25}}},
        "history": [1.5, float("-inf"), 3],
        "diverged_epoch": 4,
        "validated": True,
    }
    assert _strict(json_text(metrics)) == {
        "loss": None,
        "by_averaging": {"test_users": {"test": {"recall@20": None, "ndcg@20": 0.25}}},
        "history": [1.5, None, 3],
        "diverged_epoch": 4,
        "validated": True,
    }
    assert json_text({"a": 1}, indent=2) == '{\n  "a": 1\n}'


def test_a_diverged_epoch_in_the_event_log_reads_back_strictly_and_on_resume(tmp_path):
    path = tmp_path / "events.jsonl"
    seen = []
    log = EventLog(path, listener=seen.append)
    log({"event": "epoch", "epoch": 1, "loss": 0.5})
    log({"event": "diverged", "epoch": 2, "loss": float("nan")})
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [_strict(line) for line in lines] == [
        {"event": "epoch", "epoch": 1, "loss": 0.5},
        {"event": "diverged", "epoch": 2, "loss": None},
    ]
    # The listener (a search's pruner) still gets the number, not its JSON stand-in.
    assert math.isnan(seen[1]["loss"])

    resumed = EventLog(path, resume=True)
    assert resumed.records[1]["loss"] is None
    resumed.truncate(2)
    assert [_strict(line) for line in path.read_text(encoding="utf-8").splitlines()][1] == {
        "event": "diverged",
        "epoch": 2,
        "loss": None,
    }


def test_a_default_serialises_what_json_cannot():
    """Benchmarks write paths and devices beside their figures (as text), and NaN as null."""
    from pathlib import PurePosixPath

    text = json_text({"run": PurePosixPath("runs/a"), "hr": float("nan")}, default=str)
    assert _strict(text) == {"run": "runs/a", "hr": None}
