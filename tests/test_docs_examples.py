"""The Timbrix docs' example requests, run verbatim against a real server over a socket, return
the docs' example bodies (timestamps aside)."""

from __future__ import annotations

import subprocess

from conftest import DOCS_CUSTOMER, DUNDER

DOCS_GET_RESPONSE = {
    "id": "590ce6c56d04f840aa8438af",
    "organizationId": "550e8400-e29b-41d4-a716-446655440000",
    "legalName": "Dunder Mifflin",
    "taxId": "DUM901231AB3",
    "taxSystem": "601",
    "email": "billing@dundermifflin.com",
    "phone": "6474010101",
    "defaultInvoiceUse": "G01",
    "address": {
        "street": "Blvd. Atardecer",
        "exterior": "142",
        "interior": None,
        "neighborhood": "Centro",
        "city": "Huatabampo",
        "municipality": "Huatabampo",
        "zip": "86500",
        "state": "Sonora",
        "country": "MEX",
    },
    "createdAt": "2025-01-26T10:00:00Z",
    "updatedAt": "2025-01-26T10:00:00Z",
}
DOCS_PUT_RESPONSE = {
    **DOCS_GET_RESPONSE,
    "email": "new-billing@dundermifflin.com",
    "phone": "6474019999",
    "updatedAt": "2025-01-26T10:05:00Z",
}


def curl(*args: str) -> tuple[int, str]:
    """Run curl as the docs do; returns (status, body)."""
    out = subprocess.run(
        ["curl", "-s", "-w", "\n%{http_code}", *args], capture_output=True, text=True, check=True
    ).stdout
    body, _, status = out.rpartition("\n")
    return int(status), body


def test_docs_get_example_verbatim(live_server):
    import json

    status, body = curl(
        "-X",
        "GET",
        f"{live_server.url}/api/organizations/550e8400-e29b-41d4-a716-446655440000/customers/590ce6c56d04f840aa8438af",
        "-H",
        "Authorization: Bearer sk_test_michael",
    )
    assert status == 200
    payload = json.loads(body)
    assert payload == DOCS_GET_RESPONSE
    assert list(payload) == list(DOCS_GET_RESPONSE), "field order follows the docs"


def test_docs_put_example_verbatim(live_server):
    import json

    status, body = curl(
        "-X",
        "PUT",
        f"{live_server.url}/api/organizations/550e8400-e29b-41d4-a716-446655440000/customers/590ce6c56d04f840aa8438af",
        "-H",
        "Authorization: Bearer sk_test_michael",
        "-H",
        "Content-Type: application/json",
        "-d",
        '{\n    "email": "new-billing@dundermifflin.com",\n    "phone": "6474019999"\n  }',
    )
    assert status == 200
    payload = json.loads(body)
    moved = payload.pop("updatedAt")
    expected = dict(DOCS_PUT_RESPONSE)
    expected.pop("updatedAt")
    assert payload == expected
    assert moved > DOCS_GET_RESPONSE["updatedAt"] and moved.endswith("Z")

    with live_server.client(headers={"Authorization": "Bearer sk_test_michael"}) as client:
        stored = client.get(f"/api/organizations/{DUNDER}/customers/{DOCS_CUSTOMER}").json()
    assert stored["email"] == "new-billing@dundermifflin.com" and stored["phone"] == "6474019999"
    assert stored["updatedAt"] == moved
