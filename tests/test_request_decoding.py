"""The request side of any contract: what the sandbox accepts and refuses before the engine
sees a request, on both pipelines (the fast path and Connexion's).

Each contract here is a small inline one, served by ``create_app`` in-process (an in-memory
store, Starlette's test client); a few cases serve the public corpus specs the defects were
found on (``../shared/corpus``)."""

from __future__ import annotations

import json
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


# -- form, multipart and XML bodies ---------------------------------------------------------------
BODIES = """\
openapi: 3.0.3
info: {title: bodies, version: "1"}
servers: [{url: /api}]
paths:
  /pets:
    post:
      operationId: createPet
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Pet'}
          application/xml:
            schema: {$ref: '#/components/schemas/Pet'}
          application/x-www-form-urlencoded:
            schema: {$ref: '#/components/schemas/Pet'}
      responses:
        '201':
          description: created
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Pet'}
        '400': {description: bad request}
  /pets/{petId}:
    get:
      operationId: getPet
      parameters:
        - {name: petId, in: path, required: true, schema: {type: integer}}
      responses:
        '200':
          description: the pet
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Pet'}
        '404': {description: not found}
  /uploads:
    post:
      operationId: upload
      requestBody:
        content:
          multipart/form-data:
            schema:
              type: object
              required: [kind, file]
              properties:
                kind: {type: string, enum: [avatar, attachment]}
                size: {type: integer}
                file: {type: string, format: binary}
      responses:
        '200':
          description: uploaded
          content:
            application/json:
              schema:
                type: object
                properties:
                  url: {type: string}
        '400': {description: bad request}
  /notes:
    post:
      operationId: createNote
      requestBody:
        content:
          application/json:
            schema:
              type: object
              properties:
                text: {type: string}
      responses:
        '201':
          description: created
          content:
            application/json:
              schema:
                type: object
                properties:
                  id: {type: integer}
                  text: {type: string}
        '400': {description: bad request}
    get:
      operationId: listNotes
      responses:
        '200':
          description: notes
          content:
            application/json:
              schema: {type: array, items: {type: object}}
components:
  schemas:
    Pet:
      type: object
      required: [name, photoUrls]
      xml: {name: pet}
      properties:
        id: {type: integer, format: int64, xml: {attribute: true}}
        name: {type: string}
        status: {type: string, enum: [available, sold]}
        photoUrls:
          type: array
          xml: {wrapped: true}
          items: {type: string, xml: {name: photoUrl}}
        tags:
          type: array
          items: {type: string, xml: {name: tag}}
        vaccinated: {type: [boolean, "null"]}
"""
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
XML = {"Content-Type": "application/xml"}


def test_a_form_body_is_read_by_its_schema_and_stored_as_json(tmp_path):
    with serve(write(tmp_path, BODIES)) as client:
        # photoUrls, a required array, cannot be sent empty in a form: absent is []
        created = client.post("/api/pets", content="id=10&name=doggie&status=sold", headers=FORM)
        assert created.status_code == 201, created.text
        assert created.json() == {"id": 10, "name": "doggie", "status": "sold", "photoUrls": []}
        assert client.get("/api/pets/10").json() == created.json()
        # every value of an array field, in order, never split on commas; one value is a list of one
        body = "id=11&name=rex&photoUrls=a,b&photoUrls=c&tags=good&vaccinated=null"
        created = client.post("/api/pets", content=body, headers=FORM)
        assert created.status_code == 201, created.text
        assert created.json()["photoUrls"] == ["a,b", "c"]
        assert created.json()["tags"] == ["good"]
        assert created.json()["vaccinated"] is None


def test_an_invalid_form_body_is_refused(tmp_path):
    with serve(write(tmp_path, BODIES)) as client:
        for body in ("id=9223372036854775808&name=x", "id=abc&name=x", "name=x&status=lost", "name=a&name=b", "id=1"):
            response = client.post("/api/pets", content=body, headers=FORM)
            assert response.status_code == 400, body
            assert response.json()["message"]


