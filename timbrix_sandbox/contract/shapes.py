"""Schema shapes the engine reasons about: a composed schema (``allOf``/``oneOf``/``anyOf``) as
one object, and deterministic minimal instances of a schema.

Public contracts describe records by composition (FacturAPI's customer is an ``allOf`` of a base
and its extras; Asana's responses ``allOf`` three layers), so reading only the first branch
loses fields. :func:`flatten` merges what a record has (``properties`` and ``required`` of every
``allOf`` branch; the object branch of a ``oneOf``/``anyOf``), for the engine to store and project.

:func:`instance` writes a value the schema accepts, for operations answered from the contract
instead of the store (actions, searches, ``GET /``) when it offers no example. It is a small
generator rather than ``hypothesis-jsonschema`` (schemathesis's): the answer must be the same on
every run and every call (a mock that changes its answer is hard to test against), computed once
per operation in microseconds, and only *minimal* - required fields, lower bounds, the first enum
value - which a search-based generator does not promise. Pure: schemas in, JSON values out.
"""

from __future__ import annotations

import re
import typing as t

import jsonschema_rs

_COMPOSED = ("allOf", "oneOf", "anyOf")
_MAX_DEPTH = 12


def _is_objectish(schema: t.Any) -> bool:
    return isinstance(schema, dict) and (
        schema.get("type") == "object"
        or (isinstance(schema.get("type"), list) and "object" in schema["type"])
        or "properties" in schema
        or ("required" in schema and "type" not in schema)
        or any(_is_objectish(b) for key in _COMPOSED for b in schema.get(key, []) or [])
    )


def _is_null(schema: t.Any) -> bool:
    return isinstance(schema, dict) and (schema.get("type") == "null" or schema.get("enum") == [None])


def flatten(schema: t.Any, depth: int = 0) -> t.Any:
    """``schema`` as one object shape: ``allOf`` branches merged into it (properties, required,
    type); for ``oneOf``/``anyOf``, the object branch with the most properties (a nullable
    ``anyOf: [X, null]`` is X). Other keywords are kept; property schemas are left as they are
    (each is flattened where it is used)."""
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return schema
    out = {k: v for k, v in schema.items() if k not in _COMPOSED}
    for branch in schema.get("allOf", []) or []:
        branch = flatten(branch, depth + 1)
        if not isinstance(branch, dict):
            continue
        for key, value in branch.items():
            if key == "properties":
                out["properties"] = {**value, **out.get("properties", {})} if "properties" in out else dict(value)
            elif key == "required":
                out["required"] = list(dict.fromkeys([*out.get("required", []), *value]))
            else:
                out.setdefault(key, value)
    for key in ("oneOf", "anyOf"):
        branches = [flatten(b, depth + 1) for b in schema.get(key, []) or []]
        objects = [b for b in branches if _is_objectish(b)]
        if objects:
            best = max(objects, key=lambda b: len(b.get("properties", {})))
            merged = flatten({"allOf": [out, best]}, depth + 1)
            out = merged
        elif branches and key not in out:
            out[key] = schema[key]
    if "properties" in out:
        out.setdefault("type", "object")
    return out


def instance(schema: t.Any, depth: int = 0) -> t.Any:
    """A deterministic, minimal value ``schema`` accepts (see the module docstring): the
    schema's own ``const``/``default``/``example``/``examples`` first, then the first ``enum``
    value, then one built from the type and its bounds, required properties only."""
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return None if isinstance(schema, dict) else {}
    if "const" in schema:
        return schema["const"]
    for key in ("default", "example"):
        if key in schema and schema[key] is not None:
            return schema[key]
    examples = schema.get("examples")
    if isinstance(examples, list) and examples:
        return examples[0]
    if schema.get("enum"):
        return schema["enum"][0]
    if any(k in schema for k in _COMPOSED):
        flat = flatten(schema)
        if "allOf" in schema or _is_objectish(flat):
            return instance({k: v for k, v in flat.items() if k not in _COMPOSED}, depth + 1)
        branches = [b for b in (schema.get("oneOf") or schema.get("anyOf") or []) if not _is_null(b)]
        return instance(branches[0], depth + 1) if branches else None
    kind = _declared_type(schema)
    if kind is None:
        kind = "object" if "properties" in schema else ("array" if "items" in schema else "string")
    if kind == "null":
        return None
    if kind == "boolean":
        return False
    if kind in ("integer", "number"):
        return _number(schema, kind)
    if kind == "string":
        return _string(schema)
    if kind == "array":
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        count = int(schema.get("minItems", 0))
        if count and schema.get("uniqueItems") and items.get("enum"):
            return list(items["enum"][:count])
        return [instance(items, depth + 1) for _ in range(count)]
    out: dict[str, t.Any] = {}
    properties = schema.get("properties", {}) or {}
    for name in schema.get("required", []) or []:
        out[name] = instance(properties.get(name, {}), depth + 1)
    extra = int(schema.get("minProperties", 0)) - len(out)
    for name, sub in properties.items():
        if extra <= 0:
            break
        if name not in out:
            out[name] = instance(sub, depth + 1)
            extra -= 1
    return out


def _declared_type(schema: dict) -> str | None:
    types = schema.get("type")
    if isinstance(types, list):
        if schema.get("nullable") or "null" in types:
            non_null = [k for k in types if k != "null"]
            return non_null[0] if non_null else "null"
        return types[0] if types else None
    return types


