"""Injectable faults: realistic bugs a Timbrix implementation could ship.

``timbrix-sandbox serve --fault NAME`` turns one on (repeatable); ``timbrix-sandbox faults``
lists them. They exist to measure the conformance suite: every fault must make
``timbrix-sandbox conformance`` exit 1 (the kill score, ``tests/test_kill_score.py``).

Faults that corrupt responses act in :class:`FaultyResponseMiddleware`, *after* the
sandbox's own response validation, so the broken body reaches the client exactly as a buggy
production build would send it. The others act where the bug would live (auth, handlers, the
fiscal check).
"""

from __future__ import annotations

import dataclasses
import json
import typing as t

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .profile import scope_params

if t.TYPE_CHECKING:
    from .profile import Profile


@dataclasses.dataclass(frozen=True)
class Fault:
    name: str
    category: str
    description: str
    timbrix_only: bool = False
    """CFDI and Timbrix-field faults; the rest also work on any contract's generic operations."""


FAULTS: dict[str, Fault] = {
    f.name: f
    for f in [
        Fault("response-extra-field", "schema drift", "record bodies carry an undocumented 'internalNotes' field"),
        Fault(
            "response-missing-field",
            "schema drift",
            "record bodies lack a required field ('taxSystem' for Timbrix, else the first required non-id field)",
        ),
        Fault(
            "phone-as-object",
            "schema drift",
            "'phone' is sent as {\"number\": ...}, as the vendor spec once said",
            timbrix_only=True,
        ),
        Fault("create-returns-200", "status code", "POST answers 200 instead of 201"),
        Fault("delete-returns-200", "status code", "DELETE answers 200 with a JSON body instead of 204"),
        Fault("validation-422", "status code", "request validation errors answer 422 instead of 400"),
        Fault("text-content-type", "content type", "JSON responses are labelled text/plain"),
        Fault(
            "problem-json-errors", "error format", "errors are application/problem+json, not {statusCode,message,error}"
        ),
        Fault("auth-ignored", "auth", "a missing or unknown token is treated as a member of the organization"),
        Fault("membership-ignored", "auth", "a valid token reaches organizations it is not a member of"),
        Fault("cross-tenant-read", "tenant isolation", "GET by id finds customers of any organization"),
        Fault("list-all-tenants", "tenant isolation", "the list returns every organization's customers"),
        Fault(
            "create-upserts",
            "persistence",
            "POST with a taxId that exists answers 201 with the existing customer",
            timbrix_only=True,
        ),
        Fault("update-not-persisted", "persistence", "PUT answers the updated record but does not store it"),
        Fault("create-not-persisted", "persistence", "POST answers 201 but does not store the customer"),
        Fault("delete-not-persisted", "persistence", "DELETE answers 204 but the customer stays"),
        Fault("put-replaces", "update semantics", "PUT replaces the record: unsent optional fields are cleared"),
        Fault("created-at-moves", "timestamps", "createdAt is set to the update time on every PUT"),
        Fault("updated-at-frozen", "timestamps", "updatedAt does not move on update"),
        Fault(
            "cfdi-regimen-persona",
            "CFDI rule",
            "a régimen that does not apply to the persona type is accepted",
            timbrix_only=True,
        ),
        Fault(
            "cfdi-uso-regimen", "CFDI rule", "the uso/régimen compatibility matrix is not enforced", timbrix_only=True
        ),
        Fault("cfdi-zip-catalog", "CFDI rule", "ZIPs outside c_CodigoPostal are accepted", timbrix_only=True),
        Fault(
            "cfdi-generic-rfc",
            "CFDI rule",
            "generic RFCs (XAXX/XEXX) accept a régimen other than 616",
            timbrix_only=True,
        ),
        Fault(
            "cfdi-update-unmerged",
            "CFDI rule",
            "PUT re-validates only when taxId, taxSystem and uso are all sent",
            timbrix_only=True,
        ),
        Fault(
            "server-error-long-name",
            "server error",
            "a legalName over 100 characters crashes with 500",
            timbrix_only=True,
        ),
    ]
}

# Which CFDI rule each CFDI fault stops enforcing.
SKIPPED_RULES = {
    "cfdi-regimen-persona": "regimen_persona",
    "cfdi-uso-regimen": "uso_regimen",
    "cfdi-zip-catalog": "zip_not_in_catalog",
    "cfdi-generic-rfc": "generic_rfc_regimen",
}
RESPONSE_FAULTS = {
    "response-extra-field",
    "response-missing-field",
    "phone-as-object",
    "create-returns-200",
    "delete-returns-200",
    "validation-422",
    "text-content-type",
    "problem-json-errors",
}


class UnknownFault(ValueError):
    pass


def available(profile: Profile | None) -> dict[str, Fault]:
    """The faults a contract can take: all of them for Timbrix (hand-written handlers), the
    generic ones for any other contract."""
    if profile is None or profile.handlers:
        return FAULTS
    tenant_named = bool(profile.tenant) or any(scope_params(r) for r in profile.resources.values())
    return {
        name: fault
        for name, fault in FAULTS.items()
        # Without a tenant named in the request (BeeL: the key is the account) there is no
        # membership to ignore.
        if not fault.timbrix_only and (tenant_named or name != "membership-ignored")
    }


