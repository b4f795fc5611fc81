"""Engine operations as HTTP handlers: one adapter for both request pipelines.

The engine answers ``(tenant, params, body) -> Reply`` or raises ``Refusal``; this module asks
the access policy for the tenant, calls the operation and turns the answer into what both the
Connexion stack and the fast path send - ``(body, status)``, ``NoContent``, or an error
response in the served contract's format.
"""

from __future__ import annotations

import typing as t

from connexion import NoContent
from connexion import request as connexion_request
from connexion.context import context as connexion_context
from connexion.jsonifier import Jsonifier
from connexion.lifecycle import ConnexionResponse

from timbrix_sandbox.contract.records import json_bytes
from timbrix_sandbox.engine.policy import Caller, Refusal
from timbrix_sandbox.engine.sandbox import Sandbox
from timbrix_sandbox.http import behaviours
from timbrix_sandbox.http.errors import error_response

Answer = tuple[t.Any, int] | ConnexionResponse


def authorize(
    sandbox: Sandbox, operation_id: str, caller: Caller | None, params: t.Mapping[str, t.Any], headers: t.Mapping
) -> str | None:
    """The tenant the request acts in (the engine's access policy), or a ``Refusal``."""
    operation = sandbox.profile.operations.get(operation_id)
    return sandbox.policy.authorize(operation, caller, params, headers) if operation is not None else None


async def answer(
    sandbox: Sandbox, operation_id: str, tenant: str | None, params: dict[str, t.Any], body: t.Any
) -> Answer:
    """Run and render one authorized operation (the same steps on either pipeline), with the
    run-time behaviours that apply to it (``behaviours.py``: ``Prefer``, rules)."""

    async def run() -> Answer:
        try:
            reply = await sandbox.operations[operation_id](tenant, params, body)
        except Refusal as refusal:
            return refusal_response(sandbox, refusal)
        if reply.body is None:
            return NoContent, reply.status
        return reply.body, reply.status

    return await behaviours.apply(sandbox, operation_id, tenant, run)


def response_bytes(data: t.Any) -> bytes:
    """A JSON response body as both pipelines send it: compact UTF-8 (orjson, a seventh of
    ``json.dumps``'s cost on a list of customers) and a newline, as Connexion ends bodies."""
    return json_bytes(data) + b"\n"


class ResponseJsonifier(Jsonifier):
    """Connexion's serialiser, set to :func:`response_bytes`: clients cannot tell which
    pipeline answered (``tests/test_fastpath.py``)."""

    def dumps(self, data: t.Any, **kwargs: t.Any) -> str:
        return response_bytes(data).decode()


def refusal_response(sandbox: Sandbox, refusal: Refusal) -> ConnexionResponse:
    return error_response(
        refusal.status, refusal.message, kind=refusal.kind, details=refusal.details, errors=sandbox.profile.errors
    )


def connexion_handlers(sandbox: Sandbox) -> t.Callable[[str], t.Callable[..., t.Awaitable[Answer]]]:
    """operationId -> the coroutine Connexion calls with the request's parameters and body."""

    def resolve(operation_id: str) -> t.Callable[..., t.Awaitable[Answer]]:
        if operation_id not in sandbox.operations:
            raise KeyError(f"operation {operation_id} is not served")

        async def handle(**params: t.Any) -> Answer:
            info = connexion_context.get("token_info")
            caller = Caller.from_token_info(info) if info else None
            body = params.pop("body", None)
            try:
                tenant = authorize(sandbox, operation_id, caller, params, connexion_request.headers)
            except Refusal as refusal:
                return refusal_response(sandbox, refusal)
            return await answer(sandbox, operation_id, tenant, params, body)

        handle.__name__ = operation_id
        return handle

    return resolve
