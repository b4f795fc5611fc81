"""The local server's security model: who may talk to a sandbox on a developer's machine.

A sandbox runs on a laptop beside a browser, with public fixture tokens and a control API
that can wipe every organization. Three attacks reach it from any web page, none needing
the user to do more than visit the page:

* **Cross-site control requests.** A form POST (``text/plain``, no preflight) to
  ``/__sandbox/reset`` wiped the store. Control requests that change state are refused
  when the browser marks them cross-site (``Sec-Fetch-Site``), when their ``Origin`` is not
  an allowed one, and when they carry a body in one of the three CORS "simple" content types
  (which a page may send anywhere without asking). ``curl`` and test code send none of these.
* **DNS rebinding.** A page on ``rebind.evil.example`` re-pointed at 127.0.0.1 is
  same-origin with the sandbox as far as the browser knows; only the ``Host`` header tells.
  Requests naming a host that is not allowed get 421 (Misdirected Request). IP literals are
  always allowed: rebinding needs a name the attacker controls.
* **Exposure beyond loopback.** Bound to ``0.0.0.0``, the control API is reachable from the
  network; a control token is then required (generated and printed if none is given).

The contract API gets an explicit CORS policy so browser clients under development work:
loopback origins by default, more with ``--cors-origin`` (``*`` for any), preflights answered
from the contract's own paths and methods.

Pure ASGI, outermost in the stack, so nothing else runs for a refused request. Bodies are
rendered in the served contract's error format, which is passed in.
"""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
import re
import typing as t

from timbrix_sandbox.contract.model import ErrorFormat
from timbrix_sandbox.http.errors import AllowedMethods, send_error

Scope = t.MutableMapping[str, t.Any]
Receive = t.Callable[[], t.Awaitable[t.MutableMapping[str, t.Any]]]
Send = t.Callable[[t.MutableMapping[str, t.Any]], t.Awaitable[None]]
ASGIApp = t.Callable[[Scope, Receive, Send], t.Awaitable[None]]

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The content types a page may send cross-origin without a preflight (Fetch standard).
SIMPLE_CONTENT_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")
CONTROL_TOKEN_HEADER = "x-sandbox-control-token"
PREFLIGHT_MAX_AGE = "600"
GRANTED_METHODS = ("GET", "PUT", "POST", "DELETE", "PATCH")
"""The methods of a path a preflight grants: HEAD is CORS-safelisted (a browser needs only the
preflight's 2xx to send it), OPTIONS and TRACE are not granted."""


def is_loopback_host(host: str) -> bool:
    """``localhost``, ``*.localhost`` (RFC 6761: always loopback) or a loopback address."""
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def host_name(value: str) -> str:
    """``example.com:3001`` -> ``example.com``; ``[::1]:3001`` -> ``::1``."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


@dataclasses.dataclass(frozen=True)
class SecurityPolicy:
    """What a running sandbox accepts; built once by the CLI (or tests) and passed in."""

    bound_host: str = "127.0.0.1"
    allowed_hosts: frozenset[str] = frozenset()
    """Extra ``Host`` names accepted (``--allow-host``); ``*`` turns the check off."""
    cors_origins: tuple[str, ...] = ()
    """Extra origins the contract API answers CORS for (``--cors-origin``); ``*`` for any."""
    control_token: str | None = None
    """When set, every control API request must carry it (``X-Sandbox-Control-Token`` or
    ``Authorization: Bearer``)."""

    @property
    def exposed(self) -> bool:
        """Bound beyond loopback (``0.0.0.0``, a LAN address, a host name)."""
        return not is_loopback_host(self.bound_host)

    def host_allowed(self, host: str | None) -> bool:
        if host is None or "*" in self.allowed_hosts:
            return True  # HTTP/1.0 without Host: no browser sends that, so no rebinding
        name = host_name(host)
        return (
            is_loopback_host(name)
            or _is_ip_literal(name)
            or name == self.bound_host.lower()
            or name in self.allowed_hosts
        )

    def cors_origin_allowed(self, origin: str) -> bool:
        if "*" in self.cors_origins or origin in self.cors_origins:
            return True
        match = _ORIGIN.fullmatch(origin)
        return match is not None and is_loopback_host(match["host"])


HOST_VERDICTS = 64
"""Distinct ``Host`` values whose verdict a running sandbox remembers."""

_ORIGIN = re.compile(r"(?P<scheme>https?)://(?P<host>\[[^\]]+\]|[^:/]+)(?::(?P<port>\d+))?")


class PathMethods:
    """``path -> methods`` for the contract API, from the contract's own paths (preflights):
    the routes the routing 405 reads (``errors.AllowedMethods``), so a refused preflight's
    ``Allow`` is the routing 405's, HEAD included wherever GET is served."""

    def __init__(self, routes: AllowedMethods) -> None:
        self._routes = routes

    def served(self, path: str) -> tuple[str, ...]:
        """Every method answered on ``path`` (none: no template fits it)."""
        return self._routes.methods(path)

    def allow(self, path: str) -> str | None:
        """The ``Allow`` value of a 405 on ``path``."""
        return self._routes.for_path(path)