def test_fields_a_form_schema_does_not_name_are_left_to_its_additional_properties(tmp_path):
    with serve(write(tmp_path, BODIES)) as client:
        response = client.post("/api/pets", content="name=x&nickname=y&nickname=z", headers=FORM)
        assert response.status_code == 201, response.text


def test_an_xml_body_is_read_by_its_schema_and_validated(tmp_path):
    with serve(write(tmp_path, BODIES)) as client:
        xml = (
            '<pet id="7"><name>doggie</name><status>sold</status><photoUrls><photoUrl>u1</photoUrl>'
            "<photoUrl>u2</photoUrl></photoUrls><tag>a</tag><tag>b</tag><vaccinated>true</vaccinated></pet>"
        )
        created = client.post("/api/pets", content=xml, headers=XML)
        assert created.status_code == 201, created.text
        assert created.json() == {
            "id": 7, "name": "doggie", "status": "sold", "photoUrls": ["u1", "u2"], "tags": ["a", "b"],
            "vaccinated": True,
        }
        assert client.get("/api/pets/7").json() == created.json()
        empty_wrapper = "<pet><name>x</name><photoUrls></photoUrls></pet>"
        assert client.post("/api/pets", content=empty_wrapper, headers=XML).status_code == 201


def test_an_invalid_or_malformed_xml_body_is_a_400_in_the_contracts_format(tmp_path):
    with serve(write(tmp_path, BODIES)) as client:
        for xml in (
            "<pet><name>x</name><photoUrls></photoUrls><status>lost</status></pet>",  # not in the enum
            "<pet><name>x</name><photoUrls></photoUrls><status></status></pet>",  # empty is ""
            '<pet id="x"><name>x</name><photoUrls></photoUrls></pet>',  # not an integer
            "<pet><name>x</name></pet>",  # photoUrls is required (XML can say [], so it must)
            "<pet>true</pet>",  # text where the schema wants an object
            "<pet><name>x</name><photoUrls>",  # not well-formed
            '<!DOCTYPE pet [<!ENTITY a "aaaa">]><pet><name>&a;</name><photoUrls/></pet>',  # entities refused
        ):
            response = client.post("/api/pets", content=xml, headers=XML)
            assert response.status_code == 400, xml
            assert response.json()["message"]


def test_a_multipart_upload_reads_its_fields_as_their_types(tmp_path):
    with serve(write(tmp_path, BODIES)) as client:
        files = {"file": ("a.png", b"\x89PNG\r\n", "image/png")}
        response = client.post("/api/uploads", data={"kind": "avatar", "size": "6"}, files=files)
        assert response.status_code == 200, response.text
        response = client.post("/api/uploads", data={"kind": "other"}, files=files)
        assert response.status_code == 400
        # without its boundary a multipart body cannot be read: 400, not a 500
        no_boundary = {"Content-Type": "multipart/form-data"}
        response = client.post("/api/uploads", content=b"--x\r\n\r\n--x--\r\n", headers=no_boundary)
        assert response.status_code == 400
        assert response.json()["message"]


def test_an_omitted_optional_body_is_accepted_and_a_required_one_refused(tmp_path, pipeline):
    with serve(write(tmp_path, BODIES)) as client:
        response = client.post("/api/notes")
        assert response.status_code == 201, response.text
        assert client.post("/api/notes", json={"text": 1}).status_code == 400
        assert client.post("/api/uploads").status_code == 200  # an optional multipart body
        assert client.post("/api/pets").status_code == 400
        assert client.post("/api/pets", content="", headers=FORM).status_code == 400


def test_an_empty_form_sent_with_its_content_type_is_a_form_with_no_fields(tmp_path):
    optional_form = BODIES.replace(
        "      requestBody:\n        required: true\n        content:\n          application/json:",
        "      requestBody:\n        content:\n          application/json:",
    )
    assert optional_form != BODIES
    with serve(write(tmp_path, optional_form)) as client:
        assert client.post("/api/pets").status_code == 201  # no body: the operation's answer to {}
        response = client.post("/api/pets", content="", headers=FORM)  # a form without `name`
        assert response.status_code == 400
        assert "name" in response.json()["message"]


