"""Each inference rule of the contract model, on small inline contracts: what the sandbox makes
of a contract nobody wrote for it (``contract/model.py``), and the engine answers that follow
(``engine/crud.py``, ``engine/answers.py``), pure where the rule is pure, through the in-process
app where HTTP is the point (media types, declared statuses)."""

from __future__ import annotations

import asyncio
import typing as t

import yaml
from conftest import LOCAL

from timbrix_sandbox.contract.model import Listing, declared_status, load_profile
from timbrix_sandbox.contract.records import page_of
from timbrix_sandbox.contract.shapes import flatten, instance, valid
from timbrix_sandbox.engine.answers import ContractAnswer
from timbrix_sandbox.engine.crud import Engine
from timbrix_sandbox.engine.faults import Behaviours
from timbrix_sandbox.engine.plugins import DomainPlugin
from timbrix_sandbox.engine.policy import Refusal
from timbrix_sandbox.engine.stores import TinyDBStore
from timbrix_sandbox.http.app import create_app
from timbrix_sandbox.profiles.sandboxes import make_sandbox


def contract(paths: dict, schemas: dict | None = None, **extra: t.Any) -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Inline", "version": "1"},
        "paths": paths,
        "components": {"schemas": schemas or {}},
        **extra,
    }


def json_response(schema: dict, status: str = "200", **more: t.Any) -> dict:
    return {status: {"description": "ok", "content": {"application/json": {"schema": schema, **more}}}}


def json_body(schema: dict) -> dict:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def crud(
    collection: str,
    item: str,
    record: dict,
    param: str,
    *,
    body: dict | None = None,
    listed: dict | None = None,
    item_response: dict | None = None,
) -> dict:
    """A collection and item path pair with the five operations."""
    param_spec = [{"name": param, "in": "path", "required": True, "schema": {"type": "string"}}]
    answer = item_response or record
    return {
        collection: {
            "get": {"operationId": "list", "responses": json_response(listed or {"type": "array", "items": record})},
            "post": {
                "operationId": "create",
                "requestBody": json_body(body or record),
                "responses": json_response(answer, "201"),
            },
        },
        item: {
            "parameters": param_spec,
            "get": {"operationId": "read", "responses": json_response(answer)},
            "patch": {
                "operationId": "update",
                "requestBody": json_body(body or record),
                "responses": json_response(answer),
            },
            "delete": {"operationId": "delete", "responses": {"204": {"description": "gone"}}},
        },
    }


def engine_for(spec: dict) -> Engine:
    return Engine(load_profile(spec), TinyDBStore(None), DomainPlugin(), Behaviours((), load_profile(spec)))


def run(awaitable: t.Awaitable) -> t.Any:
    return asyncio.run(awaitable)


# -- record shape ---------------------------------------------------------------------------------


def test_all_of_merges_properties_and_required_of_every_branch() -> None:
    record = {
        "allOf": [
            {"$ref": "#/components/schemas/Base"},
            {"type": "object", "properties": {"rfc": {"type": "string"}}, "required": ["rfc"]},
        ]
    }
    schemas = {
        "Base": {
            "type": "object",
            "properties": {"id": {"type": "string"}, "name": {"type": "string"}},
            "required": ["name"],
        }
    }
    profile = load_profile(contract(crud("/customers", "/customers/{id}", record, "id"), schemas))
    shape = profile.resources["customers"].schema
    assert set(shape["properties"]) == {"id", "name", "rfc"}
    assert set(shape["required"]) == {"name", "rfc"}


def test_one_of_gives_its_object_branch_and_a_nullable_any_of_its_non_null_one() -> None:
    assert flatten({"anyOf": [{"type": "null"}, {"type": "object", "properties": {"a": {}}}]})["properties"] == {
        "a": {}
    }
    assert set(flatten({"oneOf": [{"type": "string"}, {"properties": {"a": {}, "b": {}}}]})["properties"]) == {"a", "b"}


