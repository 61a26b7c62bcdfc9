"""Fixtures shared by the training tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def interrupt_at():
    """``interrupt_at(n)``: an event listener that raises KeyboardInterrupt (Ctrl-C) at the n-th
    epoch record of a run, counted over all its stages."""

    def make(count: int):
        seen = [0]

        def listener(record):
            if record["event"] == "epoch":
                seen[0] += 1
                if seen[0] == count:
                    raise KeyboardInterrupt

        return listener

    return make
