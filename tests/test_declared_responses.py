"""What the sandbox answers stays inside what the served contract declares: error media types
(``application/problem+json``, ``text/html``), a malformed path value under a typed route, the
``Allow`` header of colliding templates, and answers that are not the record.

Served from the shared corpus (``../shared/corpus``, unmodified) where a public spec shows the
case, else from a small inline contract; every server is in-process (``create_app`` over an
in-memory store).
"""

from __future__ import annotations

import base64
import typing as t
from pathlib import Path

import pytest
import yaml
from conftest import LOCAL, ROOT

from timbrix_sandbox.contract.loading import load_contract
from timbrix_sandbox.contract.model import resolve_refs
from timbrix_sandbox.contract.shapes import valid
from timbrix_sandbox.http.app import create_app
from timbrix_sandbox.profiles.sandboxes import make_sandbox

CORPUS = ROOT.parent / "shared" / "corpus"
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"the shared corpus is not beside the repo ({CORPUS})")
MUSEUM = "/_mock/docs/openapi/museum-api"


def _client(contract: Path) -> t.Any:
    sandbox = make_sandbox(contract=contract, data_dir=None)
    return sandbox, create_app(sandbox).test_client(base_url=LOCAL)


def _write(tmp_path: Path, spec: dict) -> Path:
    path = tmp_path / "contract.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def _declared_schema(contract: Path, template: str, method: str, status: int, media: str) -> dict:
    spec = load_contract(contract)
    operation = resolve_refs(spec["paths"][template][method], spec)
    return operation["responses"][str(status)]["content"][media]["schema"]


@needs_corpus
def test_museum_errors_are_problem_json_in_the_declared_error_schema():
    """Museum declares every error as ``application/problem+json`` of ``Error {type, title}``."""
    contract = CORPUS / "museum.yaml"
    sandbox, client = _client(contract)
    user = sandbox.fixtures.users[0]
    basic = {"Authorization": "Basic " + base64.b64encode(f"{user.id}:{user.token}".encode()).decode()}
    with client:
        missing = client.get(f"{MUSEUM}/special-events/49bca4a7-7b9e-4e0b-9808-b800277adf02", headers=basic)
        assert missing.status_code == 404, missing.text
        assert missing.headers["content-type"] == "application/problem+json"
        body = missing.json()
        assert valid(_declared_schema(contract, "/special-events/{eventId}", "get", 404, "application/problem+json"),
                     body)
        assert set(body) == {"type", "title"} and body["title"]
        bad_query = client.get(f"{MUSEUM}/special-events?startDate=not-a-date", headers=basic)
        assert bad_query.status_code == 400
        assert bad_query.headers["content-type"] == "application/problem+json"
        assert "startDate" in bad_query.json()["title"]
        anonymous = client.delete(f"{MUSEUM}/special-events/49bca4a7-7b9e-4e0b-9808-b800277adf02")
        assert anonymous.status_code == 401
        assert anonymous.headers["content-type"] == "application/problem+json"
        no_body = client.post(f"{MUSEUM}/tickets", headers=basic)
        assert no_body.status_code == 400
        assert no_body.headers["content-type"] == "application/problem+json"


@needs_corpus
def test_tictactoe_errors_are_text_html_and_a_malformed_square_is_a_400():
    """Tic Tac Toe's ``/board/{row}/{column}`` declares 200 and a ``text/html`` 400 of at most 256
    characters; ``{column}`` is an integer from 1 to 3."""
    sandbox, client = _client(CORPUS / "tictactoe.yaml")
    auth = {"Authorization": f"Bearer {sandbox.fixtures.users[0].token}"}
    with client:
        out_of_range = client.get("/board/1/4", headers=auth)
        assert out_of_range.status_code == 400
        assert out_of_range.headers["content-type"].startswith("text/html")
        assert "column" in out_of_range.text and len(out_of_range.text) <= 256
        for path in ("/board/1/null%2Cnull", "/board/x/1", "/board/1/1.5"):
            malformed = client.get(path, headers=auth)
            assert malformed.status_code == 400, (path, malformed.status_code, malformed.text)
            assert malformed.headers["content-type"].startswith("text/html")
            assert "integer" in malformed.text
        escaped = client.put("/board/1/<b>", headers=auth, json="X")
        assert escaped.status_code == 400
        assert "<b>" not in escaped.text and "&lt;b&gt;" in escaped.text
        assert client.get("/board/1/1", headers=auth).status_code == 200
        wrong_method = client.delete("/board/1/x", headers=auth)
        assert wrong_method.status_code == 405
        assert wrong_method.headers["allow"] == "GET, HEAD, PUT"
        assert client.get("/board/1/1/2", headers=auth).status_code == 404


