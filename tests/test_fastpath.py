"""The compiled fast path answers exactly like the full Connexion stack: same statuses, same
bodies, same stored state, for valid requests and for every kind of invalid one (which it
hands over to Connexion)."""

from __future__ import annotations

import json
import re

import pytest
from conftest import (
    DOCS_CUSTOMER,
    LOCAL,
    MICHAEL,
    PRINCE,
    PRINCE_CUSTOMER,
    TOBY,
    VALID_CREATE,
    customer_url,
    customers_url,
)

from timbrix_sandbox.http.app import create_app
from timbrix_sandbox.profiles.sandboxes import make_sandbox

JSON = {**MICHAEL, "Content-Type": "application/json"}
VOLATILE = re.compile(r'"(id|createdAt|updatedAt)": ?"[^"]*"')

REQUESTS = [
    ("GET", customers_url(), MICHAEL, None),
    ("GET", customer_url(), MICHAEL, None),
    ("GET", customer_url("0123456789abcdef01234567"), MICHAEL, None),
    ("GET", customer_url(PRINCE_CUSTOMER), MICHAEL, None),
    ("GET", customer_url(), TOBY, None),
    ("GET", customer_url(), {}, None),
    ("GET", customer_url(), {"Authorization": "Bearer nope"}, None),
    ("GET", customer_url("zzz"), MICHAEL, None),
    ("GET", customers_url() + "?page=1", MICHAEL, None),
    ("GET", customers_url(PRINCE), MICHAEL, None),
    ("POST", customers_url(), JSON, json.dumps(VALID_CREATE)),
    ("POST", customers_url(), JSON, json.dumps({**VALID_CREATE, "taxSystem": "621"})),
    ("POST", customers_url(), JSON, json.dumps({**VALID_CREATE, "extra": 1})),
    ("POST", customers_url(), {**MICHAEL, "Content-Type": "text/plain"}, json.dumps(VALID_CREATE)),
    ("POST", customers_url(), JSON, "{broken"),
    ("PUT", customer_url(), JSON, json.dumps({"legalName": "Dunder Mifflin Inc"})),
    ("PUT", customer_url(), JSON, json.dumps({"defaultInvoiceUse": "D01"})),
    ("PUT", customer_url(), JSON, json.dumps({})),
    ("PUT", customer_url(), JSON, json.dumps({"phone": None, "addressInterior": "7"})),
    ("PUT", customer_url(), JSON, '{"legalName": "\\ud800"}'),
    ("PUT", customer_url("0123456789abcdef01234567"), JSON, json.dumps({"legalName": "x"})),
    ("PUT", customer_url(), MICHAEL, ""),
    ("DELETE", customer_url("65a1f0c2e4b0a1b2c3d4e501"), MICHAEL, None),
    ("DELETE", customer_url("65a1f0c2e4b0a1b2c3d4e501"), MICHAEL, None),
    ("DELETE", customer_url(DOCS_CUSTOMER), TOBY, None),
    ("GET", "/api/sat/usos-cfdi?tipoPersona=ambas&regimen=601", {}, None),
    ("GET", "/api/sat/usos-cfdi?regimen=999", {}, None),
    ("GET", "/api/sat/usos-cfdi?regimen=601&regimen=601", {}, None),
    ("GET", "/api/sat/regimenes-fiscales?tipoPersona=moral", {}, None),
    ("GET", "/api/sat/regimenes-fiscales?tipoPersona=x", {}, None),
    ("POST", customers_url() + "%0A", JSON, json.dumps(VALID_CREATE)),
    ("GET", "/api/sat/regimenes-fiscales%0A", {}, None),
    ("GET", customers_url() + "/", MICHAEL, None),
    ("GET", customer_url() + "/", MICHAEL, None),
]


def replay(client) -> list[tuple[int, str, str]]:
    answers = []
    for method, url, headers, body in REQUESTS:
        response = client.request(method, url, headers=headers, content=body)
        headers = (response.headers.get("content-type"), response.headers.get("content-length"))
        answers.append((response.status_code, headers, VOLATILE.sub(r'"\1": "*"', response.text)))
    answers.append((0, "state", VOLATILE.sub(r'"\1": "*"', client.get(customers_url(), headers=MICHAEL).text)))
    return answers


