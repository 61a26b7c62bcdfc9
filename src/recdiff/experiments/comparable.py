"""Whether two runs' test numbers may stand side by side: the same test targets, ranked the
same way.

Runs qualify when they read the same data the same way:

* the same data: equal data fingerprints, where both runs recorded one (``metrics.json``'s
  ``data.fingerprint``, a SHA-256 of the users, items and train/valid/test pairs, or of a
  next-item run's sequences: :func:`recdiff.train.run_files.split_fingerprint`), whatever
  file, format or settings the data came from. Otherwise (runs written before runs recorded
  one, DreamRec folders) the data settings decide:
* equal data sections, time weights aside (they reweight T-DiffRec's input, not the splits) and
  the history length aside (``data.max_len`` cuts a next-item model's input; the examples and
  their targets are the same whatever it is), except in a DreamRec folder evaluated with
  ``eval.exclude_history``, where the cut history is what is masked;
  on the built-in demo data, DiffRec folders and sequence files, only the settings their
  loaders read (:data:`DEMO_SETTINGS`, :data:`DIFFREC_SETTINGS`, :data:`SEQUENCES_SETTINGS`):
  the others (``data.ratios``, ``data.split``, ``data.min_rating``...) change nothing there;
  and of a file's split settings, only those its split reads: ``data.ratios`` unless it is
  leave-one-out (a next-item model's always is), ``data.seed`` only when it is random;
* the same kind of test targets: a next-item model is tested on (history, next item) examples,
  a model of interaction rows on users' held-out items, and the demo format gives each its own
  data (sequences of 200 items, rows of 500) from one and the same data section;
* equal data statistics (users, items, split sizes), where both runs recorded them;
* for next-item runs, the same ``eval.exclude_history``: it decides which items are ranked.

User averaging is not compared: a run records its means under both averagings
(``metrics["by_averaging"]``), and its per-user values do not depend on it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from recdiff.config.schema import UNFILTERED_FORMATS

__all__ = [
    "DEMO_SETTINGS",
    "DIFFREC_SETTINGS",
    "SEQUENCES_SETTINGS",
    "Difference",
    "data_section",
    "difference",
    "is_next_item",
]

#: What the built-in demo data reads of a data section (``recdiff.train.datasets``) to make its
#: examples: its seed. Every other setting is ignored there (``data.max_len`` only cuts histories).
DEMO_SETTINGS = ("format", "seed")
#: What a DiffRec folder (its own train/valid/test files) reads: the split, ratios, filters and
#: column names are the folder's own, whatever the data section says.
DIFFREC_SETTINGS = ("format", "source", "duplicates")
#: What a sequence file reads: no column names and no ``data.duplicates`` (a model of rows keeps
#: a repeated item's latest place, a next-item model the whole sequence).
SEQUENCES_SETTINGS = ("format", "source", "split", "ratios", "seed", "k_core", "max_len")
_READ_ONLY = {"demo": DEMO_SETTINGS, "diffrec": DIFFREC_SETTINGS, "sequences": SEQUENCES_SETTINGS}


@dataclass(frozen=True)
class Difference:
    """Why two runs are not comparable: a ``setting`` (or data statistic) that differs, with
    the first run's value ``a`` and the second's ``b``; ``kind`` says whether the runs' data
    or their evaluation protocol differ."""

    kind: Literal["data", "protocol"]
    setting: str
    a: Any
    b: Any

    def describe(self, other: str) -> str:
        """E.g. ``data.seed: 7 here, 0 in demo-ease (different data)``, from the first run's
        side; ``other`` names the second run."""
        what = "different data" if self.kind == "data" else "another evaluation protocol"
        return f"{self.setting}: {_show(self.a)} here, {_show(self.b)} in {other} ({what})"


def is_next_item(config: Mapping[str, Any]) -> bool:
    """Whether a run config (as ``config.yaml`` holds it) trains a next-item model."""
    from recdiff.config.models import SEQUENTIAL_MODELS

    return (config.get("model") or {}).get("name") in SEQUENTIAL_MODELS


def data_section(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of a config's data section that decide its splits and test targets."""
    data = dict(config.get("data") or {})
    read = _READ_ONLY.get(data.get("format"))
    if read is not None:
        data = {key: value for key, value in data.items() if key in read}
    data.pop("time_weights", None)
    if data.get("format") != "demo":  # the demo draws its data from data.seed, whatever the split
        split = "leave_one_out" if is_next_item(config) else data.get("split")
        if split == "leave_one_out":
            data.pop("ratios", None)
        if split != "random":
            data.pop("seed", None)
    if not _history_decides_mask(config):
        data.pop("max_len", None)
    if is_next_item(config) and data.get("format") in UNFILTERED_FORMATS:
        # always leave-one-out or the folder's own split (older runs saved the unused default)
        data.pop("split", None)
    return data


