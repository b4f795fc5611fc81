"""Behaviours per request, at run time, over real sockets: Prism's ``Prefer`` header and the
rules of ``/__sandbox/behaviours`` (a forced status, latency, a dropped connection, a named
fault) per operation and tenant, for N calls or a time window; ``serve --fault`` as a
permanent rule. Every answer is one the contract declares."""

from __future__ import annotations

import time

import httpx
import pytest
import yaml
from conftest import (
    DOCS_CUSTOMER,
    DUNDER,
    LOCAL,
    MICHAEL,
    PRINCE,
    PRINCE_CUSTOMER,
    PRINCE_TOKEN,
    ROOT,
    VALID_CREATE,
    LiveServer,
    customer_url,
    customers_url,
)

from timbrix_sandbox.contract.loading import load_contract
from timbrix_sandbox.http.app import create_app
from timbrix_sandbox.http.oas31 import first_error
from timbrix_sandbox.profiles import TIMBRIX_FIXTURES
from timbrix_sandbox.profiles.sandboxes import make_sandbox

FIND_ONE = "CustomersController_findOne"
ERROR_KEYS = {"statusCode", "message", "error"}


@pytest.fixture(scope="module")
def server():
    started = LiveServer(None).start()
    yield started
    started.stop()


@pytest.fixture
def http(server):
    with server.client() as client:
        assert client.delete("/__sandbox/behaviours").status_code == 204
        client.post("/__sandbox/reset")
        yield client


def customer_schema() -> dict:
    from connexion.json_schema import resolve_refs

    spec = resolve_refs(load_contract(ROOT / "openapi.yaml"))
    return spec["paths"]["/organizations/{organizationId}/customers/{customerId}"]["get"]["responses"]["200"][
        "content"]["application/json"]["schema"]


def set_behaviour(http: httpx.Client, **rule) -> dict:
    answer = http.post("/__sandbox/behaviours", json=rule)
    assert answer.status_code == 201, answer.text
    return answer.json()


# -- Prefer -------------------------------------------------------------------------------------
def test_prefer_code_answers_that_declared_status_in_the_contract_format(http):
    answer = http.get(customer_url(), headers={**MICHAEL, "Prefer": "code=404"})
    assert answer.status_code == 404
    assert answer.json() == {"statusCode": 404, "message": "Customer not found", "error": "NOT_FOUND"}
    assert http.get(customer_url(), headers=MICHAEL).status_code == 200  # nothing was changed


def test_prefer_an_undeclared_code_is_a_clear_400(http):
    answer = http.get(customer_url(), headers={**MICHAEL, "Prefer": "code=418"})
    assert answer.status_code == 400
    assert set(answer.json()) == ERROR_KEYS
    assert "418 is not declared" in answer.json()["message"] and "404" in answer.json()["message"]
    malformed = http.get(customer_url(), headers={**MICHAEL, "Prefer": "code=abc"})
    assert malformed.status_code == 400 and "code=abc" in malformed.json()["message"]


def test_prefer_still_needs_a_valid_request(http):
    """As Prism does: security and validation first, then the preferred answer."""
    assert http.get(customer_url(), headers={"Prefer": "code=404"}).status_code == 401
    assert http.get(customer_url("abc"), headers={**MICHAEL, "Prefer": "code=404"}).status_code == 400


def test_prefer_dynamic_answers_a_generated_body_valid_against_the_schema(http):
    schema = customer_schema()
    bodies = []
    for _ in range(3):
        answer = http.get(customer_url(), headers={**MICHAEL, "Prefer": "code=200, dynamic=true"})
        assert answer.status_code == 200, answer.text
        assert first_error(schema, answer.json()) is None
        bodies.append(answer.json())
    assert len({str(b) for b in bodies}) > 1  # generated, not the stored record
    listed = http.get(customers_url(), headers={**MICHAEL, "Prefer": "dynamic=true"})
    assert listed.status_code == 200 and isinstance(listed.json(), list) and listed.json()


def test_prefer_example_picks_a_named_example(tmp_path):
    contract = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    get = contract["paths"]["/organizations/{organizationId}/customers/{customerId}"]["get"]
    missing = {"statusCode": 404, "message": "Customer 590ce6c56d04f840aa8438af was archived", "error": "NOT_FOUND"}
    get["responses"]["404"] = {
        "description": "Not found",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"},
                                          "examples": {"archived": {"value": missing}}}},
    }
    path = tmp_path / "timbrix-examples.yaml"
    path.write_text(yaml.safe_dump(contract, sort_keys=False))
    server = LiveServer(None, ["--contract", str(path), "--fixtures", str(TIMBRIX_FIXTURES)]).start()
    try:
        with server.client() as http:
            for prefer in ("example=archived", "code=404, example=archived"):
                answer = http.get(customer_url(), headers={**MICHAEL, "Prefer": prefer})
                assert (answer.status_code, answer.json()) == (404, missing), prefer
            unknown = http.get(customer_url(), headers={**MICHAEL, "Prefer": "code=404, example=gone"})
            assert unknown.status_code == 400 and "archived" in unknown.json()["message"]
    finally:
        server.stop()


