"""YAML as recdiff reads what a user writes: config files, ``--set`` values, search spaces.

PyYAML follows YAML 1.1, whose numbers surprise: ``010`` is octal 8 and ``1:30`` is 90 (base
60), so ``--set "eval.ks=[010, 20]"`` reported Recall@8 without a word, while ``1e-5`` (no dot)
is a string. :class:`ConfigLoader` reads numbers as YAML 1.2 does (``010`` is ten, ``0o10``
eight, ``0x1f`` hex, ``1:30`` text, ``1e-5`` a float) and its booleans (``true``/``false``
only; YAML 1.1's ``yes``, ``no``, ``on``, ``off`` are text, so ``--set data.format=no`` names a
format rather than sending ``False``), and refuses a key written twice in one mapping (YAML
would keep the last value silently).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

__all__ = ["ConfigLoader", "load_yaml"]

BOOL = "tag:yaml.org,2002:bool"
INT = "tag:yaml.org,2002:int"
FLOAT = "tag:yaml.org,2002:float"


class ConfigLoader(yaml.SafeLoader):
    """A SafeLoader with YAML 1.2's numbers and distinct mapping keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        """A mapping whose keys are distinct: YAML's last value would otherwise win silently."""
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                repeated = key in seen
            except TypeError:  # an unhashable key: the base constructor says so
                break
            if repeated:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"key {key!r} appears twice; keep one of them",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node).replace("_", "")
    sign, digits = (-1, text[1:]) if text[:1] == "-" else (1, text.lstrip("+"))
    base = {"0x": 16, "0o": 8}.get(digits[:2].lower(), 10)
    return sign * int(digits[2:] if base != 10 else digits, base)


# YAML 1.1's resolvers out, YAML 1.2's core schema in (underscores kept as PyYAML allows them).
ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag not in (BOOL, INT, FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ConfigLoader.add_implicit_resolver(
    BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
ConfigLoader.add_implicit_resolver(
    INT,
    re.compile(r"^(?:[-+]?[0-9][0-9_]*|0[xX][0-9a-fA-F_]+|0[oO][0-7_]+)$"),
    list("-+0123456789"),
)
ConfigLoader.add_implicit_resolver(
    FLOAT,
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?
        |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)
ConfigLoader.add_constructor(INT, _construct_int)


def load_yaml(text: str) -> Any:
    """``text`` read by :class:`ConfigLoader`."""
    return yaml.load(text, Loader=ConfigLoader)  # a SafeLoader subclass: no arbitrary objects
