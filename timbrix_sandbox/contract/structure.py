"""What kind of OpenAPI object sits at a position of a document, from its parent's kind and key.

Bundling needs it (an external ``$ref`` in a schema position is hoisted into
``components/schemas``, one in a response position into ``components/responses``) and so does
normalising 3.0 to 3.1 (``nullable`` means something only in a schema). Knowing the kind from the
structure, instead of guessing from keywords, keeps an example value that happens to contain
``type`` or ``$ref`` an example value.
"""

from __future__ import annotations

import typing as t

VALUE = "value"
"""Anything that is data, not an OpenAPI object (examples, extensions, info, enums...)."""
SCHEMA = "schema"

_HTTP = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_SCHEMA_ONE = frozenset(
    (
        "items",
        "additionalProperties",
        "not",
        "if",
        "then",
        "else",
        "contains",
        "propertyNames",
        "unevaluatedItems",
        "unevaluatedProperties",
        "additionalItems",
        "contentSchema",
    )
)
_SCHEMA_MAPS = frozenset(("properties", "patternProperties", "$defs", "definitions", "dependentSchemas"))
_SCHEMA_LISTS = frozenset(("allOf", "anyOf", "oneOf", "prefixItems"))

# kind -> {key: child kind}; "*" is any key that is not an extension.
_CHILDREN: dict[str, dict[str, str]] = {
    "document": {"paths": "paths", "webhooks": "paths", "components": "components"},
    "paths": {"*": "path_item"},
    "path_item": {**{method: "operation" for method in _HTTP}, "parameters": "parameter_list"},
    "operation": {
        "parameters": "parameter_list",
        "requestBody": "request_body",
        "responses": "responses",
        "callbacks": "callback_map",
    },
    "parameter_list": {"*": "parameter"},
    "parameter": {"schema": SCHEMA, "content": "content", "examples": "example_map"},
    "header": {"schema": SCHEMA, "content": "content", "examples": "example_map"},
    "request_body": {"content": "content"},
    "responses": {"*": "response"},
    "response": {"headers": "header_map", "content": "content", "links": "link_map"},
    "content": {"*": "media_type"},
    "media_type": {"schema": SCHEMA, "examples": "example_map", "encoding": "encoding_map"},
    "encoding_map": {"*": "encoding"},
    "encoding": {"headers": "header_map"},
    "example_map": {"*": "example"},
    "header_map": {"*": "header"},
    "link_map": {"*": "link"},
    "callback_map": {"*": "callback"},
    "callback": {"*": "path_item"},
    "components": {
        "schemas": "schema_map",
        "responses": "responses",
        "parameters": "parameter_map",
        "examples": "example_map",
        "requestBodies": "request_body_map",
        "headers": "header_map",
        "links": "link_map",
        "callbacks": "callback_map",
        "pathItems": "paths",
    },
    "schema_map": {"*": SCHEMA},
    "parameter_map": {"*": "parameter"},
    "request_body_map": {"*": "request_body"},
}

COMPONENT_SECTION: dict[str, str] = {
    SCHEMA: "schemas",
    "parameter": "parameters",
    "response": "responses",
    "request_body": "requestBodies",
    "header": "headers",
    "example": "examples",
    "link": "links",
    "callback": "callbacks",
}
"""Kinds a ``$ref`` to another file is hoisted for, and the ``components`` section they go in.
Path items are inlined instead: the model reads each path's operations in place."""


def child_kind(kind: str, key: t.Any, value: t.Any = None) -> str:
    """The kind of ``parent[key]`` for a parent of ``kind`` (list indexes are ints)."""
    if kind == SCHEMA:
        if key in _SCHEMA_ONE:
            return "schema_list" if isinstance(value, list) else SCHEMA
        if key in _SCHEMA_MAPS:
            return "schema_map"
        if key in _SCHEMA_LISTS:
            return "schema_list"
        return VALUE
    if kind == "schema_list":
        return SCHEMA
    if kind == VALUE:
        return VALUE
    if isinstance(key, str) and key.startswith("x-"):
        return VALUE
    children = _CHILDREN.get(kind)
    if children is None:
        return VALUE
    return children.get(key) or children.get("*", VALUE)
