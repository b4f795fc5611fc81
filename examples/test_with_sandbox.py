"""Using timbrix-sandbox from your own tests (pytest).

    pip install timbrix-sandbox pytest      # the plugin comes with the package
    pytest examples/test_with_sandbox.py

``timbrix_sandbox`` is one server for the whole session, reset to its fixtures before each
test that uses it: what one test creates, the next one does not see.
"""

import httpx

DUNDER_MIFFLIN = "550e8400-e29b-41d4-a716-446655440000"


def test_list_the_fixture_customers(timbrix_sandbox):
    token = timbrix_sandbox.tokens["Michael Scott"]
    with timbrix_sandbox.client(token) as api:
        customers = api.get(f"/organizations/{DUNDER_MIFFLIN}/customers")
    assert customers.status_code == 200
    assert "Dunder Mifflin" in [c["legalName"] for c in customers.json()]


def test_create_a_customer(timbrix_sandbox):
    token = timbrix_sandbox.tokens["Michael Scott"]
    customer = {
        "legalName": "Bluth Company", "taxId": "BCO0311024R2", "taxSystem": "601", "email": "cfdi@bluth.mx",
        "phone": "5551234567", "defaultInvoiceUse": "G03", "addressStreet": "Av. Balboa", "addressExterior": "1",
        "addressNeighborhood": "Centro", "addressCity": "Monterrey", "addressMunicipality": "Monterrey",
        "addressZip": "64000", "addressState": "Nuevo León",
    }
    created = httpx.post(f"{timbrix_sandbox.base_url}/organizations/{DUNDER_MIFFLIN}/customers", json=customer,
                         headers={"Authorization": f"Bearer {token}"})
    assert created.status_code == 201, created.text


def test_the_next_test_sees_fresh_fixtures(timbrix_sandbox):
    with timbrix_sandbox.client(timbrix_sandbox.tokens["Michael Scott"]) as api:
        names = [c["legalName"] for c in api.get(f"/organizations/{DUNDER_MIFFLIN}/customers").json()]
    assert "Bluth Company" not in names


def test_my_client_survives_a_server_error(timbrix_sandbox):
    """Run-time behaviours: the next call of one operation answers a status its contract declares."""
    timbrix_sandbox.set_behaviour("status", status=500, operation="CustomersController_findAll", times=1)
    with timbrix_sandbox.client(timbrix_sandbox.tokens["Michael Scott"]) as api:
        assert api.get(f"/organizations/{DUNDER_MIFFLIN}/customers").status_code == 500
        assert api.get(f"/organizations/{DUNDER_MIFFLIN}/customers").status_code == 200
    assert [r["status"] for r in timbrix_sandbox.requests()] == [200, 500]  # the journal, newest first


def test_another_contract(timbrix_sandbox_factory):
    beel = timbrix_sandbox_factory(contract="beel")
    with beel.client(beel.credentials[0].token) as api:
        assert api.get("/v1/customers").status_code == 200
