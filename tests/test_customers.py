"""Every customers operation: create/read/list/update/delete, partial-update semantics,
timestamps and defaults; on both stores (TinyDB in memory, PostgreSQL)."""

from __future__ import annotations

import re

import pytest
from conftest import (
    DOCS_CUSTOMER,
    DUNDER,
    LOCAL,
    MICHAEL,
    PRINCE,
    PRINCE_TOKEN,
    VALID_CREATE,
    customer_url,
    customers_url,
)

from timbrix_sandbox.http.app import create_app
from timbrix_sandbox.profiles.sandboxes import make_sandbox

ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$")


@pytest.fixture
def client(any_store):
    with create_app(make_sandbox(store=any_store)).test_client(base_url=LOCAL) as test_client:
        yield test_client


def create(client, body=None, org=DUNDER, headers=MICHAEL):
    return client.post(customers_url(org), headers=headers, json=body or VALID_CREATE)


def test_list_returns_a_plain_array_of_the_organizations_customers(client):
    response = client.get(customers_url(), headers=MICHAEL)
    assert response.status_code == 200
    customers = response.json()
    assert isinstance(customers, list) and len(customers) == 14
    assert customers[0]["id"] == DOCS_CUSTOMER, "oldest first"
    assert {c["organizationId"] for c in customers} == {DUNDER}
    assert any(c["phone"] is None for c in customers), "fixtures include a customer without phone"
    assert any(c["address"]["interior"] for c in customers), "fixtures include an interior number"
    assert {len(c["taxId"]) for c in customers} == {12, 13}, "personas morales and físicas"


def test_create_then_read_back(client):
    response = create(client)
    assert response.status_code == 201
    created = response.json()
    assert re.match(r"^[0-9a-f]{24}$", created["id"])
    assert created["organizationId"] == DUNDER
    assert created["address"] == {
        "street": "Av. Balboa",
        "exterior": "1",
        "interior": None,
        "neighborhood": "Centro",
        "city": "Monterrey",
        "municipality": "Monterrey",
        "zip": "64000",
        "state": "Nuevo León",
        "country": "MEX",
    }, "flat address* fields map into address; country defaults to MEX; interior null"
    assert ISO_Z.match(created["createdAt"]) and created["createdAt"] == created["updatedAt"]
    assert client.get(customer_url(created["id"]), headers=MICHAEL).json() == created
    listed = client.get(customers_url(), headers=MICHAEL).json()
    assert listed[-1] == created, "newest last"


def test_create_ids_are_unique(client):
    ids = {create(client).json()["id"] for _ in range(20)}
    assert len(ids) == 20


def test_create_with_optional_fields(client):
    body = {**VALID_CREATE, "addressInterior": "3B", "addressCountry": "USA", "phone": None}
    created = create(client, body).json()
    assert created["address"]["interior"] == "3B"
    assert created["address"]["country"] == "USA"
    assert created["phone"] is None


@pytest.mark.parametrize("missing", ["legalName", "taxId", "email", "addressZip", "addressState"])
def test_create_requires_documented_fields(client, missing):
    body = {k: v for k, v in VALID_CREATE.items() if k != missing}
    response = create(client, body)
    assert response.status_code == 400
    assert missing in response.json()["message"]


def test_partial_update_changes_only_sent_fields(client):
    before = client.get(customer_url(), headers=MICHAEL).json()
    response = client.put(
        customer_url(),
        headers=MICHAEL,
        json={"addressCity": "Navojoa", "addressInterior": "7", "legalName": "DM"},
    )
    assert response.status_code == 200
    after = response.json()
    assert after["legalName"] == "DM"
    assert after["address"] == {**before["address"], "city": "Navojoa", "interior": "7"}
    unchanged = {k: v for k, v in before.items() if k not in ("legalName", "address", "updatedAt")}
    assert {k: after[k] for k in unchanged} == unchanged
    assert after["createdAt"] == before["createdAt"]
    assert after["updatedAt"] > before["updatedAt"]
    assert client.get(customer_url(), headers=MICHAEL).json() == after


def test_null_clears_phone_and_interior(client):
    client.put(customer_url(), headers=MICHAEL, json={"addressInterior": "9"})
    after = client.put(customer_url(), headers=MICHAEL, json={"phone": None, "addressInterior": None}).json()
    assert after["phone"] is None and after["address"]["interior"] is None


def test_updated_at_moves_on_every_update_created_at_never(client):
    stamps = []
    for i in range(3):
        body = client.put(customer_url(), headers=MICHAEL, json={"legalName": f"Dunder Mifflin {i}"}).json()
        stamps.append((body["createdAt"], body["updatedAt"]))
    assert len({c for c, _ in stamps}) == 1
    updated = [u for _, u in stamps]
    assert updated == sorted(updated) and len(set(updated)) == 3
    assert all(ISO_Z.match(u) for u in updated)


def test_empty_update_changes_nothing(client):
    before = client.get(customer_url(), headers=MICHAEL).json()
    response = client.put(customer_url(), headers=MICHAEL, json={})
    assert response.status_code == 200
    assert response.json() == before


def test_delete_then_404_everywhere(client):
    created = create(client).json()
    url = customer_url(created["id"])
    response = client.delete(url, headers=MICHAEL)
    assert response.status_code == 204 and response.content == b""
    assert client.get(url, headers=MICHAEL).status_code == 404
    assert client.put(url, headers=MICHAEL, json={"legalName": "x"}).status_code == 404
    assert client.delete(url, headers=MICHAEL).status_code == 404
    assert created["id"] not in {c["id"] for c in client.get(customers_url(), headers=MICHAEL).json()}


def test_unknown_customer_is_404_in_vendor_format(client):
    response = client.get(customer_url("0123456789abcdef01234567"), headers=MICHAEL)
    assert response.status_code == 404
    assert response.json() == {"statusCode": 404, "message": "Customer not found", "error": "NOT_FOUND"}


def test_organizations_are_isolated(client):
    create(client, org=PRINCE, headers=PRINCE_TOKEN)
    dunder = client.get(customers_url(DUNDER), headers=MICHAEL).json()
    prince = client.get(customers_url(PRINCE), headers=PRINCE_TOKEN).json()
    assert len(dunder) == 14 and len(prince) == 4
    assert not {c["id"] for c in dunder} & {c["id"] for c in prince}
