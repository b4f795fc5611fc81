"""Custom schemathesis checks: the domain and behaviour layers of the conformance suite.

Registered with ``@schemathesis.check`` so they appear in reports next to the built-in ones
(failures are ST901 with the check's name). They judge any implementation: expectations come
from the ``cfdi`` oracle and from the request, never from the server's own answer.
"""

from __future__ import annotations

import json
import re
import typing as t
from urllib.parse import urlsplit

import httpx
import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance

from timbrix_sandbox.contract.records import record_key

from . import oracle

# Rules whose message the vendor documents word for word: an implementation must match them.
# Other rules' texts are the sandbox's own wording, so only the status and format are checked.
DOCUMENTED_MESSAGE_RULES = {"regimen_persona", "uso_persona", "uso_regimen"}


def operation_id(case) -> str:
    return case.operation.definition.raw.get("operationId", "")


def _json(response) -> t.Any:
    try:
        return json.loads(response.content)
    except ValueError:
        return None


def _is_positive(case) -> bool:
    meta = getattr(case, "meta", None)
    return bool(meta and meta.generation.mode.is_positive)


def _stored_customer(case, response) -> dict | None:
    """GET the customer the case addressed, with the same credentials (read-only)."""
    url = urlsplit(str(response.request.url))
    path = url.path
    headers = {}
    auth = response.request.headers.get("Authorization")
    if auth:
        headers["Authorization"] = auth
    reply = _get(f"{url.scheme}://{url.netloc}{path}", headers)
    body = _json(reply) if reply.status_code == 200 else None
    return body if isinstance(body, dict) else None


