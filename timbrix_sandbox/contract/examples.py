"""The records a contract shows in its own examples: what a sandbox started without a fixtures
file seeds its default tenant with, so a first ``GET`` answers what the documentation shows.

Only examples that are valid records are kept: found on a response that carries records (a
read, a create, a list's items), unwrapped from the contract's envelope, valid against the
resource's record schema, with an id. An invalid one is illustration, not data; it is skipped,
never fatal. Resources scoped by parent path parameters (``/repos/{owner}/issues``) are not
seeded: an example does not say which parent it belongs to.
"""

from __future__ import annotations

import json
import typing as t

from jsonschema import validators

from .model import Profile, Resource, resolve_refs, scope_params

RECORD_ACTIONS = ("read", "create", "list")


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
