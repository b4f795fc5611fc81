"""Authentication and access on the Connexion pipeline, asking the engine's one access policy
(``engine/policy.py``), as the fast path does.

* no token / unknown token -> 401 (Connexion's security layer, via :func:`bearer_info`);
* a token without an operation's scope, or not a member of the tenant the request names
  -> 403, checked by :class:`AccessMiddleware` *before* request validation, as a NestJS-style
  guard would: an outsider learns nothing about the body rules from 400s;
* a record of another tenant -> 404 (the engine only ever looks inside the caller's tenant,
  so another tenant's record is indistinguishable from a missing one).
"""

from __future__ import annotations

from connexion.exceptions import ProblemException
from connexion.lifecycle import ConnexionRequest
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from timbrix_sandbox.engine.policy import Caller, Refusal
from timbrix_sandbox.engine.sandbox import Sandbox
from timbrix_sandbox.http.context import sandbox_of

CONTEXT = "connexion_context"


def bearer_info(token: str, request: ConnexionRequest) -> dict | None:
    """Token -> ``token_info`` (``None`` -> 401). A dict lookup: it runs on the event loop,
    so it must never block. Named by ``x-bearerInfoFunc`` in the contract (added to bearer
    schemes that lack one)."""
    caller = sandbox_of(request.scope).policy.caller(token)
    return None if caller is None else caller.token_info()


class Refused(ProblemException):
    """A policy refusal on its way to the error handler (which renders it in the contract's format)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(status=refusal.status, title="Forbidden", detail=refusal.message)
        self.ext = {"kind": refusal.kind, "details": refusal.details}


class AccessMiddleware:
    """The access policy, between Connexion's security and its request validation."""

    def __init__(self, app: ASGIApp, sandbox: Sandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            extensions = scope.get("extensions", {})
            operation_id = extensions.get("connexion_routing", {}).get("operation_id")
            operation = self.sandbox.profile.operations.get(operation_id)
            info = extensions.get(CONTEXT, {}).get("token_info")
            if operation is not None and info is not None:
                try:
                    self.sandbox.policy.authorize(
                        operation, Caller.from_token_info(info), scope.get("path_params", {}), Headers(scope=scope)
                    )
                except Refusal as refusal:
                    raise Refused(refusal) from None
        await self.app(scope, receive, send)
