"""Any contract, same power: the two peer contracts (BeeL, the bookkeeping API) served
statefully by the generic layer, in their own error formats, and judged by the one conformance
suite (no domain plug-in: the contract and behaviour layers), which must pass the clean sandbox
and kill every fault injected into it."""

from __future__ import annotations

import pytest
import yaml
from conftest import LOCAL

from conformance.model import Options
from conformance.runner import run
from timbrix_sandbox.contract.loading import load_contract
from timbrix_sandbox.contract.model import load_profile
from timbrix_sandbox.engine.faults import available
from timbrix_sandbox.http.app import create_app
from timbrix_sandbox.profiles import CONTRACTS, default_fixtures
from timbrix_sandbox.profiles.sandboxes import make_sandbox

BEEL = CONTRACTS["beel"]
BOOKKEEPING = CONTRACTS["bookkeeping"]
MADRID = {"Authorization": "Bearer beel_sk_test_madrid"}
SEVILLA = {"Authorization": "Bearer beel_sk_test_sevilla"}
READONLY = {"Authorization": "Bearer beel_sk_test_readonly"}
DOCS_CUSTOMER = "123e4567-e89b-12d3-a456-426614174000"
ACME = {"Authorization": "Bearer bc_test_acme"}
GLOBEX = {"Authorization": "Bearer bc_test_globex"}
JWT_TOKEN = next(
    u["token"]
    for u in yaml.safe_load((default_fixtures("bookkeeping")).read_text())["users"]
    if u["token"].startswith("eyJ")
)
JWT = {"Authorization": f"Bearer {JWT_TOKEN}"}


@pytest.fixture
def beel():
    with create_app(make_sandbox(contract=BEEL)).test_client(base_url=LOCAL) as client:
        yield client


@pytest.fixture
def books(any_store):
    """On both stores: the integer ids come from the store (one sequence for every process)."""
    with create_app(make_sandbox(contract=BOOKKEEPING, store=any_store)).test_client(base_url=LOCAL) as client:
        yield client


# -- BeeL ------------------------------------------------------------------------------------


def test_beel_create_update_read_back_in_the_envelope(beel):
    created = beel.post(
        "/api/v1/customers",
        json={"legal_name": "Ferretería Norte SL", "nif": "B87654321", "phone": "+34 600 000 001"},
        headers=MADRID,
    )
    assert created.status_code == 201
    body = created.json()
    assert body["success"] is True and set(body["meta"]) == {"timestamp", "request_id"}
    customer = body["data"]
    assert customer["legal_name"] == "Ferretería Norte SL" and customer["trade_name"] is None
    assert customer["active"] is True  # the contract's default
    updated = beel.put(f"/api/v1/customers/{customer['id']}", json={"general_discount": 7.5}, headers=MADRID)
    assert updated.status_code == 200
    after = updated.json()["data"]
    assert after["general_discount"] == 7.5 and after["nif"] == "B87654321"  # unsent fields kept
    assert after["created_at"] == customer["created_at"] and after["updated_at"] > customer["updated_at"]
    read = beel.get(f"/api/v1/customers/{customer['id']}", headers=MADRID)
    assert read.json()["data"] == after
    listed = beel.get("/api/v1/customers", headers=MADRID).json()["data"]
    assert [c["id"] for c in listed][-1] == customer["id"]


def test_beel_validation_error_names_the_field(beel):
    response = beel.put(f"/api/v1/customers/{DOCS_CUSTOMER}", json={"phone": "12"}, headers=MADRID)
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "VALIDATION_ERROR" and body["error"]["message"] == "Validation error"
    assert list(body["error"]["details"]) == ["phone"]
    missing = beel.post("/api/v1/customers", json={"nif": "B87654321"}, headers=MADRID).json()
    assert missing["error"]["details"] == {"legal_name": '"legal_name" is a required property'}
    stored = beel.get(f"/api/v1/customers/{DOCS_CUSTOMER}", headers=MADRID).json()["data"]
    assert stored["phone"] == "+34 612 345 678"  # the rejected update stored nothing


