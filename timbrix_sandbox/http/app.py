"""The app factory: one Connexion AsyncApp serving a sandbox's contract and the sandbox's own
control API, with request *and* response validation and every error in the contract's format.

The whole middleware stack is assembled in one ordered place, :func:`_stack`."""

from __future__ import annotations

import contextlib
import gc
import os
import threading
import typing as t
from pathlib import Path

import connexion
from connexion.exceptions import ProblemException
from connexion.middleware import ConnexionMiddleware, MiddlewarePosition
from connexion.middleware.security import SecurityMiddleware
from connexion.options import SwaggerUIOptions
from starlette.exceptions import HTTPException

from timbrix_sandbox.contract.loading import load_contract
from timbrix_sandbox.contract.paths import in_precedence_order, shadowed_methods, template_pattern
from timbrix_sandbox.contract.servers import base_path as served_base_path
from timbrix_sandbox.contract.servers import mount_prefix, normalise
from timbrix_sandbox.engine.sandbox import Sandbox
from timbrix_sandbox.http import compat, oas31
from timbrix_sandbox.http.access import AccessMiddleware
from timbrix_sandbox.http.behaviours import RequestBehaviourMiddleware
from timbrix_sandbox.http.body_limit import MAX_BODY_BYTES, BodyLimitMiddleware
from timbrix_sandbox.http.context import SandboxStateMiddleware
from timbrix_sandbox.http.contract_document import AuthoredContractMiddleware
from timbrix_sandbox.http.control import ServingProcesses, control_operations
from timbrix_sandbox.http.control_runtime import runtime_operations
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
from timbrix_sandbox.http.fault_responses import FaultyRequestMiddleware, FaultyResponseMiddleware
from timbrix_sandbox.http.journal import DEFAULT_SIZE as DEFAULT_JOURNAL_SIZE
from timbrix_sandbox.http.journal import Credentials, Journal, JournalMiddleware
from timbrix_sandbox.http.local_security import LocalSecurityMiddleware, PathMethods, SecurityPolicy
from timbrix_sandbox.http.operations import ResponseJsonifier, connexion_handlers
from timbrix_sandbox.http.path_precedence import ShadowedMethodMiddleware
from timbrix_sandbox.http.resolver import FunctionResolver

CONTROL_CONTRACT = Path(__file__).resolve().parent / "control.yaml"

SERVING_GC_THRESHOLDS = (50_000, 20, 10)
"""The cyclic collector's thresholds while the app serves (CPython's default is 700, 10, 10).

Requests leave no cyclic garbage (checked with ``gc.DEBUG_SAVEALL`` under wrk: none), so every
collection only walks live objects: the 32 requests in flight and the records written since
startup. At the default, a create load ran about 2,000 young and 16 full collections in 9 s,
12% of the server's CPU, and each full one (about 40 ms, walking every stored record) was a
p99 spike; at these, 1 young and 1 full (about 0.12 s in all). Garbage cycles, from error
paths, are still collected, after at most 50,000 new objects."""


_collector_users: list[tuple[int, int, int]] = []
"""The thresholds in place before the first app still serving started: one entry per app
serving in this process (apps served side by side in one test process may stop in any order)."""
_collector_lock = threading.Lock()


@contextlib.contextmanager
def _serving_collector() -> t.Iterator[None]:
    """:data:`SERVING_GC_THRESHOLDS` while at least one app serves, and the process's own
    thresholds back once the last one stops."""
    with _collector_lock:
        _collector_users.append(gc.get_threshold() if not _collector_users else _collector_users[0])
        gc.set_threshold(*SERVING_GC_THRESHOLDS)
    try:
        yield
    finally:
        with _collector_lock:
            before = _collector_users.pop()
            if not _collector_users:
                gc.set_threshold(*before)