@needs_corpus
def test_conduit_malformed_comment_id_is_its_declared_422_not_a_404():
    """Conduit's ``DELETE /articles/{slug}/comments/{id}`` declares 204, 401 and 422 (an integer
    ``id``): a malformed id is a bad request, answered as the 422 in Conduit's error format."""
    _, client = _client(CORPUS / "conduit.yaml")
    with client:
        answer = client.delete("/api/articles/some-article/comments/null%2Cnull")
        assert answer.status_code == 422, answer.text
        assert list(answer.json()) == ["errors"] and "id" in answer.json()["errors"]["body"][0]


def _groups_contract(tmp_path: Path) -> Path:
    """Discourse's shape: ``/groups/{name}.json`` (GET) beside ``/groups/{id}.json`` (PUT, DELETE,
    an integer id), a delete answering ``{success}`` rather than the record."""
    group = {"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}}
    ok = {"type": "object", "additionalProperties": False, "required": ["success"],
          "properties": {"success": {"type": "string", "example": "OK"}}}
    json_of = lambda schema: {"content": {"application/json": {"schema": schema}}}  # noqa: E731
    integer_id = [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}]
    spec = {
        "openapi": "3.0.3",
        "info": {"title": "Groups", "version": "1"},
        "paths": {
            "/groups.json": {
                "get": {"operationId": "listGroups", "responses": {"200": {"description": "ok", **json_of(
                    {"type": "array", "items": group})}}},
                "post": {"operationId": "createGroup", "requestBody": {"required": True, **json_of(group)},
                         "responses": {"200": {"description": "ok", **json_of(group)}}},
            },
            "/groups/{name}.json": {
                "get": {"operationId": "getGroup", "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "ok", **json_of(group)}}},
            },
            "/groups/{id}.json": {
                "put": {"operationId": "updateGroup", "parameters": integer_id,
                        "requestBody": {"required": True, **json_of(group)},
                        "responses": {"200": {"description": "ok", **json_of(group)}}},
                "delete": {"operationId": "deleteGroup", "parameters": integer_id,
                           "responses": {"200": {"description": "ok", **json_of(ok)}}},
            },
        },
    }
    return _write(tmp_path, spec)


def test_allow_lists_every_method_of_every_template_the_path_fits(tmp_path):
    _, client = _client(_groups_contract(tmp_path))
    with client:
        options = client.options("/groups/1.json")
        assert options.status_code == 405
        assert options.headers["allow"] == "DELETE, GET, HEAD, PUT"
        # "admins" is a {name}, never an integer {id}: only the GET template takes it.
        assert client.options("/groups/admins.json").headers["allow"] == "GET, HEAD"
        not_served = client.put("/groups/admins.json", json={"name": "x"})
        assert not_served.status_code == 405 and not_served.headers["allow"] == "GET, HEAD"
        preflight = client.options(
            "/groups/1.json", headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "DELETE"}
        )
        assert preflight.status_code in (200, 204), preflight.text
        assert "DELETE" in preflight.headers["access-control-allow-methods"]


