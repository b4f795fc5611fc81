"""Whose a violation is: the implementation's, or the contract's.

Some violations no implementation can avoid, because the contract leaves it no conformant
answer: Twilio declares only 200/201/204 on operations that have security and path ids, so a
request without credentials, an invalid form or an unknown Sid has no declared status to get.
Each violation is still listed and still fails the run (the user must know that their contract
cannot be met), but it carries ``cause: "contract"`` and a one-line ``why``, and the reports
count the two apart. The rules read only the contract and the exchange (the request as it was
sent, the status answered, a read of the record it names), so they judge any implementation
alike; each is narrow, and whatever no rule claims is the implementation's:

``no_client_error``
    An undeclared 4xx where the operation declares no client error at all (no 4xx, no ``4XX``,
    no ``default``): every refusal it could make is undeclared.
``no_401``
    A 401 to a request that did not carry the run's valid credentials, on an operation with
    security that declares no 401 (nor ``4XX`` nor ``default``).
``unknown_record_no_404``
    A positive case refused with a status the operation declares, where the case names a
    record that does not exist (a read of it finds nothing) and the operation declares no 404
    (nor ``4XX`` nor ``default``): "not found" has no status of its own, so any refusal reads as
    "valid data rejected" (Conduit's ``GET /profiles/{username}`` answers 422 to an unknown name).
``inexpressible_negative``
    A negative case accepted where the request, read back the way its encoding carries it
    (form fields, query, path and header parameters are text), is valid for the contract:
    ``photoUrls=AAA`` in a form is also a one-element array, ``5`` for a string is ``"5"``. The
    server received a valid request; the violation cannot be expressed in that encoding.
"""

from __future__ import annotations

import dataclasses
import json
import re
import typing as t
from urllib.parse import parse_qs, unquote, urlsplit

import jsonschema_rs

from timbrix_sandbox.contract.refs import resolve_refs

CONTRACT, IMPLEMENTATION = "contract", "implementation"
UNDECLARED_STATUS_CHECKS = frozenset({"status_code_conformance", "response_conformance"})
"""Checks whose failure can be an answered status the operation does not declare."""
FORM = "application/x-www-form-urlencoded"


@dataclasses.dataclass(frozen=True)
class Cause:
    cause: str
    rule: str | None = None
    why: str = ""


IMPLEMENTATIONS = Cause(IMPLEMENTATION)


@dataclasses.dataclass
class Exchange:
    """What a rule may look at: the failed check, the operation, the request and its answer."""

    check: str
    method: str
    path: str
    """The operation's path template (``/pets/{id}``)."""
    status: int | None
    positive: bool | None = None
    """A case schemathesis generated as valid (``None``: not a generated case)."""
    credentialed: bool = True
    """The request carried the run's valid credentials."""
    record_missing: t.Callable[[], bool | None] | None = None
    """Asked only by the rule that needs it: a read says the record the case names does not
    exist (``None``: cannot tell)."""
    request: Sent | None = None


@dataclasses.dataclass(frozen=True)
class Sent:
    """A request as it went on the wire."""

    url: str
    headers: t.Mapping[str, str]
    body: bytes | None


def classify(spec: dict, exchange: Exchange) -> Cause:
    """The cause of one violation (:data:`IMPLEMENTATIONS` unless a rule claims it)."""
    raw = _operation(spec, exchange.method, exchange.path)
    if raw is None:
        return IMPLEMENTATIONS
    keys = {str(k).upper() for k in (raw.get("responses") or {})}
    status = exchange.status
    label = f"{exchange.method.upper()} {exchange.path}"
    undeclared = status is not None and not _declares(keys, status)
    if exchange.check in UNDECLARED_STATUS_CHECKS and undeclared and 400 <= t.cast(int, status) < 500:
        if not any(k.startswith("4") for k in keys) and "DEFAULT" not in keys:
            why = f"{label} declares no client error (no 4xx, 4XX or default): a refused request gets {status}"
            return Cause(CONTRACT, "no_client_error", why)
        if status == 401 and not exchange.credentialed and _secured(spec, raw):
            why = f"{label} has security but declares no 401: a request without valid credentials gets 401"
            return Cause(CONTRACT, "no_401", why)
    if (
        exchange.check == "positive_data_acceptance"
        and exchange.positive is not False
        and status is not None
        and 400 <= status < 500
        and not undeclared
        and not _declares(keys, 404)
        and "{" in exchange.path
        and exchange.record_missing is not None
        and exchange.record_missing()
    ):
        why = f"{label} declares no 404: an unknown record can only be refused with a declared {status}"
        return Cause(CONTRACT, "unknown_record_no_404", why)
    if (
        exchange.check == "negative_data_rejection"
        and exchange.request is not None
        and reads_back_valid(spec, raw, exchange.path, exchange.request)
    ):
        why = f"{label}: the negative case, encoded as sent, reads back as a valid request"
        return Cause(CONTRACT, "inexpressible_negative", why)
    return IMPLEMENTATIONS


def _declares(keys: set[str], status: int) -> bool:
    return bool({str(status), f"{str(status)[0]}XX", "DEFAULT"} & keys)


def _operation(spec: dict, method: str, path: str) -> dict | None:
    item = (spec.get("paths") or {}).get(path)
    operation = item.get(method.lower()) if isinstance(item, dict) else None
    return operation if isinstance(operation, dict) else None


