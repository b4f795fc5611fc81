"""Examples a contract carries, put to two uses.

**Seed records.** The records a contract shows in its own examples: what a sandbox started
without a fixtures file seeds its default tenant with, so a first ``GET`` answers what the
documentation shows. Only examples that are valid records are kept: found on a response that
carries records (a read, a create, a list's items), unwrapped from the contract's envelope,
valid against the resource's record schema, with an id. An invalid one is illustration, not
data; it is skipped, never fatal. Resources scoped by parent path parameters
(``/repos/{owner}/issues``) are not seeded: an example does not say which parent it belongs to.

**Example bodies**, for answers nobody stored (``Prefer: code=...``). ``static``: the
contract's own examples - the response's ``example`` or named ``examples`` - else the
engine's own minimal instance of the schema (``shapes.instance``, its ``example``/``default``/
``const``/``enum`` first).
``dynamic``: values drawn at random where the schema leaves room (a pattern keeps the schema's
own example: generating regex matches is a fuzzer's job, not a mock's). Either way the caller
validates the result against the schema before sending it. Works on a contract whose
``$ref``s are already resolved.

Plain Python, no web imports.
"""

from __future__ import annotations

import json
import random
import string
import typing as t
import uuid

from jsonschema import validators

from .model import Profile, Resource, resolve_refs, scope_params
from .shapes import instance

RECORD_ACTIONS = ("read", "create", "list")
MAX_DEPTH = 8



def resource_examples(spec: t.Mapping[str, t.Any], profile: Profile) -> dict[str, list[dict[str, t.Any]]]:
    """Collection -> the distinct valid example records (in the order the contract shows them)."""
    out: dict[str, list[dict[str, t.Any]]] = {}
    seen: dict[str, set[str]] = {}
    for operation in profile.operations.values():
        resource = profile.resources.get(operation.resource)
        if operation.action not in RECORD_ACTIONS or resource is None or scope_params(resource):
            continue
        raw = ((spec.get("paths") or {}).get(operation.path) or {}).get(operation.method.lower())
        if not isinstance(raw, dict):
            continue
        response = ((raw.get("responses") or {}).get(str(operation.status))
                    or (raw.get("responses") or {}).get(operation.status))
        for body in _bodies(resolve_refs(response, dict(spec)) if isinstance(response, dict) else None):
            body = profile.unwrap(body)
            for record in (body if operation.action == "list" and isinstance(body, list) else [body]):
                if _is_record(record, resource):
                    key = json.dumps(record.get(resource.id_field), sort_keys=True)
                    if key not in seen.setdefault(resource.name, set()):
                        seen[resource.name].add(key)
                        out.setdefault(resource.name, []).append(record)
    return out


def _bodies(response: dict | None) -> t.Iterator[t.Any]:
    """Every example a JSON response declares: the media type's ``example`` and ``examples``,
    the schema's ``example`` and ``examples``."""
    if not response:
        return
    for media, content in (response.get("content") or {}).items():
        if "json" not in media or not isinstance(content, dict):
            continue
        if "example" in content:
            yield content["example"]
        for example in (content.get("examples") or {}).values():
            if isinstance(example, dict) and "value" in example:
                yield example["value"]
        schema = content.get("schema")
        if isinstance(schema, dict):
            if "example" in schema:
                yield schema["example"]
            if isinstance(schema.get("examples"), list):
                yield from schema["examples"]


def _is_record(value: t.Any, resource: Resource) -> bool:
    if not isinstance(value, dict) or value.get(resource.id_field) in (None, ""):
        return False
    validator = validators.validator_for(resource.schema, default=validators.Draft202012Validator)
    try:
        return validator(resource.schema).is_valid(value)
    except Exception:  # noqa: BLE001 - a schema the validator cannot judge: skip its examples, never fail a start
        return False


# -- example bodies ----------------------------------------------------------------------
class NoExample(LookupError):
    """The response declares no example of that name."""