def _history_decides_mask(config: Mapping[str, Any]) -> bool:
    """Whether ``data.max_len`` decides which items are ranked: DreamRec folders hold histories
    only, cut to ``max_len``, so with ``eval.exclude_history`` the cut history is what is masked
    (elsewhere the whole past is masked, whatever the model reads)."""
    data, evaluation = config.get("data") or {}, config.get("eval") or {}
    return (
        is_next_item(config)
        and data.get("format") == "dreamrec"
        and bool(evaluation.get("exclude_history", False))
    )


def _counts(statistics: Mapping[str, Any]) -> dict[str, Any]:
    """The data statistics that count the test examples: not the fingerprint (compared first)
    nor a next-item run's history length, an input setting rather than a property of them."""
    return {key: value for key, value in statistics.items() if key not in _NOT_COUNTS}


_NOT_COUNTS = ("max_len", "fingerprint")


def _fingerprints(
    statistics_a: Mapping[str, Any] | None, statistics_b: Mapping[str, Any] | None
) -> tuple[str, str] | None:
    """Both runs' data fingerprints, when both recorded one in the same scheme (the text before
    ``:``); None otherwise, and the data settings decide."""
    a, b = ((statistics or {}).get("fingerprint") for statistics in (statistics_a, statistics_b))
    if not isinstance(a, str) or not isinstance(b, str) or a.split(":")[0] != b.split(":")[0]:
        return None
    return a, b


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _first_difference(
    kind: Literal["data", "protocol"], a: Mapping[str, Any], b: Mapping[str, Any], prefix: str
) -> Difference | None:
    for key in dict.fromkeys([*a, *b]):
        if a.get(key) != b.get(key):
            return Difference(kind, f"{prefix}{key}", a.get(key), b.get(key))
    return None


def difference(
    config_a: Mapping[str, Any],
    statistics_a: Mapping[str, Any] | None,
    config_b: Mapping[str, Any],
    statistics_b: Mapping[str, Any] | None,
) -> Difference | None:
    """Why runs with these configs and data statistics (``metrics.json``'s ``data``; None:
    not recorded) cannot be compared on test, or None when they can."""
    next_a, next_b = is_next_item(config_a), is_next_item(config_b)
    if next_a != next_b:
        kinds = {True: "next-item examples", False: "users' interaction rows"}
        return Difference("data", "test targets", kinds[next_a], kinds[next_b])
    fingerprints = _fingerprints(statistics_a, statistics_b)
    if fingerprints is None:
        found = _first_difference("data", data_section(config_a), data_section(config_b), "data.")
    elif fingerprints[0] != fingerprints[1]:
        # (their first digits: enough to tell them apart in a sentence)
        found = Difference("data", "data fingerprint", *(f[:15] for f in fingerprints))
    else:  # the same data, read from whichever file
        found = None
    if found is None and statistics_a is not None and statistics_b is not None:
        found = _first_difference(
            "data",
            _counts(statistics_a),
            _counts(statistics_b),
            "data statistic ",
        )
    if found is None and next_a:
        found = _first_difference(
            "protocol",
            {"exclude_history": (config_a.get("eval") or {}).get("exclude_history", False)},
            {"exclude_history": (config_b.get("eval") or {}).get("exclude_history", False)},
            "eval.",
        )
    return found
