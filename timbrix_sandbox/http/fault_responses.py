"""Faults that corrupt responses on their way out, and the auth-ignoring one, as ASGI middleware.

They act *after* the sandbox's own response validation, so the broken body reaches the client
exactly as a buggy production build would send it (see ``engine/faults.py`` for the registry).
"""

from __future__ import annotations

import dataclasses
import json
import typing as t

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..engine.faults import RESPONSE_FAULTS

if t.TYPE_CHECKING:
    from ..contract.model import Profile


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
