"""Every security scheme type a contract can declare works the same on both request pipelines
(the compiled fast path and the Connexion stack), with the development credentials that
``GET /__sandbox/credentials`` lists; a credential sent the way the operation does not ask is
refused; alternatives and AND-ed schemes behave as OpenAPI defines them."""

from __future__ import annotations

import base64
import typing as t

import pytest
import yaml
from conftest import LOCAL

from timbrix_sandbox.http.app import create_app
from timbrix_sandbox.profiles.sandboxes import make_sandbox

SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer"},
    "basic": {"type": "http", "scheme": "basic"},
    "headerkey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "querykey": {"type": "apiKey", "in": "query", "name": "api_key"},
    "cookiekey": {"type": "apiKey", "in": "cookie", "name": "session"},
    "oauth": {
        "type": "oauth2",
        "flows": {"clientCredentials": {"tokenUrl": "https://auth.example.com/token", "scopes": {"notes": "all"}}},
    },
    "oidc": {"type": "openIdConnect", "openIdConnectUrl": "https://auth.example.com/.well-known/openid-configuration"},
}
TEXT = {"text": {"type": "string"}}
NOTE = {"type": "object", "required": ["id", "text"], "properties": {"id": {"type": "string"}, **TEXT}}
ERROR = {"description": "error", "content": {"application/json": {"schema": {"type": "object"}}}}
ERRORS = {"400": ERROR, "401": ERROR, "403": ERROR, "404": ERROR}
SECURED = {name: [{name: []}] for name in SCHEMES}
ROUTES: dict[str, list] = {
    **SECURED,
    "open": [],
    "either": [{"bearer": []}, {"headerkey": []}],
    "both": [{"headerkey": [], "basic": []}],
    "optional": [{}, {"bearer": []}],
}