def _operations_declaring(spec: dict, prefix: str, status: int) -> t.Callable[[str, str], bool]:
    """``(method, path) -> bool``: does the contract operation at that path declare ``status``."""
    routes = []
    for path, item in spec.get("paths", {}).items():
        pattern = template_pattern(prefix + path)
        for method, operation in item.items():
            if isinstance(operation, dict) and str(status) in operation.get("responses", {}):
                routes.append((method.upper(), pattern))
    return lambda method, path: any(m == method and p.fullmatch(path) for m, p in routes)


def fast_path_enabled() -> bool:
    """On unless ``TIMBRIX_SANDBOX_FASTPATH=0`` (the bench compares both)."""
    return os.environ.get("TIMBRIX_SANDBOX_FASTPATH", "1") != "0"


CONNEXION_LAYERS = [m for m in ConnexionMiddleware.default_middlewares if m is not SecurityMiddleware]
"""Connexion's layers without its security one: the engine's access policy authenticates every
scheme type, on both pipelines (``access.py`` says why Connexion's cannot)."""


def _routing_document(contract: Path) -> dict:
    """The contract as the routers read it: its paths in precedence order (a fixed path before
    the templates it collides with, ``path_precedence.py``); the served document keeps the
    author's order (``contract_document.py``)."""
    document = load_contract(contract)
    document["paths"] = in_precedence_order(document.get("paths") or {})
    return document


def create_app(
    sandbox: Sandbox,
    security: SecurityPolicy | None = None,
    serving: ServingProcesses | None = None,
    base_path: str | None = None,
    journal_size: int = DEFAULT_JOURNAL_SIZE,
):
    """Build the ASGI app for the sandbox's contract (``profiles.sandboxes.make_sandbox`` builds
    one). ``security`` is the local server's policy (Host allowlist,
    control API protection, CORS; see ``local_security.py``); by default, loopback only.
    ``serving``: the processes serving it (``serve --workers``), for the health answer.
    ``base_path`` is where the contract's paths are served (default: the path of its first
    server URL, ``contract/servers.py``; Timbrix, BeeL and bookkeeping say ``/api``).
    ``journal_size``: requests the journal keeps (``journal.py``; 0 turns it off)."""
    compat.install()
    security = security or SecurityPolicy()

    @contextlib.asynccontextmanager
    async def lifespan(_app) -> t.AsyncIterator[None]:
        # Everything built so far (specs, compiled validators, routes) lives as long as the
        # process: move it out of the collector's sight, so collections stay short and rare
        # (they showed up as p99 spikes under load).
        gc.collect()
        gc.freeze()
        with _serving_collector():
            yield
        sandbox.store.close()  # TinyDB: compact journals into snapshots; PostgreSQL: close the pool

    app = connexion.AsyncApp(
        __name__, lifespan=lifespan, middlewares=list(CONNEXION_LAYERS), jsonifier=ResponseJsonifier()
    )
    options = dict(
        validate_responses=True,
        strict_validation=True,
        validator_map=oas31.VALIDATOR_MAP,
        uri_parser_class=oas31.SchemaURIParser,
        swagger_ui_options=SwaggerUIOptions(swagger_ui=True, swagger_ui_path="/ui"),
    )
    api, control = _routing_document(sandbox.contract), load_contract(CONTROL_CONTRACT)
    served_at = served_base_path(api) if base_path is None else normalise(base_path)
    prefix = mount_prefix(served_at)
    allowed = AllowedMethods()
    allowed.add_spec(prefix, api)
    allowed.add_spec(CONTROL_BASE_PATH, control)
    journal = Journal(journal_size, Credentials.of(api))
    control_handlers = {**control_operations(sandbox, served_at, serving), **runtime_operations(sandbox, journal)}
    # The control API first: a contract served at / would otherwise route /__sandbox too.
    control_resolver = FunctionResolver(control_handlers.__getitem__)
    app.add_api(control, base_path=CONTROL_BASE_PATH, resolver=control_resolver, **options)
    app.add_api(api, base_path=prefix, resolver=FunctionResolver(connexion_handlers(sandbox)), **options)
    app.add_error_handler(ProblemException, problem_handler)
    app.add_error_handler(HTTPException, make_http_handler(allowed))
    app.add_error_handler(Exception, unexpected_error_handler)
    stack = _stack(sandbox, security, api, prefix, allowed)
    if journal:  # outermost of the sandbox's own layers: refusals (421, 413, ...) are journaled too
        skip = (CONTROL_BASE_PATH + "/", prefix + "/ui")
        stack.insert(0, (JournalMiddleware, MiddlewarePosition.BEFORE_EXCEPTION, {"journal": journal, "skip": skip}))
    for middleware, position, settings in stack:
        app.add_middleware(middleware, position=position, **settings)
    app.sandbox = sandbox  # type: ignore[attr-defined]
    app.base_path = served_at  # type: ignore[attr-defined]
    return app