def test_a_delete_that_answers_a_status_object_answers_it_from_the_contract(tmp_path):
    """Discourse's ``DELETE /admin/groups/{id}.json`` answers ``{success: "OK"}`` (no record, no
    other property allowed): projecting the deleted record onto it was a 500."""
    contract = _groups_contract(tmp_path)
    spec = yaml.safe_load(contract.read_text())
    del spec["paths"]["/groups/{name}.json"]
    spec["paths"]["/groups/{id}.json"]["get"] = {
        "operationId": "getGroup", "parameters": spec["paths"]["/groups/{id}.json"]["put"]["parameters"],
        "responses": spec["paths"]["/groups/{id}.json"]["put"]["responses"],
    }
    _, client = _client(_write(tmp_path, spec))
    with client:
        created = client.post("/groups.json", json={"name": "admins"})
        assert created.status_code == 200, created.text
        group_id = created.json()["id"]
        deleted = client.delete(f"/groups/{group_id}.json")
        assert deleted.status_code == 200, deleted.text
        assert deleted.json() == {"success": "OK"}
        assert client.delete(f"/groups/{group_id}.json").status_code == 404
        assert client.get("/groups.json").json() == []


def test_a_fixed_path_is_not_the_template_beside_it(tmp_path):
    """DigitalOcean's ``/v2/apps/propose`` (POST) beside ``/v2/apps/{id}`` (GET, DELETE): the
    fixed path's Allow is its own method only (OpenAPI matches concrete paths first)."""
    contract = _groups_contract(tmp_path)
    spec = yaml.safe_load(contract.read_text())
    spec["paths"]["/groups/propose.json"] = {"post": {"operationId": "proposeGroup", "responses": {
        "200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}}}}
    _, client = _client(_write(tmp_path, spec))
    with client:
        assert client.options("/groups/propose.json").headers["allow"] == "POST"
        assert client.options("/groups/7.json").headers["allow"] == "DELETE, GET, HEAD, PUT"


def _references_contract(tmp_path: Path) -> Path:
    """Asana's shape: a request names related records by id (``assignee: "123"``, ``followers:
    ["1", "2"]``) and any ``access_level``; the response shows each as a compact record ``{gid,
    resource_type, name}`` and the access level as one of an enum."""
    compact = {"type": "object", "properties": {"gid": {"type": "string", "readOnly": True},
                                                 "resource_type": {"type": "string", "readOnly": True},
                                                 "name": {"type": "string"}}}
    task = {"type": "object", "properties": {
        "gid": {"type": "string", "readOnly": True}, "name": {"type": "string"},
        "access_level": {"type": "string", "enum": ["admin", "editor"]},
        "assignee": {**compact, "nullable": True}, "followers": {"type": "array", "items": compact}}}
    request = {"type": "object", "properties": {"data": {"type": "object", "properties": {
        "name": {"type": "string"}, "access_level": {"type": "string"},
        "assignee": {"type": "string", "nullable": True},
        "followers": {"type": "array", "items": {"type": "string"}}}}}}
    wrapped = {"type": "object", "properties": {"data": task}}
    json_of = lambda schema: {"content": {"application/json": {"schema": schema}}}  # noqa: E731
    gid = [{"name": "task_gid", "in": "path", "required": True, "schema": {"type": "string"}}]
    spec = {
        "openapi": "3.0.3",
        "info": {"title": "Tasks", "version": "1"},
        "paths": {
            "/tasks": {"post": {"operationId": "createTask", "requestBody": {"required": True, **json_of(request)},
                                "responses": {"201": {"description": "ok", **json_of(wrapped)}}}},
            "/tasks/{task_gid}": {"get": {"operationId": "getTask", "parameters": gid,
                                          "responses": {"200": {"description": "ok", **json_of(wrapped)}}}},
        },
    }
    return _write(tmp_path, spec)


def test_references_sent_as_ids_are_answered_as_the_compact_records_the_response_declares(tmp_path):
    _, client = _client(_references_contract(tmp_path))
    with client:
        sent = {"data": {"name": "Buy catnip", "assignee": "12345", "followers": ["12345", "42563"],
                         "access_level": "owner"}}
        created = client.post("/tasks", json=sent)
        assert created.status_code == 201, created.text
        task = created.json()["data"]
        assert task["assignee"] == {"gid": "12345"}
        assert task["followers"] == [{"gid": "12345"}, {"gid": "42563"}]
        assert "access_level" not in task  # "owner" is none of the levels a task can answer
        assert client.get(f"/tasks/{task['gid']}").json()["data"] == task


def test_the_suite_predicts_references_as_the_compact_records_a_conforming_server_answers(
    tmp_path, live_server_factory
):
    """The behaviour layer's create -> read check, on the Asana shape: a server answering
    ``assignee: "…"`` as ``{gid: "…"}`` (what the response declares) is not a violation."""
    from conformance.model import Options
    from conformance.runner import run

    contract = _references_contract(tmp_path)
    spec = yaml.safe_load(contract.read_text())
    data = spec["paths"]["/tasks"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]["data"]
    data["required"] = ["name", "assignee"]
    data["properties"]["assignee"] = {"type": "string", "minLength": 3}
    contract = _write(tmp_path, spec)
    server = live_server_factory(data_dir=None, extra=["--contract", str(contract)])
    result = run(Options(base_url=server.url, token=None, contract=contract, seed=1, max_examples=1,
                         phases=("examples",)))
    assert result.created > 0
    wrong = [f for f in result.findings if f.check == "create_then_read"]
    assert wrong == [], wrong


def test_a_counted_integer_id_skips_one_a_client_chose(tmp_path):
    """Petstore lets a client choose a pet's integer ``id``; a create without one counts up.
    The counter must step over an id a client already took (it answered 500 before)."""
    pet = {
        "type": "object",
        "required": ["name"],
        "properties": {"id": {"type": "integer", "format": "int64"}, "name": {"type": "string"}},
    }
    error = {"description": "invalid", "content": {"application/json": {"schema": {"type": "object"}}}}
    ok = {"description": "the pet", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}}
    path_id = {"name": "petId", "in": "path", "required": True, "schema": {"type": "integer", "format": "int64"}}
    body = {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}}
    spec = {
        "openapi": "3.0.3",
        "info": {"title": "pets", "version": "1"},
        "paths": {
            "/pets": {"post": {"operationId": "addPet", "requestBody": body, "responses": {"200": ok, "400": error}}},
            "/pets/{petId}": {
                "get": {"operationId": "getPet", "parameters": [path_id], "responses": {"200": ok, "404": error}}
            },
        },
        "components": {"schemas": {"Pet": pet}},
    }
    _, client = _client(_write(tmp_path, spec))
    with client:
        first = client.post("/pets", json={"name": "counted"})
        assert first.status_code == 200, first.text
        taken = first.json()["id"] + 1
        chosen = client.post("/pets", json={"id": taken, "name": "chosen"})
        assert chosen.status_code == 200, chosen.text
        counted = client.post("/pets", json={"name": "counted again"})
        assert counted.status_code == 200, counted.text
        assert counted.json()["id"] not in (first.json()["id"], taken)
        assert client.get(f"/pets/{taken}").json()["name"] == "chosen"
        assert client.get(f"/pets/{counted.json()['id']}").json()["name"] == "counted again"


def _strict(*names: str) -> dict:
    """An error schema of exactly these string fields (``additionalProperties: false``)."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": list(names),
        "properties": {name: {"type": "string"} for name in names},
    }


def _error_of(schema: dict) -> dict:
    return {"description": "e", "content": {"application/json": {"schema": schema}}}


def test_an_operation_with_its_own_error_schema_gets_errors_in_it(tmp_path):
    """DigitalOcean's errors are ``{id, message}``, but its nfs operations declare ``{code,
    message}``: each operation's errors fit the schema it declares, not only the contract's."""
    thing = {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}}}
    ok = {"description": "ok", "content": {"application/json": {"schema": thing}}}
    usual, own = _strict("id", "message"), _strict("code", "message")
    param = [{"name": "thing_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    spec = {
        "openapi": "3.0.3",
        "info": {"title": "errors", "version": "1"},
        "paths": {
            "/things": {
                "get": {"operationId": "listThings", "responses": {"200": ok, "401": _error_of(usual)}},
                "post": {
                    "operationId": "createThing",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": thing}}},
                    "responses": {"201": ok, "400": _error_of(usual), "401": _error_of(usual)},
                },
            },
            "/things/{thing_id}": {
                "get": {
                    "operationId": "getThing",
                    "parameters": param,
                    "responses": {"200": ok, "404": _error_of(own)},
                },
                "delete": {
                    "operationId": "deleteThing",
                    "parameters": param,
                    "responses": {"204": {"description": "gone"}, "404": _error_of(usual)},
                },
            },
        },
    }
    _, client = _client(_write(tmp_path, spec))
    with client:
        missing = client.get("/things/nope")
        assert missing.status_code == 404, missing.text
        assert valid(own, missing.json()), missing.json()
        gone = client.delete("/things/nope")
        assert gone.status_code == 404 and valid(usual, gone.json()), gone.text


def test_a_chosen_id_the_answer_cannot_show_is_replaced_not_a_500(tmp_path):
    """The request takes any string ``id``, the answer only lowercase ones: the record gets an id
    of its own (as any value the answer refuses is not stored) instead of failing with a 500."""
    answered = {
        "type": "object",
        "properties": {"id": {"type": "string", "pattern": "^[a-z]{8}$"}, "name": {"type": "string"}},
    }
    sent = {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}}}
    ok = {"description": "the thing", "content": {"application/json": {"schema": answered}}}
    error = {"description": "invalid", "content": {"application/json": {"schema": {"type": "object"}}}}
    path_id = {"name": "thingId", "in": "path", "required": True, "schema": {"type": "string"}}
    spec = {
        "openapi": "3.0.3",
        "info": {"title": "things", "version": "1"},
        "paths": {
            "/things": {
                "post": {
                    "operationId": "addThing",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": sent}}},
                    "responses": {"200": ok, "400": error},
                }
            },
            "/things/{thingId}": {
                "get": {"operationId": "getThing", "parameters": [path_id], "responses": {"200": ok, "404": error}}
            },
        },
    }
    _, client = _client(_write(tmp_path, spec))
    with client:
        made = client.post("/things", json={"id": "NOT-LOWER", "name": "x"})
        assert made.status_code == 200, made.text
        assert valid(answered, made.json()) and made.json()["id"] != "NOT-LOWER"
        assert client.get(f"/things/{made.json()['id']}").json()["name"] == "x"


def test_request_validation_errors_use_the_operations_own_error_schema(tmp_path):
    """DigitalOcean's ``POST /v2/nfs/shares/{share_id}/access_points`` without a body and its
    list with ``?status=AAA`` are refused before any handler runs; those 400s too must be the
    ``{code, message}`` the operation declares, not the contract's usual ``{id, message}``."""
    point = {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}}}
    ok = {"description": "ok", "content": {"application/json": {"schema": point}}}
    usual, own = _strict("id", "message"), _strict("code", "message")
    share = {"name": "share_id", "in": "path", "required": True, "schema": {"type": "string"}}
    status = {"name": "status", "in": "query", "schema": {"type": "string", "enum": ["ACTIVE", "CREATING"]}}
    spec = {
        "openapi": "3.0.3",
        "info": {"title": "errors", "version": "1"},
        "paths": {
            "/shares/{share_id}/points": {
                "parameters": [share],
                "get": {"operationId": "listPoints", "parameters": [status],
                        "responses": {"200": ok, "400": _error_of(own)}},
                "post": {
                    "operationId": "createPoint",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": point}}},
                    "responses": {"201": ok, "400": _error_of(own)},
                },
            },
            "/things": {"get": {"operationId": "listThings", "parameters": [status],
                                "responses": {"200": ok, "400": _error_of(usual)}}},
        },
    }
    _, client = _client(_write(tmp_path, spec))
    with client:
        for answer in (client.post("/shares/s1/points"), client.get("/shares/s1/points", params={"status": "AAA"})):
            assert answer.status_code == 400, answer.text
            assert valid(own, answer.json()), answer.json()
        usual_answer = client.get("/things", params={"status": "AAA"})
        assert usual_answer.status_code == 400 and valid(usual, usual_answer.json()), usual_answer.text
