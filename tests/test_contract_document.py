"""The contract at its URL is the authored one (``$ref``s intact; only ``servers`` names this
sandbox), and a client generated from that URL by openapi-python-client - with no warning -
works against the live sandbox: lists and gets customers, and parses the error model."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import DOCS_CUSTOMER, DUNDER, ROOT, LiveServer

from timbrix_sandbox.contract.loading import load_contract

CONTRACT = ROOT / "openapi.yaml"
GENERATOR = Path(sys.executable).parent / "openapi-python-client"
PACKAGE = "timbrix_api_customers_client"


@pytest.fixture(scope="module")
def server():
    started = LiveServer(None).start()
    yield started
    started.stop()


def test_openapi_json_and_yaml_are_the_authored_document(server):
    authored = load_contract(CONTRACT)
    with server.client() as http:
        as_json = http.get("/api/openapi.json")
        as_yaml = http.get("/api/openapi.yaml")
        ui = http.get("/api/ui/")
    assert as_json.status_code == as_yaml.status_code == 200
    assert as_json.headers["content-type"] == "application/json"
    served = as_json.json()
    assert served["servers"] == [{"url": "/api", "description": "this sandbox"}]
    assert {k: v for k, v in served.items() if k != "servers"} == {k: v for k, v in authored.items() if k != "servers"}
    get_one = served["paths"]["/organizations/{organizationId}/customers/{customerId}"]["get"]
    assert get_one["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Customer"
    }
    assert yaml.safe_load(as_yaml.text) == served
    assert "# How timbrix-sandbox serves this contract" in as_yaml.text  # the file as written, comments too
    assert ui.status_code == 200 and "/api/openapi.json" in ui.text  # Swagger UI reads the same document


@pytest.fixture(scope="module")
def generated(server, tmp_path_factory):
    """The client openapi-python-client generates from the served URL, imported."""
    out = tmp_path_factory.mktemp("generated")
    env = {**os.environ, "PATH": f"{GENERATOR.parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # its ruff hooks
    result = subprocess.run(
        [str(GENERATOR), "generate", "--url", f"{server.url}/api/openapi.json", "--meta", "none"],
        cwd=out, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "warning" not in output.lower(), output
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def test_generated_client_lists_gets_and_parses_errors(server, generated):
    find_all = importlib.import_module(f"{PACKAGE}.api.customers.customers_controller_find_all")
    find_one = importlib.import_module(f"{PACKAGE}.api.customers.customers_controller_find_one")
    models = importlib.import_module(f"{PACKAGE}.models")
    client = generated.AuthenticatedClient(base_url=f"{server.url}/api", token="sk_test_michael",
                                           raise_on_unexpected_status=True)
    with client:
        customers = find_all.sync(organization_id=DUNDER, client=client)
        assert customers and all(isinstance(c, models.Customer) for c in customers)
        one = find_one.sync(organization_id=DUNDER, customer_id=DOCS_CUSTOMER, client=client)
        assert isinstance(one, models.Customer)
        assert (one.id, one.legal_name, one.address.zip_) == (DOCS_CUSTOMER, "Dunder Mifflin", "86500")
        missing = find_one.sync_detailed(organization_id=DUNDER, customer_id="66b2a1d3f5c0b2c3d4e5f699",
                                         client=client)
        assert missing.status_code == 404
        assert isinstance(missing.parsed, models.Error)
        assert (missing.parsed.status_code, missing.parsed.error) == (404, "NOT_FOUND")
    anonymous = generated.Client(base_url=f"{server.url}/api")
    with anonymous:
        refused = find_one.sync(organization_id=DUNDER, customer_id=DOCS_CUSTOMER, client=anonymous)
    assert isinstance(refused, models.Error) and refused.status_code == 401
    assert httpx.get(f"{server.url}/api/openapi.json").json()["servers"][0]["url"] == "/api"
