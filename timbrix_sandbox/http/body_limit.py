"""Reject request bodies over a size limit with 413, before anything buffers them.

Connexion's validators read the whole body into memory, so without this a client could make
the sandbox hold arbitrarily large payloads.
"""

from __future__ import annotations

import typing as t

from connexion.exceptions import ProblemException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from timbrix_sandbox.contract.model import DEFAULT_MESSAGES, ErrorFormat
from timbrix_sandbox.http.errors import send_error

MAX_BODY_BYTES = 1024 * 1024
# Only these read a body (and declare 413 in the contract); other methods' bodies are ignored.
BODY_METHODS = ("POST", "PUT", "PATCH")


class PayloadTooLarge(ProblemException):
    def __init__(self) -> None:
        super().__init__(status=413, title="Payload Too Large", detail=DEFAULT_MESSAGES[413])


class BodyLimitMiddleware:
    """``limited(method, path)`` says which requests carry a body the contract limits (those
    whose operation declares 413); any other request's body is never read, so it is left to
    routing (405/404) rather than answered with an undeclared 413. ``errors`` is the served
    contract's error format: this middleware sits outside everything that knows the contract
    (BeeL's 413 once came out in Timbrix's shape)."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int = MAX_BODY_BYTES,
        limited: t.Callable[[str, str], bool] = lambda method, path: method in BODY_METHODS,
        *,
        errors: ErrorFormat,
    ) -> None:
        self.app = app
        self.errors = errors
        self.max_bytes = max_bytes
        self.limited = limited

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.limited(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
        if declared is not None and declared > self.max_bytes:
            await send_error(send, self.errors, 413, headers=[(b"connection", b"close")])
            return
        if declared is None:
            # A chunked body has no Content-Length, and Connexion would treat it as absent:
            # buffer it (bounded), then replay it with the length set.
            chunks: list[bytes] = []
            size = 0
            more = True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    break
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                if size > self.max_bytes:
                    await send_error(send, self.errors, 413, headers=[(b"connection", b"close")])
                    return
                more = message.get("more_body", False)
            body = b"".join(chunks)
            scope = dict(scope)
            scope["headers"] = [*scope.get("headers", []), (b"content-length", str(len(body)).encode())]
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise PayloadTooLarge()
            return message

        await self.app(scope, limited_receive, send)
