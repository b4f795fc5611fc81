"""Every status the server can emit, on every shipped contract, in that contract's own error
format and declared for the operation that answered it.

The error body used to be chosen by whichever middleware happened to know the served
contract: BeeL's 413 came out in Timbrix's ``{"statusCode": ...}`` shape. Each case below is
an answer a client can provoke; each is checked against the response the contract declares
for that operation and status (or, off any route, against the contract's error schema).
"""

from __future__ import annotations

import dataclasses
import typing as t
from pathlib import Path

import pytest
import yaml
from conftest import LOCAL, ROOT
from jsonschema import Draft202012Validator

from timbrix_sandbox.contract.loading import load_contract
from timbrix_sandbox.http.app import create_app
from timbrix_sandbox.profiles import CONTRACTS, DEFAULT_CONTRACT, default_fixtures
from timbrix_sandbox.profiles.sandboxes import make_sandbox

MIB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Peer:
    contract: Path
    collection_template: str
    item_template: str
    collection: str  # under /api
    item: str  # an existing record under /api
    missing: str  # a well-formed id that is not there
    member: dict[str, str]
    forbidden: tuple[str, dict[str, str]]  # (method, headers) answered 403
    broken_field: tuple[str, t.Any]  # a fixture field set to a value its schema forbids (-> 500)
    valid_create: dict


PEERS = {
    "timbrix": Peer(
        contract=DEFAULT_CONTRACT,
        collection_template="/organizations/{organizationId}/customers",
        item_template="/organizations/{organizationId}/customers/{customerId}",
        collection="/organizations/550e8400-e29b-41d4-a716-446655440000/customers",
        item="/organizations/550e8400-e29b-41d4-a716-446655440000/customers/590ce6c56d04f840aa8438af",
        missing="/organizations/550e8400-e29b-41d4-a716-446655440000/customers/000000000000000000000000",
        member={"Authorization": "Bearer sk_test_michael"},
        forbidden=("GET", {"Authorization": "Bearer sk_test_toby"}),
        broken_field=("email", "not-an-email"),
        valid_create={"legalName": "x"},
    ),
    "beel": Peer(
        contract=CONTRACTS["beel"],
        collection_template="/v1/customers",
        item_template="/v1/customers/{customer_id}",
        collection="/v1/customers",
        item="/v1/customers/123e4567-e89b-12d3-a456-426614174000",
        missing="/v1/customers/00000000-0000-4000-8000-000000000000",
        member={"Authorization": "Bearer beel_sk_test_madrid"},
        forbidden=("PUT", {"Authorization": "Bearer beel_sk_test_readonly"}),
        broken_field=("email", "not-an-email"),
        valid_create={"legal_name": "x"},
    ),
    "bookkeeping": Peer(
        contract=CONTRACTS["bookkeeping"],
        collection_template="/customers",
        item_template="/customers/{id}",
        collection="/customers",
        item="/customers/1",
        missing="/customers/999999",
        member={"Authorization": "Bearer bc_test_acme"},
        forbidden=("GET", {"Authorization": "Bearer bc_test_acme", "organization-id": "2"}),
        broken_field=("displayName", 12345),
        valid_create={"displayName": "x"},
    ),
}


@dataclasses.dataclass(frozen=True)
class Case:
    status: int
    method: str
    path: str  # "item", "collection", "missing" or a literal path under /api
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    content: bytes | None = None
    chunked: bool = False


JSON = {"Content-Type": "application/json"}


