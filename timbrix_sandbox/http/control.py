"""The sandbox control API (``/__sandbox``): health, credentials and reset-to-fixtures."""

from __future__ import annotations

import dataclasses
import os
import typing as t

import anyio

from timbrix_sandbox.engine.sandbox import Sandbox
from timbrix_sandbox.http.errors import CONTROL_ERRORS, error_response


@dataclasses.dataclass(frozen=True)
class ServingProcesses:
    """Which processes serve a sandbox: with ``serve --workers N``, a supervisor (the PID the
    user started) and N workers, each answering health with its own ``pid``."""

    server_pid: int
    workers: int


def control_operations(
    sandbox: Sandbox, base_path: str, serving: ServingProcesses | None = None
) -> dict[str, t.Callable[..., t.Awaitable[t.Any]]]:
    """operationId (``control.yaml``) -> handler, bound to ``sandbox`` served at ``base_path``;
    ``serving`` says which processes serve it (default: this one alone)."""
    serving = serving or ServingProcesses(server_pid=os.getpid(), workers=1)

    async def health():
        store = sandbox.store
        return {
            "status": "ok",
            "contract": sandbox.profile.title,
            "storage": store.storage,
            "dataDir": store.location if store.storage == "file" else None,
            "database": store.location if store.storage == "postgresql" else None,
            "customers": sum(store.count(c, org) for c in sandbox.collections for org in store.scopes(c)),
            "organizations": len(sandbox.scopes()),
            "strictRfc": sandbox.strict_rfc,
            "faults": sorted(sandbox.faults),
            "pid": os.getpid(),
            "serverPid": serving.server_pid,
            "workers": serving.workers,
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
