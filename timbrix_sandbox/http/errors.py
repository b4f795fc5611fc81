"""Every error the sandbox emits, in the vendor's format.

Timbrix documents errors as ``{"statusCode": 400, "message": "...", "error": "BAD_REQUEST"}``;
another contract names its own shape in ``x-sandbox.errors`` (see ``profile.py``).
Connexion would answer with ``application/problem+json`` (and Starlette with plain text), so
each exception path - Connexion problems, Starlette HTTP exceptions (routing 404/405,
``Forbidden``) and anything unexpected - is funnelled through :func:`error_response`.
"""

from __future__ import annotations

import dataclasses
import html
import json
import logging
import re
import typing as t

from connexion.exceptions import ProblemException
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from starlette.exceptions import HTTPException

from timbrix_sandbox.contract.model import (
    DEFAULT_ERROR_CODES,
    DEFAULT_MESSAGES,
    ErrorFormat,
    Operation,
    declared_status,
    error_media,
    error_text,
    is_json_media,
    operation_errors,
)
from timbrix_sandbox.contract.paths import HTTP_METHODS, specificity, template_pattern
from timbrix_sandbox.contract.refs import resolve_refs
from timbrix_sandbox.engine.clock import new_request_id, utc_now
from timbrix_sandbox.http.context import sandbox_of
from timbrix_sandbox.http.oas31 import first_error

logger = logging.getLogger("timbrix_sandbox")

CONTROL_ERRORS = ErrorFormat()
"""The control API's own format (``control.yaml``), whatever contract is served."""
CONTROL_BASE_PATH = "/__sandbox"
REALM = "timbrix-sandbox"


def www_authenticate(challenge: str | None) -> str:
    """The ``WWW-Authenticate`` value of every 401 the sandbox answers (RFC 9110 requires one):
    the operation's http auth-scheme (``engine.policy.AccessPolicy.challenge``), else Bearer."""
    return f'{challenge or "Bearer"} realm="{REALM}"'


def _format_for(request: ConnexionRequest) -> ErrorFormat:
    """The control API answers in its own format; everything else in the served contract's
    (the sandbox travels in the request's scope, put there by ``SandboxStateMiddleware``)."""
    path = request.url.path
    if path == CONTROL_BASE_PATH or path.startswith(CONTROL_BASE_PATH + "/"):
        return CONTROL_ERRORS
    return sandbox_of(request.scope).profile.errors


def _operation_of(request: ConnexionRequest) -> Operation | None:
    """The contract operation Connexion routed the request to (``None``: the control API, or
    a request that matched no route)."""
    path = request.url.path
    if path == CONTROL_BASE_PATH or path.startswith(CONTROL_BASE_PATH + "/"):
        return None
    operation_id = (request.scope.get("extensions") or {}).get("connexion_routing", {}).get("operation_id")
    return sandbox_of(request.scope).profile.operations.get(operation_id) if operation_id else None


