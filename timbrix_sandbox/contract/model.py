"""What the sandbox infers from a contract: its resources, their operations, ids, tenants,
envelopes and error format.

Pure (dicts in, dataclasses out, no web imports), so the server and the conformance suite
read a contract the same way. Inference follows REST conventions; where a contract cannot say
what the sandbox needs, the ``x-sandbox`` extensions below do (all optional):

Top level ``x-sandbox``:

* ``plugin``: the name of a domain plug-in (Timbrix: ``timbrix``, its CFDI rules and field
  mapping); the plug-in is looked up in the engine's registry, never imported by name.
* ``tenant``: ``{header: NAME}`` or ``{path: NAME}``: what scopes records to an organization.
  Default: the path parameters of the collection path (Timbrix's ``organizationId``); with
  none, the caller's own organization (a key bound to one account).
* ``envelope``: a template wrapping every successful body, e.g. BeeL's
  ``{success: true, data: "{{data}}", meta: {timestamp: "{{now}}", request_id: "{{request_id}}"}}``.
* ``errors``: ``{body: TEMPLATE, codes: {STATUS|kind: CODE}, messages: {STATUS: TEXT}}``: the
  error body (placeholders ``{{status}} {{code}} {{message}} {{details}} {{now}}
  {{request_id}}``; a key whose placeholder has no value is left out).

Per operation: ``x-sandbox-resource`` (the collection name) and ``x-sandbox-action``
(``list|create|read|update|delete``) override inference. Per schema property:
``x-sandbox-stored-as: NAME`` stores a request field under another name (the bookkeeping API
takes ``billingAddressZipcode`` and answers ``billingAddressPostcode``), or under a dotted path
into a nested object (Timbrix's flat ``addressZip`` is the record's ``address.zip``). Per resource schema:
``x-sandbox-id: FIELD`` names the id field (default ``id``).
"""

from __future__ import annotations

import copy
import dataclasses
import re
import typing as t

# Both lived here before loading grew; imported from here by the HTTP layer and the suite.
from .errors import ContractError
from .refs import resolve_refs

HTTP_METHODS = ("get", "put", "post", "delete", "patch")
ACTIONS = ("list", "create", "read", "update", "delete")
PLACEHOLDER = re.compile(r"^\{\{(\w+)\}\}$")
_PARAM = re.compile(r"^\{([^}]+)\}$")

DEFAULT_ERROR_BODY = {"statusCode": "{{status}}", "message": "{{message}}", "error": "{{code}}"}
DEFAULT_ERROR_CODES: dict[str, str] = {
    "400": "BAD_REQUEST",
    "401": "UNAUTHORIZED",
    "403": "FORBIDDEN",
    "404": "NOT_FOUND",
    "405": "METHOD_NOT_ALLOWED",
    "409": "CONFLICT",
    "413": "PAYLOAD_TOO_LARGE",
    "415": "UNSUPPORTED_MEDIA_TYPE",
    "421": "MISDIRECTED_REQUEST",
    "431": "REQUEST_HEADER_FIELDS_TOO_LARGE",
    "500": "INTERNAL_SERVER_ERROR",
}
DEFAULT_MESSAGES: dict[int, str] = {
    400: "Bad request",
    401: "Authentication required",
    403: "User is not a member of this organization",
    404: "Not found",
    405: "Method not allowed",
    413: "Request body is larger than 1 MiB",
    415: "Unsupported media type: send application/json",
    421: "This sandbox does not answer for that Host",
    431: "Request headers are too large",
    500: "Internal server error",
}
MAX_MESSAGE_LENGTH = 500


def render(template: t.Any, values: t.Mapping[str, t.Any]) -> t.Any:
    """Fill ``"{{name}}"`` placeholders (whole strings only, so a value keeps its JSON type).
    A key whose placeholder has no value (``None``) is dropped."""
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            if isinstance(value, str) and (match := PLACEHOLDER.match(value)) and values.get(match[1]) is None:
                continue
            out[key] = render(value, values)
        return out
    if isinstance(template, list):
        return [render(item, values) for item in template]
    if isinstance(template, str) and (match := PLACEHOLDER.match(template)):
        return values.get(match[1])
    return template


