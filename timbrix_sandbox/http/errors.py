"""Every error the sandbox emits, in the vendor's format.

Timbrix documents errors as ``{"statusCode": 400, "message": "...", "error": "BAD_REQUEST"}``;
another contract names its own shape in ``x-sandbox.errors`` (see ``profile.py``).
Connexion would answer with ``application/problem+json`` (and Starlette with plain text), so
each exception path - Connexion problems, Starlette HTTP exceptions (routing 404/405,
``Forbidden``) and anything unexpected - is funnelled through :func:`error_response`.
"""

from __future__ import annotations

import json
import logging
import typing as t

from connexion.exceptions import ProblemException
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from starlette.exceptions import HTTPException

from timbrix_sandbox.contract.model import DEFAULT_ERROR_CODES, DEFAULT_MESSAGES, ErrorFormat, declared_status
from timbrix_sandbox.contract.paths import template_pattern
from timbrix_sandbox.engine.clock import new_request_id, utc_now
from timbrix_sandbox.http.context import sandbox_of

logger = logging.getLogger("timbrix_sandbox")

CONTROL_ERRORS = ErrorFormat()
"""The control API's own format (``control.yaml``), whatever contract is served."""
CONTROL_BASE_PATH = "/__sandbox"


def _format_for(request: ConnexionRequest) -> ErrorFormat:
    """The control API answers in its own format; everything else in the served contract's
    (the sandbox travels in the request's scope, put there by ``SandboxStateMiddleware``)."""
    path = request.url.path
    if path == CONTROL_BASE_PATH or path.startswith(CONTROL_BASE_PATH + "/"):
        return CONTROL_ERRORS
    return sandbox_of(request.scope).profile.errors


def _declared_for(request: ConnexionRequest, status: int) -> tuple[int, bool]:
    """The status to answer a failed request of a contract operation with: one the operation
    declares (``contract.model.declared_status``: a 400 under a contract that lists only 422
    is a 422), and whether it is exact (not to be folded). Routing 404/405s and the control
    API have no operation: their status stands."""
    path = request.url.path
    if path == CONTROL_BASE_PATH or path.startswith(CONTROL_BASE_PATH + "/"):
        return status, False
    operation_id = (request.scope.get("extensions") or {}).get("connexion_routing", {}).get("operation_id")
    operation = sandbox_of(request.scope).profile.operations.get(operation_id) if operation_id else None
    if operation is None:
        return status, False
    chosen = declared_status(operation.declared, status)
    return chosen, chosen != status or str(chosen) in operation.declared


def _known(status: int) -> int:
    """Statuses without an error code (422, 418, ...) are folded into 400 or 500."""
    if str(status) in DEFAULT_ERROR_CODES:
        return status
    return 500 if status >= 500 else 400


def error_body(
    status: int,
    message: str | None = None,
    *,
    details: t.Any = None,
    kind: str | None = None,
    errors: ErrorFormat,
    exact: bool = False,
) -> dict[str, t.Any]:
    """The error object of format ``errors`` for ``status`` (unknown statuses are folded into
    400/500 unless ``exact``: the status is one the operation declares)."""
    return errors.render(
        status if exact else _known(status),
        message,
        details=details,
        kind=kind,
        now=utc_now(),
        request_id=new_request_id(),
    )


def error_response(
    status: int,
    message: str | None = None,
    headers: t.Mapping[str, str] | None = None,
    *,
    details: t.Any = None,
    kind: str | None = None,
    errors: ErrorFormat,
    exact: bool = False,
) -> ConnexionResponse:
    status = status if exact else _known(status)
    body = error_body(status, message, details=details, kind=kind, errors=errors, exact=True)
    return ConnexionResponse(
        status_code=status,
        mimetype="application/json",
        content_type="application/json",
        body=json.dumps(body, ensure_ascii=False).encode(),
        headers=dict(headers or {}),
    )


async def send_error(
    send: t.Callable[[dict], t.Awaitable[None]],
    errors: ErrorFormat,
    status: int,
    message: str | None = None,
    headers: t.Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """Answer over raw ASGI, for middleware that refuses a request before Connexion sees it
    (Host allowlist, body limit): the same body ``error_response`` would send."""
    body = json.dumps(error_body(status, message, errors=errors), ensure_ascii=False).encode()
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": _known(status), "headers": start})
    await send({"type": "http.response.body", "body": body})


def _problem_message(exc: ProblemException) -> str | None:
    if exc.status == 401:
        # Connexion's texts ("No authorization token provided", "Provided token is not valid")
        # are clear enough; keep them.
        return exc.detail
    if exc.status == 415:
        return DEFAULT_MESSAGES[415] + (f" ({exc.detail})" if exc.detail else "")
    return exc.detail or exc.title


def problem_handler(request: ConnexionRequest, exc: ProblemException) -> ConnexionResponse:
    headers = dict(exc.headers or {})
    if exc.status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="timbrix-sandbox"')
    if exc.status >= 500:
        logger.error("%s: %s", exc.title, exc.detail)
    ext = exc.ext or {}
    status, exact = _declared_for(request, exc.status)
    return error_response(
        status,
        _problem_message(exc),
        headers,
        details=ext.get("details"),
        kind=ext.get("kind"),
        errors=_format_for(request),
        exact=exact,
    )


class AllowedMethods:
    """``Allow`` header values built from the contract.

    Connexion registers one route per operation, so its own 405 lists only the methods of
    whichever route matched first; schemathesis (and RFC 9110) want all of them.
    """

    def __init__(self) -> None:
        self._routes: list[tuple[t.Any, str]] = []

    def add_spec(self, base_path: str, spec: dict) -> None:
        for path, item in spec.get("paths", {}).items():
            methods = sorted(
                m.upper() for m in item if m in {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
            )
            if "GET" in methods:
                methods.append("HEAD")
            self._routes.append((template_pattern(base_path + path), ", ".join(sorted(set(methods)))))

    def for_path(self, path: str) -> str | None:
        for pattern, allow in self._routes:
            if pattern.fullmatch(path):
                return allow
        return None


def make_http_handler(allowed: AllowedMethods):
    def http_handler(request: ConnexionRequest, exc: HTTPException) -> ConnexionResponse:
        headers = dict(exc.headers or {})
        message = exc.detail if exc.status_code in (403, 409) else None
        if exc.status_code == 404:
            message = f"Cannot {request.method} {request.url.path}"
        if exc.status_code == 405:
            allow = allowed.for_path(request.url.path)
            if allow:
                headers["Allow"] = allow
            message = f"Method {request.method} is not allowed on {request.url.path}"
        return error_response(exc.status_code, message, headers, errors=_format_for(request))

    return http_handler


def unexpected_error_handler(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    logger.exception("unhandled error", exc_info=exc)
    return error_response(500, "Internal server error", errors=_format_for(request))


class TrailingSlashMiddleware:
    """``/customers/`` is not ``/customers``: a vendor-format 404, not Starlette's bodiless
    307 redirect (which the contract does not declare). Swagger UI keeps its own routes."""

    def __init__(self, app, ui_prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.ui_prefixes = ui_prefixes

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/") and not path.startswith(self.ui_prefixes):
            raise HTTPException(status_code=404)
        await self.app(scope, receive, send)
