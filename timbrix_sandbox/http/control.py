"""The sandbox control API (``/__sandbox``): health, credentials and reset-to-fixtures."""

from __future__ import annotations

import os
import typing as t

import anyio

from timbrix_sandbox.engine.sandbox import Sandbox
from timbrix_sandbox.http.errors import CONTROL_ERRORS, error_response


def control_operations(sandbox: Sandbox, base_path: str) -> dict[str, t.Callable[..., t.Awaitable[t.Any]]]:
    """operationId (``control.yaml``) -> handler, bound to ``sandbox`` served at ``base_path``."""

    async def health():
        store = sandbox.store
        return {
            "status": "ok",
            "contract": sandbox.profile.title,
            "storage": "memory" if store.in_memory else "file",
            "dataDir": None if store.data_dir is None else str(store.data_dir),
            "customers": sum(store.count(c, org) for c in sandbox.collections for org in store.scopes(c)),
            "organizations": len(sandbox.scopes()),
            "strictRfc": sandbox.strict_rfc,
            "faults": sorted(sandbox.faults),
            "pid": os.getpid(),
            "fastPathServed": sandbox.fast_path_served,
            "basePath": base_path,
        }, 200

    async def credentials():
        return [credential.as_json() for credential in sandbox.policy.credentials()], 200

    async def reset_all():
        return await anyio.to_thread.run_sync(sandbox.reset), 200

    async def reset_organization(organizationId: str):
        if organizationId not in sandbox.fixtures.organizations and organizationId not in sandbox.scopes():
            return error_response(404, f"Organization {organizationId} is not in the fixtures", errors=CONTROL_ERRORS)
        return await anyio.to_thread.run_sync(sandbox.reset, organizationId), 200

    return {
        "SandboxController_health": health,
        "SandboxController_credentials": credentials,
        "SandboxController_reset_all": reset_all,
        "SandboxController_reset_organization": reset_organization,
    }
