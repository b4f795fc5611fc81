"""How code that Connexion calls by name finds the sandbox serving a request.

Handlers are closures bound to their sandbox (``operations.py``), but Connexion's security
layer calls ``bearer_info`` by name and its exception handlers get only the request: for them
the sandbox travels in the ASGI scope (``scope["state"]``, Starlette's convention). Several
sandboxes can then live in one process - the test suite relies on that.
"""

from __future__ import annotations

import typing as t

from starlette.types import ASGIApp, Receive, Scope, Send

if t.TYPE_CHECKING:
    from timbrix_sandbox.engine.sandbox import Sandbox

KEY = "timbrix_sandbox"


def sandbox_of(scope: t.Mapping[str, t.Any]) -> Sandbox:
    return scope["state"][KEY]


class SandboxStateMiddleware:
    """Outermost middleware: puts the sandbox into every request's scope."""

    def __init__(self, app: ASGIApp, sandbox: Sandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope.setdefault("state", {})[KEY] = self.sandbox
        await self.app(scope, receive, send)
