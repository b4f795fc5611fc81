"""Authentication and tenant access, behaving like production.

* no token / unknown token -> 401 (Connexion's security layer, via :func:`bearer_info`);
* a valid token whose user is not a member of ``{organizationId}`` -> 403, checked by
  :class:`OrganizationAccessMiddleware` *before* request validation, as a NestJS-style guard
  would: an outsider learns nothing about the body rules from 400s;
* a customer id of another organization -> 404 (handlers only ever look inside the caller's
  organization partition, so another tenant's record is indistinguishable from a missing one).
"""

from __future__ import annotations

from connexion.exceptions import Forbidden, OAuthScopeProblem
from connexion.lifecycle import ConnexionRequest
from starlette.types import ASGIApp, Receive, Scope, Send

from timbrix_sandbox.engine.policy import token_info
from timbrix_sandbox.http.context import sandbox_of

CONTEXT = "connexion_context"


def bearer_info(token: str, request: ConnexionRequest) -> dict | None:
    """Token -> ``token_info`` (``None`` -> 401). A dict lookup: it runs on the event loop,
    so it must never block. Named by ``x-bearerInfoFunc`` in the contract (added to bearer
    schemes that lack one)."""
    user = sandbox_of(request.scope).fixtures.user_for_token(token)
    if user is None:
        return None
    return token_info(user)


class ScopeMiddleware:
    """403 when the token lacks a scope the operation's security requirement lists (BeeL:
    ``customers:write`` to update). Connexion checks scopes only for OAuth2 schemes; keys
    passed as bearer tokens carry them too."""

    def __init__(self, app: ASGIApp, required: dict[str, tuple[str, ...]]) -> None:
        self.app = app
        self.required = required

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            extensions = scope.get("extensions", {})
            operation = extensions.get("connexion_routing", {}).get("operation_id")
            need = self.required.get(operation)
            granted = (extensions.get(CONTEXT, {}).get("token_info") or {}).get("scopes")
            if need and granted is not None and not set(need) <= set(granted):
                raise OAuthScopeProblem(list(granted), list(need))
        await self.app(scope, receive, send)


class OrganizationAccessMiddleware:
    """403 for operations scoped by ``organizationId`` when the caller is not a member."""

    def __init__(self, app: ASGIApp, parameter: str = "organizationId") -> None:
        self.app = app
        self.parameter = parameter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            organization = scope.get("path_params", {}).get(self.parameter)
            token_info = scope.get("extensions", {}).get(CONTEXT, {}).get("token_info")
            if organization is not None and token_info is not None:
                ignored = sandbox_of(scope).has_fault("membership-ignored")
                if not ignored and organization not in token_info.get("organizations", ()):
                    raise Forbidden(detail="User is not a member of this organization")
        await self.app(scope, receive, send)
