"""Loading contracts other people wrote: YAML 1.2 scalars, OpenAPI 3.0 read as 3.1, multi-file
and Markdown ``$ref``s bundled, recursive schemas cut, integer status keys; every spec of the
shared corpus loads and Connexion accepts it, with the options the app serves it with.

The corpus is read from ``../shared/corpus`` beside the repository (its MANIFEST.tsv names each
file's source); the rules are checked on tiny inline contracts."""

from __future__ import annotations

import csv
import json
import textwrap
import time
from pathlib import Path

import connexion
import jsonschema_rs
import pytest
import yaml
from conftest import ROOT
from connexion.resolver import Resolution, Resolver

from timbrix_sandbox.contract.loading import load_contract, loaded_contract
from timbrix_sandbox.contract.model import ContractError, resolve_refs
from timbrix_sandbox.contract.refs import MAX_INLINED_NODES, MAX_REF_DEPTH, RECURSIVE
from timbrix_sandbox.http import compat, oas31
from timbrix_sandbox.profiles import CONTRACTS

CORPUS = ROOT.parent / "shared" / "corpus"


def _corpus() -> list[tuple[str, Path]]:
    if not (CORPUS / "MANIFEST.tsv").exists():
        return []
    with open(CORPUS / "MANIFEST.tsv", encoding="utf-8") as handle:
        return [(row["name"], CORPUS / row["file"]) for row in csv.DictReader(handle, delimiter="\t")]