def _cases(peer: Peer) -> dict[str, Case]:
    auth = {**peer.member, **JSON}
    forbidden_method, forbidden_headers = peer.forbidden
    return {
        "400-malformed-json": Case(400, "PUT", "item", auth, b"{not json"),
        "400-nested-too-deep": Case(400, "PUT", "item", auth, b"[" * 300 + b"]" * 300),
        "400-nested-deep-in-a-field": Case(400, "POST", "collection", auth, b'{"a":' * 250 + b"1" + b"}" * 250),
        "400-integer-too-long": Case(400, "POST", "collection", auth, b'{"x": ' + b"9" * 5000 + b"}"),
        "400-infinity-literal": Case(400, "PUT", "item", auth, b'{"x": Infinity}'),
        "400-float-overflow": Case(400, "PUT", "item", auth, b'{"x": 1e999}'),
        "400-not-utf8": Case(400, "PUT", "item", auth, b'{"x": "\xff"}'),
        "401-no-credentials": Case(401, "GET", "item"),
        "403-forbidden": Case(
            403, forbidden_method, "item", {**forbidden_headers, **JSON}, b"{}" if forbidden_method == "PUT" else None
        ),
        "404-missing-record": Case(404, "GET", "missing", peer.member),
        "404-unknown-route": Case(404, "GET", "/no/such/route", peer.member),
        "405-wrong-method": Case(405, "PATCH", "item", auth, b"{}"),
        "413-content-length": Case(413, "PUT", "item", auth, b" " * (MIB + 1)),
        "413-chunked": Case(413, "POST", "collection", auth, b" " * (MIB + 1), chunked=True),
        "415-wrong-content-type": Case(415, "PUT", "item", {**peer.member, "Content-Type": "text/plain"}, b"{}"),
        "415-no-content-type": Case(415, "POST", "collection", peer.member, b"{}"),
        "421-unknown-host": Case(421, "GET", "item", {**peer.member, "Host": "rebind.evil.example"}),
        "405-preflight-undeclared-method": Case(
            405,
            "OPTIONS",
            "collection",
            {"Origin": "http://localhost:5173", "Access-Control-Request-Method": "DELETE"},
        ),
    }


def _declared_schema(spec: dict, template: str | None, method: str, status: int) -> dict:
    """The JSON schema the contract declares for that answer, resolvable against the whole
    document (its ``$ref``s point into it)."""
    if template is None:
        pointer = "#/components/schemas/Error"
    else:
        responses = spec["paths"][template][method.lower()]["responses"]
        assert str(status) in responses, f"{status} is not declared for {method} {template}"
        response = responses[str(status)]
        base = f"#/paths/{template.replace('~', '~0').replace('/', '~1')}/{method.lower()}/responses/{status}"
        if "$ref" in response:
            base = response["$ref"]
        pointer = base + "/content/application~1json/schema"
    return {**spec, "$ref": pointer}


def _template(peer: Peer, path: str) -> str | None:
    """The contract path an answer belongs to (collection or item), else ``None``."""
    return {"collection": peer.collection_template, "item": peer.item_template, "missing": peer.item_template}.get(
        path
    )


def _assert_declared(spec: dict, template: str | None, method: str, response) -> None:
    assert response.headers["content-type"].startswith("application/json"), response.headers
    _assert_body_declared(spec, template, method, response.status_code, response.json())


def _assert_body_declared(spec: dict, template: str | None, method: str, status: int, body: t.Any) -> None:
    # A wrong method or a preflight is answered for the path: judged by the path's GET.
    method = "GET" if method in ("OPTIONS", "PATCH") else method
    schema = _declared_schema(spec, template, method, status)
    errors = sorted(Draft202012Validator(schema).iter_errors(body), key=str)
    assert not errors, f"{body} breaks the declared {status}: {errors[0].message}"


@pytest.mark.parametrize("name", sorted(PEERS))
def test_every_status_in_the_contracts_own_format(name):
    peer = PEERS[name]
    spec = load_contract(peer.contract)
    with create_app(make_sandbox(contract=peer.contract)).test_client(base_url=LOCAL) as client:
        for label, case in _cases(peer).items():
            path = {"item": peer.item, "collection": peer.collection, "missing": peer.missing}.get(case.path, case.path)
            content: t.Any = case.content
            if case.chunked:
                payload = case.content or b""
                content = iter([payload[i : i + 65536] for i in range(0, len(payload), 65536)])
            response = client.request(case.method, "/api" + path, headers=case.headers, content=content)
            assert response.status_code == case.status, f"{name} {label}: {response.status_code} {response.text[:200]}"
            _assert_declared(spec, _template(peer, case.path), case.method, response)


