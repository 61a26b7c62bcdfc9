"""Each command's ``--help`` prints every paragraph of its description as the docstring says it,
wrapped by the terminal alone: typer keeps the source's line breaks inside paragraphs after the
first, so before ``recdiff.cli.main`` joined them, ``tune --help`` broke "(a" from "larger".
"""

from __future__ import annotations

import inspect

import pytest
from typer.testing import CliRunner

from recdiff.cli.main import app, demo_app

COMMANDS = [
    (name, info.callback)
    for prefix, group in (((), app), (("demo",), demo_app))
    for info in group.registered_commands
    for name in [(*prefix, info.name or info.callback.__name__.replace("_", "-"))]
]


def test_every_command_is_listed():
    names = {" ".join(name) for name, _ in COMMANDS}
    assert {"train", "tune", "experiment", "recommend", "resume", "export"} <= names


@pytest.mark.parametrize("name,callback", COMMANDS, ids=[" ".join(n) for n, _ in COMMANDS])
def test_each_paragraph_of_the_description_prints_on_one_wide_line(name, callback):
    result = CliRunner().invoke(app, [*name, "--help"], env={"COLUMNS": "500"})
    assert result.exit_code == 0, result.output
    lines = {line.strip() for line in result.output.splitlines()}
    for paragraph in inspect.cleandoc(callback.__doc__).split("\n\n"):
        assert " ".join(paragraph.split()) in lines, paragraph
