"""Auth behaves like production on every operation: 401 without/with a bad token, 403 for a
valid token outside the organization, 404 for another organization's customer."""

from __future__ import annotations

import pytest
from conftest import (
    DOCS_CUSTOMER,
    DUNDER,
    MICHAEL,
    PRINCE,
    PRINCE_CUSTOMER,
    PRINCE_TOKEN,
    TOBY,
    VALID_CREATE,
    customer_url,
    customers_url,
)

OPERATIONS = [
    ("GET", "list"),
    ("POST", "list"),
    ("GET", "item"),
    ("PUT", "item"),
    ("DELETE", "item"),
]


def call(client, method, kind, headers, org=DUNDER, customer=DOCS_CUSTOMER):
    url = customers_url(org) if kind == "list" else customer_url(customer, org)
    body = None
    if method == "POST":
        body = VALID_CREATE
    elif method == "PUT":
        body = {"legalName": "Hijacked"}
    return client.request(method, url, headers=headers, json=body)


@pytest.mark.parametrize("method,kind", OPERATIONS)
@pytest.mark.parametrize(
    "headers,message",
    [
        ({}, "No authorization token provided"),
        ({"Authorization": "Bearer sk_test_nobody"}, "Provided token is not valid"),
        ({"Authorization": "Basic c2tfdGVzdF9taWNoYWVsOg=="}, "No authorization token provided"),
        ({"Authorization": "Bearer"}, None),
    ],
)
def test_401_without_a_valid_token(client, method, kind, headers, message):
    response = call(client, method, kind, headers)
    assert response.status_code == 401
    body = response.json()
    assert body["statusCode"] == 401 and body["error"] == "UNAUTHORIZED"
    if message:
        assert body["message"] == message
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("method,kind", OPERATIONS)
@pytest.mark.parametrize("token", [TOBY, PRINCE_TOKEN])
def test_403_for_non_members(client, method, kind, token):
    response = call(client, method, kind, token)
    assert response.status_code == 403
    assert response.json() == {
        "statusCode": 403,
        "message": "User is not a member of this organization",
        "error": "FORBIDDEN",
    }


def test_403_comes_before_body_validation(client):
    """Like a guard: an outsider learns nothing about the body rules."""
    response = client.post(customers_url(), headers=TOBY, json={"nonsense": True})
    assert response.status_code == 403


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_organizations_customer_is_404_never_leaked(client, method):
    response = call(client, method, "item", MICHAEL, org=DUNDER, customer=PRINCE_CUSTOMER)
    assert response.status_code == 404
    assert "Prince" not in response.text
    # ... and untouched in its own organization
    stored = client.get(customer_url(PRINCE_CUSTOMER, PRINCE), headers=PRINCE_TOKEN)
    assert stored.status_code == 200 and stored.json()["legalName"] == "Prince Family Paper"


def test_member_of_two_organizations_reaches_both(client):
    jan = {"Authorization": "Bearer sk_test_jan"}
    assert client.get(customers_url(DUNDER), headers=jan).status_code == 200
    assert client.get(customers_url(PRINCE), headers=jan).status_code == 200


def test_sat_catalogs_need_no_token(client):
    assert client.get("/api/sat/regimenes-fiscales").status_code == 200
    assert client.get("/api/sat/usos-cfdi").status_code == 200