@pytest.mark.parametrize("fast", ["1", "0"], ids=["fast path", "connexion"])
def test_a_preferred_405_or_401_carries_the_header_rfc_9110_requires(fast, monkeypatch):
    """RFC 9110 requires ``Allow`` on every 405 and ``WWW-Authenticate`` on every 401: a
    preferred one (``Prefer`` or a ``status`` rule) says what the sandbox's own would."""
    monkeypatch.setenv("TIMBRIX_SANDBOX_FASTPATH", fast)
    with create_app(make_sandbox()).test_client(base_url=LOCAL) as client:
        wrong_method, no_token = client.post(customer_url(), headers=MICHAEL), client.get(customer_url())
        assert (wrong_method.status_code, no_token.status_code) == (405, 401)
        preferred = client.get(customer_url(), headers={**MICHAEL, "Prefer": "code=405"})
        assert preferred.status_code == 405
        assert preferred.headers["allow"] == wrong_method.headers["allow"] == "DELETE, GET, HEAD, PUT"
        preferred = client.get(customer_url(), headers={**MICHAEL, "Prefer": "code=401"})
        assert preferred.status_code == 401
        assert preferred.headers["www-authenticate"] == no_token.headers["www-authenticate"]
        set_behaviour(client, behaviour="status", status=405, operation=FIND_ONE, times=1)
        assert client.get(customer_url(), headers=MICHAEL).headers["allow"] == "DELETE, GET, HEAD, PUT"
        assert "allow" not in client.get(customer_url(), headers={**MICHAEL, "Prefer": "code=404"}).headers
        assert (client.get("/__sandbox/health").json()["fastPathServed"] > 0) == (fast == "1")


def test_a_preferred_401_names_the_operations_own_scheme(tmp_path):
    """A Basic-only operation's 401 challenges for Basic, preferred or not."""
    error = {"description": "error", "content": {"application/json": {"schema": {"type": "object"}}}}
    ok = {"description": "ok", "content": {"application/json": {"schema": {"type": "array"}}}}
    contract = {
        "openapi": "3.1.0",
        "info": {"title": "Basic", "version": "1"},
        "paths": {"/notes": {"get": {"operationId": "list_notes", "security": [{"basic": []}],
                                     "responses": {"200": ok, "401": error}}}},
        "components": {"securitySchemes": {"basic": {"type": "http", "scheme": "basic"}}},
    }
    path = tmp_path / "basic.yaml"
    path.write_text(yaml.safe_dump(contract, sort_keys=False), encoding="utf-8")
    with create_app(make_sandbox(contract=path, data_dir=None)).test_client(base_url=LOCAL) as client:
        (credential,) = client.get("/__sandbox/credentials").json()
        basic = httpx.BasicAuth(*credential["value"].split(":", 1))
        assert client.get("/notes").headers["www-authenticate"] == 'Basic realm="timbrix-sandbox"'
        preferred = client.get("/notes", auth=basic, headers={"Prefer": "code=401"})
        assert preferred.status_code == 401
        assert preferred.headers["www-authenticate"] == 'Basic realm="timbrix-sandbox"'


# -- rules ----------------------------------------------------------------------------------------
def test_forced_status_for_the_next_n_calls_of_one_operation(http):
    rule = set_behaviour(http, behaviour="status", status=404, operation=FIND_ONE, times=2)
    assert (rule["remaining"], rule["operation"], rule["source"]) == (2, FIND_ONE, "runtime")
    assert http.get(customers_url(), headers=MICHAEL).status_code == 200  # another operation
    assert [http.get(customer_url(), headers=MICHAEL).status_code for _ in range(3)] == [404, 404, 200]
    assert http.get("/__sandbox/behaviours").json()["behaviours"] == []  # used up


def test_rule_for_one_tenant_leaves_the_others_alone(http):
    set_behaviour(http, behaviour="status", status=500, tenant=PRINCE)
    assert http.get(customer_url(), headers=MICHAEL).status_code == 200
    refused = http.get(customer_url(PRINCE_CUSTOMER, PRINCE), headers=PRINCE_TOKEN)
    assert refused.status_code == 500 and set(refused.json()) == ERROR_KEYS


def test_rule_for_a_time_window(http):
    set_behaviour(http, behaviour="status", status=404, seconds=0.5)
    assert http.get(customer_url(), headers=MICHAEL).status_code == 404
    time.sleep(0.6)
    assert http.get(customer_url(), headers=MICHAEL).status_code == 200


