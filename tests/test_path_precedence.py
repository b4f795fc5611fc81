"""A fixed path beats a template it collides with, for every method (OpenAPI: concrete paths
match before templated ones), on both pipelines: DigitalOcean declares
``/v2/nfs/{nfs_id}`` before ``/v2/nfs/snapshots`` and ``/v2/dedicated-inferences/{id}``
(GET, PATCH, DELETE) before ``/v2/dedicated-inferences/sizes`` (GET only)."""

from __future__ import annotations

import pytest
import yaml
from conftest import LOCAL

from timbrix_sandbox.contract.paths import in_precedence_order, shadowed_methods
from timbrix_sandbox.http.app import create_app
from timbrix_sandbox.profiles.sandboxes import make_sandbox

ERROR = {
    "description": "an error",
    "content": {
        "application/json": {
            "schema": {"type": "object", "required": ["message"], "properties": {"message": {"type": "string"}}}
        }
    },
}
THING = {"type": "object", "properties": {"id": {"type": "string", "readOnly": True}, "name": {"type": "string"}}}
ONE = {"description": "a thing", "content": {"application/json": {"schema": THING}}}
SIZES = {
    "type": "object",
    "required": ["sizes"],
    "properties": {"sizes": {"type": "array", "items": {"type": "string"}}},
    "example": {"sizes": ["small", "large"]},
}
ID = [{"name": "thing_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}]
CONTRACT = {
    "openapi": "3.0.3",
    "info": {"title": "Things", "version": "1"},
    "servers": [{"url": "/v2"}],
    "paths": {
        "/things": {
            "post": {
                "operationId": "createThing",
                "requestBody": {"required": True, "content": {"application/json": {"schema": THING}}},
                "responses": {"201": ONE, "400": ERROR},
            },
            "get": {
                "operationId": "listThings",
                "responses": {
                    "200": {
                        "description": "things",
                        "content": {"application/json": {"schema": {"type": "array", "items": THING}}},
                    }
                },
            },
        },
        "/things/{thing_id}": {
            "parameters": ID,
            "get": {"operationId": "getThing", "responses": {"200": ONE, "400": ERROR, "404": ERROR}},
            "patch": {
                "operationId": "updateThing",
                "requestBody": {"content": {"application/json": {"schema": THING}}},
                "responses": {"200": ONE, "400": ERROR, "404": ERROR},
            },
            "delete": {"operationId": "deleteThing", "responses": {"204": {"description": "gone"}, "404": ERROR}},
        },
        "/things/default": {
            "get": {"operationId": "getDefaultThing", "responses": {"200": ONE}},
            "put": {
                "operationId": "updateDefaultThing",
                "requestBody": {"required": True, "content": {"application/json": {"schema": THING}}},
                "responses": {"200": ONE, "400": ERROR},
            },
        },
        "/things/sizes": {
            "get": {
                "operationId": "listSizes",
                "responses": {"200": {"description": "sizes", "content": {"application/json": {"schema": SIZES}}}},
            }
        },
    },
}


@pytest.fixture(scope="module", params=["fast path", "connexion"])
def client(request, tmp_path_factory):
    contract = tmp_path_factory.mktemp("precedence") / "things.yaml"
    contract.write_text(yaml.safe_dump(CONTRACT, sort_keys=False), encoding="utf-8")
    patch = pytest.MonkeyPatch()
    patch.setenv("TIMBRIX_SANDBOX_FASTPATH", "1" if request.param == "fast path" else "0")
    app = create_app(make_sandbox(contract=contract, data_dir=None))
    patch.undo()
    with app.test_client(base_url=LOCAL) as client:
        yield client


def test_the_fixed_path_answers_although_the_template_is_declared_first(client):
    response = client.get("/v2/things/sizes")
    assert response.status_code == 200, response.text
    assert response.json() == {"sizes": ["small", "large"]}


def test_a_method_only_the_template_serves_is_a_405_listing_the_fixed_paths_methods(client):
    for method in ("PATCH", "DELETE"):
        response = client.request(method, "/v2/things/sizes", json={"name": "x"})
        assert response.status_code == 405, (method, response.text)
        assert response.headers["allow"] == "GET, HEAD"
        assert "message" in response.json()


def test_the_template_still_serves_its_own_paths(client):
    created = client.post("/v2/things", json={"name": "rex"})
    assert created.status_code == 201, created.text
    thing = created.json()
    assert client.get(f"/v2/things/{thing['id']}").json() == thing
    updated = client.patch(f"/v2/things/{thing['id']}", json={"name": "max"})
    assert updated.status_code == 200 and updated.json()["name"] == "max"
    assert client.delete(f"/v2/things/{thing['id']}").status_code == 204


def test_precedence_order_and_shadowed_methods():
    """Stable: equally specific paths keep the contract's order, and templates as specific as
    each other unite their methods (Discourse's ``/groups/{name}.json``, ``/groups/{id}.json``)."""
    paths = {
        "/a/{x}": {"get": {}, "delete": {}},
        "/b": {"get": {}},
        "/a/fixed": {"get": {}},
        "/groups/{name}.json": {"get": {}},
        "/groups/{id}.json": {"put": {}},
        "/a/{x}/c": {"post": {}},
        "/a/b/{y}": {"get": {}},
    }
    assert list(in_precedence_order(paths)) == [
        "/b", "/a/fixed", "/a/b/{y}", "/a/{x}", "/groups/{name}.json", "/groups/{id}.json", "/a/{x}/c",
    ]  # fmt: skip
    found = {entry.template: (set(entry.served), set(entry.shadowed)) for entry in shadowed_methods(paths)}
    assert found == {"/a/fixed": ({"GET", "HEAD"}, {"DELETE"}), "/a/b/{y}": ({"GET", "HEAD"}, {"POST"})}


def test_a_fixed_path_updated_without_an_id_is_answered_not_refused(client):
    """``PUT /v2/projects/default``: no path parameter, and the record's id is readOnly, so the
    body cannot name the record: it is not an update by id (which would refuse every request
    with "the body names no id") but an operation answered from the contract."""
    response = client.put("/v2/things/default", json={"name": "rex"})
    assert response.status_code == 200, response.text
    assert client.get("/v2/things/default").status_code == 200
