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

The document then says ``openapi: 3.1.0``. 3.1 documents are left as written.
"""

from __future__ import annotations

import typing as t

from .structure import SCHEMA, VALUE, child_kind

TARGET_VERSION = "3.1.0"


def to_openapi_31(document: dict) -> dict:
    """``document`` (changed in place) as OpenAPI 3.1."""
    if str(document.get("openapi", "")).startswith("3.0"):
        _walk(document, "document")
        document["openapi"] = TARGET_VERSION
    return document


def _walk(node: t.Any, kind: str) -> None:
    if isinstance(node, dict):
        if kind == SCHEMA:
            _schema_30_to_31(node)
        for key, value in node.items():
            if isinstance(value, (dict, list)):
                sub = child_kind(kind, key, value)
                if sub != VALUE:
                    _walk(value, sub)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            if isinstance(value, (dict, list)):
                _walk(value, child_kind(kind, index, value))


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
