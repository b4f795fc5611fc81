"""Authentication and access on the Connexion pipeline, asking the engine's one access policy
(``engine/policy.py``), as the fast path does, with the same credential reader
(:func:`credential_reader`).

Connexion's own security layer is left out of the stack (``app.py``): it binds one handler per
scheme type through ``x-*InfoFunc`` strings, has no handler for ``openIdConnect`` (a
requirement naming one is silently dropped, so the operation answers 401 to everyone), and
hands AND-ed schemes over as a dict per scheme. The policy reads every scheme type itself.

* no credentials / unknown ones / ones sent for another scheme -> 401;
* a caller without an operation's scope, or not a member of the tenant the request names
  -> 403, checked by :class:`AccessMiddleware` *before* request validation, as a NestJS-style
  guard would: an outsider learns nothing about the body rules from 400s;
* a record of another tenant -> 404 (the engine only ever looks inside the caller's tenant,
  so another tenant's record is indistinguishable from a missing one).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from connexion.exceptions import ProblemException
from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from timbrix_sandbox.engine.policy import CredentialReader, Refusal
from timbrix_sandbox.engine.sandbox import Sandbox
from timbrix_sandbox.http.errors import CONTROL_BASE_PATH, www_authenticate

CONTEXT = "connexion_context"


def credential_reader(scope: Scope) -> CredentialReader:
    """How the policy reads a request's credentials, for both pipelines: headers by
    case-insensitive name, the query string's first value, cookies (parsed only when a scheme
    asks for one)."""

    def read(location: str, name: str) -> str | None:
        if location == "header":
            wanted = name.lower().encode("latin-1")
            for key, value in scope["headers"]:
                if key == wanted:
                    return value.decode("latin-1")
            return None
        if location == "query":
            query = scope.get("query_string", b"").decode("latin-1")
            return next((v for k, v in parse_qsl(query, keep_blank_values=True) if k == name), None)
        if location == "cookie":
            raw = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"cookie"), None)
            return None if raw is None else cookie_parser(raw).get(name)
        return None

    return read


class Refused(ProblemException):
    """A policy refusal on its way to the error handler (which renders it in the contract's format)."""

    def __init__(self, refusal: Refusal) -> None:
        title = "Unauthorized" if refusal.status == 401 else "Forbidden"
        headers = {"WWW-Authenticate": www_authenticate(refusal.challenge)} if refusal.challenge else None
        super().__init__(status=refusal.status, title=title, detail=refusal.message, headers=headers)
        self.ext = {"kind": refusal.kind, "details": refusal.details}


class AccessMiddleware:
    """The access policy, between Connexion's routing and its request validation: who the
    caller is (carried on as Connexion's ``token_info``, which the handler reads), then
    whether they may act in the tenant the request names."""

    def __init__(self, app: ASGIApp, sandbox: Sandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            routing = scope.get("extensions", {}).get("connexion_routing", {})
            operation_id = routing.get("operation_id")
            if routing and routing.get("api_base_path") != CONTROL_BASE_PATH:
                policy = self.sandbox.policy
                try:
                    caller = policy.authenticate(operation_id, credential_reader(scope))
                    if caller is not None:
                        context = scope["extensions"].setdefault(CONTEXT, {})
                        context.update({"user": caller.id, "token_info": caller.token_info()})
                    operation = self.sandbox.profile.operations.get(operation_id)
                    if operation is not None:
                        policy.authorize(operation, caller, scope.get("path_params", {}), Headers(scope=scope))
                except Refusal as refusal:
                    raise Refused(refusal) from None
        await self.app(scope, receive, send)