@pytest.mark.parametrize("name", sorted(PEERS))
def test_a_server_error_is_a_declared_500_in_the_contracts_format(name, tmp_path):
    peer = PEERS[name]
    spec = load_contract(peer.contract)
    data = yaml.safe_load(default_fixtures(peer.contract).read_text(encoding="utf-8"))
    collection = next(iter(data["customers"].values()))
    field, value = peer.broken_field
    collection[0][field] = value
    broken = tmp_path / "fixtures.yaml"
    broken.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    sandbox = make_sandbox(contract=peer.contract, fixtures_path=broken)
    with create_app(sandbox).test_client(base_url=LOCAL) as client:
        response = client.get("/api" + peer.item, headers=peer.member)
        assert response.status_code == 500
        _assert_declared(spec, _template(peer, "item"), "GET", response)


@pytest.mark.parametrize("name", sorted(PEERS))
def test_control_api_errors_match_the_control_contract(name):
    """The control API is the sandbox's own, with its own (NestJS-shaped) error schema,
    whatever contract is served."""
    peer = PEERS[name]
    control = load_contract(ROOT / "timbrix_sandbox" / "http" / "control.yaml")
    with create_app(make_sandbox(contract=peer.contract)).test_client(base_url=LOCAL) as client:
        missing = client.post("/__sandbox/reset/00000000-0000-0000-0000-000000000000")
        assert missing.status_code == 404
        schema = {**control, "$ref": "#/components/responses/Error/content/application~1json/schema"}
        Draft202012Validator(schema).validate(missing.json())
        malformed = client.post("/__sandbox/reset/not!an!id")
        assert malformed.status_code == 400
        Draft202012Validator(schema).validate(malformed.json())
        refused = client.post("/__sandbox/reset", headers={"Origin": "https://evil.example"})
        assert refused.status_code == 403
        Draft202012Validator(schema).validate(refused.json())


def _raw_exchange(url: str, request: bytes) -> tuple[int, dict]:
    """Send raw bytes (what no HTTP client library would send) and parse the answer."""
    import json
    import socket
    from urllib.parse import urlsplit

    where = urlsplit(url)
    with socket.create_connection((where.hostname, where.port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower()
    return status, json.loads(body)


@pytest.mark.parametrize("name", sorted(PEERS))
def test_protocol_errors_in_the_contracts_own_format(name, live_server_factory):
    """Answers the HTTP server gives before the app sees a request: a malformed request (400)
    and a request head over 16 KiB (431); and RFC 9112's 400s for a request with two Host
    headers (the allowlist reads the first) or an HTTP/1.1 one with none."""
    peer = PEERS[name]
    spec = load_contract(peer.contract)
    server = live_server_factory(None, ["--contract", str(peer.contract)])
    template = _template(peer, "item")
    item = b"GET /api" + peer.item.encode()
    malformed = item + b" HTTP/1.1\r\nHost: localhost\r\nContent-Length: abc\r\n\r\n"
    huge = item + b" HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
    auth = b"".join(f"{key}: {value}\r\n".encode() for key, value in peer.member.items())
    two_hosts = item + b" HTTP/1.1\r\nHost: localhost\r\nHost: rebind.evil.example\r\n" + auth
    no_host = item + b" HTTP/1.1\r\n" + auth
    cases = ((malformed, 400), (huge, 431), (two_hosts, 400), (no_host, 400), (item + b" HTTP/1.0\r\n" + auth, 200))
    for request, status in cases:
        if not request.endswith(b"\r\n\r\n"):
            request += b"Connection: close\r\n\r\n"
        got, body = _raw_exchange(server.url, request)
        assert got == status, (request[:120], body)
        _assert_body_declared(spec, template, "GET", status, body)
