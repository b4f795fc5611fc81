"""The control API's run-time half (``control.yaml``): the request journal and the behaviours
set while the server runs. Kept beside ``control.py`` (health, reset) as a second set of
operationId -> handler bindings, merged by ``app.py``."""

from __future__ import annotations

import html
import typing as t
from pathlib import Path

from connexion import NoContent
from connexion.lifecycle import ConnexionResponse

from timbrix_sandbox.engine.faults import InvalidBehaviour
from timbrix_sandbox.engine.sandbox import Sandbox
from timbrix_sandbox.http.behaviours import declared_statuses
from timbrix_sandbox.http.errors import CONTROL_ERRORS, error_response
from timbrix_sandbox.http.journal import Journal

REQUESTS_PAGE = Path(__file__).resolve().parent / "requests.html"
RULE_FIELDS = frozenset({"behaviour", "operation", "tenant", "times", "seconds"})


def runtime_operations(sandbox: Sandbox, journal: Journal) -> dict[str, t.Callable[..., t.Awaitable[t.Any]]]:
    """operationId -> handler, bound to ``sandbox`` and its ``journal``."""
    behaviours = sandbox.behaviours
    schedule = behaviours.schedule

    async def list_requests(method: str | None = None, path: str | None = None, status: str | None = None,
                            limit: int = 100):
        return {
            "enabled": bool(journal),
            "capacity": journal.size,
            "recorded": len(journal.entries) if journal else 0,
            "requests": journal.select(method, path, status, limit) if journal else [],
        }, 200

    async def clear_requests():
        journal.clear()
        return NoContent, 204

    async def requests_page():
        return ConnexionResponse(
            status_code=200,
            content_type="text/html; charset=utf-8",
            body=REQUESTS_PAGE.read_text().replace("{{title}}", html.escape(sandbox.profile.title)),
        )

    async def list_behaviours():
        return {
            "behaviours": behaviours.startup_rules() + schedule.describe(),
            "available": [
                {"name": cls.name, "category": cls.category, "description": cls.description}
                for cls in behaviours.settable()
            ],
        }, 200

    async def add_behaviour(body: dict):
        name = body["behaviour"]
        operation = body.get("operation")
        if operation is not None and operation not in sandbox.operations:
            served = ", ".join(sorted(sandbox.operations))
            return error_response(400, f"operation {operation!r} is not served (one of: {served})",
                                  errors=CONTROL_ERRORS)
        parameters = {k: v for k, v in body.items() if k not in RULE_FIELDS}
        try:
            behaviour = behaviours.make(name, parameters)
        except InvalidBehaviour as exc:
            return error_response(400, str(exc), errors=CONTROL_ERRORS)
        preference = behaviour.preferred()
        if preference is not None and preference.status is not None:
            declaring = [o for o in ([operation] if operation else sandbox.operations) if preference.status in
                         declared_statuses(sandbox, o)]
            if not declaring:
                where = operation or "any operation"
                return error_response(400, f"status {preference.status} is not declared by {where}: "
                                      "only declared statuses are answered", errors=CONTROL_ERRORS)
        rule = schedule.add(behaviour, operation=operation, tenant=body.get("tenant"), times=body.get("times"),
                            seconds=body.get("seconds"))
        return rule.describe(schedule.clock()), 201

    async def clear_behaviours():
        schedule.clear()
        return NoContent, 204

    async def remove_behaviour(ruleId: int):
        if not schedule.remove(ruleId):
            return error_response(404, f"No run-time behaviour {ruleId}", errors=CONTROL_ERRORS)
        return NoContent, 204

    return {
        "SandboxController_list_requests": list_requests,
        "SandboxController_clear_requests": clear_requests,
        "SandboxController_requests_page": requests_page,
        "SandboxController_list_behaviours": list_behaviours,
        "SandboxController_add_behaviour": add_behaviour,
        "SandboxController_clear_behaviours": clear_behaviours,
        "SandboxController_remove_behaviour": remove_behaviour,
    }
