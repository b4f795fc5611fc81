"""Data directories written by earlier versions keep working: Timbrix's customers were stored
bare (record layout 1) before one engine served every contract; they are upgraded in place,
all or nothing, at the first start, and answer exactly as before."""

from __future__ import annotations

import json

from conftest import DOCS_CUSTOMER, DUNDER, LOCAL, MICHAEL, customer_url, customers_url

from timbrix_sandbox.engine.fixtures import load_fixtures
from timbrix_sandbox.engine.store import CONTRACT_MARKER, Store
from timbrix_sandbox.http.app import create_app
from timbrix_sandbox.profiles import TIMBRIX_FIXTURES
from timbrix_sandbox.profiles.sandboxes import make_sandbox

# A fixture customer as 0.1 stored it, under an id the fixtures do not use.
LEGACY = {
    **next(c for c in load_fixtures(TIMBRIX_FIXTURES).records["customers"][DUNDER] if c["id"] == DOCS_CUSTOMER),
    "id": "6a0000000000000000000001",
}


def _legacy_directory(path) -> None:
    """What version 0.1 left: bare customer records, a marker without a layout, seeded."""
    store = Store(path)
    bare = {k: v for k, v in LEGACY.items() if k != "phone"}  # 0.1 filled a missing phone when answering
    bare["address"] = {k: v for k, v in LEGACY["address"].items() if k != "interior"}
    store.insert("customers", DUNDER, bare)
    store.mark_seeded()
    (path / CONTRACT_MARKER).write_text(json.dumps({"contract": "Timbrix API (customers)"}))
    store.close()


def test_bare_records_of_an_earlier_version_are_upgraded_and_served(tmp_path):
    data = tmp_path / "data"
    _legacy_directory(data)
    sandbox = make_sandbox(data_dir=data)
    assert json.loads((data / CONTRACT_MARKER).read_text())["layout"] == 2
    with create_app(sandbox).test_client(base_url=LOCAL) as client:
        answered = client.get(customer_url(LEGACY["id"]), headers=MICHAEL).json()
        assert answered == {**LEGACY, "phone": None, "address": {**LEGACY["address"], "interior": None}}
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