def test_the_id_is_the_item_parameter_when_the_record_has_it() -> None:
    record = {
        "type": "object",
        "properties": {"eventId": {"type": "string", "format": "uuid"}, "name": {"type": "string"}},
    }
    resource = load_profile(
        contract(crud("/special-events", "/special-events/{eventId}", record, "eventId"))
    ).resources["special-events"]
    assert (resource.id_field, resource.id_kind) == ("eventId", "uuid")


def test_the_id_is_the_property_the_parameter_ends_with() -> None:
    record = {"type": "object", "properties": {"gid": {"type": "string"}, "name": {"type": "string"}}}
    resource = load_profile(contract(crud("/projects", "/projects/{project_gid}", record, "project_gid"))).resources[
        "projects"
    ]
    assert resource.id_field == "gid"


def test_x_sandbox_id_still_names_the_id() -> None:
    record = {
        "type": "object",
        "x-sandbox-id": "code",
        "properties": {"code": {"type": "string"}, "id": {"type": "string"}},
    }
    assert load_profile(contract(crud("/things", "/things/{id}", record, "id"))).resources["things"].id_field == "code"


def test_request_wrapper_and_response_envelope_are_unwrapped_and_rewrapped() -> None:
    article = {"type": "object", "properties": {"slug": {"type": "string"}, "title": {"type": "string"}}}
    wrapped = {"type": "object", "properties": {"article": article}, "required": ["article"]}
    spec = contract(
        crud(
            "/articles",
            "/articles/{slug}",
            article,
            "slug",
            body=wrapped,
            item_response=wrapped,
            listed={
                "type": "object",
                "properties": {"articles": {"type": "array", "items": article}, "articlesCount": {"type": "integer"}},
            },
        )
    )
    profile = load_profile(spec)
    assert profile.operations["create"].body_key == "article"
    assert profile.operations["read"].record_path == ("article",)
    assert profile.resources["articles"].id_field == "slug"
    engine = engine_for(spec)
    created = run(engine.operations()["create"]("t", {}, {"article": {"title": "Hello"}}))
    assert created.status == 201 and created.body["article"]["title"] == "Hello"
    slug = created.body["article"]["slug"]
    read = run(engine.operations()["read"]("t", {"slug": slug}, None))
    assert read.body == created.body
    listed = run(engine.operations()["list"]("t", {}, None))
    assert listed.body == {"articles": [created.body["article"]], "articlesCount": 1}