# -- parameters whose schema has no single type ---------------------------------------------------
PARAMETERS = """\
openapi: 3.1.0
info: {title: parameters, version: "1"}
servers: [{url: /api}]
paths:
  /keys/{key}:
    get:
      operationId: getKey
      parameters:
        - name: key
          in: path
          required: true
          schema:
            anyOf:
              - {type: integer}
              - {type: string, pattern: '^[a-f0-9:]{8,}$'}
      responses:
        '200':
          description: the key
          content:
            application/json:
              schema: {type: object, properties: {name: {type: string}}}
              example: {name: deploy}
        '400': {description: bad request}
  /things:
    get:
      operationId: listThings
      parameters:
        - {name: state, in: query, schema: {type: [string, "null"]}}
        - {name: count, in: query, schema: {type: [integer, "null"], maximum: 10}}
        - {name: flags, in: query, schema: {type: array, items: {type: [boolean, "null"]}}}
        - {name: pretty, in: query, allowEmptyValue: true, schema: {type: boolean}}
        - {name: strict, in: query, schema: {type: boolean}}
      responses:
        '200':
          description: things
          content:
            application/json:
              schema: {type: array, items: {type: string}}
              example: [a]
        '400': {description: bad request}
"""


def test_parameters_with_type_lists_or_compositions_are_read_not_a_500(tmp_path, pipeline):
    with serve(write(tmp_path, PARAMETERS)) as client:
        assert client.get("/api/keys/42").status_code == 200
        assert client.get("/api/keys/3b:16:bf:e4").status_code == 200
        assert client.get("/api/keys/not-a-key").status_code == 400
        for query in (
            "state=open", "state=null", "count=3", "count=null", "flags=true&flags=null", "flags=false", "pretty=",
            "pretty=true", "strict=false",
        ):
            response = client.get(f"/api/things?{query}")
            assert response.status_code == 200, (query, response.text)
        for query in ("count=11", "count=abc", "count=1.5", "flags=maybe", "strict=", "pretty=maybe"):
            response = client.get(f"/api/things?{query}")
            assert response.status_code == 400, (query, response.text)
            assert response.json()["message"]


# -- header and cookie parameters ----------------------------------------------------------------
HEADERS = """\
openapi: 3.0.3
info: {title: headers, version: "1"}
servers: [{url: /api}]
paths:
  /droplets:
    get:
      operationId: listDroplets
      parameters:
        - {name: X-Dangerous, in: header, schema: {type: boolean}}
        - {name: X-Page, in: header, schema: {type: integer, minimum: 1}}
        - {name: X-Tags, in: header, schema: {type: array, items: {type: integer}}}
        - {name: session, in: cookie, schema: {type: integer}}
      responses:
        '200':
          description: droplets
          content:
            application/json:
              schema: {type: array, items: {type: object}}
        '400':
          description: bad
          content:
            application/json:
              schema: {type: object}
"""


def test_header_and_cookie_values_are_read_by_their_schema(tmp_path, pipeline):
    """DigitalOcean's ``X-Dangerous: true`` is a boolean, not the text "true" (it was refused
    as "not of type 'boolean'"); text no type reads is still refused."""
    with serve(write(tmp_path, HEADERS)) as client:
        for headers in ({"X-Dangerous": "true"}, {"X-Page": "2"}, {"X-Tags": "1, 2"}, {"Cookie": "session=7"}):
            answer = client.get("/api/droplets", headers=headers)
            assert answer.status_code == 200, (headers, answer.text)
        for headers in ({"X-Dangerous": "maybe"}, {"X-Page": "0"}, {"X-Tags": "1,x"}, {"Cookie": "session=x"}):
            answer = client.get("/api/droplets", headers=headers)
            assert answer.status_code == 400, (headers, answer.text)


