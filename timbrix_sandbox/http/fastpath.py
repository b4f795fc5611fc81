"""A compiled fast path for well-formed requests, in front of the Connexion stack.

Profiling GET-by-id (py-spy, see ``bench/``) put most of the time in Connexion's per-request
machinery: a dozen ASGI layers (Swagger UI router, routing, security, validation, response
validation, context) and the decorator chain around each handler. This middleware compiles the
*same contract* once, per operation, into: a path regex, the parameter and body validators, the
security requirement and the response validators - and serves a request directly when it is
*fully valid*:

* a known method and path, no undeclared, repeated or missing required query parameter, valid parameters
  (path, query and header; a number or an integer in plain decimal digits, as Connexion
  coerces it, anything more unusual is Connexion's);
* credentials the access policy accepts for one of the operation's security requirements
  (any scheme type, read by the same reader the Connexion path uses), whose user is a member
  of ``{organizationId}`` and holds the requirement's scopes, or an open operation;
* for a body, ``Content-Type: application/json`` and a body that parses and validates.

Anything else - every error case, every ambiguity - is handed, untouched (the body replayed),
to the full Connexion stack, so all error responses keep coming from one place. The handlers
are the same functions (resolved by operationId), and every response is still validated
against the contract before it leaves: a violation becomes the same declared 500 Connexion
would send. ``tests/`` and the conformance suite run against this path.

The fast path is off when faults are injected (faults hook into the Connexion stack), or with
``TIMBRIX_SANDBOX_FASTPATH=0``.
"""

from __future__ import annotations

import json
import re
import typing as t
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import jsonschema_rs
from connexion import NoContent
from connexion.exceptions import BadRequestProblem
from connexion.json_schema import resolve_refs
from connexion.lifecycle import ConnexionResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from timbrix_sandbox.contract.model import ErrorFormat, is_json_media
from timbrix_sandbox.contract.paths import template_pattern
from timbrix_sandbox.contract.security import ContractSecurity
from timbrix_sandbox.engine.crud import CrudOperation
from timbrix_sandbox.engine.policy import Refusal
from timbrix_sandbox.engine.sandbox import Sandbox
from timbrix_sandbox.http.access import credential_reader
from timbrix_sandbox.http.body_limit import MAX_BODY_BYTES
from timbrix_sandbox.http.errors import error_body
from timbrix_sandbox.http.oas31 import compiled_validator, first_error, parse_json_body
from timbrix_sandbox.http.operations import answer, authorize, response_bytes
from timbrix_sandbox.http.rendering import AnswerCheck, Memo

METHODS = ("get", "put", "post", "delete", "patch")
JSON_TYPES = {b"application/json", b"application/json; charset=utf-8", b"application/json;charset=utf-8"}


Check = tuple[str | None, "jsonschema_rs.Validator"]
"""A parameter's kind (how its text is coerced, ``None``: not on this path) and its validator."""


