"""Behaviours per request, at run time: Prism's ``Prefer`` header and the rules set through
``/__sandbox/behaviours`` (the registry and the rules are ``engine/faults.py``'s).

Two halves, because the request and the operation are known at different places:

* :class:`RequestBehaviourMiddleware` (in front of both pipelines) reads ``Prefer`` and
  gives the request a :class:`RequestEffects` - the preference, how to drop the connection,
  and the response faults to apply on the way out (after the contract's response validation,
  as ``fault_responses.py`` does for startup faults). Without a ``Prefer`` header and with no
  rule set it does nothing else, so the hot path pays one header scan.
* :func:`apply` runs in ``operations.answer`` - after security, the access policy and
  request validation, on either pipeline - where the operation and the tenant are known: it
  takes the matching rules, waits, drops, answers the preferred status, or runs the engine
  with the rules' faults acting.

A preferred answer is the contract's: only a status the operation declares, with its example
(or one made from its schema), validated against the contract like every other answer. An
undeclared status is refused with a 400 in the contract's error format, naming the declared
ones. (Prism answers 404 there; a 404 would read as "not found" to the client under test.)
A preferred 405 or 401 carries the header RFC 9110 requires on it, as the sandbox's own 405
(``Allow``) and 401 (``WWW-Authenticate``) to that request would say it.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import typing as t

import anyio
from connexion import NoContent
from connexion.json_schema import resolve_refs
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from timbrix_sandbox.contract.examples import NoExample, response_example
from timbrix_sandbox.contract.loading import load_contract
from timbrix_sandbox.engine.faults import FAULTS, Behaviour, Behaviours, InvalidBehaviour, Preference
from timbrix_sandbox.engine.sandbox import Sandbox
from timbrix_sandbox.http.errors import AllowedMethods, error_response, send_error, www_authenticate
from timbrix_sandbox.http.fault_responses import buffered_rewrite
from timbrix_sandbox.http.oas31 import first_error

ABORT_EXTENSION = "timbrix.abort"
"""The scope extension ``server.py`` sets: aborts the request's connection (nothing is sent)."""


@dataclasses.dataclass
class RequestEffects:
    preference: Preference | None = None
    abort: t.Callable[[], None] | None = None
    rewrite: tuple[Behaviour, ...] = ()
    """Response faults a rule set for this request, applied after response validation."""
    dropped: bool = False
    """The connection was dropped: nothing more is sent (the journal records no status)."""
    allow: t.Callable[[], str | None] | None = None
    """The ``Allow`` value of a 405 to this request (the routing 405's), for a preferred 405."""


_EFFECTS: contextvars.ContextVar[RequestEffects | None] = contextvars.ContextVar("timbrix_effects", default=None)


class RequestBehaviourMiddleware:
    """Gives an API request its :class:`RequestEffects` when it has a ``Prefer`` header or any
    rule is set; applies the rules' response faults to the finished response."""

    def __init__(self, app: ASGIApp, sandbox: Sandbox, api_prefix: str, routes: AllowedMethods) -> None:
        self.app = app
        self.sandbox = sandbox
        self.prefix = api_prefix + "/"
        self.schedule = sandbox.behaviours.schedule
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        prefer = next((v for k, v in scope["headers"] if k == b"prefer"), None)
        if prefer is None and not self.schedule:
            await self.app(scope, receive, send)
            return
        try:
            preference = Preference.parse(prefer.decode("latin-1")) if prefer is not None else None
        except InvalidBehaviour as exc:
            await send_error(send, self.sandbox.profile.errors, 400, str(exc))
            return
        abort = scope.get("extensions", {}).get(ABORT_EXTENSION)
        effects = RequestEffects(preference, abort, allow=functools.partial(self.routes.for_path, scope["path"]))
        token = _EFFECTS.set(effects)
        try:
            await self.app(scope, receive, _rewriting(send, effects, scope["method"], self.sandbox.behaviours))
        finally:
            _EFFECTS.reset(token)


def _rewriting(send: Send, effects: RequestEffects, method: str, behaviours: Behaviours) -> Send:
    """Drops the answer when a rule drops the connection; rewrites it when a rule's response
    faults act on this request; passes it through otherwise (decided per message: the rule is
    matched while the request runs)."""
    rewrite = buffered_rewrite(send, method, lambda: behaviours.only(effects.rewrite))

    async def rewriting_send(message: Message) -> None:
        if effects.dropped:
            return
        if not effects.rewrite:
            await send(message)
            return
        await rewrite(message)

    return rewriting_send


Answer = t.Any
Run = t.Callable[[], t.Awaitable[Answer]]