def _secured(spec: dict, raw: dict) -> bool:
    """The operation requires credentials: its own security (or the document's) names a scheme."""
    requirements = raw.get("security", spec.get("security")) or []
    return bool(requirements) and all(bool(r) for r in requirements)


# -- reading a request back as its encoding carries it ----------------------------------------


def reads_back_valid(spec: dict, raw: dict, template: str, sent: Sent) -> bool:
    """Every parameter and a form body of ``sent``, read as text the way a server reads it
    (by each schema), is valid for the contract. A JSON body is exactly what it says and is
    judged as it is; another media type cannot be read back (``False``)."""
    item = (spec.get("paths") or {}).get(template) or {}
    declared = resolve_refs([*(item.get("parameters") or []), *(raw.get("parameters") or [])], spec)
    url = urlsplit(sent.url)
    in_path = path_values(template, url.path)
    if in_path is None:
        return False
    query = parse_qs(url.query, keep_blank_values=True)
    headers = {k.lower(): v for k, v in sent.headers.items()}
    for param in declared:
        where, name, schema = param.get("in"), param.get("name", ""), param.get("schema") or {}
        if where == "path":
            values = [in_path[name]] if name in in_path else []
        elif where == "query":
            values = query.get(name, [])
        elif where == "header":
            values = [headers[name.lower()]] if name.lower() in headers else []
        else:
            continue
        if not values:
            if param.get("required"):
                return False
            continue
        if not _text_valid(values, schema):
            return False
    body = resolve_refs(raw.get("requestBody") or {}, spec)
    content = body.get("content") or {}
    media = headers.get("content-type", "").split(";")[0].strip().lower()
    if not sent.body:
        return not body.get("required")
    if media not in content:
        return False
    schema = content[media].get("schema") or {}
    if media == FORM:
        return _form_valid(parse_qs(sent.body.decode("utf-8", "replace"), keep_blank_values=True), schema)
    if "json" in media:
        try:
            return _validator(schema).is_valid(json.loads(sent.body))
        except (ValueError, jsonschema_rs.ValidationError):
            return False
    return False


def path_values(template: str, path: str) -> dict[str, str] | None:
    """The path parameters' values (``/pets/{id}`` against ``/api/pets/7``: ``{"id": "7"}``);
    the base path before the template is skipped."""
    names = re.findall(r"{([^}]+)}", template)
    pattern = re.sub(r"\\{[^}]+\\}", "([^/]*)", re.escape(template)) + "$"
    found = re.search(pattern, path)
    return {n: unquote(v) for n, v in zip(names, found.groups(), strict=True)} if found else None


def _form_valid(fields: dict[str, list[str]], schema: dict) -> bool:
    properties = schema.get("properties") or {}
    if any(name not in fields for name in schema.get("required") or []):
        return False
    for name, values in fields.items():
        sub = properties.get(name)
        if sub is None:
            extra = schema.get("additionalProperties", True)
            if extra is False:
                return False
            sub = extra if isinstance(extra, dict) else {}
        if not _text_valid(values, sub):
            return False
    return True


INTEGER_FORMATS = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


def _bounded(node: t.Any) -> t.Any:
    """The schema with the ranges its ``int32``/``int64`` formats imply made explicit (JSON
    Schema validators do not know those formats; schemathesis generates past them)."""
    if isinstance(node, list):
        return [_bounded(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _bounded(value) for key, value in node.items()}
    bounds = INTEGER_FORMATS.get(out.get("format")) if isinstance(out.get("format"), str) else None
    if bounds is not None:
        out.setdefault("minimum", bounds[0])
        out.setdefault("maximum", bounds[1])
    return out


def _validator(schema: dict) -> t.Any:
    return jsonschema_rs.validator_for(_bounded(schema))


def _text_valid(values: list[str], schema: dict) -> bool:
    """Some reading of these text values, as the schema's types allow, is valid for it."""
    validator = _validator(schema)
    return any(validator.is_valid(candidate) for candidate in _readings(values, schema))


def _readings(values: list[str], schema: dict) -> list[t.Any]:
    kinds = _kinds(schema)
    readings: list[t.Any] = []
    if "array" in kinds or not kinds:
        items = schema.get("items") or {}
        readings.append([_scalar(v, items) for v in values])
    if len(values) == 1:
        readings += _scalars(values[0], kinds)
    return readings


def _scalar(text: str, schema: dict) -> t.Any:
    return next(iter(_scalars(text, _kinds(schema))), text)


def _scalars(text: str, kinds: set[str]) -> list[t.Any]:
    out: list[t.Any] = []
    if "integer" in kinds and re.fullmatch(r"-?[0-9]+", text):
        out.append(int(text))
    if "number" in kinds and re.fullmatch(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?", text):
        out.append(float(text))
    if "boolean" in kinds and text in ("true", "false"):
        out.append(text == "true")
    if kinds & {"object", "array"}:
        try:
            out.append(json.loads(text))
        except ValueError:
            pass
    out.append(text)
    return out


def _kinds(schema: dict) -> set[str]:
    kind = schema.get("type")
    kinds = set(kind) if isinstance(kind, list) else {kind} if kind else set()
    for part in (*schema.get("allOf", []), *schema.get("anyOf", []), *schema.get("oneOf", [])):
        if isinstance(part, dict):
            kinds |= _kinds(part)
    return kinds
