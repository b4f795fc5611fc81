"""A YAML 1.2 (core schema) reader on libyaml's speed, for contracts written by other people.

PyYAML resolves plain scalars by YAML **1.1** rules: ``2022-31-01T23:59:59.999`` becomes a
timestamp (FacturAPI's unquoted ``example`` crashes the load: "month must be in 1..12"),
``on``/``off``/``yes``/``no`` become booleans, ``0777`` an octal number and ``1:30`` a
sexagesimal one. OpenAPI documents are YAML 1.2 (or JSON, its subset), where all of those are
strings or plain decimal numbers. PyYAML has no 1.2 mode and ruamel.yaml's is several times
slower than libyaml, so :class:`Yaml12Loader` keeps libyaml's parser (``CSafeLoader`` when
compiled in) and swaps only the resolver table and the number constructors for the core
schema's.

Mapping keys are kept as the text the author wrote (``200:`` is the key ``"200"``, ``true:``
is ``"true"``): a JSON document's keys are strings, and an OpenAPI responses map keyed by
plain integers is the common case this fixes.
"""

from __future__ import annotations

import re
import typing as t

import yaml

_Base: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_MERGE = re.compile(r"^<<$")


class Yaml12Loader(_Base):
    """libyaml's parser with the YAML 1.2 core schema's implicit types (and ``<<`` merge keys,
    which real contracts use although 1.2 dropped them)."""

    yaml_implicit_resolvers: t.ClassVar[dict] = {}

    def construct_mapping(self, node, deep: bool = False):  # noqa: D102 - keys as written
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)
        mapping = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key: t.Any = key_node.value
            else:
                key = str(self.construct_object(key_node, deep=deep))
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


def _construct_int(loader: Yaml12Loader, node: yaml.ScalarNode) -> int:
    text = node.value
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text)


def _construct_float(loader: Yaml12Loader, node: yaml.ScalarNode) -> float:
    text = node.value.lower()
    if text.endswith(".inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    if text == ".nan":
        return float("nan")
    return float(text)


def _construct_text(loader: Yaml12Loader, node: yaml.ScalarNode) -> str:
    """An explicit ``!!timestamp`` stays the text it is: JSON has no date type."""
    return str(node.value)


for _tag, _pattern, _first in (
    ("tag:yaml.org,2002:bool", _BOOL, "tTfF"),
    ("tag:yaml.org,2002:null", _NULL, ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:int", _INT, "-+0123456789"),
    ("tag:yaml.org,2002:float", _FLOAT, "-+.0123456789"),
    ("tag:yaml.org,2002:merge", _MERGE, "<"),
):
    Yaml12Loader.add_implicit_resolver(_tag, _pattern, list(_first))
Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
Yaml12Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)
Yaml12Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_text)


def parse_yaml(text: str) -> t.Any:
    """The YAML 1.2 (or JSON) document in ``text``."""
    return yaml.load(text, Loader=Yaml12Loader)  # noqa: S506 - a safe loader
