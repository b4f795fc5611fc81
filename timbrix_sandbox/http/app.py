"""The app factory: one Connexion AsyncApp serving a sandbox's contract and the sandbox's own
control API, with request *and* response validation and every error in the contract's format.

The whole middleware stack is assembled in one ordered place, :func:`_stack`."""

from __future__ import annotations

import contextlib
import gc
import os
import typing as t
from pathlib import Path

import connexion
from connexion.exceptions import ProblemException
from connexion.middleware import MiddlewarePosition
from connexion.options import SwaggerUIOptions
from starlette.exceptions import HTTPException

from timbrix_sandbox.contract.loading import load_contract
from timbrix_sandbox.contract.paths import template_pattern
from timbrix_sandbox.engine.sandbox import Sandbox
from timbrix_sandbox.http import compat, oas31
from timbrix_sandbox.http.access import AccessMiddleware
from timbrix_sandbox.http.body_limit import MAX_BODY_BYTES, BodyLimitMiddleware
from timbrix_sandbox.http.context import SandboxStateMiddleware
from timbrix_sandbox.http.control import control_operations
from timbrix_sandbox.http.errors import (
    CONTROL_BASE_PATH,
    CONTROL_ERRORS,
    AllowedMethods,
    TrailingSlashMiddleware,
    make_http_handler,
    problem_handler,
    unexpected_error_handler,
)
from timbrix_sandbox.http.fastpath import FastPathMiddleware, compile_operations
from timbrix_sandbox.http.fault_responses import (
    AuthIgnoredMiddleware,
    FaultyRequestMiddleware,
    FaultyResponseMiddleware,
)
from timbrix_sandbox.http.local_security import LocalSecurityMiddleware, PathMethods, SecurityPolicy
from timbrix_sandbox.http.operations import connexion_handlers
from timbrix_sandbox.http.resolver import FunctionResolver

CONTROL_CONTRACT = Path(__file__).resolve().parent / "control.yaml"
API_BASE_PATH = "/api"


def _operations_declaring(spec: dict, status: int) -> t.Callable[[str, str], bool]:
    """``(method, path) -> bool``: does the contract operation at that path declare ``status``."""
    routes = []
    for path, item in spec.get("paths", {}).items():
        pattern = template_pattern(API_BASE_PATH + path)
        for method, operation in item.items():
            if isinstance(operation, dict) and str(status) in operation.get("responses", {}):
                routes.append((method.upper(), pattern))
    return lambda method, path: any(m == method and p.fullmatch(path) for m, p in routes)


def fast_path_enabled() -> bool:
    """On unless ``TIMBRIX_SANDBOX_FASTPATH=0`` (the bench compares both)."""
    return os.environ.get("TIMBRIX_SANDBOX_FASTPATH", "1") != "0"


def _bind_security(spec: dict) -> dict:
    """Point every bearer scheme at the fixture tokens, so a contract written for the real API
    needs no sandbox-specific ``x-bearerInfoFunc``."""
    for scheme in spec.get("components", {}).get("securitySchemes", {}).values():
        if scheme.get("type") == "http" and str(scheme.get("scheme", "")).lower() == "bearer":
            scheme.setdefault("x-bearerInfoFunc", "timbrix_sandbox.http.access.bearer_info")
    return spec


def _path_methods(spec: dict) -> PathMethods:
    """The contract API's methods per path, for CORS preflights."""
    return PathMethods(
        [
            (
                template_pattern(API_BASE_PATH + path),
                tuple(sorted(m.upper() for m in item if m in ("get", "put", "post", "delete", "patch"))),
            )
            for path, item in spec.get("paths", {}).items()
        ]
    )


