"""Without the serve extra the library and the CLI work, and `serve` says what to install."""

from __future__ import annotations

import subprocess
import sys

# One interpreter (importing torch takes seconds) in which `import fastapi` / `import uvicorn`
# fail, as on an install without recdiff[serve].
_SCRIPT = """
import sys
sys.modules["fastapi"] = None
sys.modules["uvicorn"] = None
import recdiff.cli.main, recdiff.serving.export, recdiff.serving.report
from recdiff.serving.predictor import Predictor
print("recommended", len(Predictor.load(sys.argv[1]).recommend(user=3, k=4).items))
try:
    import recdiff.serving.service
except ImportError as error:
    print("service:", error)
recdiff.cli.main.app(["serve", sys.argv[1]])  # exits with status 2
"""


def test_core_works_without_the_serve_extra_and_serve_names_it(run_dir):
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(run_dir)], capture_output=True, text=True, timeout=120
    )
    assert "recommended 4" in done.stdout, done.stderr
    assert "service: the HTTP service needs FastAPI and uvicorn" in done.stdout
    assert "pip install 'recdiff[serve]'" in done.stdout
    assert "`recdiff serve` needs the serve extra: pip install 'recdiff[serve]'" in done.stderr
    assert done.returncode == 2