@dataclass
class Operation:
    method: str
    pattern: re.Pattern
    operation_id: str
    path_params: dict[str, dict]
    query_params: dict[str, dict]
    credential_query: frozenset[str]
    """Query parameters carrying an API key: read by the policy, not handed to the handler."""
    body_schema: dict | None
    body_required: bool
    responses: dict[int | str, dict | None] = field(default_factory=dict)
    """Response schemas by status, and by ``"4XX"``-style ranges and ``"DEFAULT"``."""
    header_params: dict[bytes, dict] = field(default_factory=dict)
    """Declared header parameters by their lower-case ASGI name."""
    required_query: frozenset[str] = frozenset()
    """Query parameters the request must carry (without one, Connexion answers the 400)."""
    checks: dict[tuple[str, str], Check] = field(init=False, default_factory=dict)
    """``(location, name) -> (kind, validator)`` of each path, query and header parameter."""
    response_checks: dict[int | str, AnswerCheck | None] = field(init=False, default_factory=dict)
    """The checks (and renderers) of ``responses``, by the same keys (``rendering.py``)."""
    body_validator: jsonschema_rs.Validator | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        # Compiled once here, not looked up per request: the validators the Connexion path
        # uses too (``oas31.compiled_validator``, one cache), and each parameter's coercion.
        params = [("path", self.path_params), ("query", self.query_params)]
        params.append(("header", {name.decode("latin-1"): p for name, p in self.header_params.items()}))
        for location, declared in params:
            for name, param in declared.items():
                schema = param.get("schema", {})
                self.checks[(location, name)] = (_kind(schema), compiled_validator(schema))
        self.response_checks = {
            status: AnswerCheck(schema) if schema is not None else None for status, schema in self.responses.items()
        }
        self.body_validator = compiled_validator(self.body_schema) if self.body_schema is not None else None

    def response_key(self, status: int) -> int | str | None:
        """The key of ``responses`` that ``status`` answers under: itself, its ``4XX``-style
        range or ``DEFAULT`` (``None``: not declared)."""
        for key in (status, f"{status // 100}XX", "DEFAULT"):
            if key in self.responses:
                return key
        return None

    def check_for(self, status: int) -> AnswerCheck | None:
        key = self.response_key(status)
        return self.response_checks[key] if key is not None else None

    def answers_views(self, status: int, record_path: tuple[str, ...], memo: Memo) -> None:
        """Answers of ``status`` carry stored views at ``record_path``: check and render them
        from the views' memos."""
        key = self.response_key(status)
        schema = self.responses[key] if key is not None else None
        if schema is not None:
            self.response_checks[key] = AnswerCheck(schema, record_path, memo)

    def declared(self, status: int) -> bool:
        return self.response_key(status) is not None

    def schema_for(self, status: int) -> dict | None:
        key = self.response_key(status)
        return self.responses[key] if key is not None else None


def compile_operations(
    contract: dict, base_path: str, served: t.Container[str], security: ContractSecurity
) -> list[Operation]:
    spec = resolve_refs(contract)
    operations = []
    for path, item in spec.get("paths", {}).items():
        shared = {(p["in"], p["name"]): p for p in item.get("parameters", [])}
        for method in METHODS:
            if method not in item:
                continue
            op = item[method]
            if op.get("operationId") not in served:
                continue
            params = {**shared, **{(p["in"], p["name"]): p for p in op.get("parameters", [])}}
            if any(location not in ("path", "query", "header") for location, _ in params):
                continue  # cookie parameters: leave to Connexion
            body = op.get("requestBody")
            body_schema = None
            if body is not None:
                content = body.get("content", {})
                if set(content) != {"application/json"}:
                    continue
                body_schema = content["application/json"].get("schema", {})
            responses: dict[int | str, dict | None] = {}
            plain_json = True
            for status, response in op.get("responses", {}).items():
                status = str(status)
                content = response.get("content") or {}
                if status.startswith("2") and set(content) - {"application/json"}:
                    plain_json = False  # other media types: negotiated on the Connexion path
                schema = content.get("application/json", {}).get("schema")
                responses[int(status) if status.isdigit() else status.upper()] = schema
            if not plain_json:
                continue
            try:
                operation = Operation(
                    method=method.upper(),
                    pattern=template_pattern(base_path + path, named=True),
                    operation_id=op["operationId"],
                    path_params={name: p for (loc, name), p in params.items() if loc == "path"},
                    query_params={name: p for (loc, name), p in params.items() if loc == "query"},
                    credential_query=security.query_fields(op["operationId"]),
                    body_schema=body_schema,
                    body_required=bool(body and body.get("required")),
                    responses=responses,
                    header_params={
                        name.lower().encode("latin-1"): p for (loc, name), p in params.items() if loc == "header"
                    },
                    required_query=frozenset(
                        name for (loc, name), p in params.items() if loc == "query" and p.get("required")
                    ),
                )
            except ValueError:  # a schema the validator cannot compile: Connexion answers it
                continue
            operations.append(operation)
    return operations