def test_fast_path_answers_like_connexion(monkeypatch):
    with create_app(make_sandbox()).test_client(base_url=LOCAL) as fast:
        fast_answers = replay(fast)
        served = fast.get("/__sandbox/health").json()["fastPathServed"]
    monkeypatch.setenv("TIMBRIX_SANDBOX_FASTPATH", "0")
    with create_app(make_sandbox()).test_client(base_url=LOCAL) as slow:
        slow_answers = replay(slow)
        assert slow.get("/__sandbox/health").json()["fastPathServed"] == 0
    assert served >= 12, "the fast path really served the valid requests"
    for request, fast_answer, slow_answer in zip(REQUESTS + [("state",)], fast_answers, slow_answers, strict=True):
        assert fast_answer == slow_answer, request


@pytest.mark.parametrize("fault", ["auth-ignored", "cfdi-uso-regimen"])
def test_fast_path_is_off_while_faults_are_injected(fault):
    with create_app(make_sandbox(faults=[fault])).test_client(base_url=LOCAL) as client:
        client.get(customer_url(), headers=MICHAEL)
        assert client.get("/__sandbox/health").json()["fastPathServed"] == 0


BEEL_ITEM = "/api/v1/customers/123e4567-e89b-12d3-a456-426614174000"
BEEL = {"Authorization": "Bearer beel_sk_test_madrid", "Content-Type": "application/json"}
BEEL_READONLY = {"Authorization": "Bearer beel_sk_test_readonly", "Content-Type": "application/json"}
BEEL_SEVILLA = {"Authorization": "Bearer beel_sk_test_sevilla", "Content-Type": "application/json"}
BOOKS = {"Authorization": "Bearer bc_test_acme", "Content-Type": "application/json"}
PEER_REQUESTS = {
    "beel": [
        ("GET", "/api/v1/customers", BEEL, None),
        ("GET", BEEL_ITEM, BEEL, None),
        ("GET", BEEL_ITEM, BEEL_SEVILLA, None),
        ("GET", BEEL_ITEM, {}, None),
        ("GET", "/api/v1/customers/00000000-0000-4000-8000-000000000000", BEEL, None),
        ("POST", "/api/v1/customers", BEEL, json.dumps({"legal_name": "Ferretería Norte SL", "nif": "B87654321"})),
        ("POST", "/api/v1/customers", BEEL_READONLY, json.dumps({"legal_name": "x", "nif": "B87654321"})),
        ("PUT", BEEL_ITEM, BEEL, json.dumps({"general_discount": 5})),
        ("PUT", BEEL_ITEM, BEEL, json.dumps({"phone": "12"})),
        ("PUT", BEEL_ITEM, BEEL_READONLY, json.dumps({"notes": "x"})),
        ("PUT", BEEL_ITEM, BEEL, "{broken"),
        ("DELETE", BEEL_ITEM, BEEL_SEVILLA, None),
        ("DELETE", BEEL_ITEM, BEEL, None),
        ("GET", BEEL_ITEM, BEEL, None),
    ],
    "bookkeeping": [
        ("GET", "/api/customers", BOOKS, None),
        ("GET", "/api/customers/1", BOOKS, None),
        ("GET", "/api/customers/1", {**BOOKS, "organization-id": "2"}, None),
        ("GET", "/api/customers/1", {**BOOKS, "organization-id": "1"}, None),
        ("GET", "/api/customers/1", {**BOOKS, "organization-id": ""}, None),
        ("GET", "/api/customers/1", {**BOOKS, "organization-id": "9" * 101}, None),
        ("GET", "/api/customers/1", [*BOOKS.items(), ("organization-id", "1"), ("organization-id", "2")], None),
        ("GET", "/api/customers/999", BOOKS, None),
        ("GET", "/api/customers/1.0", BOOKS, None),
        ("GET", "/api/customers/1.5", BOOKS, None),
        ("GET", "/api/customers/1e0", BOOKS, None),
        ("GET", "/api/customers/-1", BOOKS, None),
        ("GET", "/api/customers/abc", BOOKS, None),
        ("PUT", "/api/customers/1", BOOKS, json.dumps({"displayName": "Acme Books"})),
        ("PUT", "/api/customers/1", {**BOOKS, "organization-id": "2"}, json.dumps({"displayName": "Elsewhere"})),
        ("GET", "/api/customers", BOOKS, None),
        ("DELETE", "/api/customers/1", BOOKS, None),
        ("GET", "/api/customers/1", BOOKS, None),
    ],
}
PEER_VOLATILE = re.compile(r'"(id|timestamp|request_id|created_at|updated_at|createdAt|updatedAt)": ?"[^"]*"')


