"""Every declared error status, and bad input of every kind, answers in the vendor format
(validated against the contract) - never problem+json, HTML or a 500 - and changes nothing."""

from __future__ import annotations

import json

import pytest
from conftest import DOCS_CUSTOMER, LOCAL, MICHAEL, VALID_CREATE, customer_url, customers_url
from jsonschema import Draft202012Validator

from timbrix_sandbox.contract.loading import load_contract
from timbrix_sandbox.profiles import DEFAULT_CONTRACT

CONTRACT = load_contract(DEFAULT_CONTRACT)
ERROR_SCHEMA = CONTRACT["components"]["schemas"]["Error"]
CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}
JSON = {**MICHAEL, "Content-Type": "application/json"}


def assert_vendor_error(response, status):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    Draft202012Validator(ERROR_SCHEMA).validate(body)
    assert body["statusCode"] == status and body["error"] == CODES[status]
    assert body["message"] and "\n" not in body["message"]
    return body


def snapshot(client):
    return client.get(customers_url(), headers=MICHAEL).json()


@pytest.mark.parametrize(
    "content",
    [
        b"{bad json",
        b'{"legalName": "Dunder',  # truncated
        b'{"legalName": "\xff\xfe"}',  # invalid UTF-8
        b"[" * 100_000 + b"]" * 100_000,  # deep nesting
        b"null",
        b"[]",
        b'"a string"',
        b'{"legalName": 5}',  # wrong type
        b'{"legalName": ""}',  # empty
        b'{"legalName": "a\\u0000b"}',  # NUL byte
        b'{"legalName": "line\\nbreak"}',
        b'{"adressZip": "86500"}',  # unknown field (typo)
        b'{"addressZip": "8650"}',
        b'{"addressZip": "\xd9\xa1\xd9\xa2\xd9\xa3\xd9\xa4\xd9\xa5"}',  # Arabic-Indic digits
        b'{"email": "not-an-email"}',
        b'{"taxId": "dum901231ab3"}',  # lowercase RFC
        b'{"legalName": "' + b"x" * 300 + b'"}',  # over maxLength
    ],
)
def test_bad_update_bodies_are_400_and_change_nothing(client, content):
    before = snapshot(client)
    response = client.put(customer_url(), headers=JSON, content=content)
    assert_vendor_error(response, 400)
    assert snapshot(client) == before


@pytest.mark.parametrize(
    "content",
    [b"{", b"", b'{"legalName": null}', json.dumps({**VALID_CREATE, "extra": 1}).encode()],
)
def test_bad_create_bodies_are_400_and_store_nothing(client, content):
    before = snapshot(client)
    assert_vendor_error(client.post(customers_url(), headers=JSON, content=content), 400)
    assert snapshot(client) == before


def test_body_over_1_mib_is_413_and_changes_nothing(client):
    before = snapshot(client)
    big = json.dumps({"legalName": "x" * (1024 * 1024 + 10)}).encode()
    assert_vendor_error(client.put(customer_url(), headers=JSON, content=big), 413)
    assert_vendor_error(client.post(customers_url(), headers=JSON, content=big), 413)
    assert snapshot(client) == before


def test_body_over_1_mib_without_content_length_is_413(client):
    def chunks():
        for _ in range(20):
            yield b" " * (64 * 1024)
        yield b"{}"

    response = client.put(customer_url(), headers=JSON, content=chunks())
    assert_vendor_error(response, 413)


def test_small_chunked_body_is_read_like_any_other(client):
    def chunks():
        yield b'{"legalName": '
        yield b'"Chunked Mifflin"}'

    response = client.put(customer_url(), headers=JSON, content=chunks())
    assert response.status_code == 200
    assert response.json()["legalName"] == "Chunked Mifflin"


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/x-www-form-urlencoded"])
def test_wrong_content_type_is_415(client, content_type):
    before = snapshot(client)
    response = client.put(
        customer_url(), headers={**MICHAEL, "Content-Type": content_type}, content=b'{"legalName":"x"}'
    )
    assert_vendor_error(response, 415)
    assert snapshot(client) == before


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_without_a_content_type_is_415_and_changes_nothing(client, chunked):
    """Connexion validated such a body as JSON and handed the handler none: a create was made
    from the contract's examples (201, whatever was sent) and an update changed nothing (200)."""
    before = snapshot(client)
    sent = json.dumps({**VALID_CREATE, "legalName": "Sent Without Type"}).encode()
    for method, url, body in (("POST", customers_url(), sent), ("PUT", customer_url(), b'{"email": "typed@not.mx"}')):
        content = iter([body[:10], body[10:]]) if chunked else body
        response = client.request(method, url, headers=MICHAEL, content=content)
        assert "content-type" not in {name.lower() for name in response.request.headers}
        assert "Content-Type" in assert_vendor_error(response, 415)["message"]
    assert snapshot(client) == before
    # a request that sends no body needs no Content-Type: nothing to describe
    assert client.request("PUT", customer_url(), headers=MICHAEL).status_code != 415