def placeholder_path(template: t.Any, name: str, path: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """Where ``"{{name}}"`` sits in a template, e.g. ``("data",)``."""
    if isinstance(template, dict):
        for key, value in template.items():
            found = placeholder_path(value, name, (*path, key))
            if found is not None:
                return found
    elif isinstance(template, str) and (match := PLACEHOLDER.match(template)) and match[1] == name:
        return path
    return None


@dataclasses.dataclass(frozen=True)
class ErrorFormat:
    """How a contract's error bodies look (default: the NestJS shape Timbrix uses)."""

    body: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_ERROR_BODY))
    codes: dict[str, str] = dataclasses.field(default_factory=lambda: dict(DEFAULT_ERROR_CODES))
    messages: dict[str, str | None] = dataclasses.field(default_factory=dict)
    """Fixed messages by status or error kind (``"400"``, ``"invalid_json"``); a kind mapped
    to ``null`` keeps the specific message."""

    def code(self, status: int, kind: str | None = None) -> str:
        if kind and kind in self.codes:
            return self.codes[kind]
        return self.codes.get(str(status)) or DEFAULT_ERROR_CODES.get(str(status), "ERROR")

    def render(
        self,
        status: int,
        message: str | None = None,
        *,
        details: t.Any = None,
        kind: str | None = None,
        now: str | None = None,
        request_id: str | None = None,
    ) -> dict[str, t.Any]:
        """The error body. A fixed message for the status (``messages``) wins; the specific
        text then travels in ``details`` (BeeL's ``{"message": "Validation error",
        "details": {"field": "reason"}}``) if the template has a place for it."""
        if status < 400 or status > 599:
            status = 500
        text = message or DEFAULT_MESSAGES.get(status, "Error")
        fixed = self.messages[kind] if kind in self.messages else self.messages.get(str(status))
        if fixed is not None and fixed != text and details is None and message:
            details = {"reason": _bounded(message)}
        return render(
            self.body,
            {
                "status": status,
                "code": self.code(status, kind),
                "message": _bounded(fixed or text),
                "details": details,
                "now": now,
                "request_id": request_id,
            },
        )


def _bounded(text: str) -> str:
    text = " ".join(text.split())
    return text[:MAX_MESSAGE_LENGTH] + "..." if len(text) > MAX_MESSAGE_LENGTH else text


@dataclasses.dataclass(frozen=True)
class Resource:
    name: str
    collection_path: str
    item_path: str | None
    id_param: str | None
    id_field: str
    id_kind: str  # "uuid" | "integer" | "objectid" | "string"
    schema: dict  # the record as responses show it (resolved, envelope removed)
    created_field: str | None
    updated_field: str | None


@dataclasses.dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    path: str
    action: str
    resource: str
    status: int  # the declared success status
    body_schema: dict | None  # resolved request body schema (without the envelope)
    response_schema: dict | None  # resolved success body schema (with the envelope)
    required_scopes: tuple[str, ...]
    secured: bool  # a token is required


@dataclasses.dataclass(frozen=True)
class Profile:
    title: str
    plugin: str | None
    tenant: dict[str, str]  # {} | {"header": name} | {"path": name}
    envelope: dict | None
    errors: ErrorFormat
    resources: dict[str, Resource]
    operations: dict[str, Operation]  # by operationId

    @property
    def data_path(self) -> tuple[str, ...]:
        """Where the record sits inside a successful body (``()`` without an envelope)."""
        if self.envelope is None:
            return ()
        return placeholder_path(self.envelope, "data") or ()

    def wrap(self, data: t.Any, now: str, request_id: str) -> t.Any:
        if self.envelope is None:
            return data
        return render(self.envelope, {"data": data, "now": now, "request_id": request_id})

    def unwrap(self, body: t.Any) -> t.Any:
        for key in self.data_path:
            if not isinstance(body, dict):
                return None
            body = body.get(key)
        return body

    def resource_of(self, operation_id: str) -> Resource | None:
        operation = self.operations.get(operation_id)
        return self.resources.get(operation.resource) if operation else None


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


def _param_name(segment: str) -> str | None:
    match = _PARAM.match(segment)
    return match[1] if match else None


def _infer_action(method: str, path: str) -> str | None:
    last = _segments(path)[-1] if _segments(path) else ""
    item = _param_name(last) is not None
    return {
        ("get", False): "list",
        ("post", False): "create",
        ("get", True): "read",
        ("put", True): "update",
        ("patch", True): "update",
        ("delete", True): "delete",
    }.get((method, item))


def _collection_of(path: str, action: str) -> str:
    segments = _segments(path)
    return "/" + "/".join(segments[:-1] if action in ("read", "update", "delete") else segments)


def _success(operation: dict) -> tuple[int, dict | None]:
    for code in sorted(str(c) for c in operation.get("responses", {})):
        if code.startswith("2"):
            content = operation["responses"][code].get("content", {})
            media = next((m for m in content if "json" in m), None)
            return int(code), (content[media].get("schema") if media else None)
    raise ContractError(f"operation {operation.get('operationId')} declares no 2xx response")


def _json_schema(body: dict | None) -> dict | None:
    if not body:
        return None
    content = body.get("content", {})
    media = next((m for m in content if "json" in m), None)
    return content[media].get("schema") if media else None


def _sub_schema(schema: dict | None, path: tuple[str, ...]) -> dict | None:
    for key in path:
        if not isinstance(schema, dict):
            return None
        schema = schema.get("properties", {}).get(key)
    return schema


