"""A contract served with no fixtures file starts: one default tenant and one development user,
whose credentials work, the same on every start."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
import yaml
from conftest import LOCAL

from timbrix_sandbox.engine.fixtures import FixtureError
from timbrix_sandbox.http.app import create_app
from timbrix_sandbox.profiles.sandboxes import make_sandbox

TEXT = {"text": {"type": "string"}}
NOTE = {"type": "object", "required": ["id", "text"], "properties": {"id": {"type": "string"}, **TEXT}}
NEW_NOTE = {"type": "object", "required": ["text"], "properties": TEXT}
ERROR = {"description": "error", "content": {"application/json": {"schema": {"type": "object"}}}}


def notes_contract(
    tmp_path: Path,
    *,
    title: str = "Notes",
    schemes: t.Mapping[str, dict] | None = None,
    security: list | None = None,
    servers: list | None = None,
    name: str = "notes.yaml",
) -> Path:
    """A tiny contract (a notes collection) written to ``tmp_path``: no fixtures file beside it."""
    item = {"description": "ok", "content": {"application/json": {"schema": NOTE}}}
    errors = {"400": ERROR, "401": ERROR, "403": ERROR, "404": ERROR}
    spec: dict[str, t.Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1"},
        "paths": {
            "/notes": {
                "get": {
                    "operationId": "listNotes",
                    "responses": {
                        "200": {
                            "description": "ok",
                            "content": {"application/json": {"schema": {"type": "array", "items": NOTE}}},
                        },
                        **errors,
                    },
                },
                "post": {
                    "operationId": "createNote",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": NEW_NOTE}},
                    },
                    "responses": {"201": item, **errors},
                },
            },
            "/notes/{noteId}": {
                "parameters": [{"name": "noteId", "in": "path", "required": True, "schema": {"type": "string"}}],
                "get": {"operationId": "getNote", "responses": {"200": item, **errors}},
            },
        },
    }
    if servers is not None:
        spec["servers"] = servers
    if schemes:
        spec["components"] = {"securitySchemes": dict(schemes)}
    if security is not None:
        spec["security"] = security
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


BEARER = {"bearer": {"type": "http", "scheme": "bearer"}}


def test_a_contract_without_fixtures_starts_with_a_working_development_user(tmp_path):
    contract = notes_contract(tmp_path, schemes=BEARER, security=[{"bearer": []}])
    sandbox = make_sandbox(contract=contract, data_dir=None)
    assert list(sandbox.fixtures.organizations) == ["default"]
    (user,) = sandbox.fixtures.users
    assert user.organizations == {"default"}
    auth = {"Authorization": f"Bearer {user.token}"}
    with create_app(sandbox).test_client(base_url=LOCAL) as client:
        created = client.post("/notes", json={"text": "hello"}, headers=auth)
        assert created.status_code == 201, created.text
        note = created.json()
        assert client.get(f"/notes/{note['id']}", headers=auth).json() == note
        assert client.get("/notes", headers=auth).json() == [note]
        assert client.get("/notes").status_code == 401
        assert client.get("/notes", headers={"Authorization": "Bearer sk_dev_wrong"}).status_code == 401
        listed = client.get("/__sandbox/credentials").json()
        assert listed == [
            {
                "scheme": "bearer",
                "type": "http",
                "in": "header",
                "name": "Authorization",
                "value": user.token,
                "tenant": "default",
                "user": "developer",
                "tenants": ["default"],
            }
        ]


def test_the_development_credential_is_the_same_on_every_start_and_differs_per_contract(tmp_path):
    first = make_sandbox(contract=notes_contract(tmp_path, schemes=BEARER, security=[{"bearer": []}]), data_dir=None)
    again = make_sandbox(contract=notes_contract(tmp_path, schemes=BEARER, security=[{"bearer": []}]), data_dir=None)
    other = make_sandbox(
        contract=notes_contract(tmp_path, title="Tasks", schemes=BEARER, security=[{"bearer": []}], name="tasks.yaml"),
        data_dir=None,
    )
    assert first.fixtures.users[0].token == again.fixtures.users[0].token
    assert first.fixtures.users[0].token != other.fixtures.users[0].token


def test_a_fixtures_file_beside_the_contract_is_still_used(tmp_path):
    contract = notes_contract(tmp_path, schemes=BEARER, security=[{"bearer": []}])
    (tmp_path / "notes.fixtures.yaml").write_text(
        "organizations: [{id: acme}]\nusers: [{id: ann, token: sk_ann, organizations: [acme]}]\n", encoding="utf-8"
    )
    sandbox = make_sandbox(contract=contract, data_dir=None)
    assert [user.token for user in sandbox.fixtures.users] == ["sk_ann"]


def test_an_explicit_fixtures_file_must_exist(tmp_path):
    contract = notes_contract(tmp_path, schemes=BEARER, security=[{"bearer": []}])
    with pytest.raises(FixtureError, match="No such file"):
        make_sandbox(contract=contract, data_dir=None, fixtures_path=tmp_path / "missing.fixtures.yaml")


@pytest.mark.parametrize(
    ("servers", "base"),
    [
        ([{"url": "https://api.example.com/v2"}], "/v2"),
        ([{"url": "https://api.example.com/v2/"}, {"url": "http://localhost/other"}], "/v2"),
        ([{"url": "https://{region}.example.com/{version}", "variables": {
            "region": {"default": "eu"}, "version": {"default": "v3", "enum": ["v3"]}}}], "/v3"),
        ([{"url": "/relative/v1"}], "/relative/v1"),
        ([{"url": "https://api.example.com"}], "/"),
        (None, "/"),
        ([], "/"),
    ],
)
def test_the_base_path_is_the_first_server_urls_path(tmp_path, servers, base):
    contract = notes_contract(tmp_path, servers=servers)
    with create_app(make_sandbox(contract=contract, data_dir=None)).test_client(base_url=LOCAL) as client:
        assert client.get("/__sandbox/health").json()["basePath"] == base
        assert client.post(base.rstrip("/") + "/notes", json={"text": "x"}).status_code == 201
        if base != "/":
            assert client.get("/notes").status_code == 404


def test_the_base_path_can_be_overridden(tmp_path):
    contract = notes_contract(tmp_path, servers=[{"url": "https://api.example.com/v2"}])
    app = create_app(make_sandbox(contract=contract, data_dir=None), base_path="mock/")
    with app.test_client(base_url=LOCAL) as client:
        assert client.get("/__sandbox/health").json()["basePath"] == "/mock"
        assert client.post("/mock/notes", json={"text": "x"}).status_code == 201
        assert client.get("/v2/notes").status_code == 404
        assert client.get("/mock/openapi.json").json()["info"]["title"] == "Notes"


def test_the_shipped_profiles_keep_serving_at_api():
    for name in ("timbrix", "beel", "bookkeeping"):
        with create_app(make_sandbox(contract=name, data_dir=None)).test_client(base_url=LOCAL) as client:
            assert client.get("/__sandbox/health").json()["basePath"] == "/api"


CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"


def test_serve_a_public_spec_unmodified_without_fixtures(live_server_factory):
    """petstore-expanded (no security, ``servers: https://petstore.swagger.io/v2``) starts with
    no fixtures file, open, at ``/v2``; ``--base-path`` moves it."""
    spec = CORPUS / "petstore-expanded.yaml"
    if not spec.exists():
        pytest.skip(f"the shared corpus is not beside the repository ({CORPUS})")
    server = live_server_factory(data_dir=None, extra=["--contract", str(spec)])
    with server.client() as client:
        health = client.get("/__sandbox/health").json()
        assert health["basePath"] == "/v2"
        assert client.get("/__sandbox/credentials").json() == []
        listing = client.get("/v2/pets")
        assert listing.status_code not in (401, 403, 404), listing.text  # routed and open
        assert client.get("/pets").status_code == 404
    moved = live_server_factory(data_dir=None, extra=["--contract", str(spec), "--base-path", "/petstore"])
    with moved.client() as client:
        assert client.get("/__sandbox/health").json()["basePath"] == "/petstore"
        assert client.get("/petstore/pets").status_code not in (401, 403, 404)
        assert client.get("/v2/pets").status_code == 404


def test_conformance_names_the_base_path_a_sandbox_serves_at(live_server_factory, tmp_path):
    from conformance.model import Options, UsageProblem
    from conformance.runner import run

    contract = notes_contract(tmp_path, servers=[{"url": "https://notes.example.com/v2"}])
    server = live_server_factory(data_dir=None, extra=["--contract", str(contract)])
    with pytest.raises(UsageProblem, match=f"--base-url {server.url}/v2"):
        run(Options(base_url=server.url, token="unused", contract=contract))


def test_the_contracts_valid_examples_are_the_default_tenants_first_records(tmp_path):
    contract = notes_contract(tmp_path)
    spec = yaml.safe_load(contract.read_text(encoding="utf-8"))
    read = spec["paths"]["/notes/{noteId}"]["get"]["responses"]["200"]["content"]["application/json"]
    read["examples"] = {
        "first": {"value": {"id": "n1", "text": "from the docs"}},
        "no id": {"value": {"text": "cannot be keyed"}},
        "invalid": {"value": {"id": "n2", "text": 7}},
    }
    listing = spec["paths"]["/notes"]["get"]["responses"]["200"]["content"]["application/json"]
    listing["example"] = [{"id": "n1", "text": "from the docs"}, {"id": "n3", "text": "second"}]
    contract.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    with create_app(make_sandbox(contract=contract, data_dir=None)).test_client(base_url=LOCAL) as client:
        assert client.get("/notes").json() == [{"id": "n1", "text": "from the docs"}, {"id": "n3", "text": "second"}]
        assert client.get("/notes/n3").json() == {"id": "n3", "text": "second"}
        assert client.get("/notes/n2").status_code == 404
        client.post("/notes", json={"text": "mine"})
        client.post("/__sandbox/reset")
        assert [note["id"] for note in client.get("/notes").json()] == ["n1", "n3"]