def test_fixed_and_random_latency(http):
    set_behaviour(http, behaviour="latency", ms=300, times=1)
    started = time.monotonic()
    assert http.get(customer_url(), headers=MICHAEL).status_code == 200
    assert time.monotonic() - started >= 0.3
    set_behaviour(http, behaviour="latency", ms=100, maxMs=200, times=1)
    started = time.monotonic()
    http.get(customer_url(), headers=MICHAEL)
    assert time.monotonic() - started >= 0.1
    refused = http.post("/__sandbox/behaviours", json={"behaviour": "latency", "ms": 300, "maxMs": 100})
    assert refused.status_code == 400 and "maxMs" in refused.json()["message"]


def test_dropped_connection(http):
    set_behaviour(http, behaviour="drop-connection", operation=FIND_ONE, times=1)
    with pytest.raises(httpx.RemoteProtocolError):
        http.get(customer_url(), headers=MICHAEL)
    assert http.get(customer_url(), headers=MICHAEL).status_code == 200
    dropped = http.get("/__sandbox/requests", params={"status": "dropped"}).json()["requests"]
    assert dropped and dropped[0]["path"] == customer_url()


def test_named_faults_at_run_time(http):
    set_behaviour(http, behaviour="response-extra-field", operation=FIND_ONE, times=1)
    assert "internalNotes" in http.get(customer_url(), headers=MICHAEL).json()  # past response validation
    assert "internalNotes" not in http.get(customer_url(), headers=MICHAEL).json()

    set_behaviour(http, behaviour="create-not-persisted", times=1)  # an engine hook
    created = http.post(customers_url(), json=VALID_CREATE, headers=MICHAEL)
    assert created.status_code == 201
    assert http.get(customer_url(created.json()["id"]), headers=MICHAEL).status_code == 404
    again = http.post(customers_url(), json=VALID_CREATE, headers=MICHAEL)
    assert http.get(customer_url(again.json()["id"]), headers=MICHAEL).status_code == 200


def test_listing_removing_and_refusing_rules(http):
    first = set_behaviour(http, behaviour="status", status=404, operation=FIND_ONE)
    set_behaviour(http, behaviour="latency", ms=1)
    listed = http.get("/__sandbox/behaviours").json()
    assert [r["behaviour"] for r in listed["behaviours"]] == ["status", "latency"]
    names = {b["name"] for b in listed["available"]}
    assert {"status", "latency", "drop-connection", "cross-tenant-read"} <= names and "auth-ignored" not in names
    assert http.delete(f"/__sandbox/behaviours/{first['id']}").status_code == 204
    assert http.delete(f"/__sandbox/behaviours/{first['id']}").status_code == 404
    assert http.get(customer_url(), headers=MICHAEL).status_code == 200
    for rule, words in [
        ({"behaviour": "no-such-thing"}, "unknown behaviour"),
        ({"behaviour": "auth-ignored"}, "--fault auth-ignored"),
        ({"behaviour": "status", "status": 418}, "not declared"),
        ({"behaviour": "status", "status": 404, "operation": "nope"}, "not served"),
        ({"behaviour": "latency", "status": 404}, "does not take status"),
    ]:
        refused = http.post("/__sandbox/behaviours", json=rule)
        assert refused.status_code == 400, rule
        assert words in refused.json()["message"], (rule, refused.json())



def test_removing_a_rule_by_a_malformed_id_is_a_400_in_the_control_format(http):
    """As for any control-API path value its schema refuses (``/__sandbox/behaviours/0``,
    ``/__sandbox/reset/not!an!id``): a 400 naming the parameter, not a routing 404 that says
    the route does not exist. An id no rule has is the 404 that names it."""
    for rule_id in ("abc", "1.5", "0"):
        refused = http.delete(f"/__sandbox/behaviours/{rule_id}")
        assert refused.status_code == 400, rule_id
        assert set(refused.json()) == ERROR_KEYS and "path parameter 'ruleId'" in refused.json()["message"]
    missing = http.delete("/__sandbox/behaviours/12345")
    assert (missing.status_code, missing.json()["message"]) == (404, "No run-time behaviour 12345")
    assert http.post("/__sandbox/behaviours/abc").headers["allow"] == "DELETE"  # the method is what is wrong

def test_startup_fault_is_a_permanent_rule(live_server_factory):
    server = live_server_factory(None, extra=["--fault", "cross-tenant-read"])
    with server.client() as http:
        (rule,) = http.get("/__sandbox/behaviours").json()["behaviours"]
        assert rule == {"id": 0, "behaviour": "cross-tenant-read", "category": "tenant isolation", "operation": None,
                        "tenant": None, "remaining": None, "secondsLeft": None, "source": "startup"}
        assert http.delete("/__sandbox/behaviours").status_code == 204  # run-time rules only
        leaked = http.get(customer_url(PRINCE_CUSTOMER, DUNDER), headers=MICHAEL)
        assert leaked.status_code == 200  # the fault still acts
        assert http.get(customer_url(DOCS_CUSTOMER), headers=MICHAEL).status_code == 200
