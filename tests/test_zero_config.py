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
        created = client.post("/api/notes", json={"text": "hello"}, headers=auth)
        assert created.status_code == 201, created.text
        note = created.json()
        assert client.get(f"/api/notes/{note['id']}", headers=auth).json() == note
        assert client.get("/api/notes", headers=auth).json() == [note]
        assert client.get("/api/notes").status_code == 401
        assert client.get("/api/notes", headers={"Authorization": "Bearer sk_dev_wrong"}).status_code == 401


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
