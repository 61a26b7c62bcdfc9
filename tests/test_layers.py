"""Dependencies point one way (STYLE.md item 9): the DDPM core knows nothing of recommendation,
data and metrics know nothing of models, models nothing of runs, serving or the CLI.

Read from the source's import statements (lazy imports inside functions included), so that a
new import that crosses a layer fails here rather than in a review.
"""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "recdiff"

# package -> the recdiff packages/modules it must never import
FORBIDDEN = {
    "diffusion": ("data", "eval", "models", "train", "serving", "cli", "experiments", "config"),
    "nn": ("data", "eval", "models", "train", "serving", "cli", "experiments", "config"),
    "data": ("eval", "models", "train", "serving", "cli", "experiments", "diffusion", "nn"),
    "eval": ("models", "train", "serving", "cli", "experiments", "diffusion", "nn"),
    # models drive the training engine (Trainer, batches), never a run folder or what sits on top
    "models": (
        "serving",
        "cli",
        "experiments",
        "train.run",
        "train.run_rows",
        "train.run_sequential",
        "train.run_files",
        "train.folders",
    ),
    "train": ("serving", "cli", "experiments"),
    "serving": ("cli",),
    "experiments": ("cli",),
}


def _imports(path: Path) -> list[str]:
    """Every recdiff module an import statement in ``path`` names (relative to ``recdiff.``)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("recdiff."):
            names += [node.module[len("recdiff.") :]]
            names += [f"{node.module[len('recdiff.') :]}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names += [
                a.name[len("recdiff.") :] for a in node.names if a.name.startswith("recdiff.")
            ]
    return names


def _crosses(name: str, forbidden: tuple[str, ...]) -> bool:
    return any(name == f or name.startswith(f + ".") for f in forbidden)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(package):
    files = sorted((SRC / package).rglob("*.py"))
    assert files, f"no package recdiff.{package}"
    crossing = [
        f"{path.relative_to(SRC)} imports recdiff.{name}"
        for path in files
        for name in _imports(path)
        if _crosses(name, FORBIDDEN[package])
    ]
    assert crossing == []


def test_the_check_sees_a_crossing_import(tmp_path):
    """The reader finds both import forms, lazy ones inside functions too."""
    source = tmp_path / "m.py"
    source.write_text(
        "import recdiff.serving.service\ndef f():\n    from recdiff.train import run\n"
    )
    names = _imports(source)
    assert _crosses(names[0], ("serving",))
    assert any(_crosses(name, ("train.run",)) for name in names)
    assert not any(_crosses(name, ("train.run_rows",)) for name in names)
