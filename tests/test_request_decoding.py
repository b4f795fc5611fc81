"""The request side of any contract: what the sandbox accepts and refuses before the engine
sees a request, on both pipelines (the fast path and Connexion's).

Each contract here is a small inline one, served by ``create_app`` in-process (an in-memory
store, Starlette's test client); a few cases serve the public corpus specs the defects were
found on (``../shared/corpus``)."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
from conftest import LOCAL, ROOT

from timbrix_sandbox.contract.loading import load_contract
from timbrix_sandbox.http.app import create_app
from timbrix_sandbox.profiles.sandboxes import make_sandbox

CORPUS = ROOT.parent / "shared" / "corpus"
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"the shared corpus is not beside the repo ({CORPUS})")


@pytest.fixture(params=["fast path", "connexion"])
def pipeline(request, monkeypatch) -> str:
    """Both request pipelines: the fast path answers valid requests unless it is turned off."""
    if request.param == "connexion":
        monkeypatch.setenv("TIMBRIX_SANDBOX_FASTPATH", "0")
    return request.param


def serve(contract: Path) -> t.Any:
    """A test client over ``contract`` served as ``serve --contract`` would (no fixtures file)."""
    return create_app(make_sandbox(contract=contract, data_dir=None)).test_client(base_url=LOCAL)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "api.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# -- integer formats ------------------------------------------------------------------------------
INTEGERS = """\
openapi: 3.0.3
info: {title: integers, version: "1"}
servers: [{url: /api}]
paths:
  /orders:
    get:
      operationId: listOrders
      parameters:
        - {name: limit, in: query, schema: {type: integer, format: int32}}
        - {name: token, in: query, required: true, schema: {type: string}}
      responses:
        '200':
          description: orders
          content:
            application/json:
              schema: {type: array, items: {$ref: '#/components/schemas/Order'}}
        '400': {description: bad request}
    post:
      operationId: createOrder
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Order'}
      responses:
        '201':
          description: created
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Order'}
        '400': {description: bad request}
  /orders/{orderId}:
    get:
      operationId: getOrder
      parameters:
        - {name: orderId, in: path, required: true, schema: {type: integer, format: int64}}
      responses:
        '200':
          description: the order
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Order'}
        '400': {description: bad request}
        '404': {description: not found}
components:
  schemas:
    Order:
      type: object
      properties:
        id: {type: integer, format: int64}
        quantity: {type: integer, format: int32, minimum: 1}
"""


def test_integer_formats_are_read_as_their_bounds(tmp_path):
    document = load_contract(write(tmp_path, INTEGERS))
    order = document["components"]["schemas"]["Order"]["properties"]
    assert (order["id"]["minimum"], order["id"]["maximum"]) == (-(2**63), 2**63 - 1)
    assert (order["quantity"]["minimum"], order["quantity"]["maximum"]) == (1, 2**31 - 1)  # its own kept


def test_integers_outside_their_format_are_refused_on_both_pipelines(tmp_path, pipeline):
    with serve(write(tmp_path, INTEGERS)) as client:
        assert client.get("/api/orders", params={"limit": 2**31 - 1, "token": "t"}).status_code == 200
        assert client.get("/api/orders", params={"limit": 2**31, "token": "t"}).status_code == 400
        assert client.get(f"/api/orders/{2**63}").status_code == 400
        assert client.get(f"/api/orders/{2**63 - 1}").status_code == 404
        assert client.post("/api/orders", json={"id": 2**63, "quantity": 1}).status_code == 400
        assert client.post("/api/orders", json={"quantity": 2**31}).status_code == 400
        assert client.post("/api/orders", json={"id": 2**63 - 1, "quantity": 2}).status_code == 201


def test_a_missing_required_query_parameter_is_refused_on_both_pipelines(tmp_path, pipeline):
    with serve(write(tmp_path, INTEGERS)) as client:
        response = client.get("/api/orders")
        assert response.status_code == 400
        assert "token" in response.text
        assert client.get("/api/orders", params={"token": "t"}).status_code == 200