# -- Accept, Content-Type and Authorization header parameters ------------------------------------
IGNORED_HEADERS = """\
openapi: 3.0.3
info: {title: ignored headers, version: "1"}
servers: [{url: /api}]
paths:
  /apps:
    parameters:
      - {name: authorization, in: header, required: true, schema: {type: string, enum: [never]}}
    post:
      operationId: createApp
      parameters:
        - $ref: '#/components/parameters/accept'
        - {name: Content-Type, in: header, schema: {type: string, enum: [application/yaml]}}
        - {name: X-Trace, in: header, schema: {type: integer}}
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, properties: {name: {type: string}}}
      responses:
        '200':
          description: created
          content:
            application/json:
              schema: {type: object, properties: {id: {type: string}, name: {type: string}}}
        '400':
          description: bad
          content:
            application/json:
              schema: {type: object}
components:
  parameters:
    accept:
      {name: Accept, in: header, schema: {type: string, enum: [application/json, application/yaml]}}
"""


def test_accept_content_type_and_authorization_header_parameters_are_ignored(tmp_path, pipeline):
    """OpenAPI says such header parameters "SHALL be ignored": DigitalOcean's ``POST /v2/apps``
    declares ``Accept: enum [application/json, application/yaml]`` and refused ``Accept: */*``.
    They are dropped where the contract is loaded (a ``$ref``'d one and a path-level one too);
    any other header parameter is still validated."""
    path = write(tmp_path, IGNORED_HEADERS)
    operation = load_contract(path)["paths"]["/apps"]
    assert operation["parameters"] == []
    assert [p.get("name") for p in operation["post"]["parameters"]] == ["X-Trace"]
    with serve(path) as client:
        answer = client.post("/api/apps", json={"name": "web"}, headers={"Accept": "*/*"})
        assert answer.status_code == 200, answer.text
        refused = client.post("/api/apps", json={"name": "web"}, headers={"X-Trace": "x"})
        assert refused.status_code == 400, refused.text


# -- bodies kept as bytes ------------------------------------------------------------------------
UPLOAD = """\
openapi: 3.0.3
info: {title: uploads, version: "1"}
servers: [{url: /api}]
paths:
  /uploads/{name}:
    put:
      operationId: uploadFile
      parameters:
        - {name: name, in: path, required: true, schema: {type: string}}
      requestBody:
        required: true
        content:
          application/octet-stream:
            schema: {type: string, format: binary}
      responses:
        '200':
          description: stored
          content:
            application/json:
              schema: {type: object}
        '400':
          description: bad
          content:
            application/json:
              schema: {type: object}
"""


def test_a_required_binary_body_must_be_sent(tmp_path, pipeline):
    """DigitalOcean's batch file upload (``application/octet-stream``, ``required: true``)
    accepted an empty body: nothing validated that media type."""
    with serve(write(tmp_path, UPLOAD)) as client:
        headers = {"Content-Type": "application/octet-stream"}
        empty = client.put("/api/uploads/batch.jsonl", content=b"", headers=headers)
        assert empty.status_code == 400, empty.text
        sent = client.put("/api/uploads/batch.jsonl", content=b'{"custom_id": "1"}\n', headers=headers)
        assert sent.status_code == 200, sent.text


ARRAYS = """\
openapi: 3.0.3
info: {title: arrays, version: "1"}
servers: [{url: /api}]
paths:
  /teams:
    get:
      operationId: listTeams
      parameters:
        - name: opt_fields
          in: query
          style: form
          explode: false
          schema: {type: array, items: {type: string, enum: [name, users]}}
      responses:
        '200':
          description: teams
          content:
            application/json:
              schema: {type: array, items: {type: object}}
        '400':
          description: bad
          content:
            application/json:
              schema: {type: object}
"""


def test_an_empty_array_query_value_is_the_empty_array(tmp_path, pipeline):
    """Asana's ``?opt_fields=`` (form style, not exploded) is an empty list, not one empty
    string its enum refuses; a value outside the enum still is refused."""
    with serve(write(tmp_path, ARRAYS)) as client:
        for query in ("opt_fields=", "opt_fields=name,users", ""):
            assert client.get(f"/api/teams?{query}").status_code == 200, query
        assert client.get("/api/teams?opt_fields=name,nope").status_code == 400