def response_example(response: t.Mapping[str, t.Any], name: str | None, *, dynamic: bool = False) -> t.Any:
    """The JSON body for one response object: the named example, the first example, or one
    made from the schema (``None`` for a response without JSON content)."""
    media = response.get("content", {}).get("application/json")
    if media is None:
        if name is not None:
            raise NoExample(name)
        return None
    examples = media.get("examples") or {}
    if name is not None:
        if name not in examples:
            raise NoExample(name)
        return examples[name].get("value")
    schema = media.get("schema", {})
    if dynamic:
        return random_instance(schema, random.Random())
    if "example" in media:
        return media["example"]
    if examples:
        return next(iter(examples.values())).get("value")
    return instance(schema)  # the same minimal instance the engine answers non-CRUD operations with


def random_instance(schema: t.Any, rng: random.Random, depth: int = 0) -> t.Any:
    """A value for ``schema``, random where the schema leaves room (``Prefer: dynamic=true``;
    the deterministic one is :func:`shapes.instance`)."""
    if not isinstance(schema, dict) or depth > MAX_DEPTH:
        return None
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return rng.choice(schema["enum"])
    if "pattern" in schema:
        for key in ("example", "default"):
            if key in schema:
                return schema[key]
        if schema.get("examples"):
            return schema["examples"][0]
    if "allOf" in schema:
        merged: dict[str, t.Any] = {}
        for part in schema["allOf"]:
            merged = _merge(merged, part)
        return random_instance(_merge(merged, {k: v for k, v in schema.items() if k != "allOf"}), rng, depth + 1)
    for key in ("oneOf", "anyOf"):
        if key in schema:
            options = [o for o in schema[key] if not (isinstance(o, dict) and o.get("type") == "null")]
            options = options or schema[key]
            return random_instance(options[0], rng, depth + 1)
    kind = schema.get("type", "object" if "properties" in schema else None)
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"] or kind
        kind = kinds[0]
    if kind == "object":
        properties = schema.get("properties", {})
        wanted = set(schema.get("required", []))
        if depth == 0:
            wanted |= {name for name, sub in properties.items() if isinstance(sub, dict) and _has_example(sub)}
        return {name: random_instance(properties[name], rng, depth + 1) for name in properties if name in wanted}
    if kind == "array":
        count = max(schema.get("minItems", 1), rng.randint(1, 3))
        return [random_instance(schema.get("items", {}), rng, depth + 1) for _ in range(count)]
    if kind == "integer" or kind == "number":
        low = schema.get("minimum", 0)
        high = schema.get("maximum", low + 100)
        value = rng.randint(int(low), int(high))
        return value if kind == "integer" else float(value)
    if kind == "boolean":
        return rng.choice([True, False])
    if kind == "null":
        return None
    if kind == "string":
        return _string(schema, rng)
    return None


def _string(schema: dict, rng: random.Random) -> str:
    fmt = schema.get("format")
    if fmt == "date-time":
        return f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00Z"
    if fmt == "date":
        return "2025-01-26"
    if fmt == "email":
        return f"user{rng.randint(1, 9999)}@example.com"
    if fmt == "uuid":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    if fmt in ("uri", "url"):
        return "https://example.com/"
    low = schema.get("minLength", 1)
    high = min(schema.get("maxLength", max(low, 12)), max(low, 12))
    length = rng.randint(low, high)
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(length))


def _has_example(schema: dict) -> bool:
    return any(key in schema for key in ("example", "examples", "const", "default")) or any(
        isinstance(part, dict) and _has_example(part) for part in schema.get("allOf", [])
    )


def _merge(base: dict, extra: t.Any) -> dict:
    if not isinstance(extra, dict):
        return base
    out = dict(base)
    for key, value in extra.items():
        if key == "properties":
            out["properties"] = {**out.get("properties", {}), **value}
        elif key == "required":
            out["required"] = [*out.get("required", []), *value]
        else:
            out[key] = value
    return out
