"""Engine operations as HTTP handlers: one adapter for both request pipelines.

The engine answers ``(tenant, params, body) -> Reply`` or raises ``Refusal``; this module asks
the access policy for the tenant, calls the operation and turns the answer into what both the
Connexion stack and the fast path send - ``(body, status)``, ``NoContent``, or a response with
the media type the client asked for, or an error response in the served contract's format,
under a status the operation declares (``contract.model.declared_status``).

Media types: an operation may declare several for its success (Petstore 3 answers JSON or
XML). JSON is what the engine builds, so it wins whenever the client accepts it (no
``Accept``, ``*/*``, ``application/*``); a client accepting only another declared type gets
that type's example if the contract has one. Otherwise the answer is JSON anyway, which RFC
9110 (12.5.1) allows - a 406 would be a status the contract does not declare.
"""

from __future__ import annotations

import typing as t

from connexion import NoContent
from connexion import request as connexion_request
from connexion.context import context as connexion_context
from connexion.jsonifier import Jsonifier
from connexion.lifecycle import ConnexionResponse
from starlette.datastructures import UploadFile

from timbrix_sandbox.contract.model import Operation, declared_status, is_json_media
from timbrix_sandbox.contract.records import json_bytes
from timbrix_sandbox.engine.answers import non_json_example
from timbrix_sandbox.engine.policy import Caller, Refusal
from timbrix_sandbox.engine.sandbox import Sandbox
from timbrix_sandbox.http import behaviours
from timbrix_sandbox.http.errors import error_response
from timbrix_sandbox.http.oas31 import DECODED_BODY

Answer = tuple[t.Any, int] | tuple[t.Any, int, dict[str, str]] | ConnexionResponse
"""``(body, status)``, ``(body, status, headers)`` (a preferred 405's ``Allow``, 401's challenge), or a response."""


def authorize(
    sandbox: Sandbox, operation_id: str, caller: Caller | None, params: t.Mapping[str, t.Any], headers: t.Mapping
) -> str | None:
    """The tenant the request acts in (the engine's access policy), or a ``Refusal``."""
    operation = sandbox.profile.operations.get(operation_id)
    return sandbox.policy.authorize(operation, caller, params, headers) if operation is not None else None


def negotiate(operation: Operation | None, accept: str | None) -> str | None:
    """The declared success media type to answer in (``None``: plain JSON, the default)."""
    if operation is None or not operation.media_types:
        return None
    if operation.media_types == ("application/json",) and len(operation.response_media) == 1:
        return None  # nothing to choose (most operations): plain JSON
    ranges = _accepted(accept)
    json_types = [m for m in operation.media_types if is_json_media(m)]
    for media in json_types:
        if _acceptable(media, ranges):
            return media
    for media in operation.media_types:
        if media not in json_types and _acceptable(media, ranges) and non_json_example(operation, media) is not None:
            return media
    return json_types[0] if json_types else operation.media_types[0]


def _accepted(accept: str | None) -> list[str]:
    if not accept:
        return ["*/*"]
    ranges = []
    for part in accept.split(","):
        media, *options = (p.strip() for p in part.split(";"))
        if any(o.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000") for o in options):
            continue
        ranges.append(media.lower())
    return ranges or ["*/*"]


def _acceptable(media: str, ranges: list[str]) -> bool:
    media = media.split(";")[0].strip().lower()
    kind = media.split("/")[0]
    return any(r in ("*/*", "*", media, f"{kind}/*") for r in ranges)


async def answer(
    sandbox: Sandbox,
    operation_id: str,
    tenant: str | None,
    params: dict[str, t.Any],
    body: t.Any,
    accept: str | None = None,
) -> Answer:
    """Run and render one authorized operation (the same steps on either pipeline), with the
    run-time behaviours that apply to it (``behaviours.py``: ``Prefer``, rules)."""
    operation = sandbox.profile.operations.get(operation_id)

    async def run() -> Answer:
        try:
            reply = await sandbox.operations[operation_id](tenant, params, body)
        except Refusal as refusal:
            return refusal_response(sandbox, refusal, operation)
        if reply.media_type is not None:
            payload = reply.body.encode() if isinstance(reply.body, str) else (reply.body or b"")
            return ConnexionResponse(
                status_code=reply.status, mimetype=reply.media_type, content_type=reply.media_type, body=payload
            )
        if reply.body is None:
            return NoContent, reply.status
        media = negotiate(operation, accept)
        if media is None or (media == "application/json" and len(operation.response_media) == 1):
            return reply.body, reply.status
        if is_json_media(media):
            payload = json_bytes(reply.body)
        else:
            example = non_json_example(operation, media) if operation is not None else None
            payload = example.encode() if isinstance(example, str) else (example or b"")
        return ConnexionResponse(status_code=reply.status, mimetype=media, content_type=media, body=payload)

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


def refusal_response(sandbox: Sandbox, refusal: Refusal, operation: Operation | None = None) -> ConnexionResponse:
    status = declared_status(operation.declared, refusal.status) if operation is not None else refusal.status
    return error_response(
        status,
        refusal.message,
        kind=refusal.kind,
        details=refusal.details,
        errors=sandbox.profile.errors,
        exact=operation is not None and status != refusal.status or _declares(operation, status),
        operation=operation,
    )


def _declares(operation: Operation | None, status: int) -> bool:
    return operation is not None and str(status) in operation.declared


def _is_file(value: t.Any) -> bool:
    return isinstance(value, UploadFile) or isinstance(value, list) and any(isinstance(v, UploadFile) for v in value)


def connexion_handlers(sandbox: Sandbox) -> t.Callable[[str], t.Callable[..., t.Awaitable[Answer]]]:
    """operationId -> the coroutine Connexion calls with the request's parameters and body."""

    def resolve(operation_id: str) -> t.Callable[..., t.Awaitable[Answer]]:
        if operation_id not in sandbox.operations:
            raise KeyError(f"operation {operation_id} is not served")
        operation = sandbox.profile.operations.get(operation_id)

        async def handle(**params: t.Any) -> Answer:
            info = connexion_context.get("token_info")
            caller = Caller.from_token_info(info) if info else None
            body = params.pop("body", None)
            # A form or XML body as its validator read it by the schema (``oas31.py``); the
            # files Connexion adds as arguments are in that body already (their names).
            body = connexion_request.scope.get(DECODED_BODY, body)
            params = {name: value for name, value in params.items() if not _is_file(value)}
            headers = connexion_request.headers
            try:
                tenant = authorize(sandbox, operation_id, caller, params, headers)
            except Refusal as refusal:
                return refusal_response(sandbox, refusal, operation)
            return await answer(sandbox, operation_id, tenant, params, body, headers.get("accept"))

        handle.__name__ = operation_id
        return handle

    return resolve
