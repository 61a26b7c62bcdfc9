"""Every dotted ``recdiff.`` name the docs mention exists: modules move (a split by concept, a
rename), and a stale name in the README sends a user to nothing."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [
    ROOT / "README.md",
    ROOT / "benchmarks" / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
DOTTED = re.compile(r"`(recdiff(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def _mentions(pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    found = {}
    for doc in DOCS:
        for name in pattern.findall(doc.read_text(encoding="utf-8")):
            found.setdefault(name, doc.name)
    return sorted(found.items())


def resolves(dotted: str) -> bool:
    """A module, or an attribute (class, function, method) reached from the longest module
    prefix of the name."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(target, attribute):
                return False
            target = getattr(target, attribute)
        return True
    return False


def test_the_docs_mention_names_to_check():
    # A floor, so that a changed pattern that matches nothing does not pass silently.
    assert len(_mentions(DOTTED)) >= 8


@pytest.mark.parametrize(("name", "doc"), _mentions(DOTTED))
def test_a_dotted_name_in_the_docs_resolves(name, doc):
    assert resolves(name), f"{doc} mentions {name}, which does not exist"


ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|exc):`~?(recdiff(?:\.[A-Za-z_]\w*)+)`")


def test_docstring_cross_references_resolve():
    """Sphinx roles in the source (``:func:`~recdiff.data.tables.canonical_ints```) too."""
    checked, stale = 0, []
    for source in sorted((ROOT / "src" / "recdiff").rglob("*.py")):
        for name in ROLE.findall(source.read_text(encoding="utf-8")):
            checked += 1
            if not resolves(name):
                stale.append(f"{source.relative_to(ROOT)}: {name}")
    assert checked >= 50 and not stale, stale


def test_a_stale_name_is_caught():
    assert resolves("recdiff.data.synthetic.make_large_synthetic")
    assert not resolves("recdiff.data.make_large_synthetic")  # what results.md said before
    assert not resolves("recdiff.serving.predictor.Predictor.no_such_method")
