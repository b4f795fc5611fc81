"""A ``writeOnly`` property is accepted in requests and never answered (OpenAPI: it "MAY be
sent as part of a request but SHOULD NOT be sent as part of the response"; schemathesis
flags it): DigitalOcean's domain ``ip_address``."""

from __future__ import annotations

import yaml
from conftest import LOCAL

from timbrix_sandbox.http.app import create_app
from timbrix_sandbox.profiles.sandboxes import make_sandbox

DOMAIN = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string"},
        "ip_address": {"type": "string", "writeOnly": True},
        "ttl": {"type": "integer", "readOnly": True},
    },
}
WRAPPED = {"type": "object", "properties": {"domain": DOMAIN}}
ONE = {"description": "a domain", "content": {"application/json": {"schema": WRAPPED}}}
CONTRACT = {
    "openapi": "3.0.3",
    "info": {"title": "Domains", "version": "1"},
    "servers": [{"url": "/v2"}],
    "paths": {
        "/domains": {
            "post": {
                "operationId": "createDomain",
                "requestBody": {"required": True, "content": {"application/json": {"schema": DOMAIN}}},
                "responses": {"201": ONE},
            },
            "get": {
                "operationId": "listDomains",
                "responses": {
                    "200": {
                        "description": "domains",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"domains": {"type": "array", "items": DOMAIN}},
                                }
                            }
                        },
                    }
                },
            },
        },
        "/domains/{domain_name}": {
            "parameters": [{"name": "domain_name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": {"operationId": "getDomain", "responses": {"200": ONE}},
        },
    },
}


def test_a_write_only_field_is_accepted_and_never_answered(tmp_path):
    contract = tmp_path / "domains.yaml"
    contract.write_text(yaml.safe_dump(CONTRACT, sort_keys=False), encoding="utf-8")
    with create_app(make_sandbox(contract=contract, data_dir=None)).test_client(base_url=LOCAL) as client:
        created = client.post("/v2/domains", json={"name": "example.com", "ip_address": "192.0.2.1"})
        assert created.status_code == 201, created.text
        assert created.json()["domain"]["name"] == "example.com"
        assert "ip_address" not in created.json()["domain"]
        read = client.get("/v2/domains/example.com")
        assert read.status_code == 200 and read.json() == created.json()
        listed = client.get("/v2/domains").json()["domains"]
        assert [d["name"] for d in listed] == ["example.com"] and "ip_address" not in listed[0]


def test_a_required_field_the_schema_forgot_to_declare_is_answered(tmp_path):
    """DigitalOcean's logtail destination requires ``endpoint`` but declares only ``token``:
    the sent endpoint is kept in the answer (dropping it answered a record its own schema
    refuses: a 500 on every read)."""
    destination = {"type": "object", "required": ["endpoint"], "properties": {"token": {"type": "string"}}}
    spec = yaml.safe_load(yaml.safe_dump(CONTRACT))
    spec["paths"]["/domains"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]["log"] = (
        destination
    )
    spec["paths"]["/domains"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]["properties"][
        "domain"
    ]["properties"]["log"] = destination
    spec["paths"]["/domains/{domain_name}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"][
        "properties"
    ]["domain"]["properties"]["log"] = destination
    contract = tmp_path / "domains.yaml"
    contract.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    with create_app(make_sandbox(contract=contract, data_dir=None)).test_client(base_url=LOCAL) as client:
        sent = {"name": "example.com", "log": {"endpoint": "https://in.logtail.example", "token": "t"}}
        created = client.post("/v2/domains", json=sent)
        assert created.status_code == 201, created.text
        assert created.json()["domain"]["log"] == sent["log"]
        read = client.get("/v2/domains/example.com")
        assert read.status_code == 200, read.text
        assert read.json()["domain"]["log"] == sent["log"]