def _declared_for(operation: Operation | None, status: int) -> tuple[int, bool]:
    """The status to answer a failed request of a contract operation with: one the operation
    declares (``contract.model.declared_status``: a 400 under a contract that lists only 422
    is a 422), and whether it is exact (not to be folded). Routing 404/405s and the control
    API have no operation: their status stands."""
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
    operation: Operation | None = None,
) -> ConnexionResponse:
    """The error response for ``status``, in the media type ``operation`` declares for it
    (``contract.model.error_media``): JSON in the contract's error format by default, under
    ``application/problem+json`` when that is the JSON type declared, as text when only a
    text type is (Tic Tac Toe's ``text/html``)."""
    status = status if exact else _known(status)
    media = error_media(operation, status)
    if media is not None and not is_json_media(media.media_type):
        text = error_text(media, status, " ".join((message or DEFAULT_MESSAGES.get(status, "Error")).split()))
        if media.media_type.lower().startswith("text/html"):
            text = html.escape(text, quote=False)
        return ConnexionResponse(
            status_code=status,
            mimetype=media.media_type,
            content_type=media.media_type,
            body=text.encode(),
            headers=dict(headers or {}),
        )
    content_type = media.media_type if media is not None else "application/json"
    fitted = operation_errors(errors, operation, status)
    body = error_body(status, message, details=details, kind=kind, errors=fitted, exact=True)
    return ConnexionResponse(
        status_code=status,
        mimetype=content_type,
        content_type=content_type,
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
        # Connexion's detail names what the operation takes ("expected ['application/x-www-form-
        # urlencoded']"); the default's "send application/json" would be wrong for a form.
        return f"Unsupported media type ({exc.detail})" if exc.detail else DEFAULT_MESSAGES[415]
    return exc.detail or exc.title


def problem_handler(request: ConnexionRequest, exc: ProblemException) -> ConnexionResponse:
    headers = dict(exc.headers or {})
    if exc.status == 401:
        headers.setdefault("WWW-Authenticate", www_authenticate(None))
    if exc.status >= 500:
        logger.error("%s: %s", exc.title, exc.detail)
    ext = exc.ext or {}
    operation = _operation_of(request)
    status, exact = _declared_for(operation, exc.status)
    return error_response(
        status,
        _problem_message(exc),
        headers,
        details=ext.get("details"),
        kind=ext.get("kind"),
        errors=_format_for(request),
        exact=exact,
        operation=operation,
    )


@dataclasses.dataclass(frozen=True)
class _Route:
    pattern: re.Pattern[str]
    template: str
    """The contract's path template, without the base path."""
    methods: frozenset[str]
    path_params: dict[str, dict[str, dict]]
    """``METHOD -> {name: schema}``: each operation's path parameters (item and operation level)."""

    @property
    def specificity(self) -> tuple[bool, ...]:
        """Per segment, whether it is fixed text (``contract.paths.specificity``)."""
        return specificity(self.template)


class AllowedMethods:
    """The contract's routes as the error handlers see them: ``Allow`` values, and which
    operation a request that matched no route was meant for.

    Connexion registers one route per operation, so its own 405 lists only the methods of
    whichever route matched first; schemathesis (and RFC 9110) want all of them - every method
    of every template the path fits (Discourse's ``/groups/{name}.json`` and
    ``/groups/{id}.json`` are one path to a client). Connexion's routes also type their path
    parameters (``{column:int}``), so ``/board/1/x`` matches none of them and would be an
    undeclared 404; it fits the template, so it is a bad parameter (:meth:`malformed`).
    """

    def __init__(self) -> None:
        self._routes: list[_Route] = []

    def add_spec(self, base_path: str, spec: dict) -> None:
        for path, item in (spec.get("paths") or {}).items():
            if not isinstance(item, dict):
                continue
            shared = resolve_refs(item.get("parameters") or [], spec)
            params: dict[str, dict[str, dict]] = {}
            for method in HTTP_METHODS:
                if not isinstance(item.get(method), dict):
                    continue
                declared = [*shared, *resolve_refs(item[method].get("parameters") or [], spec)]
                params[method.upper()] = {
                    p["name"]: p.get("schema") or {} for p in declared if isinstance(p, dict) and p.get("in") == "path"
                }
            methods = set(params)
            if "GET" in methods:
                methods.add("HEAD")
            pattern = template_pattern(base_path + path, named=True)
            self._routes.append(_Route(pattern, path, frozenset(methods), params))

    def _fitting(self, path: str) -> list[tuple[_Route, re.Match[str]]]:
        """The most specific templates ``path`` fits: a fixed segment beats a parameter, left
        to right (OpenAPI: concrete paths match before templated ones, so DigitalOcean's
        ``/v2/apps/propose`` is not ``/v2/apps/{id}``); templates as specific as each other
        all fit (Discourse's ``/groups/{name}.json`` and ``/groups/{id}.json``)."""
        found = [(route, match) for route in self._routes if (match := route.pattern.fullmatch(path))]
        if len(found) < 2:
            return found
        best = max(route.specificity for route, _ in found)
        return [(route, match) for route, match in found if route.specificity == best]

    def _accepting(self, path: str) -> dict[str, tuple[_Route, str | None]]:
        """``METHOD -> (route, why its path values fail or None)`` over the fitting templates,
        a route whose values its parameters accept winning over one whose values they refuse."""
        found: dict[str, tuple[_Route, str | None]] = {}
        for route, match in self._fitting(path):
            for method, params in route.path_params.items():
                error = _path_error(params, match)
                if method not in found or (found[method][1] is not None and error is None):
                    found[method] = (route, error)
        return found

    def methods(self, path: str) -> tuple[str, ...]:
        """Every method the contract serves on ``path``, sorted (none: no template fits it).
        Where templates collide, those whose parameters accept the path's values say it
        (``/groups/admins.json`` is a ``{name}``, not an integer ``{id}``); with no template
        accepting them, every fitting one does (the request is malformed, see :meth:`malformed`)."""
        accepting = self._accepting(path)
        methods = {m for m, (_, error) in accepting.items() if error is None} or set(accepting)
        if "GET" in methods:
            methods.add("HEAD")
        return tuple(sorted(methods))

    def for_path(self, path: str) -> str | None:
        """The ``Allow`` value for ``path`` (``None``: no template fits it)."""
        return ", ".join(self.methods(path)) or None

    def malformed(self, method: str, path: str) -> tuple[str, str] | None:
        """``(template, message)`` when ``path`` fits a template ``method`` is served on but no
        template accepts its values, and a path value fails its parameter's schema (``"abc"
        is not of type "integer"``)."""
        accepting = self._accepting(path)
        if any(error is None for _, error in accepting.values()):
            return None  # some template takes these values: a method it lacks is a 405
        found = accepting.get("GET" if method == "HEAD" else method)
        if found is None or found[1] is None:
            return None
        return found[0].template, found[1]


def _path_error(params: dict[str, dict], match: re.Match[str]) -> str | None:
    for name, schema in params.items():
        raw = match.groupdict().get(name)
        if raw is None:
            continue
        error = first_error(schema, _path_value(raw, schema))
        if error is not None:
            return f"{error} - path parameter '{name}'"
    return None


def _path_value(raw: str, schema: dict) -> t.Any:
    """A path value as parameter parsing reads it: a number when the schema wants one and it
    is one, else the text (which the schema then refuses)."""
    types = schema.get("type")
    types = types if isinstance(types, list) else [types]
    try:
        if "integer" in types:
            return int(raw)
        if "number" in types:
            return float(raw)
    except ValueError:
        return raw
    return raw


def make_http_handler(allowed: AllowedMethods):
    def http_handler(request: ConnexionRequest, exc: HTTPException) -> ConnexionResponse:
        headers = dict(exc.headers or {})
        message = exc.detail if exc.status_code in (403, 409) else None
        path, method = request.url.path, request.method
        if exc.status_code in (404, 405):
            malformed = _malformed_request(request, allowed)
            if malformed is not None:
                return malformed
        status = exc.status_code
        allow = allowed.for_path(path) if status in (404, 405) else None
        if status == 404 and allow and not path.endswith("/") and method not in allow.split(", "):
            status = 405  # a template fits (with a value no typed route took): the method is what is wrong
        if status == 404:
            message = f"Cannot {method} {path}"
        if status == 405:
            if allow:
                headers["Allow"] = allow
            message = f"Method {method} is not allowed on {path}"
        return error_response(status, message, headers, errors=_format_for(request))

    return http_handler


def _malformed_request(request: ConnexionRequest, allowed: AllowedMethods) -> ConnexionResponse | None:
    """A request no route took whose path fits a contract operation's template, with a path
    value its parameter's schema refuses: that operation's 400 (or its declared stand-in), in
    its error media type - the template matched, so a 404 would say the resource is missing.
    On the control API, a 400 in its own format (``DELETE /__sandbox/behaviours/abc``), as
    request validation answers for a value the typed route took (``/__sandbox/behaviours/0``)."""
    path = request.url.path
    found = allowed.malformed(request.method, path)
    if found is None:
        return None
    template, message = found
    if path == CONTROL_BASE_PATH or path.startswith(CONTROL_BASE_PATH + "/"):
        return error_response(400, message, errors=CONTROL_ERRORS)
    method = "GET" if request.method == "HEAD" else request.method
    profile = sandbox_of(request.scope).profile
    operation = next((o for o in profile.operations.values() if o.method == method and o.path == template), None)
    if operation is None:
        return None
    status, exact = _declared_for(operation, 400)
    return error_response(status, message, errors=profile.errors, exact=exact, operation=operation)


def unexpected_error_handler(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    logger.exception("unhandled error", exc_info=exc)
    return error_response(500, "Internal server error", errors=_format_for(request), operation=_operation_of(request))


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