def _collection(name: str, security: list) -> dict[str, dict]:
    item = {"description": "ok", "content": {"application/json": {"schema": NOTE}}}
    listing = {"description": "ok", "content": {"application/json": {"schema": {"type": "array", "items": NOTE}}}}
    schema = {"type": "object", "required": ["text"], "properties": TEXT}
    new = {"required": True, "content": {"application/json": {"schema": schema}}}
    return {
        f"/{name}-notes": {
            "get": {"operationId": f"list_{name}", "security": security, "responses": {"200": listing, **ERRORS}},
            "post": {
                "operationId": f"create_{name}",
                "security": security,
                "requestBody": new,
                "responses": {"201": item, **ERRORS},
            },
        },
        f"/{name}-notes/{{noteId}}": {
            "parameters": [{"name": "noteId", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": {"operationId": f"get_{name}", "security": security, "responses": {"200": item, **ERRORS}},
        },
    }


@pytest.fixture(scope="module")
def contract(tmp_path_factory) -> t.Any:
    spec = {
        "openapi": "3.1.0",
        "info": {"title": "Every scheme", "version": "1"},
        "servers": [{"url": "https://api.example.com/v2"}],
        "paths": {path: item for name, rule in ROUTES.items() for path, item in _collection(name, rule).items()},
        "components": {"securitySchemes": SCHEMES},
    }
    path = tmp_path_factory.mktemp("schemes") / "schemes.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module", params=["fast path", "connexion"])
def served(request, contract):
    """An in-memory sandbox of the contract, with the fast path on or off."""
    patch = pytest.MonkeyPatch()
    patch.setenv("TIMBRIX_SANDBOX_FASTPATH", "1" if request.param == "fast path" else "0")
    sandbox = make_sandbox(contract=contract, data_dir=None)
    app = create_app(sandbox)
    patch.undo()
    with app.test_client(base_url=LOCAL) as client:
        yield request.param, sandbox, client


def _listed(client) -> dict[str, dict]:
    response = client.get("/__sandbox/credentials")
    assert response.status_code == 200
    return {entry["scheme"]: entry for entry in response.json()}


def _sent(entry: dict) -> dict[str, t.Any]:
    """The request options that carry a listed credential the way its scheme says."""
    value = entry["value"]
    if entry["type"] == "apiKey":
        return {
            "header": {"headers": {entry["name"]: value}},
            "query": {"params": {entry["name"]: value}},
            "cookie": {"headers": {"Cookie": f"{entry['name']}={value}"}},
        }[entry["in"]]
    if SCHEMES[entry["scheme"]].get("scheme") == "basic":
        return {"headers": {"Authorization": "Basic " + base64.b64encode(value.encode()).decode()}}
    return {"headers": {"Authorization": f"Bearer {value}"}}


def _merged(*options: dict[str, t.Any]) -> dict[str, t.Any]:
    out: dict[str, t.Any] = {}
    for option in options:
        for key, value in option.items():
            out[key] = {**out.get(key, {}), **value}
    return out


def test_credentials_are_listed_for_every_declared_scheme(served):
    _, sandbox, client = served
    listed = _listed(client)
    assert set(listed) == set(SCHEMES)
    for name, entry in listed.items():
        assert entry["type"] == SCHEMES[name]["type"]
        assert entry["tenant"] == "default"
        assert entry["in"] == SCHEMES[name].get("in", "header")
        assert entry["name"] == SCHEMES[name].get("name", "Authorization")
    token = sandbox.fixtures.users[0].token
    assert listed["basic"]["value"] == f"developer:{token}"
    assert listed["oauth"]["value"] == listed["oidc"]["value"] == token


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_each_scheme_creates_and_reads_with_its_listed_credential(served, scheme):
    pipeline, sandbox, client = served
    sent = _sent(_listed(client)[scheme])
    before = sandbox.fast_path_served
    created = client.post(f"/v2/{scheme}-notes", json={"text": scheme}, **sent)
    assert created.status_code == 201, created.text
    note = created.json()
    assert client.get(f"/v2/{scheme}-notes/{note['id']}", **sent).json() == note
    assert note in client.get(f"/v2/{scheme}-notes", **sent).json()
    # The pipeline under test is the one that answered.
    assert (sandbox.fast_path_served - before == 3) == (pipeline == "fast path")


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_each_scheme_refuses_no_credentials_and_a_wrong_one(served, scheme):
    _, _, client = served
    entry = _listed(client)[scheme]
    missing = client.get(f"/v2/{scheme}-notes")
    assert missing.status_code == 401
    assert missing.json()["message"] == "No authorization token provided"
    wrong = _sent({**entry, "value": "developer:sk_dev_wrong" if scheme == "basic" else "sk_dev_wrong"})
    assert client.get(f"/v2/{scheme}-notes", **wrong).status_code == 401


@pytest.mark.parametrize("scheme", ["basic", "headerkey", "querykey", "cookiekey"])
def test_a_bearer_token_is_refused_where_the_operation_asks_for_another_scheme(served, scheme):
    _, sandbox, client = served
    bearer = {"Authorization": f"Bearer {sandbox.fixtures.users[0].token}"}
    refused = client.get(f"/v2/{scheme}-notes", headers=bearer)
    assert refused.status_code == 401
    assert refused.json()["message"] == "No authorization token provided"
    if scheme == "basic":
        assert refused.headers["WWW-Authenticate"] == 'Basic realm="timbrix-sandbox"'
    assert client.get("/v2/bearer-notes", headers=bearer).status_code == 200


def test_an_open_operation_needs_no_credentials_and_acts_in_the_default_tenant(served):
    _, sandbox, client = served
    created = client.post("/v2/open-notes", json={"text": "open"})
    assert created.status_code == 201, created.text
    assert client.get("/v2/open-notes").json() == [created.json()]
    assert sandbox.store.count("open-notes", "default") == 1


def test_alternatives_take_any_one_and_and_ed_schemes_need_all(served):
    _, _, client = served
    listed = _listed(client)
    bearer, key, basic = _sent(listed["bearer"]), _sent(listed["headerkey"]), _sent(listed["basic"])
    assert client.get("/v2/either-notes", **bearer).status_code == 200
    assert client.get("/v2/either-notes", **key).status_code == 200
    assert client.get("/v2/either-notes", **basic).status_code == 401
    assert client.get("/v2/both-notes", **key).status_code == 401
    assert client.get("/v2/both-notes", **basic).status_code == 401
    assert client.get("/v2/both-notes", **_merged(key, basic)).status_code == 200
    assert client.get("/v2/optional-notes").status_code == 200
    assert client.get("/v2/optional-notes", **bearer).status_code == 200
    assert client.get("/v2/optional-notes", headers={"Authorization": "Bearer sk_dev_wrong"}).status_code == 401


def test_a_contract_without_security_serves_everything(tmp_path):
    spec = {
        "openapi": "3.0.3",
        "info": {"title": "Open", "version": "1"},
        "paths": _collection("plain", []),
    }
    for item in spec["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict):
                operation.pop("security", None)
    contract = tmp_path / "open.yaml"
    contract.write_text(yaml.safe_dump(spec), encoding="utf-8")
    for fast in ("1", "0"):
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("TIMBRIX_SANDBOX_FASTPATH", fast)
            app = create_app(make_sandbox(contract=contract, data_dir=None))
        with app.test_client(base_url=LOCAL) as client:
            assert client.get("/__sandbox/credentials").json() == []
            assert client.get("/__sandbox/health").json()["basePath"] == "/"
            created = client.post("/plain-notes", json={"text": "x"})
            assert created.status_code == 201, created.text
            assert client.get(f"/plain-notes/{created.json()['id']}").json() == created.json()


def test_the_security_table_follows_openapi_and_fails_closed():
    from timbrix_sandbox.contract.security import read_security

    spec = {
        "security": [{"key": []}],
        "paths": {
            "/a": {"get": {"operationId": "inherits"}, "post": {"operationId": "open", "security": []}},
            "/b": {"get": {"security": [{"oauth": ["write", "read"]}, {}]}},
        },
        "components": {"securitySchemes": {"key": {"$ref": "#/components/x/key"}, "oauth": SCHEMES["oauth"]}, "x": {
            "key": {"type": "apiKey", "in": "cookie", "name": "sid"}}},
    }
    table = read_security(spec)
    assert table.schemes["key"].location == "cookie" and table.schemes["key"].field == "sid"
    assert table.of("inherits") == ((("key", ()),),)
    assert table.of("open") == ()
    assert table.of("get_/b") == ((("oauth", ("write", "read")),), ())
    # An operation the table does not know (an id a router made up) needs the document's security.
    assert table.of("made-up") == table.of(None) == ((("key", ()),),)
