"""The app factory: one Connexion AsyncApp serving the Timbrix contract and the sandbox's own
control API, with request *and* response validation and every error in the vendor format."""

from __future__ import annotations

import contextlib
import functools
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
from timbrix_sandbox.contract.model import ContractError, Profile, load_profile, scope_params
from timbrix_sandbox.contract.paths import template_pattern
from timbrix_sandbox.contract.records import complete, stored_doc
from timbrix_sandbox.engine.clock import utc_now
from timbrix_sandbox.engine.crud import build_operations
from timbrix_sandbox.engine.faults import check_names
from timbrix_sandbox.engine.fixtures import load_fixtures
from timbrix_sandbox.engine.sandbox import Sandbox
from timbrix_sandbox.engine.store import Store
from timbrix_sandbox.http import oas31, speedups  # noqa: F401  (speedups patches Connexion on import)
from timbrix_sandbox.http.access import OrganizationAccessMiddleware, ScopeMiddleware
from timbrix_sandbox.http.body_limit import BodyLimitMiddleware
from timbrix_sandbox.http.context import SandboxStateMiddleware
from timbrix_sandbox.http.control import CONTROL_OPERATIONS
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
from timbrix_sandbox.http.fault_responses import AuthIgnoredMiddleware, FaultyResponseMiddleware, RecordShape
from timbrix_sandbox.http.local_security import LocalSecurityMiddleware, PathMethods, SecurityPolicy
from timbrix_sandbox.http.resolver import FunctionResolver, resolve_handler
from timbrix_sandbox.profiles import DEFAULT_CONTRACT, contract_path, default_fixtures

CONTROL_CONTRACT = Path(__file__).resolve().parent / "control.yaml"
API_BASE_PATH = "/api"


def make_sandbox(
    *,
    contract: str | os.PathLike[str] = DEFAULT_CONTRACT,
    data_dir: str | os.PathLike[str] | None = None,
    fixtures_path: str | os.PathLike[str] | None = None,
    reset: bool = False,
    strict_rfc: bool = False,
    faults: t.Iterable[str] = (),
    discard_damaged: bool = False,
) -> Sandbox:
    """A sandbox for ``contract`` over ``data_dir`` (``None``: in memory), seeded from
    fixtures when empty. A damaged data directory raises ``DamagedStore`` unless
    ``discard_damaged`` (then its damaged files are moved aside; see ``store.py``)."""
    contract = contract_path(contract)
    profile = load_profile(load_contract(contract))
    handlers = Handlers(profile)
    fixtures = load_fixtures(
        fixtures_path or default_fixtures(contract),
        ids={name: (r.id_field, r.id_kind) for name, r in profile.resources.items()},
        scope_field={
            name: param
            for name, r in profile.resources.items()
            for param in scope_params(r)[:1]
            if param in r.schema.get("properties", {})
        },
    )
    generic = handlers.generic_resources()

    def prepare(collection: str, record: dict) -> dict:
        if collection not in generic:
            return record
        resource = profile.resources[collection]
        now = record.get(resource.created_field or "", None) or utc_now()
        return stored_doc(complete(record, resource.schema, now), resource)

    sandbox = Sandbox(
        fixtures,
        Store(data_dir, discard_damaged=discard_damaged),
        strict_rfc=strict_rfc,
        faults=check_names(faults, profile),
        profile=profile,
        collections=tuple(sorted(profile.resources)),
        prepare=prepare,
    )
    sandbox.store.claim(profile.title, unmarked_owner=_timbrix_title())
    sandbox.contract = Path(contract)  # type: ignore[attr-defined]
    sandbox.handlers = handlers  # type: ignore[attr-defined]
    if reset:
        sandbox.reset()
        sandbox.store.mark_seeded()
    else:
        sandbox.seed_if_empty()
    for collection in sandbox.collections:
        sandbox.store.open_all(collection)
    return sandbox


@functools.lru_cache(maxsize=1)
def _timbrix_title() -> str:
    """Whose data a seeded directory without a contract marker holds (written before markers)."""
    return load_profile(load_contract(DEFAULT_CONTRACT)).title


