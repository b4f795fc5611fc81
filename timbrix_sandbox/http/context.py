"""How handlers find the sandbox serving the current request.

Connexion resolves handlers to plain module functions, so per-app state travels with the
request: in the ASGI scope (``scope["state"]``, Starlette's convention) for middleware, and in
a context variable for handlers (set per request, copied into worker threads by anyio).
Several sandboxes can then live in one process - the test suite relies on that.
"""

from __future__ import annotations

import contextvars
import typing as t

from starlette.types import ASGIApp, Receive, Scope, Send

if t.TYPE_CHECKING:
    from timbrix_sandbox.engine.sandbox import Sandbox

KEY = "timbrix_sandbox"
_current: contextvars.ContextVar[Sandbox] = contextvars.ContextVar(KEY)


def sandbox_of(scope: t.Mapping[str, t.Any]) -> Sandbox:
    return scope["state"][KEY]


def current_sandbox() -> Sandbox:
    """The sandbox of the request being handled (inside a handler)."""
    return _current.get()


def current_sandbox_or_none() -> Sandbox | None:
    """The same, or ``None`` outside a request (e.g. malformed HTTP answered by the server)."""
    return _current.get(None)


class SandboxStateMiddleware:
    """Outermost middleware: puts the sandbox into every request's scope and context."""

    def __init__(self, app: ASGIApp, sandbox: Sandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope.setdefault("state", {})[KEY] = self.sandbox
            token = _current.set(self.sandbox)
            try:
                await self.app(scope, receive, send)
            finally:
                _current.reset(token)
            return
        await self.app(scope, receive, send)
