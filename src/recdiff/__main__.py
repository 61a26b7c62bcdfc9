"""``python -m recdiff`` (and ``torchrun -m recdiff``) runs the command line."""

from recdiff.cli.main import app

app()