class Handlers:
    """operationId -> handler: the contract's hand-written package where it has one
    (``x-sandbox.handlers``), the stateful default (``generic.py``) everywhere else."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.generic = build_operations(profile)

    def hand_written(self, operation_id: str) -> t.Callable | None:
        if not self.profile.handlers:
            return None
        try:
            return resolve_handler(operation_id, self.profile.handlers)
        except (ValueError, ImportError, AttributeError):
            return None

    def __call__(self, operation_id: str) -> t.Callable:
        handler = self.hand_written(operation_id) or self.generic.get(operation_id)
        if handler is None:
            raise ContractError(f"operation {operation_id} has no handler and is not a list/create/read/update/delete")
        return handler

    def generic_resources(self) -> set[str]:
        return {op.resource for op_id, op in self.profile.operations.items() if self.hand_written(op_id) is None}


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


def _add_fault_middlewares(app, sandbox: Sandbox) -> None:
    if sandbox.has_fault("auth-ignored"):
        widest = max(sandbox.fixtures.users, key=lambda user: len(user.organizations))
        known = frozenset(user.token for user in sandbox.fixtures.users)
        app.add_middleware(
            AuthIgnoredMiddleware,
            position=MiddlewarePosition.BEFORE_SECURITY,
            member_token=widest.token,
            known_tokens=known,
        )
    app.add_middleware(
        FaultyResponseMiddleware,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        faults=sandbox.faults,
        shape=RecordShape.of(sandbox.profile),
    )


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


def create_app(sandbox: Sandbox | None = None, security: SecurityPolicy | None = None):
    """Build the ASGI app for the sandbox's contract. Without a sandbox, an in-memory Timbrix
    one seeded from the fixtures. ``security`` is the local server's policy (Host allowlist,
    control API protection, CORS; see ``local_security.py``); by default, loopback only."""
    sandbox = sandbox or make_sandbox()
    security = security or SecurityPolicy()
    contract = sandbox.contract  # type: ignore[attr-defined]
    handlers = sandbox.handlers  # type: ignore[attr-defined]

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
    api, control = _bind_security(load_contract(contract)), load_contract(CONTROL_CONTRACT)
    allowed = AllowedMethods()
    allowed.add_spec(API_BASE_PATH, api)
    allowed.add_spec(CONTROL_BASE_PATH, control)
    app.add_api(api, base_path=API_BASE_PATH, resolver=FunctionResolver(handlers), **options)
    control_resolver = FunctionResolver(CONTROL_OPERATIONS.__getitem__)
    app.add_api(control, base_path=CONTROL_BASE_PATH, resolver=control_resolver, **options)
    app.add_error_handler(ProblemException, problem_handler)
    app.add_error_handler(HTTPException, make_http_handler(allowed))
    app.add_error_handler(Exception, unexpected_error_handler)

    # Outermost of the app's own middleware (only Starlette's last-resort 500 handler is
    # outside it): a refused Host or cross-site control request touches nothing else.
    app.add_middleware(
        LocalSecurityMiddleware,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        policy=security,
        errors=sandbox.profile.errors,
        control_errors=CONTROL_ERRORS,
        api_prefix=API_BASE_PATH,
        control_prefix=CONTROL_BASE_PATH,
        api_paths=_path_methods(api),
    )
    app.add_middleware(OrganizationAccessMiddleware, position=MiddlewarePosition.BEFORE_VALIDATION)
    required = {op_id: op.required_scopes for op_id, op in sandbox.profile.operations.items() if op.required_scopes}
    if required:
        app.add_middleware(ScopeMiddleware, position=MiddlewarePosition.BEFORE_VALIDATION, required=required)
    app.add_middleware(TrailingSlashMiddleware, position=MiddlewarePosition.BEFORE_SWAGGER)
    app.add_middleware(
        BodyLimitMiddleware,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        limited=_operations_declaring(api, 413),
        errors=sandbox.profile.errors,
    )
    app.add_middleware(SandboxStateMiddleware, position=MiddlewarePosition.BEFORE_EXCEPTION, sandbox=sandbox)
    if sandbox.faults:
        _add_fault_middlewares(app, sandbox)
    elif fast_path_enabled():
        operations = compile_operations(load_contract(contract), API_BASE_PATH, handlers)
        app.add_middleware(
            FastPathMiddleware,
            position=MiddlewarePosition.BEFORE_SWAGGER,
            operations=operations,
            sandbox=sandbox,
        )
    app.sandbox = sandbox  # type: ignore[attr-defined]
    return app