@pytest.mark.parametrize(
    "path",
    [
        customer_url("not-an-id"),
        customer_url("590CE6C56D04F840AA8438AF"),
        customer_url("ñññññññññññññññññññññññ"),
        customer_url("590ce6c56d04f840aa8438af%00"),
        "/api/organizations/550e8400-e29b-41d4-a716-446655440000/customers/..%2F..%2Fetc",
    ],
)
def test_malformed_ids_are_4xx(client, path):
    response = client.get(path, headers=MICHAEL)
    assert response.status_code in (400, 404)
    assert_vendor_error(response, response.status_code)


def test_unknown_route_is_404(client):
    assert_vendor_error(client.get("/api/invoices", headers=MICHAEL), 404)
    assert_vendor_error(client.get("/", headers=MICHAEL), 404)


@pytest.mark.parametrize(
    "method,path,allow",
    [
        ("PATCH", customer_url(), "DELETE, GET, HEAD, PUT"),
        ("POST", customer_url(), "DELETE, GET, HEAD, PUT"),
        ("DELETE", customers_url(), "GET, HEAD, POST"),
        ("PUT", "/api/sat/usos-cfdi", "GET, HEAD"),
    ],
)
def test_wrong_method_is_405_with_full_allow_header(client, method, path, allow):
    response = client.request(method, path, headers=MICHAEL)
    assert_vendor_error(response, 405)
    assert response.headers["allow"] == allow


def test_unknown_query_parameter_and_duplicates_are_400(client):
    assert_vendor_error(client.get(customers_url() + "?page=2", headers=MICHAEL), 400)
    assert_vendor_error(client.get("/api/sat/usos-cfdi?regimen=601&regimen=605"), 400)


def test_every_status_the_operations_emit_is_declared():
    """The statuses exercised above are all in the contract for the operations that emit them."""
    paths = CONTRACT["paths"]
    item = paths["/organizations/{organizationId}/customers/{customerId}"]
    collection = paths["/organizations/{organizationId}/customers"]
    for operation in (item["get"], item["put"], item["delete"], collection["get"], collection["post"]):
        assert {"400", "401", "403", "405"} <= operation["responses"].keys()
    for operation in (item["get"], item["put"], item["delete"]):
        assert "404" in operation["responses"]
    for operation in (item["put"], collection["post"]):
        assert {"413", "415"} <= operation["responses"].keys()


def test_docs_customer_survives_all_of_the_above(client):
    response = client.get(customer_url(DOCS_CUSTOMER), headers=MICHAEL)
    assert response.status_code == 200


def test_server_error_is_a_declared_500_in_vendor_format():
    from timbrix_sandbox.http.app import create_app
    from timbrix_sandbox.profiles.sandboxes import make_sandbox

    with create_app(make_sandbox(faults=["server-error-long-name"])).test_client(base_url=LOCAL) as client:
        before = snapshot(client)
        response = client.put(customer_url(), headers=MICHAEL, json={"legalName": "x" * 101})
        assert_vendor_error_500(response)
        assert snapshot(client) == before


def test_sandbox_never_emits_a_body_its_contract_forbids(tmp_path):
    """A fixture edited into an invalid record is refused at the door with a declared 500,
    rather than sent to clients."""
    import yaml

    from timbrix_sandbox.http.app import create_app
    from timbrix_sandbox.profiles import TIMBRIX_FIXTURES as DEFAULT_FIXTURES
    from timbrix_sandbox.profiles.sandboxes import make_sandbox

    data = yaml.safe_load(DEFAULT_FIXTURES.read_text(encoding="utf-8"))
    first = data["customers"]["550e8400-e29b-41d4-a716-446655440000"][0]
    first["email"] = "not-an-email"
    broken = tmp_path / "fixtures.yaml"
    broken.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with create_app(make_sandbox(fixtures_path=broken)).test_client(base_url=LOCAL) as client:
        response = client.get(customer_url(), headers=MICHAEL)
        assert_vendor_error_500(response)
        assert "email" in response.json()["message"]


def assert_vendor_error_500(response):
    assert response.status_code == 500
    body = response.json()
    Draft202012Validator(ERROR_SCHEMA).validate(body)
    assert body["statusCode"] == 500 and body["error"] == "INTERNAL_SERVER_ERROR"
    assert "500" in CONTRACT["paths"]["/organizations/{organizationId}/customers/{customerId}"]["put"]["responses"]


def test_a_large_body_on_get_is_ignored_not_an_undeclared_413(client):
    response = client.request("GET", customer_url(), headers=JSON, content=b" " * (1024 * 1024 + 10))
    assert response.status_code == 200