def _replay_peer(client, requests) -> list:
    answers = []
    for method, url, headers, body in requests:
        response = client.request(method, url, headers=headers, content=body)
        answers.append((response.status_code, response.headers.get("content-type"),
                        PEER_VOLATILE.sub(r'"\1": "*"', response.text)))  # fmt: skip
    return answers


@pytest.mark.parametrize("contract", sorted(PEER_REQUESTS))
def test_fast_path_answers_like_connexion_on_every_shipped_contract(contract, monkeypatch):
    requests = PEER_REQUESTS[contract]
    with create_app(make_sandbox(contract=contract)).test_client(base_url=LOCAL) as fast:
        fast_answers = _replay_peer(fast, requests)
        served = fast.get("/__sandbox/health").json()["fastPathServed"]
    monkeypatch.setenv("TIMBRIX_SANDBOX_FASTPATH", "0")
    with create_app(make_sandbox(contract=contract)).test_client(base_url=LOCAL) as slow:
        slow_answers = _replay_peer(slow, requests)
    # Operations with header parameters (the bookkeeping API's organization-id) and numeric
    # path ids take the fast path too.
    assert served > 0, served
    for request, fast_answer, slow_answer in zip(requests, fast_answers, slow_answers, strict=True):
        assert fast_answer == slow_answer, request


def test_a_tenant_header_is_judged_on_the_fast_path_too(tmp_path, monkeypatch):
    """A contract that names its tenant in a header it does not declare as a parameter: the
    fast path must not ignore the header and serve the key's own account instead."""
    import yaml

    from timbrix_sandbox.profiles import CONTRACTS, default_fixtures

    spec = yaml.safe_load(CONTRACTS["beel"].read_text(encoding="utf-8"))
    spec["x-sandbox"]["tenant"] = {"header": "x-account"}
    contract = tmp_path / "beel-by-header.yaml"
    contract.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    (tmp_path / "beel-by-header.fixtures.yaml").write_text(default_fixtures("beel").read_text(encoding="utf-8"))
    other = {"Authorization": "Bearer beel_sk_test_madrid", "x-account": "cuenta-sevilla"}
    answers = []
    for fast in ("1", "0"):
        monkeypatch.setenv("TIMBRIX_SANDBOX_FASTPATH", fast)
        with create_app(make_sandbox(contract=contract)).test_client(base_url=LOCAL) as client:
            answers.append(client.get("/api/v1/customers", headers=other).status_code)
            answers.append(client.get("/api/v1/customers", headers={**other, "x-account": "cuenta-madrid"}).status_code)
    assert answers == [403, 200, 403, 200]


UNCOMPILABLE = """
openapi: 3.0.3
info: {title: a parameter pattern no regex engine reads, version: "1"}
servers: [{url: /api}]
paths:
  /things/{thingId}:
    get:
      operationId: getThing
      parameters:
        - {name: thingId, in: path, required: true, schema: {type: string, pattern: "(["}}
      responses:
        "200": {description: ok, content: {application/json: {schema: {type: object}}}}
  /things:
    get:
      operationId: listThings
      responses:
        "200":
          description: ok
          content: {application/json: {schema: {type: array, items: {type: object}}}}
"""


def test_a_schema_the_validator_cannot_compile_leaves_the_rest_of_the_contract_served(tmp_path):
    """The fast path compiles each operation's validators when the app is built; one operation
    whose schema cannot be compiled (a broken ``pattern``) stays on the Connexion path instead of
    keeping the whole contract from starting."""
    contract = tmp_path / "broken.yaml"
    contract.write_text(UNCOMPILABLE)
    sandbox = make_sandbox(contract=contract)
    with create_app(sandbox).test_client(base_url=LOCAL) as client:
        before = sandbox.fast_path_served
        assert client.get("/api/things").json() == []
        assert sandbox.fast_path_served == before + 1, "the sound operation left the fast path"