def _stack(
    sandbox: Sandbox, security: SecurityPolicy, api: dict, prefix: str, allowed: AllowedMethods
) -> list[tuple[type, MiddlewarePosition, dict]]:
    """The sandbox's middleware, outermost first, each placed among Connexion's own layers
    (in brackets below; within one position the order of this list is kept):

    [ServerError] > Journal (inserted by ``create_app``) > SandboxState > LocalSecurity > BodyLimit
    > FaultyRequest, FaultyResponse (faults only) > [Exception] > TrailingSlash > AuthoredContract
    > RequestBehaviour > ShadowedMethod (colliding paths only) > FastPath (no faults) > [SwaggerUI]
    > [Routing]
    > Access (authentication and access, the policy's) > [RequestValidation]
    > [ResponseValidation] > [Context] > handler (``operations.py``) > engine.

    Everything that renders an error is given the served contract's format; nothing reads it
    from ambient state. ``allowed`` is the routes the routing 405 names in ``Allow``; the
    preflights of LocalSecurity and the preferred 405s of RequestBehaviour read the same."""
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
                "api_prefix": prefix,
                "control_prefix": CONTROL_BASE_PATH,
                "api_paths": PathMethods(allowed),
            },
        ),
    ]
    behaviours = sandbox.behaviours
    limit = behaviours.max_body_bytes(MAX_BODY_BYTES)
    stack.append(
        (
            BodyLimitMiddleware,
            outer,
            {"limited": _operations_declaring(api, prefix, 413), "errors": errors, "max_bytes": limit},
        )
    )
    if behaviours.rewrites_requests():
        stack.append((FaultyRequestMiddleware, outer, {"behaviours": behaviours, "api_prefix": prefix}))
    if behaviours.corrupts_responses():
        stack.append((FaultyResponseMiddleware, outer, {"behaviours": behaviours, "api_prefix": prefix}))
    ui = (prefix + "/ui", CONTROL_BASE_PATH + "/ui")
    stack.append((TrailingSlashMiddleware, MiddlewarePosition.BEFORE_SWAGGER, {"ui_prefixes": ui}))
    settings = {"contract": sandbox.contract, "base_path": prefix}
    stack.append((AuthoredContractMiddleware, MiddlewarePosition.BEFORE_SWAGGER, settings))
    settings = {"sandbox": sandbox, "api_prefix": prefix, "routes": allowed}
    stack.append((RequestBehaviourMiddleware, MiddlewarePosition.BEFORE_SWAGGER, settings))
    shadowed = shadowed_methods(api.get("paths") or {})
    if shadowed:
        settings = {"base_path": prefix, "shadowed": shadowed}
        stack.append((ShadowedMethodMiddleware, MiddlewarePosition.BEFORE_SWAGGER, settings))
    if not behaviours and fast_path_enabled():
        operations = compile_operations(
            _routing_document(sandbox.contract), prefix, sandbox.operations, sandbox.security
        )
        settings = {"operations": operations, "sandbox": sandbox}
        stack.append((FastPathMiddleware, MiddlewarePosition.BEFORE_SWAGGER, settings))
    stack.append((AccessMiddleware, MiddlewarePosition.BEFORE_VALIDATION, {"sandbox": sandbox}))
    return stack