class LocalSecurityMiddleware:
    """Host allowlist for everything, cross-site refusal and the token for the control API,
    CORS for the contract API (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        policy: SecurityPolicy,
        errors: ErrorFormat,
        control_errors: ErrorFormat,
        api_prefix: str,
        control_prefix: str,
        api_paths: PathMethods,
    ) -> None:
        self.app = app
        self.policy = policy
        self.errors = errors
        self.control_errors = control_errors
        self.api_prefix = api_prefix
        self.control_prefix = control_prefix
        self.api_paths = api_paths
        self._verdicts: dict[bytes | None, bool] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Every request passes here: one scan of the raw headers for what every request needs
        # (Host, Origin); the decoded dict only for the requests that read more of them.
        hosts, raw_host, raw_origin = 0, None, None
        for name, value in scope.get("headers", ()):
            if name == b"host":
                hosts += 1
                if raw_host is None:
                    raw_host = value
            elif name == b"origin" and raw_origin is None:
                raw_origin = value
        path: str = scope.get("path", "")
        control = path == self.control_prefix or path.startswith(self.control_prefix + "/")
        errors = self.control_errors if control else self.errors
        unclear = _unclear_host(hosts, scope.get("http_version"))
        if unclear is not None:
            await send_error(send, errors, 400, unclear)
            return
        if not self._host_allowed(raw_host):
            host = raw_host.decode("latin-1") if raw_host is not None else None
            await send_error(
                send,
                errors,
                421,
                f"Host {host!r} is not served here: this sandbox answers loopback names and addresses"
                f" and {self.policy.bound_host!r}; start it with --allow-host NAME to add one",
            )
            return
        if control:
            refusal = self._control_refusal(scope["method"], _headers(scope))
            if refusal is not None:
                await send_error(send, errors, 403, refusal)
                return
            await self.app(scope, receive, send)
            return
        origin = raw_origin.decode("latin-1") if raw_origin is not None else None
        if origin is None or not path.startswith(self.api_prefix) or not self.policy.cors_origin_allowed(origin):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(path, origin, headers, send)
            return
        await self.app(scope, receive, _with_cors(send, origin))

    def _host_allowed(self, raw: bytes | None) -> bool:
        """The policy's verdict on a raw ``Host`` value, remembered for the few values a
        sandbox sees (its address, ``localhost:PORT``); bounded, as clients choose them."""
        verdict = self._verdicts.get(raw)
        if verdict is None:
            verdict = self.policy.host_allowed(raw.decode("latin-1") if raw is not None else None)
            if len(self._verdicts) < HOST_VERDICTS:
                self._verdicts[raw] = verdict
        return verdict

    def _control_refusal(self, method: str, headers: dict[str, str]) -> str | None:
        token = self.policy.control_token
        if token is not None:
            given = headers.get(CONTROL_TOKEN_HEADER) or _bearer(headers.get("authorization", ""))
            if not given or not hmac.compare_digest(given.encode(), token.encode()):
                return "The control API needs the control token (X-Sandbox-Control-Token header)"
        if method not in UNSAFE_METHODS:
            return None
        if headers.get("sec-fetch-site") in ("cross-site", "same-site"):
            return "Cross-site requests may not change the sandbox"
        origin = headers.get("origin")
        if origin is not None and not self._same_origin(origin, headers.get("host")):
            return f"Requests from origin {origin!r} may not change the sandbox"
        content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type in SIMPLE_CONTENT_TYPES:
            return f"Control requests may not be sent as {content_type} (send no body, or application/json)"
        return None

    def _same_origin(self, origin: str, host: str | None) -> bool:
        match = _ORIGIN.fullmatch(origin)
        if match is None or host is None:
            return False
        return match["host"].lower() + (f":{match['port']}" if match["port"] else "") == host.lower()

    async def _preflight(self, path: str, origin: str, headers: dict[str, str], send: Send) -> None:
        served = self.api_paths.served(path)
        requested = headers.get("access-control-request-method", "").upper()
        if requested not in served:
            # Not a route/method of the contract: no CORS grant, so the browser stops here.
            allow = self.api_paths.allow(path)
            await send_error(send, self.errors, 405 if allow else 404, f"{requested} is not allowed on {path}",
                             headers=[(b"allow", allow.encode())] if allow else [])
            return
        methods = [m for m in served if m in GRANTED_METHODS]
        response_headers = [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-methods", ", ".join(methods).encode()),
            (b"access-control-max-age", PREFLIGHT_MAX_AGE.encode()),
            (b"vary", b"Origin"),
            (b"content-length", b"0"),
        ]
        wanted = headers.get("access-control-request-headers")
        if wanted:
            response_headers.append((b"access-control-allow-headers", wanted.encode("latin-1")))
        await send({"type": "http.response.start", "status": 204, "headers": response_headers})
        await send({"type": "http.response.body", "body": b""})


def _bearer(value: str) -> str | None:
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _unclear_host(hosts: int, http_version: str | None) -> str | None:
    """Why the request's Host is not one header, if it is not: RFC 9112 (3.2) has a server answer
    400 to more than one Host, and to an HTTP/1.1 request without one. The allowlist reads the
    first Host; a proxy in front might read another. (HTTP/1.0 needs none.)"""
    if hosts > 1:
        return f"The request carries {hosts} Host headers; send one"
    if hosts == 0 and http_version == "1.1":
        return "An HTTP/1.1 request must carry a Host header"
    return None


def _headers(scope: Scope) -> dict[str, str]:
    """Request headers by lower-case name (the first of repeated ones, as Starlette does)."""
    found: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        found.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return found


def _with_cors(send: Send, origin: str) -> Send:
    grant = [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-expose-headers", b"Location, Allow, WWW-Authenticate"),
        (b"vary", b"Origin"),
    ]

    async def send_with_cors(message: t.MutableMapping[str, t.Any]) -> None:
        if message["type"] == "http.response.start":
            message = dict(message)
            message["headers"] = [*message.get("headers", ()), *grant]
        await send(message)

    return send_with_cors