def test_a_paginated_list_is_built_from_its_schema_and_limit_limits() -> None:
    record = {"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}}
    page = {
        "type": "object",
        "required": ["data"],
        "properties": {
            "data": {"type": "array", "items": record},
            "meta": {"type": "object", "properties": {"total": {"type": "integer"}}},
            "next_page": {"type": ["object", "null"], "properties": {"offset": {"type": "string"}}},
        },
    }
    paths = crud("/items", "/items/{id}", record, "id", listed=page)
    paths["/items"]["get"]["parameters"] = [
        {"name": "limit", "in": "query", "schema": {"type": "integer"}},
        {"name": "offset", "in": "query", "schema": {"type": "string"}},
    ]
    spec = contract(paths)
    listing = load_profile(spec).operations["list"].listing
    assert (listing.items_path, listing.limit_param, listing.offset_param) == (("data",), "limit", "offset")
    assert listing.count_fields == (("meta", "total"),) and listing.next_field == "next_page"
    engine = engine_for(spec)
    for name in ("a", "b", "c"):
        run(engine.operations()["create"]("t", {}, {"name": name}))
    first = run(engine.operations()["list"]("t", {"limit": 2}, None)).body
    assert [r["name"] for r in first["data"]] == ["a", "b"]
    assert first["meta"] == {"total": 3} and first["next_page"] == {"offset": "2"}
    rest = run(engine.operations()["list"]("t", {"limit": 2, "offset": first["next_page"]["offset"]}, None)).body
    assert [r["name"] for r in rest["data"]] == ["c"] and "next_page" not in rest
    assert valid(page, first) and valid(page, rest)


def test_page_parameters_count_pages_from_one() -> None:
    listing = Listing(page_param="page", limit_param="per_page")
    chosen = page_of(list(range(10)), listing, {"page": 2, "per_page": 3}, None, "now")
    assert chosen.records == [3, 4, 5] and chosen.total == 10


def test_nested_resources_are_scoped_by_their_parent_path_parameters() -> None:
    record = {"type": "object", "properties": {"number": {"type": "integer"}, "title": {"type": "string"}}}
    paths = crud("/repos/{owner}/{repo}/issues", "/repos/{owner}/{repo}/issues/{number}", record, "number")
    for item in paths.values():
        item.setdefault("parameters", [])
        item["parameters"] = [
            *item["parameters"],
            *({"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in ("owner", "repo")),
        ]
    spec = contract(paths)
    resource = load_profile(spec).resources["issues"]
    assert resource.parent_params == ("owner", "repo") and resource.tenant_param is None
    engine = engine_for(spec)
    here = {"owner": "octocat", "repo": "hello"}
    created = run(engine.operations()["create"]("t", here, {"title": "Bug"})).body
    assert run(engine.operations()["read"]("t", {**here, "number": created["number"]}, None)).body == created
    try:
        run(engine.operations()["read"]("t", {"owner": "someone", "repo": "else", "number": created["number"]}, None))
    except Refusal as refusal:
        assert refusal.status == 404
    else:
        raise AssertionError("an issue of octocat/hello was found under someone/else")
    assert run(engine.operations()["list"]("t", {"owner": "someone", "repo": "else"}, None)).body == []


def test_two_collections_with_the_same_last_segment_are_two_resources() -> None:
    record = {"type": "object", "properties": {"id": {"type": "integer"}}}
    paths = {
        **crud("/posts/{pid}/comments", "/posts/{pid}/comments/{id}", record, "id"),
        **crud("/photos/{pid}/comments", "/photos/{pid}/comments/{id}", record, "id"),
    }
    for path, item in paths.items():
        for method in ("get", "post", "patch", "delete"):
            if method in item:
                item[method]["operationId"] = f"{method}{path}"
    names = {r.collection_path: r.name for r in load_profile(contract(paths)).resources.values()}
    assert len(set(names.values())) == 2 and names["/posts/{pid}/comments"] == "comments"


def test_suffixed_item_paths_are_items_of_their_suffixed_collection() -> None:
    record = {"type": "object", "properties": {"sid": {"type": "string", "pattern": "^CA[0-9a-f]{32}$"}}}
    profile = load_profile(contract(crud("/Calls.json", "/Calls/{Sid}.json", record, "Sid")))
    resource = profile.resources["Calls"]
    assert (resource.collection_path, resource.item_path, resource.id_field) == (
        "/Calls.json",
        "/Calls/{Sid}.json",
        "sid",
    )
    assert profile.operations["read"].action == "read"
    created = run(
        engine_for(contract(crud("/Calls.json", "/Calls/{Sid}.json", record, "Sid"))).operations()["create"](
            "t", {}, {}
        )
    )
    assert valid(record, created.body) and created.body["sid"].startswith("CA")


# -- operations that are not CRUD -----------------------------------------------------------------


def test_an_action_is_answered_from_its_example_and_never_stops_a_contract() -> None:
    upload = {"type": "object", "properties": {"code": {"type": "integer"}, "message": {"type": "string"}}}
    paths = {
        "/pet/{petId}/uploadImage": {
            "post": {
                "operationId": "uploadFile",
                "parameters": [{"name": "petId", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "responses": json_response(upload, example={"code": 200, "message": "uploaded"}),
            }
        },
        "/health": {"get": {"operationId": "health", "responses": {"default": {"description": "anything"}}}},
        "/": {
            "get": {
                "operationId": "root",
                "responses": json_response(
                    {"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}}
                ),
            }
        },
    }
    profile = load_profile(contract(paths))
    assert {o.action for o in profile.operations.values()} == {"answer"} and not profile.resources
    assert run(ContractAnswer(profile.operations["uploadFile"])(None, {}, None)).body == {
        "code": 200,
        "message": "uploaded",
    }
    assert run(ContractAnswer(profile.operations["root"])(None, {}, None)).body == {"ok": False}
    assert run(ContractAnswer(profile.operations["health"])(None, {}, None)).status == 200


def test_an_example_the_schema_rejects_is_replaced_by_a_generated_instance() -> None:
    schema = {"type": "object", "required": ["count"], "properties": {"count": {"type": "integer", "minimum": 1}}}
    paths = {"/stats": {"get": {"operationId": "stats", "responses": json_response(schema, example={"count": "many"})}}}
    body = run(ContractAnswer(load_profile(contract(paths)).operations["stats"])(None, {}, None)).body
    assert body == {"count": 1} and valid(schema, body)


def test_generated_instances_are_minimal_and_valid() -> None:
    schema = {
        "type": "object",
        "required": ["sid", "kind", "tags", "when", "score"],
        "properties": {
            "sid": {"type": "string", "pattern": "^CH[0-9a-fA-F]{32}$"},
            "kind": {"enum": ["a", "b"]},
            "tags": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 2}},
            "when": {"type": "string", "format": "date-time"},
            "score": {"type": "number", "exclusiveMinimum": 0, "multipleOf": 0.5},
            "optional": {"type": "string"},
        },
    }
    value = instance(schema)
    assert valid(schema, value) and "optional" not in value and instance(schema) == value


# -- statuses and media types ---------------------------------------------------------------------


def test_declared_status_uses_default_or_the_nearest_declared_error() -> None:
    assert declared_status(("200", "default"), 404) == 404  # default stands in: the 404 itself
    assert declared_status(("200", "4XX"), 404) == 404
    assert declared_status(("200", "401", "422"), 404) == 422  # Conduit's GetArticle
    assert declared_status(("200", "400", "404"), 415) == 400
    assert declared_status(("200",), 404) == 404  # nothing declared to stand in
    assert declared_status(("200", "400"), 500) == 500  # the sandbox's failure stays its own


PETSTORE = """
openapi: 3.0.3
info: {title: Pets, version: "1"}
paths:
  /pets:
    post:
      operationId: addPet
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Pet'}
      responses:
        '200':
          description: ok
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Pet'}
            application/xml:
              schema: {$ref: '#/components/schemas/Pet'}
              example: "<pet><name>rex</name></pet>"
        default:
          description: error
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Error'}
  /pets/{id}:
    get:
      operationId: getPet
      parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
      responses:
        '200':
          description: ok
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Pet'}
            application/xml:
              schema: {$ref: '#/components/schemas/Pet'}
        default:
          description: error
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Error'}
components:
  schemas:
    Pet:
      type: object
      required: [name]
      properties:
        id: {type: integer}
        name: {type: string}
    Error:
      type: object
      required: [code, message]
      properties:
        code: {type: integer, format: int32}
        message: {type: string}
"""


def test_media_types_are_negotiated_and_errors_use_the_declared_error_schema(tmp_path) -> None:
    path = tmp_path / "pets.yaml"
    path.write_text(PETSTORE)
    app = create_app(make_sandbox(contract=path, data_dir=None), base_path="/api")
    with app.test_client(base_url=LOCAL) as client:
        created = client.post("/api/pets", json={"name": "rex"})
        assert created.status_code == 200 and created.headers["content-type"].startswith("application/json")
        pet = created.json()
        both = client.get(f"/api/pets/{pet['id']}", headers={"Accept": "application/xml, application/json"})
        assert both.json() == pet and both.headers["content-type"].startswith("application/json")
        xml = client.post("/api/pets", json={"name": "tom"}, headers={"Accept": "application/xml"})
        assert xml.status_code == 200 and xml.headers["content-type"].startswith("application/xml")
        assert xml.text == "<pet><name>rex</name></pet>"
        # No XML example for the read: JSON anyway (RFC 9110 12.5.1), never a 406 or a 500.
        only_xml = client.get(f"/api/pets/{pet['id']}", headers={"Accept": "application/xml"})
        assert only_xml.status_code == 200 and only_xml.json() == pet
        missing = client.get("/api/pets/999")
        assert missing.status_code == 404 and missing.json() == {"code": 404, "message": "Resource not found"}
        invalid = client.post("/api/pets", json={})
        assert invalid.status_code == 400 and set(invalid.json()) == {"code", "message"}
    assert yaml.safe_load(PETSTORE)["openapi"] == "3.0.3"


def test_a_read_only_collection_is_served_from_the_store_and_its_minimum_from_the_example() -> None:
    user = {"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}}
    users = {"type": "array", "minItems": 1, "items": user}
    hours = {"type": "array", "items": {"type": "object", "properties": {"date": {"type": "string"}}}}
    paths = {
        "/users": {"get": {"operationId": "listUsers", "responses": json_response(users, example=[{"id": 7}])}},
        "/hours": {"get": {"operationId": "hours", "responses": json_response(hours, example=[{"date": "mon"}])}},
    }
    spec = contract(paths)
    profile = load_profile(spec)
    assert profile.operations["listUsers"].action == "list" and "users" in profile.resources
    assert profile.operations["hours"].action == "answer"  # records without an id: the example
    engine = engine_for(spec)
    assert run(engine.operations()["listUsers"]("t", {}, None)).body == [{"id": 7}]  # empty store: minItems 1
    engine.store.insert("users", "t", {"id": "1", "data": {"id": 1, "name": "Ann"}})
    assert run(engine.operations()["listUsers"]("t", {}, None)).body == [{"id": 1, "name": "Ann"}]
    assert run(engine.operations()["hours"]("t", {}, None)).body == [{"date": "mon"}]


# -- timestamps -----------------------------------------------------------------------------------


def test_stamps_go_only_where_the_record_holds_a_date_time_string(tmp_path) -> None:
    """``createdAt``/``updatedAt`` and kin get the engine's ISO-8601 stamps only where the
    contract says they are date-time strings; an integer ``updated_at`` (Unix seconds) or a
    ``date`` is filled like any field, and creating and updating answer inside the contract
    (an ISO stamp in an integer field answered 500)."""
    record = {
        "type": "object",
        "required": ["id", "name", "createdAt", "updated_at", "date_created"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "createdAt": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "integer"},
            "date_created": {"type": "string", "format": "date"},
        },
    }
    body = {"type": "object", "properties": {"name": {"type": "string"}}}
    path = tmp_path / "things.yaml"
    path.write_text(yaml.safe_dump(contract(crud("/things", "/things/{id}", record, "id", body=body))))
    resource = load_profile(yaml.safe_load(path.read_text())).resources["things"]
    assert (resource.created_field, resource.updated_field) == ("createdAt", None)
    with create_app(make_sandbox(contract=path, data_dir=None)).test_client(base_url=LOCAL) as client:
        created = client.post("/things", json={"name": "a"})
        assert created.status_code == 201, created.text
        thing = created.json()
        assert thing["createdAt"].endswith("Z") and isinstance(thing["updated_at"], int)
        updated = client.patch(f"/things/{thing['id']}", json={"name": "b"})
        assert updated.status_code == 200, updated.text
        assert updated.json()["name"] == "b" and isinstance(updated.json()["updated_at"], int)