def _record_schema(schema: dict | None) -> dict | None:
    """The record shape from a list or item body (arrays give their items; a nullable
    ``anyOf``/``oneOf`` gives its object branch)."""
    if not isinstance(schema, dict):
        return None
    if schema.get("type") == "array" or "items" in schema:
        return _record_schema(schema.get("items"))
    for key in ("anyOf", "oneOf", "allOf"):
        for branch in schema.get(key, []):
            if isinstance(branch, dict) and (branch.get("type") == "object" or "properties" in branch):
                return branch
    return schema


def id_kind(schema: dict | None) -> str:
    """Which id generator the schema asks for."""
    schema = schema or {}
    types = schema.get("type")
    types = types if isinstance(types, list) else [types]
    if "integer" in types or "number" in types:
        return "integer"
    if schema.get("format") == "uuid":
        return "uuid"
    if schema.get("pattern") in ("^[0-9a-f]{24}$", "^[a-f0-9]{24}$"):
        return "objectid"
    return "string"


def _timestamp_field(schema: dict, names: tuple[str, ...]) -> str | None:
    properties = schema.get("properties", {})
    return next((n for n in names if n in properties), None)


def load_profile(spec: dict) -> Profile:
    """Infer the profile of a contract (``spec`` is the parsed document, refs unresolved)."""
    extension = spec.get("x-sandbox", {}) or {}
    envelope = extension.get("envelope")
    data_path = (placeholder_path(envelope, "data") or ()) if envelope else ()
    errors = extension.get("errors", {}) or {}
    error_format = ErrorFormat(
        body=errors.get("body", dict(DEFAULT_ERROR_BODY)),
        codes={**DEFAULT_ERROR_CODES, **{str(k): str(v) for k, v in (errors.get("codes") or {}).items()}},
        messages={str(k): (None if v is None else str(v)) for k, v in (errors.get("messages") or {}).items()},
    )
    global_security = spec.get("security", [])
    operations: dict[str, Operation] = {}
    shapes: dict[str, dict[str, t.Any]] = {}
    for path, item in spec.get("paths", {}).items():
        for method in HTTP_METHODS:
            raw = item.get(method)
            if not isinstance(raw, dict):
                continue
            operation = resolve_refs(raw, spec)
            action = operation.get("x-sandbox-action") or _infer_action(method, path)
            if action is None:
                continue
            if action not in ACTIONS:
                raise ContractError(f"{method.upper()} {path}: x-sandbox-action must be one of {', '.join(ACTIONS)}")
            collection = _collection_of(path, action)
            name = operation.get("x-sandbox-resource") or _segments(collection)[-1]
            status, response = _success(operation)
            params = {
                p["name"]: p for p in resolve_refs(item.get("parameters", []), spec) + operation.get("parameters", [])
            }
            shape = shapes.setdefault(name, {"collection": collection, "item": None, "id_param": None, "schema": None})
            if action in ("read", "update", "delete"):
                shape["item"] = path
                shape["id_param"] = _param_name(_segments(path)[-1])
                shape["id_schema"] = params.get(shape["id_param"], {}).get("schema")
            record = _record_schema(_sub_schema(response, data_path) if data_path else response)
            if record is not None and (shape["schema"] is None or action in ("read", "create")):
                shape["schema"] = record
            body = _json_schema(operation.get("requestBody"))
            security = operation.get("security", global_security)
            scopes = tuple(sorted({s for requirement in security for values in requirement.values() for s in values}))
            operation_id = operation.get("operationId") or f"{method}_{path}"
            operations[operation_id] = Operation(
                operation_id, method.upper(), path, action, name, status, body, response, scopes, bool(security)
            )
    resources = {}
    for name, shape in shapes.items():
        schema = shape["schema"] or {"type": "object"}
        id_field = schema.get("x-sandbox-id", "id")
        id_schema = schema.get("properties", {}).get(id_field) or shape.get("id_schema")
        resources[name] = Resource(
            name=name,
            collection_path=shape["collection"],
            item_path=shape["item"],
            id_param=shape["id_param"],
            id_field=id_field,
            id_kind=id_kind(id_schema),
            schema=schema,
            created_field=_timestamp_field(schema, ("createdAt", "created_at")),
            updated_field=_timestamp_field(schema, ("updatedAt", "updated_at")),
        )
    tenant = dict(extension.get("tenant") or {})
    return Profile(
        title=str(spec.get("info", {}).get("title", "API")),
        plugin=extension.get("plugin"),
        tenant=tenant,
        envelope=copy.deepcopy(envelope),
        errors=error_format,
        resources=resources,
        operations=operations,
    )


def scope_params(resource: Resource) -> tuple[str, ...]:
    """Path parameters of the collection path: they scope records (``organizationId``)."""
    return tuple(p for p in (_param_name(s) for s in _segments(resource.collection_path)) if p)
