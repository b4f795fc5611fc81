"""Request bodies and parameters that arrive as text, read into the JSON values their schema
describes, so that they are validated (and stored) exactly like a JSON body.

JSON carries its own types; the other encodings a contract may declare do not, and the schema
has to say what each piece of text is. One reading for both request pipelines, the validators
and the handlers, so what is validated is what the engine gets.

**Scalars** (:func:`coerce_text`): a form field, an XML element's text or a parameter becomes an
integer, a number or a boolean when its schema allows that type and the text is one (``7``,
``-1.5``, ``true`` in any case; not ``+7``, ``7_000``, ``nan`` or `` 7``, which Python's ``int`` and
``float`` would take); ``null`` becomes ``None`` when the schema allows null but not a string.
Types come from ``type`` (a string or a 3.1 list) or, without one, from the ``anyOf`` /
``oneOf`` / ``allOf`` branches. Text no allowed type reads is left as text, so the validator
refuses it with the schema's own message (``'abc' is not of type 'integer'``).

**Form bodies** (``application/x-www-form-urlencoded``, ``multipart/form-data``;
:func:`decode_form`). Form encoding has no arrays, no empty array and no nesting; what a form
means here:

* a field whose schema is an array is the list of *every* value sent under its name, in order:
  ``Triggers=a&Triggers=b`` is ``["a", "b"]``, a single ``Triggers=a`` is ``["a"]``; values are
  never split on commas (a value may contain one);
* a *required* array field that is absent is the empty array (``photoUrls: []`` cannot be
  encoded any other way);
* any other field sent once is its scalar; sent more than once, the list of its values, which a
  scalar schema then refuses (the sender's intent is ambiguous);
* a file part is its file name (a string: what a ``format: binary`` field holds here).

**XML bodies** (``application/xml``, ``text/xml``, ``*+xml``; :func:`decode_xml`), read by the
schema and its OpenAPI ``xml`` objects: an object's properties are child elements named by
``xml.name`` or the property name, or attributes (``xml.attribute``); an array is its repeated
item elements, inside one wrapper element when ``xml.wrapped``; a scalar is the element's text
(coerced as above). Elements the schema does not name are kept as text (or an object of their
children), for ``additionalProperties`` to judge. Parsing is defusedxml's: entity declarations
and external references are refused, not expanded.
"""

from __future__ import annotations

import re
import typing as t
import xml.etree.ElementTree as ElementTree

import defusedxml.ElementTree as SafeElementTree
from defusedxml import DefusedXmlException

from .shapes import flatten


class UnreadableBody(ValueError):
    """A request body that cannot be read at all (malformed XML, a form without its boundary):
    a 400 before any validation."""


_INTEGER = re.compile(r"-?[0-9]+")
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
MAX_DIGITS = 4300
"""Longer integer text is left as text (Python refuses to convert it; the schema refuses it)."""


def allowed_types(schema: t.Any) -> set[str]:
    """The JSON types ``schema`` may hold (empty: unconstrained), read through compositions."""
    if not isinstance(schema, dict):
        return set()
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return {kind for kind in declared if isinstance(kind, str)}
    if "const" in schema or "enum" in schema:
        values = [schema["const"]] if "const" in schema else schema.get("enum") or []
        return {_json_type(value) for value in values}
    kinds: set[str] = set()
    for key in ("anyOf", "oneOf", "allOf"):
        for branch in schema.get(key) or ():
            kinds |= allowed_types(branch)
    return kinds


