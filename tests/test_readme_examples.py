"""The README's Python examples run as written, and give what their comments say.

Each ```python block of README.md is executed in a fresh namespace; the one that loads a run
directory gets a freshly trained demo run in place of the README's placeholder path. After each
block, what it computed is checked against its comments (seen items excluded, shapes, finite
losses), so an example that silently does something else fails too. The commands of the docs
are checked in tests/test_docs_commands.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from recdiff.cli.main import app

README = Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```python\n(.*?)^```", TEXT, re.S | re.M)
YAML_BLOCKS = re.findall(r"^```yaml\n(.*?)^```", TEXT, re.S | re.M)
PLACEHOLDER_RUN = re.compile(r'Predictor\.load\("([^"]+)"\)')


def _block(marker: str) -> str:
    (block,) = [b for b in BLOCKS if marker in b]
    return block


def _run(code: str) -> dict:
    namespace: dict = {"__name__": "readme_example"}
    exec(compile(code, str(README), "exec"), namespace)  # the README's own code
    return namespace


def test_every_python_block_is_covered_here():
    markers = ["GaussianDiffusion(", "DiffRec(", "DreamRec(", "Predictor.load("]
    assert len(BLOCKS) == len(markers), "a README Python example was added: test it here"
    assert all(sum(m in b for b in BLOCKS) == 1 for m in markers)


def test_ddpm_core_example():
    ns = _run(_block("GaussianDiffusion("))
    assert torch.isfinite(ns["loss"]) and ns["loss"].ndim == 0
    # the loss-aware sampler saw this batch's losses, and weights undo its sampling probabilities
    assert ns["weights"].shape == (400,) and torch.all(ns["weights"] > 0)
    assert ns["x0_hat"].shape == (16, 64) and torch.isfinite(ns["x0_hat"]).all()
    assert ns["fast"].num_steps == 50


def test_diffrec_example_excludes_seen_items():
    ns = _run(_block("DiffRec("))
    items, seen = ns["items"], ns["splits"].train.matrix[:2]
    assert np.asarray(items).shape == (2, 10)
    for row, listed in enumerate(np.asarray(items)):
        assert not set(listed) & set(seen[row].indices)  # "seen items excluded"
        assert len(set(listed)) == 10


@pytest.mark.slow  # moved out of the default run (~10 min on 2 cores); CI runs it
def test_dreamrec_example_recommends_after_the_history():
    ns = _run(_block("DreamRec("))
    items = np.asarray(ns["items"])
    assert items.shape == (1, 10) and not {3, 17, 42} & set(items[0])
    assert ns["fast"].shape[-1] == ns["model"].n_items  # DDIM scores for every item


def test_predictor_example_on_a_trained_run(tmp_path, monkeypatch):
    result = CliRunner().invoke(
        app,
        [
            "train",
            "demo-diffrec",
            "--set",
            "train.epochs=3",
            "--set",
            "train.eval_every=1",
            "--set",
            "model.diffusion.steps=4",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "runs").iterdir()
    code = _block("Predictor.load(")
    assert PLACEHOLDER_RUN.search(code), "the README's Predictor example changed its form"
    code = PLACEHOLDER_RUN.sub(f"Predictor.load({str(run)!r})", code)
    code += (  # keep the two answers the example computes
        "\nknown = predictor.recommend(user=3, k=10)"
        "\nnew = predictor.recommend(history=[1, 2, 3], k=10)"
        "\nruled = predictor.recommend(user=3, k=10, exclude_items=[17, 40])"
        "\nshort = predictor.recommend(user=3, k=3, candidates=[5, 9, 12, 30])\n"
    )
    ns = _run(code)
    assert len(ns["known"].items) == 10 and len(ns["new"].items) == 10
    assert len(ns["ruled"].items) == 10 and not {17, 40} & set(ns["ruled"].items)
    assert len(ns["short"].items) == 3 and set(ns["short"].items) <= {5, 9, 12, 30}
    assert not {1, 2, 3} & set(ns["new"].items)  # a new user's history is not recommended back
    scores = np.asarray(ns["known"].scores)
    assert np.all(np.diff(scores) <= 0)  # best first


@pytest.mark.parametrize("marker", ["GaussianDiffusion(", "DiffRec(", "DreamRec("])
def test_examples_import_only_public_names(marker):
    # the examples teach the API: no private names
    assert not re.search(r"import _|\._[a-z]", _block(marker))


def test_search_space_example_loads_and_fits_diffrec(tmp_path):
    """The README's example space file is a valid space whose every key sets a DiffRec setting
    (what `recdiff tune` checks before a search)."""
    from recdiff.config import load_config
    from recdiff.experiments.space import load_space
    from recdiff.experiments.trials import lookup_view, trial_config

    (block,) = YAML_BLOCKS
    path = tmp_path / "space.yaml"
    path.write_text(block)
    space = load_space(path)
    assert list(space.params) == ["train.lr", "model.hidden_dims", "model.diffusion.steps"]
    config = load_config("demo-diffrec")
    base = config.model_dump(mode="json")
    space.check_against(base, lookup_view(config), lambda raw: trial_config(raw, {}, "x"))
    planted = tmp_path / "planted.yaml"  # the same check refuses a key DiffRec does not have
    planted.write_text(block.replace("model.diffusion.steps", "model.diffusion.stepz"))
    with pytest.raises(ValueError, match="stepz"):
        load_space(planted).check_against(
            base, lookup_view(config), lambda raw: trial_config(raw, {}, "x")
        )