class FastPathMiddleware:
    def __init__(self, app: ASGIApp, operations: list[Operation], sandbox: Sandbox) -> None:
        self.app = app
        self.sandbox = sandbox
        self.policy = sandbox.policy
        # A contract that names its tenant in a header: the policy must see the headers (an
        # operation that declares the header as a parameter never takes the fast path anyway).
        self.tenant_header = bool(sandbox.profile.tenant.get("header"))
        self.by_method: dict[str, list[Operation]] = {}
        for operation in operations:
            self.by_method.setdefault(operation.method, []).append(operation)
            served = sandbox.operations.get(operation.operation_id)
            views = served.shared_views() if isinstance(served, CrudOperation) else None
            if views is not None:
                operation.answers_views(served.operation.status, *views)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for operation in self.by_method.get(scope["method"], ()):
            match = operation.pattern.fullmatch(scope["path"])
            if match:
                break
        else:
            await self.app(scope, receive, send)
            return
        accepted = self._arguments(operation, match.groupdict(), scope)
        if accepted is None:
            await self.app(scope, receive, send)
            return
        tenant, params = accepted
        body = None
        if operation.body_schema is not None:
            raw, replay = await _read_body(scope, receive)
            body = self._body(operation, scope, raw)
            if body is _FALLBACK:
                await self.app(scope, replay, send)
                return
        self.sandbox.fast_path_served += 1
        result = await answer(self.sandbox, operation.operation_id, tenant, params, body)
        await _respond(operation, result, send, self.sandbox.profile.errors)

    def _arguments(
        self, operation: Operation, path_values: dict[str, str], scope: Scope
    ) -> tuple[str | None, dict[str, t.Any]] | None:
        """The tenant and the handler's parameters if the request line and headers are fully
        valid and the access policy lets the caller in, else ``None`` (the Connexion stack then
        answers, with the error)."""
        checks = operation.checks
        for name, value in path_values.items():
            kind, validator = checks[("path", name)]
            value = _coerced(kind, value)
            if value is _FALLBACK or not validator.is_valid(value):
                return None
            path_values[name] = value
        raw_query = scope.get("query_string", b"")
        query = parse_qsl(raw_query.decode("latin-1"), keep_blank_values=True) if raw_query else []
        names = [name for name, _ in query]
        if len(set(names)) != len(names) or not operation.required_query.issubset(names):
            return None
        params: dict[str, t.Any] = dict(path_values)
        for name, value in query:
            if name in operation.credential_query:
                continue
            check = checks.get(("query", name))
            if check is None:
                return None  # undeclared: Connexion's strict validation answers it
            value = _coerced(check[0], value)
            if value is _FALLBACK or not check[1].is_valid(value):
                return None
            params[name] = value
        if operation.header_params and not _headers_valid(operation, scope["headers"]):
            return None
        try:
            caller = self.policy.authenticate(operation.operation_id, credential_reader(scope))
            headers = Headers(scope=scope) if self.tenant_header else _NO_HEADERS
            tenant = authorize(self.sandbox, operation.operation_id, caller, params, headers)
        except Refusal:
            return None
        return tenant, params

    def _body(self, operation: Operation, scope: Scope, raw: bytes | None) -> t.Any:
        if raw is None or not raw:
            return _FALLBACK
        content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"").lower()
        if content_type not in JSON_TYPES:
            return _FALLBACK
        try:
            body = parse_json_body(raw, "utf-8")
        except BadRequestProblem:
            return _FALLBACK
        if not operation.body_validator.is_valid(body):
            return _FALLBACK
        return body


_FALLBACK = object()
_NO_HEADERS: t.Mapping[str, str] = {}
_COMPOSED = {"anyOf", "oneOf", "allOf", "$ref", "not"}
_INTEGER = re.compile(r"-?[0-9]{1,18}")
_NUMBER = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,15})?")


def _kind(schema: dict) -> str | None:
    """How this path coerces a parameter of ``schema`` (``None``: a form it does not repeat)."""
    kind = schema.get("type", "string" if not _COMPOSED.intersection(schema) else None)
    return kind if kind in ("string", "integer", "number") else None


