"""The HTML pieces of a run report (:mod:`recdiff.serving.report`): escaping, number cells,
tables and the page around them. Text goes in escaped; a table takes cells already made HTML."""

from __future__ import annotations

import html
from typing import Any

__all__ = ["PAGE", "escape", "html_table", "key_values", "number_cell", "seconds_cell"]


def escape(value: Any) -> str:
    """``value`` as HTML text: a run or setting named ``<script>`` shows as written."""
    return html.escape(str(value))


def number_cell(value: Any) -> str:
    """A metric to 4 decimals, a count with thousands separators, ``-`` for none."""
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "-" if value is None else escape(value)


def seconds_cell(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else "-"


def key_values(pairs: dict[str, Any]) -> str:
    """A two-column table of names and values, both escaped."""
    if not pairs:
        return "<p>(not recorded)</p>"
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in pairs.items())
    return f"<table>{rows}</table>"


def html_table(header: list[str], rows: list[list[str]], marked: int | None = None) -> str:
    """A table of HTML cells under an HTML ``header``, row ``marked`` highlighted."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join(
        f"<tr{' class=this' if i == marked else ''}>"
        + "".join(f"<td>{c}</td>" for c in row)
        + "</tr>"
        for i, row in enumerate(rows)
    )
    return f"<table><tr>{head}</tr>{body}</table>"


# No external stylesheet, script or font: the page opens offline, as one file.
PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1em; }}
th, td {{ border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }}
th {{ background: #f3f3f3; }} td:first-child, th:first-child {{ text-align: left; }}
tr.this td {{ font-weight: bold; background: #fff7d6; }}
pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; }}
img {{ max-width: 100%; }}
</style></head>
<body>
{body}
</body></html>
"""