def _number(schema: dict, kind: str) -> int | float:
    low = schema.get("minimum")
    exclusive = schema.get("exclusiveMinimum")
    if isinstance(exclusive, (int, float)) and not isinstance(exclusive, bool):
        low = exclusive + 1 if kind == "integer" else exclusive + 0.5
    elif exclusive is True and low is not None:
        low = low + 1
    value = low if low is not None else 0
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if low is None and isinstance(high, (int, float)) and not isinstance(high, bool) and value > high:
        value = high - 1
    step = schema.get("multipleOf")
    if isinstance(step, (int, float)) and step and value % step:
        value = (value // step + 1) * step
    return int(value) if kind == "integer" else value


_FORMATS = {
    "date-time": "1970-01-01T00:00:00Z",
    "date": "1970-01-01",
    "time": "00:00:00Z",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "email": "user@example.com",
    "uri": "https://example.com",
    "url": "https://example.com",
    "uri-reference": "https://example.com",
    "hostname": "example.com",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "byte": "",
    "binary": "",
}


def _string(schema: dict) -> str:
    low = int(schema.get("minLength", 0))
    fmt = schema.get("format")
    if fmt in _FORMATS:
        return _FORMATS[fmt]
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        for candidate in _pattern_candidates(pattern, low):
            if re.search(pattern, candidate) and len(candidate) >= low:
                return candidate
    return "x" * low


def _pattern_candidates(pattern: str, low: int) -> t.Iterator[str]:
    """Strings to try against a ``pattern``: a literal reading of simple patterns
    (``^AC[0-9a-fA-F]{32}$`` -> ``AC000...``) and a few fillers."""
    literal = pattern.strip("^$")
    literal = re.sub(r"\[([^\]]+)\]\{(\d+)(,\d*)?\}", lambda m: _class_char(m[1]) * int(m[2]), literal)
    literal = re.sub(r"\[([^\]]+)\][+*]?", lambda m: _class_char(m[1]), literal)
    literal = re.sub(r"\\d\{(\d+)(,\d*)?\}", lambda m: "0" * int(m[1]), literal)
    literal = literal.replace("\\d", "0").replace("\\w", "a").replace("\\.", ".").replace("\\-", "-")
    yield literal
    for filler in ("a", "0", "A", "a0"):
        yield filler * max(low, 1)


def _class_char(chars: str) -> str:
    if chars.startswith("^"):
        return "x" if "x" not in chars else "y"
    return chars[0] if chars[0] not in "\\" else "0"


def valid(schema: dict | None, value: t.Any) -> bool:
    """Does ``value`` satisfy ``schema`` as the response validator judges it (Draft 2020-12
    with formats, jsonschema-rs, ``http/oas31.py``): an example it rejects would be a 500."""
    if schema is None:
        return True
    try:
        return jsonschema_rs.validator_for(schema, validate_formats=True).is_valid(value)
    except (ValueError, TypeError, RecursionError):
        return False


_PATTERN_PART = re.compile(r"\[([^\]]+)\]\{(\d+)\}|\\d\{(\d+)\}|([A-Za-z0-9_-])")


def fitting_id(schema: dict | None, entropy: str) -> str | None:
    """A new string id the id's schema accepts, from ``entropy`` (hex digits, unique per
    record): a simple ``pattern`` is filled in (Twilio's ``^CH[0-9a-fA-F]{32}$`` -> ``CH`` and
    32 hex digits), else ``entropy`` itself if it fits the length bounds. ``None``: no id of
    this schema can be made here (the caller keeps its default)."""
    flat = flatten(schema or {})
    pattern = flat.get("pattern")
    low, high = int(flat.get("minLength", 0)), flat.get("maxLength")
    number = int(entropy[-6:], 16) if re.fullmatch(r"[0-9a-fA-F]{6,}", entropy) else 0
    fmt = flat.get("format")
    if fmt == "ipv4":  # DigitalOcean's floating IPs are named by their address
        return f"10.{number >> 16 & 255}.{number >> 8 & 255}.{number & 255}"
    if fmt == "ipv6":
        return f"fd00::{number:x}"
    if fmt == "email":
        return f"user{number}@example.com"
    if fmt in ("uri", "url"):
        return f"https://example.com/{entropy}"
    if fmt == "hostname":
        return f"h{entropy}.example.com"
    if not isinstance(pattern, str):
        candidate = entropy if len(entropy) >= low else entropy.ljust(low, "0")
        return candidate if high is None or len(candidate) <= int(high) else candidate[: int(high)]
    body = pattern.strip("^$")
    out, position, pool = [], 0, entropy * 8
    for match in _PATTERN_PART.finditer(body):
        if match.start() != position:
            return None
        position = match.end()
        if match[1] is not None:
            chars = _expand_class(match[1])
            if not chars:
                return None
            count = int(match[2])
            digits, pool = pool[:count], pool[count:]
            out.append("".join(chars[int(d, 16) % len(chars)] for d in digits.ljust(count, "0")))
        elif match[3] is not None:
            count = int(match[3])
            digits, pool = pool[:count], pool[count:]
            out.append("".join(str(int(d, 16) % 10) for d in digits.ljust(count, "0")))
        else:
            out.append(match[4])
    if position != len(body):
        return None
    candidate = "".join(out)
    if re.search(pattern, candidate) and len(candidate) >= low and (high is None or len(candidate) <= int(high)):
        return candidate
    return None


def _expand_class(spec: str) -> str:
    if spec.startswith("^"):
        return ""
    chars, index = [], 0
    while index < len(spec):
        if index + 2 < len(spec) and spec[index + 1] == "-":
            chars.extend(chr(c) for c in range(ord(spec[index]), ord(spec[index + 2]) + 1))
            index += 3
        else:
            chars.append(spec[index])
            index += 1
    return "".join(dict.fromkeys(chars))