def _coerced(kind: str | None, value: str) -> t.Any:
    """A parameter's value as Connexion hands it to the handler (``"7"`` is ``7`` for an
    integer, ``7.0`` for a number), or ``_FALLBACK`` for a form whose coercion this path does
    not repeat (exponents, booleans, arrays, 3.1 type lists, ``anyOf``...:
    ``request_bodies.coerce_parameter`` reads those on the Connexion path)."""
    if kind == "string":
        return value
    if kind == "integer" and _INTEGER.fullmatch(value):
        return int(value)
    if kind == "number" and _NUMBER.fullmatch(value):
        return float(value)
    return _FALLBACK


def _headers_valid(operation: Operation, headers: t.Iterable[tuple[bytes, bytes]]) -> bool:
    """Every declared header parameter present if required, sent once, and valid."""
    declared = operation.header_params
    sent: dict[bytes, str] = {}
    for name, value in headers:
        if name in declared:
            if name in sent:
                return False
            sent[name] = value.decode("latin-1")
    for name, param in declared.items():
        value = sent.get(name)
        if value is None:
            if param.get("required"):
                return False
            continue
        kind, validator = operation.checks[("header", name.decode("latin-1"))]
        value = _coerced(kind, value)
        if value is _FALLBACK or not validator.is_valid(value):
            return False
    return True


async def _read_body(scope: Scope, receive: Receive) -> tuple[bytes | None, Receive]:
    """The whole body (``None`` if over the limit or without Content-Length), and a receive
    channel that replays exactly what was read, for the fallback."""
    length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
    messages: list[Message] = []
    raw: bytes | None = None
    if length is not None and length.isdigit() and int(length) <= MAX_BODY_BYTES:
        chunks = []
        more = True
        while more:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw = b"".join(chunks)
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return raw, replay


async def _respond(operation: Operation, result: t.Any, send: Send, errors: ErrorFormat) -> None:
    refused = isinstance(result, ConnexionResponse)
    content_type = "application/json"
    extra: dict[str, str] = {}  # a preferred answer's (body, status, headers): a 405's Allow, a 401's challenge
    valid = True  # the answer conforms to the schema its status declares (a refusal's is checked below)
    if refused:
        status = result.status_code
        payload = result.body if isinstance(result.body, bytes) else str(result.body or "").encode()
        # A refusal goes out in the error media type the operation declares (``errors.py``).
        content_type = result.content_type or content_type
        data = json.loads(payload) if payload and is_json_media(content_type) else None
    else:
        data, status = result[0], result[1]
        if len(result) == 3:
            extra = result[2]
        empty = data is NoContent
        if status == 204 or empty:
            payload = b""
        else:
            check = operation.check_for(status)
            payload, valid = check.answer(data) if check is not None else (response_bytes(data), True)
        if empty:
            data = None
    if status != 204:
        if refused and payload:
            check = operation.check_for(status)
            valid = check is None or check.valid(data)
        if not operation.declared(status) and not refused:
            # (a refusal's status is already the declared one nearest to it, or, for an
            # operation that declares no error at all, the refusal's own)
            message = f"Response status {status} is not declared for this operation"
            status, data = 500, error_body(500, message, errors=errors)
            payload, content_type, extra = json.dumps(data).encode(), "application/json", {}
        elif not valid:
            error = first_error(operation.schema_for(status), data)
            if error is not None:
                message = f"Response body does not conform to specification. {error}"
                status, payload = 500, json.dumps(error_body(500, message, errors=errors)).encode()
                content_type, extra = "application/json", {}
    # Header for header what the Connexion path sends (a 204 there carries a content-type and
    # no content-length), so clients cannot tell which path answered.
    headers = [(b"content-type", content_type.encode("latin-1"))]
    if status != 204:
        headers.append((b"content-length", str(len(payload)).encode()))
    headers += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in extra.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