def check_names(names: t.Iterable[str], profile: Profile | None = None) -> frozenset[str]:
    names = frozenset(names)
    unknown = sorted(names - available(profile).keys())
    if unknown:
        raise UnknownFault(f"unknown fault(s) for this contract: {', '.join(unknown)} (see `timbrix-sandbox faults`)")
    return names


@dataclasses.dataclass(frozen=True)
class RecordShape:
    """How the response faults recognise a record in a body, and which field they drop."""

    id_field: str = "id"
    marker_fields: frozenset[str] = frozenset({"taxId", "address"})
    missing_field: str = "taxSystem"

    @classmethod
    def of(cls, profile: Profile | None) -> RecordShape:
        if profile is None or profile.handlers or not profile.resources:
            return cls()
        resource = next(iter(profile.resources.values()))
        required = [f for f in resource.schema.get("required", []) if f != resource.id_field]
        return cls(resource.id_field, frozenset(required[:1]), required[0] if required else resource.id_field)

    def matches(self, value: t.Any) -> bool:
        return isinstance(value, dict) and self.id_field in value and self.marker_fields <= value.keys()


def _corrupt_record(record: dict, faults: frozenset[str], shape: RecordShape) -> dict:
    record = dict(record)
    if "response-extra-field" in faults:
        record["internalNotes"] = "migrated from legacy CRM"
    if "response-missing-field" in faults:
        record.pop(shape.missing_field, None)
    if "phone-as-object" in faults and record.get("phone") is not None:
        record["phone"] = {"number": record["phone"]}
    return record


def _corrupt(payload: t.Any, faults: frozenset[str], shape: RecordShape, depth: int = 0) -> t.Any:
    """Records anywhere in the body (a list, or inside an envelope such as BeeL's ``data``)."""
    if depth > 4:
        return payload
    if shape.matches(payload):
        return _corrupt_record(payload, faults, shape)
    if isinstance(payload, list):
        return [_corrupt(item, faults, shape, depth + 1) for item in payload]
    if isinstance(payload, dict):
        return {key: _corrupt(value, faults, shape, depth + 1) for key, value in payload.items()}
    return payload


def _rewrite(
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    method: str,
    faults: frozenset[str],
    shape: RecordShape,
):
    content_type = dict(headers).get(b"content-type", b"")
    payload: t.Any = None
    if content_type.startswith(b"application/json") and body:
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
    if payload is not None and status < 400:
        payload = _corrupt(payload, faults, shape)
    if method == "POST" and status == 201 and "create-returns-200" in faults:
        status = 200
    if method == "DELETE" and status == 204 and "delete-returns-200" in faults:
        status, payload = 200, {"deleted": True}
        content_type = b"application/json"
    if status == 400 and "validation-422" in faults:
        status = 422
        if isinstance(payload, dict):
            payload = {**payload, "statusCode": 422, "error": "UNPROCESSABLE_ENTITY"}
    if status >= 400 and "problem-json-errors" in faults and isinstance(payload, dict):
        payload = {
            "type": "about:blank",
            "title": payload.get("error"),
            "status": status,
            "detail": payload.get("message"),
        }
        content_type = b"application/problem+json"
    if payload is not None:
        body = json.dumps(payload).encode()
    if "text-content-type" in faults and content_type.startswith(b"application/json"):
        content_type = b"text/plain; charset=utf-8"
    new_headers = [(k, v) for k, v in headers if k not in (b"content-length", b"content-type")]
    if body or content_type:
        new_headers.append((b"content-type", content_type))
    new_headers.append((b"content-length", str(len(body)).encode()))
    return status, new_headers, body


class FaultyResponseMiddleware:
    """Outermost: rewrites finished responses according to the active response faults."""

    def __init__(self, app: ASGIApp, faults: frozenset[str], shape: RecordShape | None = None) -> None:
        self.app = app
        self.faults = faults & RESPONSE_FAULTS
        self.shape = shape or RecordShape()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.faults or not scope.get("path", "").startswith("/api/"):
            await self.app(scope, receive, send)
            return
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            status, headers, body = _rewrite(
                start["status"],
                list(start.get("headers", [])),
                b"".join(chunks),
                scope["method"],
                self.faults,
                self.shape,
            )
            await send({**start, "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, capture)


class AuthIgnoredMiddleware:
    """Before security: a missing or unknown token becomes a member's token."""

    def __init__(self, app: ASGIApp, member_token: str, known_tokens: frozenset[str]) -> None:
        self.app = app
        self.member_token = member_token.encode()
        self.known = known_tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = [(k, v) for k, v in scope.get("headers", []) if k != b"authorization"]
            given = dict(scope.get("headers", [])).get(b"authorization", b"").decode("latin-1")
            token = given[7:] if given.lower().startswith("bearer ") else ""
            if token not in self.known:
                scope = {**scope, "headers": [*headers, (b"authorization", b"Bearer " + self.member_token)]}
        await self.app(scope, receive, send)