def test_a_form_body_is_utf_8_whether_its_characters_are_escaped_or_not(tmp_path):
    """Starlette's form parser read the bytes as Latin-1: ``ü`` sent as is was stored ``Ã¼``."""
    with serve(write(tmp_path, BODIES)) as client:
        for n, body in enumerate(("name=Svc ünï ☃".encode(), b"name=Svc+%C3%BCn%C3%AF+%E2%98%83")):
            created = client.post("/api/pets", content=b"id=%d&" % (20 + n) + body, headers=FORM)
            assert created.status_code == 201, created.text
            assert client.get(f"/api/pets/{20 + n}").json()["name"] == "Svc ünï ☃"
        for invalid in (b"id=30&name=a%FFb", b"id=31&name=a\xffb"):  # as in a JSON body: not UTF-8, a 400
            refused = client.post("/api/pets", content=invalid, headers=FORM)
            assert refused.status_code == 400, refused.text
            assert client.get("/api/pets/30").status_code == 404


@needs_corpus
def test_a_wrapped_update_with_request_options_beside_its_wrapper_changes_the_record(pipeline):
    """Discourse's ``PUT /posts/{id}.json`` takes ``{post: {raw, edit_reason}, bypass_bump}``.
    Only a one-property body was read as a wrapper: this one answered 200, changed nothing and
    stored ``post`` as a stray field."""
    with serve(CORPUS / "discourse.yaml") as client:
        created = client.post("/posts.json", json={"raw": "hello world body", "title": "a title here", "topic_id": 1})
        assert created.status_code == 200, created.text
        post = created.json()["id"]
        body = {"post": {"raw": "edited body", "edit_reason": "typo"}, "bypass_bump": True}
        updated = client.put(f"/posts/{post}.json", json=body)
        assert updated.status_code == 200, updated.text
        assert updated.json()["post"]["raw"] == "edited body"
        assert client.get(f"/posts/{post}.json").json()["raw"] == "edited body"


# -- JSON bodies: read exactly as Python reads them, whichever parser reads them --------------
SAME_AS_PYTHON = [
    b'{"a": 18446744073709551616, "b": -9223372036854775809, "c": 1000000000000000000000000000000}',
    b'[18446744073709551615, 9223372036854775807, -9223372036854775808, 123456789012345678]',
    b'[0.1, 1.5e-400, 1e308, -0.0, -0, 12345678901234567.0, 2.2250738585072014e-308, 1E2]',
    b'{"id": "1234567890123456789012", "phone": "+52 55 1234 5678"}',
    b'{"a": 1, "b": 2, "a": 3}',
    b'"\\u00e9\\ud83d\\ude00\\/"',
    b' \t\r\n{"x" : [1 , 2 ] }\n',
    b"[" * 64 + b"]" * 64,
    b'{"s": "' + b"[{" * 40 + b'"}',
]


@pytest.mark.parametrize("raw", SAME_AS_PYTHON, ids=range(len(SAME_AS_PYTHON)))
def test_a_json_body_reads_as_pythons_own_parser_reads_it(raw):
    from timbrix_sandbox.http.oas31 import parse_json_body

    body = parse_json_body(raw)
    # repr tells 1 from 1.0 and -0.0 from 0.0, and shows every digit of a big integer
    assert repr(body) == repr(json.loads(raw)) and list(body) == list(json.loads(raw))


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b'{"a": NaN}', "NaN is not valid JSON"),
        (b'{"a": -Infinity}', "-Infinity is not valid JSON"),
        (b'{"a": 1e400}', "number 1e400 is out of range"),
        (b'{"a": "\\ud800"}', "unpaired UTF-16 surrogate"),
        (b"[" * 65 + b"]" * 65, "nested more than 64 levels deep"),
        (b'{"a": "\xc3\x28"}', "not valid UTF-8"),
        (b'{"a": 1,}', "not valid JSON"),
        (b"\xef\xbb\xbf{}", "not valid JSON"),
    ],
)
def test_a_json_body_python_would_refuse_is_a_400_saying_why(raw, says):
    from timbrix_sandbox.http.oas31 import BadRequest, parse_json_body

    with pytest.raises(BadRequest) as refused:
        parse_json_body(raw)
    assert says in refused.value.detail