needs_corpus = pytest.mark.skipif(not _corpus(), reason=f"the shared corpus is not at {CORPUS}")


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _external_refs(node) -> list[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        found = [ref] if isinstance(ref, str) and not ref.startswith("#/") else []
        return found + [r for value in node.values() for r in _external_refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _external_refs(value)]
    return []


class _EchoResolver(Resolver):
    """Every operation answers its request body (or ``{}``) with its first declared status."""

    def __init__(self, document: dict) -> None:
        super().__init__()
        self.statuses = {
            operation.get("operationId"): int(next((code for code in operation["responses"] if code.isdigit()), 200))
            for item in document.get("paths", {}).values()
            for operation in item.values()
            if isinstance(operation, dict) and "responses" in operation
        }

    def resolve(self, operation) -> Resolution:
        operation_id = operation.operation_id
        status = self.statuses.get(operation_id, 200)

        async def handler(body=None, **_kwargs):
            return (body if body is not None else {}), status

        return Resolution(handler, operation_id or "anonymous")


def _served(document: dict):
    """A Connexion test client over ``document``, with the validation options ``http/app.py``
    serves contracts with."""
    compat.install()
    app = connexion.AsyncApp(__name__)
    app.add_api(
        document,
        base_path="/api",
        resolver=_EchoResolver(document),
        validate_responses=True,
        strict_validation=True,
        validator_map=oas31.VALIDATOR_MAP,
    )
    return app.test_client()


def _schema(document: dict, name: str) -> dict:
    return resolve_refs(document["components"]["schemas"][name], document)


OPENAPI_30 = """\
openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /things:
    post:
      operationId: createThing
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Thing'}
      responses:
        201:
          description: created
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Thing'}
        2XX: {description: other success}
        default: {description: error}
components:
  schemas:
    Owner:
      type: object
      properties: {name: {type: string}}
    Thing:
      type: object
      properties:
        label: {type: string, nullable: true}
        colour: {type: string, enum: [red, blue], nullable: true}
        owner:
          nullable: true
          allOf: [{$ref: '#/components/schemas/Owner'}]
        weight: {type: number, minimum: 0, exclusiveMinimum: true}
        height: {type: number, maximum: 10, exclusiveMaximum: false}
        created: {type: string, example: 2022-31-01T23:59:59.999}
        switch: {type: string, enum: [on, off, yes, no]}
        x-nullable-ignored: {type: string, x-nullable: true}
"""


def test_a_date_looking_example_and_yaml_11_booleans_stay_strings(tmp_path):
    document = load_contract(_write(tmp_path, "api.yaml", OPENAPI_30))
    thing = document["components"]["schemas"]["Thing"]["properties"]
    assert thing["created"]["example"] == "2022-31-01T23:59:59.999"
    assert thing["switch"]["enum"] == ["on", "off", "yes", "no"]
    json.dumps(document)  # nothing a JSON document cannot hold (no dates, no non-string keys)


def test_integer_status_keys_become_strings_and_default_and_2xx_stay(tmp_path):
    document = load_contract(_write(tmp_path, "api.yaml", OPENAPI_30))
    assert list(document["paths"]["/things"]["post"]["responses"]) == ["201", "2XX", "default"]


def test_openapi_30_nullable_is_read_as_31(tmp_path):
    document = load_contract(_write(tmp_path, "api.yaml", OPENAPI_30))
    assert document["openapi"] == "3.1.0"
    thing = _schema(document, "Thing")
    validator = jsonschema_rs.validator_for(thing)
    for value in ({"label": None}, {"colour": None}, {"owner": None}, {"owner": {"name": "Ann"}}, {"label": "x"}):
        assert validator.is_valid(value), value
    for value in ({"label": 1}, {"colour": "green"}, {"owner": {"name": 5}}):
        assert not validator.is_valid(value), value
    assert '"nullable":' not in json.dumps(thing)


def test_an_x_nullable_extension_is_ignored(tmp_path):
    document = load_contract(_write(tmp_path, "api.yaml", OPENAPI_30))
    validator = jsonschema_rs.validator_for(_schema(document, "Thing"))
    assert not validator.is_valid({"x-nullable-ignored": None})


def test_boolean_exclusive_bounds_become_numeric(tmp_path):
    document = load_contract(_write(tmp_path, "api.yaml", OPENAPI_30))
    properties = document["components"]["schemas"]["Thing"]["properties"]
    assert properties["weight"] == {"type": "number", "exclusiveMinimum": 0}
    assert properties["height"] == {"type": "number", "maximum": 10}
    validator = jsonschema_rs.validator_for(_schema(document, "Thing"))
    assert not validator.is_valid({"weight": 0})
    assert validator.is_valid({"weight": 0.5})
    assert validator.is_valid({"height": 10})


def test_a_normalised_30_contract_is_served_with_its_rules(tmp_path):
    client = _served(load_contract(_write(tmp_path, "api.yaml", OPENAPI_30)))
    assert client.post("/api/things", json={"label": None, "weight": 1}).status_code == 201
    assert client.post("/api/things", json={"weight": 0}).status_code == 400


RECURSIVE_30 = """\
openapi: 3.0.0
info: {title: t, version: "1"}
paths:
  /categories:
    post:
      operationId: createCategory
      requestBody:
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Category'}
      responses:
        '201':
          description: created
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Category'}
components:
  schemas:
    Category:
      type: object
      required: [name]
      properties:
        name: {type: string}
        children:
          type: array
          items: {$ref: '#/components/schemas/Category'}
        owner: {$ref: '#/components/schemas/Person'}
    Person:
      type: object
      properties:
        name: {type: string}
        favourite: {$ref: '#/components/schemas/Category'}
"""


def test_a_recursive_schema_loads_and_is_cut_where_it_re_enters_itself(tmp_path):
    loaded = loaded_contract(_write(tmp_path, "api.yaml", RECURSIVE_30))
    assert sorted(set(loaded.cut_refs)) == ["#/components/schemas/Category (recursive)"]
    category = resolve_refs(loaded.document["components"]["schemas"]["Category"], loaded.document)
    children = category["properties"]["children"]["items"]
    assert children == {RECURSIVE: "#/components/schemas/Category"}
    assert category["properties"]["owner"]["properties"]["name"] == {"type": "string"}
    validator = jsonschema_rs.validator_for(category)
    assert validator.is_valid({"name": "a", "children": [{"name": "b", "children": []}]})
    assert not validator.is_valid({"children": []})  # exact up to the cycle point


def test_connexion_serves_a_recursive_schema(tmp_path):
    client = _served(load_contract(_write(tmp_path, "api.yaml", RECURSIVE_30)))
    nested = {"name": "a", "children": [{"name": "b", "children": [{"name": "c"}]}]}
    response = client.post("/api/categories", json=nested)
    assert response.status_code == 201 and response.json() == nested
    assert client.post("/api/categories", json={"children": []}).status_code == 400


def _count_objects(node) -> int:
    if isinstance(node, dict):
        return 1 + sum(_count_objects(value) for value in node.values())
    if isinstance(node, list):
        return 1 + sum(_count_objects(value) for value in node)
    return 0


def test_schemas_that_share_schemas_inline_to_a_bounded_size(tmp_path):
    """Each level refers to the next twice: inlined whole, level 0 would be 2**40 objects."""
    schemas = {
        f"L{i}": {
            "type": "object",
            "properties": {
                "a": {"$ref": f"#/components/schemas/L{i + 1}"},
                "b": {"$ref": f"#/components/schemas/L{i + 1}"},
            },
        }
        for i in range(40)
    }
    schemas["L40"] = {"type": "string"}
    document = {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": {},
        "components": {"schemas": schemas},
    }
    root = _write(tmp_path, "api.json", json.dumps(document))
    loaded = loaded_contract(root)
    inlined = resolve_refs({"$ref": "#/components/schemas/L0"}, loaded.document)
    assert _count_objects(inlined) <= 2 * MAX_INLINED_NODES
    assert inlined["properties"]["a"]["properties"]["a"]["type"] == "object"  # exact near the top
    assert any(cut.endswith("(too large to inline)") for cut in loaded.cut_refs)


def test_a_long_chain_of_references_is_cut_where_inliners_would_recurse_too_deep(tmp_path):
    schemas = {
        f"C{i}": {"type": "object", "properties": {"next": {"$ref": f"#/components/schemas/C{i + 1}"}}}
        for i in range(300)
    }
    schemas["C300"] = {"type": "string"}
    document = {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": {},
        "components": {"schemas": schemas},
    }
    loaded = loaded_contract(_write(tmp_path, "api.json", json.dumps(document)))
    inlined = resolve_refs({"$ref": "#/components/schemas/C0"}, loaded.document)
    depth = 0
    while "next" in inlined.get("properties", {}):
        inlined, depth = inlined["properties"]["next"], depth + 1
    assert 1 <= depth <= MAX_REF_DEPTH


def test_resolve_refs_never_loops_on_a_cyclic_document():
    """A document that did not come through the loader still cycles; resolving it stops."""
    spec = {"components": {"schemas": {"Node": {"properties": {"next": {"$ref": "#/components/schemas/Node"}}}}}}
    node = resolve_refs({"$ref": "#/components/schemas/Node"}, spec)
    assert node == {"properties": {"next": {RECURSIVE: "#/components/schemas/Node"}}}


def _multi_file(tmp_path: Path) -> Path:
    _write(tmp_path, "intro.md", "# Welcome\n\nThis API sells *pets*.\n")
    _write(
        tmp_path,
        "models/pet.yaml",
        """\
        type: object
        required: [id, name]
        properties:
          id: {$ref: '../shared/common.yaml#/Id'}
          name: {type: string}
          tag: {$ref: '#/definitions/Tag'}
          parent: {$ref: 'pet.yaml'}
        definitions:
          Tag: {type: string, maxLength: 8}
        """,
    )
    _write(tmp_path, "shared/common.yaml", "Id: {type: integer, minimum: 1}\nError: {type: object}\n")
    _write(
        tmp_path,
        "shared/responses.yaml",
        """\
        NotFound:
          description: not found
          content:
            application/json:
              schema: {$ref: 'common.yaml#/Error'}
        """,
    )
    _write(
        tmp_path,
        "paths/pets.yaml",
        """\
        post:
          operationId: createPet
          requestBody:
            content:
              application/json:
                schema: {$ref: '../models/pet.yaml'}
          responses:
            '201':
              description: created
              content:
                application/json:
                  schema: {$ref: '../models/pet.yaml'}
            '404': {$ref: '../shared/responses.yaml#/NotFound'}
        """,
    )
    return _write(
        tmp_path,
        "api.yaml",
        """\
        openapi: 3.0.3
        info:
          title: pets
          version: "1"
          description: {$ref: intro.md}
        paths:
          /pets: {$ref: 'paths/pets.yaml'}
        components:
          schemas:
            pet: {type: string, description: a name the bundle must not take}
        """,
    )


def test_multi_file_refs_are_bundled_into_one_document(tmp_path):
    loaded = loaded_contract(_multi_file(tmp_path))
    document = loaded.document
    assert _external_refs(document) == []
    assert len(loaded.files) == 6  # every file read (the cache is stale when one changes)
    operation = document["paths"]["/pets"]["post"]  # a path item is inlined where it is used
    assert operation["operationId"] == "createPet"
    schemas = document["components"]["schemas"]
    assert schemas["pet"] == {"type": "string", "description": "a name the bundle must not take"}
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.startswith("#/components/schemas/") and ref != "#/components/schemas/pet"
    assert operation["responses"]["404"]["$ref"].startswith("#/components/responses/")
    pet = resolve_refs(operation["requestBody"]["content"]["application/json"]["schema"], document)
    validator = jsonschema_rs.validator_for(pet)
    assert validator.is_valid({"id": 1, "name": "Rex", "tag": "dog"})
    assert not validator.is_valid({"id": 0, "name": "Rex"})  # minimum from shared/common.yaml
    assert not validator.is_valid({"id": 1, "name": "Rex", "tag": "much too long"})  # the file's own #/definitions


def test_a_markdown_ref_becomes_the_files_text(tmp_path):
    document = load_contract(_multi_file(tmp_path))
    assert document["info"]["description"] == "# Welcome\n\nThis API sells *pets*.\n"


def test_connexion_serves_a_bundled_contract(tmp_path):
    client = _served(load_contract(_multi_file(tmp_path)))
    assert client.post("/api/pets", json={"id": 3, "name": "Rex"}).status_code == 201
    assert client.post("/api/pets", json={"id": 0, "name": "Rex"}).status_code == 400


def test_changing_a_referenced_file_is_seen_on_the_next_load(tmp_path):
    root = _multi_file(tmp_path)
    assert load_contract(root)["info"]["description"].startswith("# Welcome")
    time.sleep(0.01)
    (tmp_path / "intro.md").write_text("Changed, and longer than before.\n", encoding="utf-8")
    assert load_contract(root)["info"]["description"] == "Changed, and longer than before.\n"


def test_each_load_is_a_fresh_copy(tmp_path):
    root = _multi_file(tmp_path)
    first = load_contract(root)
    first["paths"].clear()
    assert load_contract(root)["paths"]


def test_a_path_item_ref_is_put_in_place(tmp_path):
    root = _write(
        tmp_path,
        "api.yaml",
        """\
        openapi: 3.1.0
        info: {title: t, version: '1'}
        paths:
          /things: {$ref: '#/components/pathItems/Things'}
        components:
          pathItems:
            Things:
              get:
                operationId: listThings
                responses: {'200': {description: ok}}
        """,
    )
    assert load_contract(root)["paths"]["/things"]["get"]["operationId"] == "listThings"


def test_a_ref_to_a_missing_file_names_it(tmp_path):
    root = _write(
        tmp_path,
        "api.yaml",
        "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /a: {$ref: 'paths/gone.yaml'}\n",
    )
    with pytest.raises(ContractError, match=r"gone\.yaml"):
        load_contract(root)


def test_a_local_ref_to_nothing_is_a_contract_error(tmp_path):
    root = _write(
        tmp_path,
        "api.yaml",
        """\
        openapi: 3.1.0
        info: {title: t, version: '1'}
        paths:
          /a:
            get:
              responses:
                '200': {$ref: '#/components/responses/Nope'}
        """,
    )
    with pytest.raises(ContractError, match=r"#/components/responses/Nope"):
        load_contract(root)


def test_a_swagger_2_document_is_refused_with_a_clear_reason(tmp_path):
    root = _write(tmp_path, "api.yaml", "swagger: '2.0'\ninfo: {title: t, version: '1'}\npaths: {}\n")
    with pytest.raises(ContractError, match="Swagger 2.0"):
        load_contract(root)


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_shipped_contracts_load_exactly_as_written(name):
    """Timbrix, BeeL and bookkeeping are single-file 3.1 documents: loading changes nothing."""
    with open(CONTRACTS[name], encoding="utf-8") as handle:
        as_written = yaml.safe_load(handle)
    assert load_contract(CONTRACTS[name]) == as_written


@needs_corpus
@pytest.mark.parametrize(("name", "path"), _corpus(), ids=[name for name, _ in _corpus()])
def test_every_corpus_spec_loads_and_connexion_accepts_it(name, path):
    document = load_contract(path)
    assert document["openapi"] == "3.1.0"
    assert _external_refs(document) == []
    json.dumps(document)
    with _served(document) as client:  # builds every route, validator and security handler
        assert client.get("/api/__sandbox_no_such_path__").status_code == 404
