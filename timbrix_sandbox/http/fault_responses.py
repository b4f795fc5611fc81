"""Faults that corrupt responses on their way out, as ASGI middleware (the auth-ignoring fault
lives in the access policy, which asks for it).

They act *after* the sandbox's own response validation, so the broken body reaches the client
exactly as a buggy production build would send it (see ``engine/faults.py`` for the registry).
"""

from __future__ import annotations

import json
import typing as t

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from timbrix_sandbox.engine.faults import Behaviours, ResponseParts


def rewrite_response(
    status: int, headers: list[tuple[bytes, bytes]], body: bytes, method: str, behaviours: Behaviours
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    content_type = dict(headers).get(b"content-type", b"").decode("latin-1")
    payload: t.Any = None
    if content_type.startswith("application/json") and body:
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
    parts = behaviours.rewrite(ResponseParts(method, status, content_type, payload))
    if parts.payload is not None:
        body = json.dumps(parts.payload).encode()
    new_headers = [(k, v) for k, v in headers if k not in (b"content-length", b"content-type")]
    if body or parts.content_type:
        new_headers.append((b"content-type", parts.content_type.encode("latin-1")))
    new_headers.append((b"content-length", str(len(body)).encode()))
    return parts.status, new_headers, body


def buffered_rewrite(send: Send, method: str, faults: t.Callable[[], Behaviours]) -> Send:
    """A ``send`` that holds the response until its last body chunk, then sends it rewritten by
    the response faults ``faults()`` names (asked once, when the response is complete). The one
    place both startup faults and run-time rules corrupt a finished response."""
    start: Message = {}
    chunks: list[bytes] = []

    async def rewriting_send(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        status, headers, body = rewrite_response(
            start["status"], list(start.get("headers", [])), b"".join(chunks), method, faults()
        )
        await send({**start, "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return rewriting_send


class FaultyResponseMiddleware:
    """Outermost: rewrites finished responses according to the active response faults."""

    def __init__(self, app: ASGIApp, behaviours: Behaviours, api_prefix: str) -> None:
        self.app = app
        self.behaviours = behaviours
        self.api_prefix = api_prefix + "/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(self.api_prefix) or path.startswith("/__sandbox/"):
            await self.app(scope, receive, send)
            return
        behaviours = self.behaviours
        await self.app(scope, receive, buffered_rewrite(send, scope["method"], lambda: behaviours))


class FaultyRequestMiddleware:
    """Outer, before routing and validation: requests as the request faults see them (a path
    normalised too leniently, a JSON body "fixed" before validation, HEAD refused)."""

    def __init__(self, app: ASGIApp, behaviours: Behaviours, api_prefix: str) -> None:
        self.app = app
        self.behaviours = behaviours
        self.api_prefix = api_prefix + "/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(self.api_prefix) or path.startswith("/__sandbox/"):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "HEAD" and self.behaviours.refuses_head():
            headers = [(b"allow", b"GET"), (b"content-type", b"application/json"), (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 405, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        path = self.behaviours.request_path(scope["path"])
        if path != scope["path"]:
            scope = {**scope, "path": path, "raw_path": path.encode()}
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        body = b"".join(chunks)
        try:
            rewritten = json.dumps(self.behaviours.request_body(json.loads(body))).encode() if body else body
        except ValueError:
            rewritten = body
        headers = [(k, v) for k, v in scope.get("headers", []) if k != b"content-length"]
        scope = {**scope, "headers": [*headers, (b"content-length", str(len(rewritten)).encode())]}
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": rewritten, "more_body": False}

        await self.app(scope, replay, send)