async def apply(sandbox: Sandbox, operation_id: str, tenant: str | None, run: Run) -> Answer:
    """The answer to one authorized request, with the run-time behaviours that apply to it."""
    effects = _EFFECTS.get()
    schedule = sandbox.behaviours.schedule
    if effects is None and not schedule:
        return await run()
    taken = schedule.take(operation_id, tenant) if schedule else ()
    delay = sum(behaviour.delay() for behaviour in taken)
    if delay:
        await anyio.sleep(delay)
    if any(behaviour.drops_connection() for behaviour in taken):
        if effects is not None and effects.abort is not None:
            effects.abort()
            effects.dropped = True
            await anyio.sleep(0)  # let the transport report the connection lost
            return error_response(500, "connection dropped (behaviour drop-connection)", errors=sandbox.profile.errors)
        raise ConnectionAbortedError("behaviour drop-connection (no transport to abort: in-process client)")
    preference = effects.preference if effects is not None else None
    preference = preference or next((p for b in taken if (p := b.preferred())), None)
    if preference is not None:
        return preferred_answer(sandbox, operation_id, preference, effects.allow if effects is not None else None)
    faults = tuple(b for b in taken if b.name in FAULTS)  # the run-time ones acted above
    if not faults:
        return await run()
    behaviours = sandbox.behaviours
    with behaviours.acting(faults):
        if effects is not None and behaviours.only(faults).corrupts_responses():
            effects.rewrite = faults
        return await run()


_RESPONSES: dict[str, dict[str, dict[int, dict]]] = {}


def _responses(sandbox: Sandbox, operation_id: str) -> dict[int, dict]:
    """The operation's declared responses by status, from the resolved contract (cached)."""
    key = str(sandbox.contract)
    if key not in _RESPONSES:
        spec = resolve_refs(load_contract(sandbox.contract))
        index: dict[str, dict[int, dict]] = {}
        for item in spec.get("paths", {}).values():
            for operation in item.values():
                if isinstance(operation, dict) and "operationId" in operation:
                    index[operation["operationId"]] = {
                        int(status): response
                        for status, response in operation.get("responses", {}).items()
                        if str(status).isdigit()
                    }
        _RESPONSES[key] = index
    return _RESPONSES[key].get(operation_id, {})


def declared_statuses(sandbox: Sandbox, operation_id: str) -> frozenset[int]:
    return frozenset(_responses(sandbox, operation_id))


def preferred_answer(
    sandbox: Sandbox, operation_id: str, preference: Preference, allow: t.Callable[[], str | None] | None = None
) -> Answer:
    """The declared response ``preference`` asks for, with a body valid against its schema and
    the headers its status requires (:func:`_required_headers`; ``allow``: the request's
    ``Allow`` value)."""
    declared = _responses(sandbox, operation_id)
    errors = sandbox.profile.errors
    status = preference.status
    if status is None:
        named = [s for s, r in sorted(declared.items()) if preference.example in _example_names(r)]
        successes = [s for s in sorted(declared) if s < 400]
        status = (named or successes or sorted(declared) or [500])[0]
    listing = ", ".join(str(s) for s in sorted(declared))
    if status not in declared:
        return _refusal(sandbox, declared, f"{preference.origin}: code={status} is not declared for {operation_id} "
                                           f"(declared: {listing})")
    response = declared[status]
    try:
        body = response_example(response, preference.example, dynamic=preference.dynamic)
    except NoExample:
        names = ", ".join(_example_names(response)) or "none"
        return _refusal(sandbox, declared, f"{preference.origin}: example={preference.example} is not an example of "
                                           f"{operation_id}'s {status} response (examples: {names})")
    schema = response.get("content", {}).get("application/json", {}).get("schema")
    headers = _required_headers(sandbox, operation_id, status, allow)
    if body is None and schema is None:
        return NoContent, status, headers
    if schema is not None and (body is None or first_error(schema, body) is not None):
        body = _fallback_body(response, schema, status, errors)
    return body, status, headers


def _required_headers(
    sandbox: Sandbox, operation_id: str, status: int, allow: t.Callable[[], str | None] | None
) -> dict[str, str]:
    """The headers RFC 9110 requires on ``status``, with the values the sandbox's own answer of
    that status would carry: a 405's ``Allow`` (the routing 405's, ``errors.AllowedMethods``),
    a 401's ``WWW-Authenticate`` (the operation's challenge, as the access policy's 401 names it)."""
    if status == 405:
        methods = allow() if allow is not None else None
        return {"Allow": methods} if methods else {}
    if status == 401:
        return {"WWW-Authenticate": www_authenticate(sandbox.policy.challenge(operation_id))}
    return {}


def _fallback_body(response: dict, schema: dict, status: int, errors: t.Any) -> t.Any:
    """A generated body the schema refused: the contract's own example, else (an error status)
    the error format's body - which the response validation then checks like any other."""
    static = response_example(response, None)
    if static is not None and first_error(schema, static) is None:
        return static
    if status >= 400:
        return errors.render(status)
    return static


def _refusal(sandbox: Sandbox, declared: dict[int, dict], message: str) -> Answer:
    status = next((s for s in (400, 422, 404) if s in declared), 400)
    return error_response(status, message, errors=sandbox.profile.errors)


def _example_names(response: dict) -> list[str]:
    return list(response.get("content", {}).get("application/json", {}).get("examples", {}) or {})
