"""Data directories written by earlier versions keep working: Timbrix's customers were stored
bare (record layout 1) before one engine served every contract; they are upgraded in place,
all or nothing, at the first start, and answer exactly as before."""

from __future__ import annotations

import json

from conftest import DOCS_CUSTOMER, DUNDER, LOCAL, MICHAEL, customer_url, customers_url

from timbrix_sandbox.engine.store import CONTRACT_MARKER, Store
from timbrix_sandbox.http.app import create_app
from timbrix_sandbox.profiles.sandboxes import make_sandbox

LEGACY = {
    "id": "6a0000000000000000000001",
    "organizationId": DUNDER,
    "legalName": "Written By 0.1",
    "taxId": "WBO050315K21",
    "taxSystem": "601",
    "email": "legacy@example.mx",
    "phone": None,
    "defaultInvoiceUse": "G03",
    "address": {
        "street": "Calle Vieja",
        "exterior": "1",
        "interior": None,
        "neighborhood": "Centro",
        "city": "Monterrey",
        "municipality": "Monterrey",
        "zip": "64000",
        "state": "Nuevo León",
        "country": "MEX",
    },
    "createdAt": "2026-11-20T10:00:00.000Z",
    "updatedAt": "2026-11-20T10:00:00.000Z",
}


def _legacy_directory(path) -> None:
    """What version 0.1 left: bare customer records, a marker without a layout, seeded."""
    store = Store(path)
    store.insert("customers", DUNDER, dict(LEGACY))
    store.mark_seeded()
    (path / CONTRACT_MARKER).write_text(json.dumps({"contract": "Timbrix API (customers)"}))
    store.close()


def test_bare_records_of_an_earlier_version_are_upgraded_and_served(tmp_path):
    data = tmp_path / "data"
    _legacy_directory(data)
    sandbox = make_sandbox(data_dir=data)
    assert json.loads((data / CONTRACT_MARKER).read_text())["layout"] == 2
    with create_app(sandbox).test_client(base_url=LOCAL) as client:
        assert client.get(customer_url(LEGACY["id"]), headers=MICHAEL).json() == LEGACY
        listed = client.get(customers_url(), headers=MICHAEL).json()
        assert [c["id"] for c in listed] == [LEGACY["id"]]  # the fixtures were not re-seeded over it
        update = client.put(customer_url(LEGACY["id"]), headers=MICHAEL, json={"phone": "5551234567"})
        assert update.status_code == 200 and update.json()["phone"] == "5551234567"
    sandbox.store.close()
    again = make_sandbox(data_dir=data)  # a second start finds layout 2: nothing to upgrade
    with create_app(again).test_client(base_url=LOCAL) as client:
        assert client.get(customer_url(LEGACY["id"]), headers=MICHAEL).json()["phone"] == "5551234567"
        assert client.get(customer_url(DOCS_CUSTOMER), headers=MICHAEL).status_code == 404
    again.store.close()