def test_beel_malformed_json_is_invalid_json_format(beel):
    response = beel.put(
        f"/api/v1/customers/{DOCS_CUSTOMER}",
        content=b'{"email": ',
        headers={**MADRID, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_JSON_FORMAT"


def test_beel_auth_scopes_and_accounts(beel):
    unauthorized = beel.get("/api/v1/customers").json()
    assert unauthorized["error"] == {
        "code": "UNAUTHORIZED",
        "message": "Authentication required",
        "details": {"reason": "No authorization token provided"},
    }
    # A read-only key reads but cannot write (scopes from the operation's security).
    assert beel.get(f"/api/v1/customers/{DOCS_CUSTOMER}", headers=READONLY).status_code == 200
    forbidden = beel.put(f"/api/v1/customers/{DOCS_CUSTOMER}", json={"notes": "x"}, headers=READONLY)
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "FORBIDDEN"
    # Another account's key sees nothing of this one.
    other = beel.get(f"/api/v1/customers/{DOCS_CUSTOMER}", headers=SEVILLA)
    assert other.status_code == 404 and other.json()["error"]["message"] == "Resource not found"
    assert DOCS_CUSTOMER not in {c["id"] for c in beel.get("/api/v1/customers", headers=SEVILLA).json()["data"]}


def test_beel_docs_example_is_a_fixture(beel):
    customer = beel.get(f"/api/v1/customers/{DOCS_CUSTOMER}", headers=MADRID).json()["data"]
    assert customer["legal_name"] == "Empresa Cliente SL"
    assert customer["preferred_payment_method"]["iban"] == "ES1234567890123456789012"


def test_beel_routing_errors_in_its_format(beel):
    missing = beel.get("/api/v1/nothing", headers=MADRID)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
    wrong = beel.patch("/api/v1/customers", headers=MADRID)
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, HEAD, POST"
    assert wrong.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


# -- bookkeeping -----------------------------------------------------------------------------


def test_bookkeeping_api_key_or_jwt_with_organization_header(books):
    assert books.get("/api/customers", headers=ACME).status_code == 200  # a key implies its organization
    ambiguous = books.get("/api/customers", headers=JWT)
    assert ambiguous.status_code == 400 and "organization-id" in ambiguous.json()["message"]
    second = books.get("/api/customers", headers={**JWT, "organization-id": "2"})
    assert [c["displayName"] for c in second.json()] == ["Initech"]
    outsider = books.get("/api/customers", headers={**GLOBEX, "organization-id": "1"})
    assert outsider.json() == {"statusCode": 403, "message": "Not a member of this organization", "error": "FORBIDDEN"}


def test_bookkeeping_integer_ids_defaults_and_renamed_zipcode(books):
    body = {"customerType": "business", "displayName": "Dunder Mifflin", "billingAddressZipcode": "18503"}
    created = books.post("/api/customers", json=body, headers=ACME)
    assert created.status_code == 201
    customer = created.json()
    assert customer["id"] == 4  # after the fixtures' 1, 2, 3: one sequence across organizations
    assert customer["billingAddressPostcode"] == "18503"  # sent as Zipcode, read back as Postcode
    assert (customer["balance"], customer["currencyCode"], customer["note"]) == (0, "USD", "")
    assert customer["openingBalanceAt"] == customer["createdAt"]
    update = books.put("/api/customers/4", json={"customerType": "business", "displayName": "DM"}, headers=ACME)
    assert update.json()["displayName"] == "DM" and update.json()["billingAddressPostcode"] == "18503"
    assert books.get("/api/customers/4", headers=ACME).json() == update.json()
    assert books.get("/api/customers/4", headers=GLOBEX).status_code == 404  # another organization


def test_bookkeeping_put_requires_the_documented_fields(books):
    response = books.put("/api/customers/1", json={"note": "x"}, headers=ACME)
    assert response.status_code == 400
    assert response.json()["message"] == '"customerType" is a required property'


def test_peer_data_survives_a_restart(tmp_path):
    sandbox = make_sandbox(contract=BEEL, data_dir=tmp_path)
    with create_app(sandbox).test_client(base_url=LOCAL) as client:
        created = client.post("/api/v1/customers", json={"legal_name": "Persistente SA"}, headers=MADRID).json()
    sandbox.store.close()
    with create_app(make_sandbox(contract=BEEL, data_dir=tmp_path)).test_client(base_url=LOCAL) as client:
        read = client.get(f"/api/v1/customers/{created['data']['id']}", headers=MADRID)
    assert read.json()["data"] == created["data"]


# -- conformance and kill score ---------------------------------------------------------------

PEERS = {
    "beel": dict(contract=BEEL, token="beel_sk_test_madrid", outsider_token="beel_sk_test_sevilla", headers={}),
    "bookkeeping": dict(
        contract=BOOKKEEPING, token=JWT_TOKEN, outsider_token="bc_test_globex", headers={"organization-id": "1"}
    ),
}


def _options(server, peer: str, **extra) -> Options:
    return Options(base_url=server.url + "/api", organization_id="", seed=1, **PEERS[peer], **extra)


def _listing(server, peer: str) -> list:
    config = PEERS[peer]
    path = "/api/v1/customers" if peer == "beel" else "/api/customers"
    with server.client() as http:
        return http.get(path, headers={**config["headers"], "Authorization": f"Bearer {config['token']}"}).json()


@pytest.mark.parametrize("peer", sorted(PEERS))
def test_conformance_passes_the_clean_peer_sandbox_and_leaves_data_as_it_was(live_server_factory, peer):
    server = live_server_factory(None, extra=["--contract", str(PEERS[peer]["contract"])])
    before = _listing(server, peer)
    result = run(_options(server, peer))
    assert result.conformant, [f.message for f in result.unique_findings()][:5]
    assert result.cases > 300
    after = _listing(server, peer)
    data = (lambda b: b["data"]) if peer == "beel" else (lambda b: b)
    assert data(after) == data(before)


def _peer_faults() -> list[tuple[str, str]]:
    return [
        (peer, fault)
        for peer, config in sorted(PEERS.items())
        for fault in sorted(available(load_profile(load_contract(config["contract"]))))
    ]


@pytest.mark.parametrize(("peer", "fault"), _peer_faults())
def test_suite_kills_fault_in_peer(live_server_factory, peer, fault):
    server = live_server_factory(None, extra=["--contract", str(PEERS[peer]["contract"]), "--fault", fault])
    result = run(_options(server, peer, fail_fast=True))
    assert not result.conformant, f"fault {fault!r} survived the conformance suite against {peer}"


def test_malformed_http_gets_the_peer_error_format(live_server_factory):
    import json
    import socket

    server = live_server_factory(None, extra=["--contract", str(BEEL)])
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /api/v1/customers HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    error = json.loads(body)
    assert error["success"] is False and error["error"]["code"] == "VALIDATION_ERROR"
    with server.client() as http:
        assert http.get("/__sandbox/health").json()["contract"] == "BeeL API (customers)"


def test_a_data_directory_serves_one_contract(tmp_path):
    from timbrix_sandbox.engine.store import WrongContract

    make_sandbox(data_dir=tmp_path).store.close()  # Timbrix customers on disk
    with pytest.raises(WrongContract, match="Timbrix"):
        make_sandbox(contract=BEEL, data_dir=tmp_path)
    make_sandbox(data_dir=tmp_path).store.close()  # the lock was released; Timbrix still opens it
