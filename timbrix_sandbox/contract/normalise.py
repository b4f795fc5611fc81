"""OpenAPI 3.0.x read as 3.1, once, at load time.

Everything downstream (the Draft 2020-12 validators of ``http/oas31.py``, the model, the
conformance suite) reads JSON Schema 2020-12. 3.0's schema dialect differs in a few keywords
that would otherwise be silently ignored or misread:

* ``nullable: true`` -> ``"null"`` added to ``type`` (and ``null`` to an ``enum``); without a
  ``type`` (a nullable ``$ref`` or composition), ``anyOf: [the schema, {type: "null"}]``;
* boolean ``exclusiveMinimum`` / ``exclusiveMaximum`` -> the numeric 2020-12 form, taking the
  bound from ``minimum`` / ``maximum``;
* ``example`` stays (3.1 keeps it, deprecated); ``x-nullable`` and other extensions are left
  alone, since no validator reads them.

The document then says ``openapi: 3.1.0``.

In every document (3.0 and 3.1), an integer's ``format: int32`` / ``int64`` becomes the bounds it
names (``minimum`` / ``maximum``, tightened where the contract's own are looser or absent). JSON
Schema treats ``format`` as an annotation, so without this ``9223372036854775808`` passes as an
``int64`` id; written as bounds, both request pipelines, the response validator and the
conformance suite read the same limits from one place. A document with no such format (Timbrix,
BeeL, bookkeeping) is left exactly as written.

A header parameter named ``Accept``, ``Content-Type`` or ``Authorization`` "SHALL be ignored"
(OpenAPI 3.0 / 3.1, Parameter Object): media types and security say those. Such definitions are
dropped from every path item and operation here (:func:`drop_ignored_header_parameters`), so
Connexion's validators, the fast path and the conformance suite all read the contract without
them; DigitalOcean's ``Accept: enum [application/json, application/yaml]`` otherwise refused a
client sending ``Accept: */*``.
"""

from __future__ import annotations

import typing as t

from .refs import lookup
from .structure import SCHEMA, VALUE, child_kind

TARGET_VERSION = "3.1.0"


def to_openapi_31(document: dict) -> dict:
    """``document`` (changed in place) as OpenAPI 3.1, integer formats written as bounds."""
    if str(document.get("openapi", "")).startswith("3.0"):
        _walk(document, "document", (_schema_30_to_31, _integer_format_bounds))
        document["openapi"] = TARGET_VERSION
    else:
        _walk(document, "document", (_integer_format_bounds,))
    return document


IGNORED_HEADER_PARAMETERS = frozenset({"accept", "content-type", "authorization"})
"""Header parameter names OpenAPI says are ignored (compared case-insensitively, as headers are)."""

_HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def drop_ignored_header_parameters(document: dict) -> list[str]:
    """Each path item's and operation's ``parameters`` (changed in place) without the header
    parameters OpenAPI says are ignored; a ``$ref`` is read through ``resolve`` (``pointer`` ->
    node, :class:`KeyError` if absent). Returns ``"METHOD path: Name"`` (or ``"path: Name"``) for
    each one dropped. Run after path items are inlined: the lists are replaced, never mutated, so
    a path item shared through ``components/pathItems`` keeps its own."""
    dropped: list[str] = []

    def kept(parameters: t.Any, where: str) -> t.Any:
        if not isinstance(parameters, list):
            return parameters
        result = []
        for parameter in parameters:
            resolved = parameter
            reference = parameter.get("$ref") if isinstance(parameter, dict) else None
            if isinstance(reference, str) and reference.startswith("#"):
                try:
                    resolved = lookup(document, reference[1:])
                except KeyError:
                    resolved = parameter
            if (
                isinstance(resolved, dict)
                and resolved.get("in") == "header"
                and str(resolved.get("name", "")).lower() in IGNORED_HEADER_PARAMETERS
            ):
                dropped.append(f"{where}: {resolved['name']}")
                continue
            result.append(parameter)
        return result

    for path, item in (document.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        if "parameters" in item:
            item["parameters"] = kept(item["parameters"], path)
        for method in _HTTP_METHODS:
            operation = item.get(method)
            if isinstance(operation, dict) and "parameters" in operation:
                operation["parameters"] = kept(operation["parameters"], f"{method.upper()} {path}")
    return dropped


SchemaRule = t.Callable[[dict], None]


def _walk(node: t.Any, kind: str, rules: tuple[SchemaRule, ...]) -> None:
    if isinstance(node, dict):
        if kind == SCHEMA:
            for rule in rules:
                rule(node)
        for key, value in node.items():
            if isinstance(value, (dict, list)):
                sub = child_kind(kind, key, value)
                if sub != VALUE:
                    _walk(value, sub, rules)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            if isinstance(value, (dict, list)):
                _walk(value, child_kind(kind, index, value), rules)


INTEGER_FORMATS: dict[str, tuple[int, int]] = {
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
}
"""OpenAPI's integer formats and the inclusive range each names."""


def _integer_format_bounds(schema: dict) -> None:
    """``format: int32`` / ``int64`` on an integer as ``minimum`` / ``maximum`` (runs after the 3.0
    rules, so exclusive bounds are already numeric)."""
    bounds = INTEGER_FORMATS.get(schema.get("format"))  # type: ignore[arg-type]
    declared = schema.get("type")
    if bounds is None or not (declared == "integer" or isinstance(declared, list) and "integer" in declared):
        return
    low, high = bounds
    if not _at_least(schema, "minimum", "exclusiveMinimum", low, above=True):
        schema["minimum"] = low
    if not _at_least(schema, "maximum", "exclusiveMaximum", high, above=False):
        schema["maximum"] = high


def _at_least(schema: dict, inclusive: str, exclusive: str, bound: int, above: bool) -> bool:
    """Whether the schema's own bounds on that side are already as tight as ``bound``."""
    for key in (inclusive, exclusive):
        value = schema.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if (value >= bound) if above else (value <= bound):
                return True
    return False


_COMPOSITION = ("$ref", "allOf", "anyOf", "oneOf", "not")
_ANNOTATIONS = ("title", "description", "default", "example", "examples", "readOnly", "writeOnly", "deprecated")


def _schema_30_to_31(schema: dict) -> None:
    for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        flag = schema.get(exclusive)
        if isinstance(flag, bool):
            del schema[exclusive]
            if flag and bound in schema:
                schema[exclusive] = schema.pop(bound)
    if "nullable" not in schema:
        return
    if schema.pop("nullable") is not True:
        return
    declared = schema.get("type")
    if isinstance(declared, str):
        schema["type"] = [declared, "null"]
    elif isinstance(declared, list):
        if "null" not in declared:
            declared.append("null")
    elif any(key in schema for key in _COMPOSITION):
        # Annotations describe the whole value (a ``default: null`` must stay valid for it).
        outer = {key: schema.pop(key) for key in _ANNOTATIONS if key in schema}
        branch = dict(schema)
        schema.clear()
        schema.update(outer)
        schema["anyOf"] = [branch, {"type": "null"}]
        return
    enum = schema.get("enum")
    if isinstance(enum, list) and None not in enum:
        enum.append(None)
