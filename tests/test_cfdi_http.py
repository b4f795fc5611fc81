"""CFDI 4.0 validation over HTTP: the vendor's documented messages verbatim, merged
re-validation on PUT, nothing stored on rejection, the SAT catalog endpoints, strict mode."""

from __future__ import annotations

import pytest
from conftest import DOCS_CUSTOMER, LOCAL, MICHAEL, VALID_CREATE, customer_url, customers_url

import cfdi
from timbrix_sandbox.engine.fixtures import load_fixtures
from timbrix_sandbox.http.app import create_app
from timbrix_sandbox.profiles import TIMBRIX_FIXTURES  # noqa: E402
from timbrix_sandbox.profiles.sandboxes import make_sandbox

FISICA = "GODE561231GR8"


def rejected(response, message=None):
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["statusCode"] == 400 and body["error"] == "BAD_REQUEST"
    if message is not None:
        assert body["message"] == message
    return body["message"]


@pytest.mark.parametrize(
    "change,message",
    [
        ({"taxSystem": "621"}, 'El régimen fiscal "621" no aplica para persona moral (RFC de 12 caracteres)'),
        ({"defaultInvoiceUse": "D01"}, 'El uso de CFDI "D01" no aplica para persona moral (RFC de 12 caracteres)'),
        (
            {"taxId": FISICA, "taxSystem": "605", "defaultInvoiceUse": "G01"},
            'El uso de CFDI "G01" no es compatible con el régimen fiscal "605"',
        ),
    ],
)
def test_documented_messages_verbatim_on_update_of_the_docs_customer(client, change, message):
    before = client.get(customer_url(), headers=MICHAEL).json()
    rejected(client.put(customer_url(), headers=MICHAEL, json=change), message)
    assert client.get(customer_url(), headers=MICHAEL).json() == before


def test_documented_messages_verbatim_on_create(client):
    body = {**VALID_CREATE, "taxId": "DUM901231AB3", "taxSystem": "621"}
    rejected(
        client.post(customers_url(), headers=MICHAEL, json=body),
        'El régimen fiscal "621" no aplica para persona moral (RFC de 12 caracteres)',
    )


@pytest.mark.parametrize(
    "change",
    [
        {"taxId": "ABC990231AB1"},  # 31 Feb
        {"taxSystem": "609"},  # CFDI 3.3 leftover
        {"taxSystem": "628"},
        {"defaultInvoiceUse": "P01"},  # CFDI 3.3 leftover
        {"taxId": "XAXX010101000", "taxSystem": "612", "defaultInvoiceUse": "S01"},
        {"addressZip": "00000"},
        {"addressZip": "17000"},
    ],
)
def test_rule_violations_are_rejected_with_the_oracles_message_and_store_nothing(client, change):
    before_list = client.get(customers_url(), headers=MICHAEL).json()
    merged = {**VALID_CREATE, **change}
    expected = cfdi.first_violation(
        tax_id=merged["taxId"],
        tax_system=merged["taxSystem"],
        invoice_use=merged["defaultInvoiceUse"],
        zip_code=merged["addressZip"],
    )
    assert expected is not None
    rejected(client.post(customers_url(), headers=MICHAEL, json=merged), expected.message)
    assert client.get(customers_url(), headers=MICHAEL).json() == before_list


def test_update_validates_the_merged_record(client):
    """Sending only taxId re-validates it with the stored régimen and uso."""
    message = rejected(client.put(customer_url(), headers=MICHAEL, json={"taxId": FISICA}))
    assert message == 'El régimen fiscal "601" no aplica para persona física (RFC de 13 caracteres)'
    # ... and a consistent change of all three is accepted
    ok = client.put(
        customer_url(), headers=MICHAEL, json={"taxId": FISICA, "taxSystem": "612", "defaultInvoiceUse": "D01"}
    )
    assert ok.status_code == 200 and ok.json()["taxSystem"] == "612"


def test_update_without_fiscal_fields_does_not_revalidate(client):
    assert client.put(customer_url(), headers=MICHAEL, json={"legalName": "Dunder Mifflin Paper"}).status_code == 200


def test_accepted_fiscal_data_reads_back_exactly(client):
    body = {**VALID_CREATE, "taxId": FISICA, "taxSystem": "616", "defaultInvoiceUse": "G02", "addressZip": "86500"}
    created = client.post(customers_url(), headers=MICHAEL, json=body).json()
    stored = client.get(customer_url(created["id"]), headers=MICHAEL).json()
    assert (stored["taxId"], stored["taxSystem"], stored["defaultInvoiceUse"], stored["address"]["zip"]) == (
        FISICA,
        "616",
        "G02",
        "86500",
    )


def test_every_fixture_customer_passes_the_rules():
    fixtures = load_fixtures(TIMBRIX_FIXTURES)
    customers = [c for org in fixtures.records["customers"].values() for c in org]
    assert len(customers) >= 17
    for customer in customers:
        violation = cfdi.first_violation(
            tax_id=customer["taxId"],
            tax_system=customer["taxSystem"],
            invoice_use=customer["defaultInvoiceUse"],
            zip_code=customer["address"]["zip"],
        )
        assert violation is None, (customer["id"], violation)


def test_strict_mode_rejects_the_docs_rfc_on_fiscal_updates():
    with create_app(make_sandbox(strict_rfc=True)).test_client(base_url=LOCAL) as client:
        message = rejected(client.put(customer_url(), headers=MICHAEL, json={"taxSystem": "601"}))
        assert message == 'El dígito verificador del RFC "DUM901231AB3" no es válido'
        assert client.put(customer_url(), headers=MICHAEL, json={"taxId": "ABC101010111"}).status_code == 200
        assert client.get(customer_url(DOCS_CUSTOMER), headers=MICHAEL).json()["taxId"] == "ABC101010111"


@pytest.mark.parametrize(
    "query,codes",
    [
        ("?tipoPersona=moral", ["601", "603", "610", "620", "622", "623", "624", "626"]),
        ("?tipoPersona=ambas", ["610", "626"]),
    ],
)
def test_regimenes_endpoint(client, query, codes):
    rows = client.get("/api/sat/regimenes-fiscales" + query).json()
    assert [r["codigo"] for r in rows] == codes
    assert all(set(r) == {"codigo", "descripcion", "tipoPersona"} for r in rows)


def test_regimenes_without_filter_lists_the_19_cfdi40_codes(client):
    codes = [r["codigo"] for r in client.get("/api/sat/regimenes-fiscales").json()]
    assert len(codes) == 19 and not {"609", "628", "629", "630"} & set(codes)


def test_usos_endpoint_docs_example(client):
    rows = client.get("/api/sat/usos-cfdi?tipoPersona=ambas&regimen=601").json()
    by_code = {r["codigo"]: r for r in rows}
    assert by_code["G01"] == {"codigo": "G01", "descripcion": "Adquisición de mercancías.", "tipoPersona": "ambas"}
    assert "G03" in by_code and "P01" not in by_code


def test_usos_for_616(client):
    assert [r["codigo"] for r in client.get("/api/sat/usos-cfdi?regimen=616").json()] == ["G02", "S01", "CP01"]


@pytest.mark.parametrize("query", ["?regimen=999", "?regimen=609", "?tipoPersona=juridica", "?regimen=60"])
def test_catalog_bad_queries_are_400(client, query):
    response = client.get("/api/sat/usos-cfdi" + query)
    assert response.status_code == 400 and response.json()["error"] == "BAD_REQUEST"