def _json_type(value: t.Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def coerce_text(text: t.Any, schema: t.Any) -> t.Any:
    """``text`` as the scalar ``schema`` reads it (see the module docstring); anything that is
    not a string is returned as it is."""
    if not isinstance(text, str):
        return text
    kinds = allowed_types(schema)
    if not kinds or kinds == {"string"}:
        return text
    if "integer" in kinds and _INTEGER.fullmatch(text) and len(text) <= MAX_DIGITS:
        return int(text)
    if "number" in kinds and _NUMBER.fullmatch(text) and len(text) <= MAX_DIGITS:
        value = float(text)
        if value not in (float("inf"), float("-inf")):
            return int(value) if "integer" in kinds and value.is_integer() else value
    if "boolean" in kinds and text.lower() in ("true", "false"):  # (case as Connexion read it)
        return text.lower() == "true"
    if "null" in kinds and "string" not in kinds and text in ("null", ""):
        return None
    return text


def is_array(schema: t.Any) -> bool:
    """Whether ``schema`` holds only arrays (a form field or XML element that repeats)."""
    return allowed_types(schema) - {"null"} == {"array"}


def coerce_parameter(value: t.Any, schema: t.Any) -> t.Any:
    """A path, query or header parameter's value (a string, or a list of strings for an array
    parameter) as its schema reads it."""
    if isinstance(value, list):
        items = schema.get("items", {}) if isinstance(schema, dict) else {}
        return [coerce_text(part, items) for part in value]
    return coerce_text(value, schema)


# -- forms ---------------------------------------------------------------------------------------
class FilePart(t.Protocol):
    filename: str | None


def decode_form(fields: t.Iterable[tuple[str, t.Any]], schema: t.Any) -> dict[str, t.Any]:
    """A form's ``(name, value)`` pairs (values are text, or file parts with a ``filename``) as
    the object ``schema`` describes (the rules are in the module docstring)."""
    shape = flatten(schema) if isinstance(schema, dict) else {}
    properties = shape.get("properties") or {}
    extra = shape.get("additionalProperties")
    extra = extra if isinstance(extra, dict) else {}
    grouped: dict[str, list[t.Any]] = {}
    for name, value in fields:
        if not isinstance(value, str):
            value = getattr(value, "filename", None) or ""
        grouped.setdefault(name, []).append(value)
    body: dict[str, t.Any] = {}
    for name, values in grouped.items():
        field_schema = properties.get(name, extra)
        if is_array(field_schema):
            items = field_schema.get("items", {})
            body[name] = [coerce_text(value, items) for value in values]
        elif len(values) == 1:
            body[name] = coerce_text(values[0], field_schema)
        else:
            body[name] = [coerce_text(value, field_schema) for value in values]
    for name in shape.get("required") or ():
        if name not in body and is_array(properties.get(name)):
            body[name] = []
    return body


# -- XML -----------------------------------------------------------------------------------------
MAX_XML_DEPTH = 64
"""Deepest element nesting an XML body may have (as ``MAX_JSON_DEPTH`` for JSON)."""


def decode_xml(raw: bytes, schema: t.Any) -> t.Any:
    """An XML body as the JSON value ``schema`` describes (``None`` if empty), or
    :class:`UnreadableBody`."""
    if not raw.strip():
        return None
    try:
        root = SafeElementTree.fromstring(raw)
    except (ElementTree.ParseError, DefusedXmlException, ValueError) as exc:
        raise UnreadableBody(f"Request body is not well-formed XML: {exc}") from None
    if _depth(root) > MAX_XML_DEPTH:
        raise UnreadableBody(f"Request body is nested more than {MAX_XML_DEPTH} levels deep")
    return _element_value(root, schema if isinstance(schema, dict) else {})


def _depth(root: ElementTree.Element) -> int:
    deepest, stack = 0, [(root, 1)]
    while stack:
        element, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth <= MAX_XML_DEPTH:
            stack.extend((child, depth + 1) for child in element)
    return deepest


def _local(tag: t.Any) -> str:
    """An element or attribute name without its ``{namespace}``."""
    return str(tag).rsplit("}", 1)[-1]


def _xml(schema: t.Any) -> dict:
    value = schema.get("xml") if isinstance(schema, dict) else None
    return value if isinstance(value, dict) else {}


def _element_value(element: ElementTree.Element, schema: dict) -> t.Any:
    shape = flatten(schema)
    kinds = allowed_types(shape)
    if is_array(shape):
        return _items(list(element), shape)
    if "object" in kinds or shape.get("properties") or (not kinds and (len(element) or element.attrib)):
        text = (element.text or "").strip()
        if text and not len(element) and not element.attrib:
            return coerce_text(text, {})  # ``<user>true</user>``: text, not an object (refused)
        return _object(element, shape)
    return coerce_text(element.text or "", shape)


def _items(elements: list[ElementTree.Element], array: dict) -> list[t.Any]:
    items = array.get("items") if isinstance(array.get("items"), dict) else {}
    name = _xml(items).get("name")
    return [_element_value(child, items) for child in elements if name is None or _local(child.tag) == name]


def _object(element: ElementTree.Element, shape: dict) -> dict[str, t.Any]:
    properties = shape.get("properties") or {}
    children: dict[str, list[ElementTree.Element]] = {}
    for child in element:
        children.setdefault(_local(child.tag), []).append(child)
    attributes = {_local(name): value for name, value in element.attrib.items()}
    body: dict[str, t.Any] = {}
    named: set[str] = set()
    for name, prop in properties.items():
        prop = prop if isinstance(prop, dict) else {}
        flat = flatten(prop)
        xml = _xml(prop) or _xml(flat)
        tag = xml.get("name") or name
        named.add(tag)
        if xml.get("attribute"):
            if tag in attributes:
                body[name] = coerce_text(attributes.pop(tag), flat)
            continue
        if is_array(flat):
            if xml.get("wrapped"):
                if tag in children:
                    body[name] = _items(list(children[tag][0]), flat)
            else:
                item_tag = _xml(flat.get("items")).get("name") or tag
                named.add(item_tag)
                found = children.get(item_tag)
                if found:
                    items = flat.get("items") if isinstance(flat.get("items"), dict) else {}
                    body[name] = [_element_value(child, items) for child in found]
        elif tag in children:
            body[name] = _element_value(children[tag][0], prop)
    for tag, found in children.items():
        if tag not in named and tag not in body:
            values = [_element_value(child, {}) for child in found]
            body[tag] = values[0] if len(values) == 1 else values
    for name, value in attributes.items():
        body.setdefault(name, value)
    return body