def _get(url: str, headers: dict[str, str]) -> httpx.Response:
    """A read-only follow-up request; the server failing it is a finding, not a crash."""
    try:
        return httpx.get(url, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        raise AssertionError(f"the server failed a follow-up GET {url}: {exc}") from None


INCONCLUSIVE = object()


def _expected(case, response) -> tuple[bool, t.Any]:
    """(applicable, expected violation) for a customer write whose body is a JSON object.

    The violation is ``INCONCLUSIVE`` when an update's record vanished before it could be
    read back (e.g. a concurrent worker deleted it): no verdict is better than a wrong one.
    """
    op = operation_id(case)
    if op not in (oracle.CREATE, oracle.UPDATE) or not isinstance(case.body, dict):
        return False, None
    stored = None
    if op == oracle.UPDATE:
        if not any(f in case.body for f in oracle.FISCAL_FIELDS):
            return True, None
        stored = _json(response) if 200 <= response.status_code < 300 else _stored_customer(case, response)
        if stored is None:
            return True, INCONCLUSIVE
    return True, oracle.expected_violation(op, case.body, stored, strict=_tracking.get("strict", False))


@schemathesis.check
def fiscal_rules(ctx, response, case) -> bool | None:
    """CFDI 4.0 rules: accepted writes satisfy them; schema-valid writes that break them are
    400 in the vendor format, with the documented message where the vendor documents one."""
    if response.status_code not in (200, 201, 400):
        return None
    applicable, expected = _expected(case, response)
    if not applicable or expected is INCONCLUSIVE:
        return None
    if response.status_code in (200, 201):
        if expected is not None:
            raise AssertionError(
                f"CFDI rule not enforced ({expected.rule}): the server accepted data SAT rejects: {expected.message}"
            )
        return None
    if not _is_positive(case):
        return None  # a schema-invalid body: a 400 is right whatever the reason
    if expected is None:
        raise AssertionError(
            "Valid fiscal data rejected: the CFDI oracle accepts this body, the server answered 400: "
            + str((_json(response) or {}).get("message"))
        )
    body = _json(response)
    if not isinstance(body, dict) or body.get("error") != "BAD_REQUEST" or body.get("statusCode") != 400:
        raise AssertionError(f"CFDI rejection not in the vendor error format: {response.content[:200]!r}")
    if expected.rule in DOCUMENTED_MESSAGE_RULES and body.get("message") != expected.message:
        raise AssertionError(
            f"Wrong CFDI message for {expected.rule}: expected {expected.message!r}, got {body.get('message')!r}"
        )
    return None


@schemathesis.check
def sat_catalogs(ctx, response, case) -> bool | None:
    """The catalog endpoints list exactly SAT's CFDI 4.0 codes for the query (compared by
    codigo and tipoPersona), and reject an unknown régimen with 400."""
    applicable, expected = oracle.expected_catalog(operation_id(case), dict(case.query or {}))
    if not applicable or not _is_positive(case) or response.status_code not in (200, 400):
        return None
    if expected is None:
        if response.status_code != 400:
            raise AssertionError(f"Unknown catalog value accepted: {case.query}")
        return None
    if response.status_code == 400:
        raise AssertionError(f"Valid catalog query rejected: {case.query}")
    body = _json(response)
    rows = (
        [(r.get("codigo"), r.get("tipoPersona")) for r in body if isinstance(r, dict)]
        if isinstance(body, list)
        else None
    )
    if rows is None or sorted(rows) != sorted(expected):  # the contract promises no order
        raise AssertionError(f"Catalog rows differ from SAT's for {case.query}: expected {expected}, got {rows}")
    return None


def _justified_400(case, response) -> bool:
    applicable, expected = _expected(case, response)
    if applicable:
        return expected is not None
    applicable, rows = oracle.expected_catalog(operation_id(case), dict(case.query or {}))
    return applicable and rows is None


@schemathesis.check
def fiscal_positive_data_acceptance(ctx, response, case) -> bool | None:
    """schemathesis' ``positive_data_acceptance``, except for a 400 that the ``cfdi`` oracle
    justifies: a request can satisfy the JSON Schema and still break SAT rules the schema
    cannot express (the matrix, real RFC dates, c_CodigoPostal, unknown régimen codes).
    Every other case goes to the built-in check unchanged; ``fiscal_rules`` and
    ``sat_catalogs`` verify those 400s are right."""
    if response.status_code == 400 and _is_positive(case) and _justified_400(case, response):
        return None
    return positive_data_acceptance(ctx, response, case)


@schemathesis.check
def read_after_write(ctx, response, case) -> bool | None:
    """An acknowledged create or update is what a following GET returns."""
    op = operation_id(case)
    if _generic:
        return _generic_read_after_write(case, response)
    if op not in (oracle.CREATE, oracle.UPDATE) or response.status_code not in (200, 201):
        return None
    written = _json(response)
    if not isinstance(written, dict) or "id" not in written:
        return None
    url = urlsplit(str(response.request.url))
    item = url.path if op == oracle.UPDATE else f"{url.path.rstrip('/')}/{written['id']}"
    headers = {}
    if response.request.headers.get("Authorization"):
        headers["Authorization"] = response.request.headers["Authorization"]
    reply = _get(f"{url.scheme}://{url.netloc}{item}", headers)
    if reply.status_code != 200:
        raise AssertionError(f"Acknowledged write not readable: GET {item} answered {reply.status_code}")
    if _json(reply) != written:
        raise AssertionError(f"GET after write differs from the write's response: {reply.text[:300]}")
    return None


_tracking: dict[str, t.Any] = {}


def start_tracking(
    created: set[tuple[str, str]],
    organization_id: str,
    fallback: str,
    existing: set[str] = frozenset(),
    strict: bool = False,
) -> None:
    """Record every customer created during a run (so the runner can delete them all), and
    guard writes (see :func:`before_call`). ``existing`` are the ids that were there before
    the run: never counted as created, never written to, never deleted."""
    _tracking.update(created=created, organization=organization_id, fallback=fallback, existing=existing, strict=strict)


def stop_tracking() -> None:
    _tracking.clear()


@schemathesis.check
def track_created(ctx, response, case) -> bool | None:
    """Bookkeeping, not a judgement: remember ids of customers created by fuzzing."""
    if _generic:
        return _generic_track_created(case, response)
    created = _tracking.get("created")
    if created is not None and operation_id(case) == oracle.CREATE and response.status_code == 201:
        body = _json(response)
        if isinstance(body, dict) and isinstance(body.get("id"), str):
            if body["id"] in _tracking["existing"]:
                raise AssertionError(f"POST answered 201 with the id of a customer that existed before: {body['id']}")
            created.add(((case.path_parameters or {}).get("organizationId", _tracking["organization"]), body["id"]))
    return None


def _customers_in(body: t.Any) -> list[dict]:
    items = body if isinstance(body, list) else [body]
    return [c for c in items if isinstance(c, dict) and "organizationId" in c]


@schemathesis.check
def tenant_scoped_bodies(ctx, response, case) -> bool | None:
    """Every customer a response carries belongs to the organization in the path: a list or
    a read that leaks another tenant's customers is a violation even with the right status."""
    if not 200 <= response.status_code < 300:
        return None
    organization = (case.path_parameters or {}).get("organizationId")
    if organization is None:
        return None
    foreign = [c.get("id") for c in _customers_in(_json(response)) if c.get("organizationId") != organization]
    if foreign:
        raise AssertionError(f"Response carries customers of another organization: {foreign[:5]}")
    return None


WRITES = {oracle.UPDATE, "CustomersController_remove"}
_OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")


@schemathesis.hook
def before_call(context, case, kwargs):
    """The last line of the safety promise (active only during a conformance run): whatever a
    phase generated - an example id from the contract, a guessed id - a PUT or DELETE is only
    sent to a customer this run created; anything else goes to the run's own sacrificial
    customer instead. (schemathesis allows this hook only globally, hence the module state.)"""
    if _generic:
        _generic_guard(case)
        return
    created = _tracking.get("created")
    if created is None or operation_id(case) not in WRITES:
        return
    params = case.path_parameters or {}
    org, customer = params.get("organizationId"), params.get("customerId")
    # Only a well-formed id in our organization can address an existing record; malformed ids
    # (negative cases) are left alone so the server's rejection of them is still tested.
    could_exist = org == _tracking["organization"] and isinstance(customer, str) and _OBJECT_ID.match(customer)
    if could_exist and (org, customer) not in created:
        case.path_parameters = {**params, "customerId": _tracking["fallback"]}


# -- any contract (see conformance/generic.py): the same guarantees, driven by the profile --
_generic: dict[str, t.Any] = {}


def start_generic_tracking(profile, resource, created: set[str], anchor: str, victim: str, existing: set[str]) -> None:
    """Like :func:`start_tracking`, for a run of ``conformance/generic.py``."""
    _generic.update(
        profile=profile, resource=resource, created=created, anchor=anchor, victim=victim, existing=existing
    )


def stop_generic_tracking() -> None:
    _generic.clear()


def _generic_action(case) -> str | None:
    operation = _generic["profile"].operations.get(operation_id(case))
    return operation.action if operation is not None and operation.resource == _generic["resource"].name else None


def _generic_record(response) -> dict | None:
    record = _generic["profile"].unwrap(_json(response))
    return record if isinstance(record, dict) else None


def _generic_track_created(case, response) -> None:
    if _generic_action(case) != "create" or not 200 <= response.status_code < 300:
        return None
    record = _generic_record(response)
    if record is None or _generic["resource"].id_field not in record:
        return None
    key = str(record[_generic["resource"].id_field])
    if key in _generic["existing"]:
        raise AssertionError(f"a create answered with the id of a record that existed before: {key}")
    _generic["created"].add(key)
    return None


def _generic_read_after_write(case, response) -> None:
    action = _generic_action(case)
    if action not in ("create", "update") or not 200 <= response.status_code < 300:
        return None
    written = _generic_record(response)
    resource = _generic["resource"]
    if written is None or resource.id_field not in written:
        return None
    url = urlsplit(str(response.request.url))
    item = url.path if action == "update" else f"{url.path.rstrip('/')}/{written[resource.id_field]}"
    headers = {k: v for k, v in response.request.headers.items() if k.lower() not in _HOP_HEADERS}
    reply = _get(f"{url.scheme}://{url.netloc}{item}", headers)
    if reply.status_code != 200:
        raise AssertionError(f"Acknowledged write not readable: GET {item} answered {reply.status_code}")
    if _generic_record(reply) != written:
        raise AssertionError(f"GET after write differs from the write's response: {reply.text[:300]}")
    return None


_HOP_HEADERS = {"content-length", "content-type", "host", "transfer-encoding", "connection", "accept-encoding"}


def _generic_guard(case) -> None:
    """Never write to or delete a record that predates the run: such a PUT goes to the run's
    anchor, such a DELETE to its sacrificial record."""
    action = _generic_action(case)
    if action not in ("update", "delete"):
        return
    name = _generic["resource"].id_param
    params = case.path_parameters or {}
    value = params.get(name)
    if value is not None and record_key(value) in _generic["existing"]:
        case.path_parameters = {**params, name: _generic["anchor" if action == "update" else "victim"]}


# The checks the runner attributes to the domain layer (the rest are schemathesis built-ins).
DOMAIN_CHECKS = [fiscal_rules, sat_catalogs, fiscal_positive_data_acceptance, read_after_write, tenant_scoped_bodies]
REPLACED_BUILTINS = [positive_data_acceptance]
