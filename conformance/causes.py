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
``taken_id_no_409``
    A positive create refused with a status the operation declares, where the body names an id
    a stored record already has (a read of it finds it) and the operation declares no 409 (nor
    ``4XX`` nor ``default``): a conflict has no status of its own (Museum's ``POST
    /special-events`` with an ``eventId`` its examples already created gets its 400).
``inexpressible_positive``
    A positive case refused whose form body sends a field the schema makes an object or an
    array of objects: form encoding cannot nest, so what went on the wire is not the case that
    was generated (Petstore's ``tags: [{id, name}]`` went as ``tags=id&tags=name``).
``identical_templates``
    An ``Allow`` mismatch on a path that another path repeats with other parameter names
    (OpenAPI forbids such templates as identical): one URL, two method sets, no ``Allow`` fits
    the check of each (Discourse's ``/groups/{id}.json`` and ``/groups/{name}.json``).
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
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit

import jsonschema_rs

from timbrix_sandbox.contract.refs import resolve_refs
from timbrix_sandbox.contract.request_bodies import allowed_types, coerce_parameter, decode_form, is_array
from timbrix_sandbox.contract.shapes import flatten

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
    record_taken: t.Callable[[], bool | None] | None = None
    """Asked only by the rule that needs it: the create's body names an id a stored record
    already has (``None``: cannot tell)."""


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
    # A valid case refused with a client error the operation declares: a stand-in for one it does not.
    refused_as_declared = (
        exchange.check == "positive_data_acceptance"
        and exchange.positive is not False
        and status is not None
        and 400 <= status < 500
        and not undeclared
    )
    if (
        refused_as_declared
        and not _declares(keys, 404)
        and "{" in exchange.path
        and exchange.record_missing is not None
        and exchange.record_missing()
    ):
        why = f"{label} declares no 404: an unknown record can only be refused with a declared {status}"
        return Cause(CONTRACT, "unknown_record_no_404", why)
    if (
        refused_as_declared
        and not _declares(keys, 409)
        and exchange.record_taken is not None
        and exchange.record_taken()
    ):
        why = f"{label} declares no 409: a create of an id already taken can only be refused with a declared {status}"
        return Cause(CONTRACT, "taken_id_no_409", why)
    if (
        exchange.check == "positive_data_acceptance"
        and exchange.positive is not False
        and exchange.request is not None
        and _form_nests_objects(spec, raw, exchange.request)
    ):
        why = f"{label}: the valid case puts an object in a form field, which form encoding cannot carry"
        return Cause(CONTRACT, "inexpressible_positive", why)
    if exchange.check == "allow_header_conformance" and _identical_templates(spec, exchange.path):
        why = (
            f"{exchange.path} and another path differ only in their parameters' names, which OpenAPI forbids"
            " (identical templates): one URL, two method sets, no Allow value fits both"
        )
        return Cause(CONTRACT, "identical_templates", why)
    if (
        exchange.check == "negative_data_rejection"
        and exchange.request is not None
        and reads_back_valid(spec, raw, exchange.path, exchange.request)
    ):
        why = f"{label}: the negative case, encoded as sent, reads back as a valid request"
        return Cause(CONTRACT, "inexpressible_negative", why)
    return IMPLEMENTATIONS


def _identical_templates(spec: dict, template: str) -> bool:
    """Another path of the contract is ``template`` with other parameter names (OpenAPI 3.1
    §4.8.8: "Templated paths with the same hierarchy but different templated names MUST NOT
    exist as they are identical"; Discourse's ``/groups/{id}.json`` and ``/groups/{name}.json``)."""
    shape = re.sub(r"{[^}]+}", "{}", template)
    return any(p != template and re.sub(r"{[^}]+}", "{}", p) == shape for p in spec.get("paths") or {})


def _form_nests_objects(spec: dict, raw: dict, sent: Sent) -> bool:
    """A form body that sends a field whose schema is an object, or an array of objects: form
    encoding has no nesting, so what went on the wire is not the case that was generated
    (schemathesis writes Petstore's ``tags: [{id, name}]`` as ``tags=id&tags=name``)."""
    media = {k.lower(): v for k, v in sent.headers.items()}.get("content-type", "").split(";")[0].strip().lower()
    content = (resolve_refs(raw.get("requestBody") or {}, spec).get("content") or {}).get(media)
    if media != FORM or not isinstance(content, dict) or not sent.body:
        return False
    properties = flatten(content.get("schema") or {}).get("properties") or {}
    for name, _ in parse_qsl(sent.body.decode("utf-8", "replace"), keep_blank_values=True):
        field = flatten(properties.get(name) or {})
        items = flatten(field.get("items") or {}) if is_array(field) else {}
        if "object" in allowed_types(field) or "object" in allowed_types(items):
            return True
    return False


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
        return _form_valid(parse_qsl(sent.body.decode("utf-8", "replace"), keep_blank_values=True), schema)
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


def _form_valid(pairs: list[tuple[str, str]], schema: dict) -> bool:
    """The form read as the server reads it (``request_bodies.decode_form``: one reading for
    the sandbox and for this judgement), then validated."""
    return _validator(schema).is_valid(decode_form(pairs, schema))


def _validator(schema: dict) -> t.Any:
    # The contract was normalised by load_contract: integer formats are explicit bounds there.
    return jsonschema_rs.validator_for(schema)


def _text_valid(values: list[str], schema: dict) -> bool:
    """The parameter's text read as its schema says (``request_bodies.coerce_parameter``, as
    the server reads it) is valid for it."""
    value: t.Any = values if is_array(schema) else values[0] if len(values) == 1 else values
    return _validator(schema).is_valid(coerce_parameter(value, schema))