def create_app(sandbox: Sandbox, security: SecurityPolicy | None = None):
    """Build the ASGI app for the sandbox's contract (``profiles.sandboxes.make_sandbox`` builds
    one). ``security`` is the local server's policy (Host allowlist,
    control API protection, CORS; see ``local_security.py``); by default, loopback only."""
    compat.install()
    security = security or SecurityPolicy()

    @contextlib.asynccontextmanager
    async def lifespan(_app) -> t.AsyncIterator[None]:
        # Everything built so far (specs, compiled validators, routes) lives as long as the
        # process: move it out of the collector's sight, so collections stay short and rare
        # (they showed up as p99 spikes under load).
        gc.collect()
        gc.freeze()
        yield
        sandbox.store.close()  # compact journals into snapshots on a clean shutdown

    app = connexion.AsyncApp(__name__, lifespan=lifespan)
    options = dict(
        validate_responses=True,
        strict_validation=True,
        validator_map=oas31.VALIDATOR_MAP,
        swagger_ui_options=SwaggerUIOptions(swagger_ui=True, swagger_ui_path="/ui"),
    )
    api, control = _bind_security(load_contract(sandbox.contract)), load_contract(CONTROL_CONTRACT)
    allowed = AllowedMethods()
    allowed.add_spec(API_BASE_PATH, api)
    allowed.add_spec(CONTROL_BASE_PATH, control)
    app.add_api(api, base_path=API_BASE_PATH, resolver=FunctionResolver(connexion_handlers(sandbox)), **options)
    control_resolver = FunctionResolver(control_operations(sandbox).__getitem__)
    app.add_api(control, base_path=CONTROL_BASE_PATH, resolver=control_resolver, **options)
    app.add_error_handler(ProblemException, problem_handler)
    app.add_error_handler(HTTPException, make_http_handler(allowed))
    app.add_error_handler(Exception, unexpected_error_handler)
    for middleware, position, settings in _stack(sandbox, security, api):
        app.add_middleware(middleware, position=position, **settings)
    app.sandbox = sandbox  # type: ignore[attr-defined]
    return app


def _stack(sandbox: Sandbox, security: SecurityPolicy, api: dict) -> list[tuple[type, MiddlewarePosition, dict]]:
    """The sandbox's middleware, outermost first, each placed among Connexion's own layers
    (in brackets below; within one position the order of this list is kept):

    [ServerError] > SandboxState > LocalSecurity > BodyLimit > FaultyRequest, FaultyResponse (faults only)
    > [Exception] > TrailingSlash > FastPath (no faults) > [SwaggerUI] > [Routing]
    > AuthIgnored (that fault only) > [Security] > Access > [RequestValidation]
    > [ResponseValidation] > [Context] > handler (``operations.py``) > engine.

    Everything that renders an error is given the served contract's format; nothing reads it
    from ambient state."""
    errors = sandbox.profile.errors
    outer = MiddlewarePosition.BEFORE_EXCEPTION
    stack: list[tuple[type, MiddlewarePosition, dict]] = [
        (SandboxStateMiddleware, outer, {"sandbox": sandbox}),
        (
            LocalSecurityMiddleware,
            outer,
            {
                "policy": security,
                "errors": errors,
                "control_errors": CONTROL_ERRORS,
                "api_prefix": API_BASE_PATH,
                "control_prefix": CONTROL_BASE_PATH,
                "api_paths": _path_methods(api),
            },
        ),
    ]
    behaviours = sandbox.behaviours
    limit = behaviours.max_body_bytes(MAX_BODY_BYTES)
    stack.append(
        (BodyLimitMiddleware, outer, {"limited": _operations_declaring(api, 413), "errors": errors, "max_bytes": limit})
    )
    if behaviours.rewrites_requests():
        stack.append((FaultyRequestMiddleware, outer, {"behaviours": behaviours}))
    if behaviours.corrupts_responses():
        stack.append((FaultyResponseMiddleware, outer, {"behaviours": behaviours}))
    stack.append((TrailingSlashMiddleware, MiddlewarePosition.BEFORE_SWAGGER, {}))
    if not behaviours and fast_path_enabled():
        operations = compile_operations(load_contract(sandbox.contract), API_BASE_PATH, sandbox.operations)
        settings = {"operations": operations, "sandbox": sandbox}
        stack.append((FastPathMiddleware, MiddlewarePosition.BEFORE_SWAGGER, settings))
    if behaviours.accepts_unknown_tokens():
        widest = max(sandbox.fixtures.users, key=lambda user: len(user.organizations))
        known = frozenset(user.token for user in sandbox.fixtures.users)
        settings = {"member_token": widest.token, "known_tokens": known}
        stack.append((AuthIgnoredMiddleware, MiddlewarePosition.BEFORE_SECURITY, settings))
    stack.append((AccessMiddleware, MiddlewarePosition.BEFORE_VALIDATION, {"sandbox": sandbox}))
    return stack
