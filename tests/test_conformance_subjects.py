"""The behaviour scenarios on resources shaped like DigitalOcean's and Asana's: a client-chosen
id, a create answered 202 with a few fields under its own wrapper, an update answered 204, a
create that takes only multipart/form-data, an update that requires a field the create does not
take, a list that requires query parameters (one the create takes but need not send). Each of
these once made the suite blame a conforming server (issue 12)."""

from __future__ import annotations

import random
import re

import httpx

from conformance.domains import GENERIC
from conformance.model import Options, Result
from conformance.probe import Probe
from conformance.runner import run
from conformance.target import Target

CONTRACT = """\
openapi: 3.0.3
info: {title: suite subjects, version: "1"}
servers: [{url: /v2}]
security: [{bearer_auth: []}]
paths:
  /registries:
    get:
      operationId: registries_list
      responses:
        '200':
          description: the registries
          content:
            application/json:
              schema:
                type: object
                properties:
                  registries: {type: array, items: {$ref: '#/components/schemas/registry'}}
        '401': {$ref: '#/components/responses/error'}
        '400': {$ref: '#/components/responses/error'}
    post:
      operationId: registries_create
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/registry'}
      responses:
        '201':
          description: created
          content:
            application/json:
              schema:
                type: object
                properties:
                  registry: {$ref: '#/components/schemas/registry'}
        '401': {$ref: '#/components/responses/error'}
        '400': {$ref: '#/components/responses/error'}
        '409': {$ref: '#/components/responses/error'}
  /registries/{registry_name}:
    parameters:
      - {name: registry_name, in: path, required: true, schema: {type: string}}
    get:
      operationId: registries_get
      responses:
        '200':
          description: one
          content:
            application/json:
              schema:
                type: object
                properties:
                  registry: {$ref: '#/components/schemas/registry'}
        '401': {$ref: '#/components/responses/error'}
        '400': {$ref: '#/components/responses/error'}
        '404': {$ref: '#/components/responses/error'}
    put:
      operationId: registries_update
      requestBody:
        required: true
        content:
          application/json:
            schema:
              allOf:
                - $ref: '#/components/schemas/registry'
                - {required: [region, notes], properties: {notes: {type: string, maxLength: 20, example: kept}}}
      responses:
        '200':
          description: one
          content:
            application/json:
              schema:
                type: object
                properties:
                  registry: {$ref: '#/components/schemas/registry'}
        '401': {$ref: '#/components/responses/error'}
        '404': {$ref: '#/components/responses/error'}
        '400': {$ref: '#/components/responses/error'}
    delete:
      operationId: registries_delete
      responses:
        '204': {description: deleted}
        '401': {$ref: '#/components/responses/error'}
        '400': {$ref: '#/components/responses/error'}
        '404': {$ref: '#/components/responses/error'}
  /keys:
    get:
      operationId: keys_list
      responses:
        '200':
          description: the keys
          content:
            application/json:
              schema:
                type: object
                properties:
                  keys: {type: array, items: {$ref: '#/components/schemas/key'}}
        '401': {$ref: '#/components/responses/error'}
        '400': {$ref: '#/components/responses/error'}
    post:
      operationId: keys_create
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/key'}
      responses:
        '202':
          description: accepted, answered with a few of the fields
          content:
            application/json:
              schema:
                type: object
                properties:
                  key:
                    type: object
                    properties:
                      access_key: {type: string, readOnly: true}
                      created_at: {type: string, format: date-time, readOnly: true}
        '401': {$ref: '#/components/responses/error'}
        '400': {$ref: '#/components/responses/error'}
  /keys/{access_key}:
    parameters:
      - {name: access_key, in: path, required: true, schema: {type: string}}
    get:
      operationId: keys_get
      responses:
        '200':
          description: one
          content:
            application/json:
              schema: {$ref: '#/components/schemas/key'}
        '401': {$ref: '#/components/responses/error'}
        '400': {$ref: '#/components/responses/error'}
        '404': {$ref: '#/components/responses/error'}
    post:
      operationId: keys_update
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              properties:
                label: {type: string, maxLength: 64}
      responses:
        '204': {description: updated}
        '401': {$ref: '#/components/responses/error'}
        '400': {$ref: '#/components/responses/error'}
        '404': {$ref: '#/components/responses/error'}
    delete:
      operationId: keys_delete
      responses:
        '204': {description: deleted}
        '401': {$ref: '#/components/responses/error'}
        '400': {$ref: '#/components/responses/error'}
        '404': {$ref: '#/components/responses/error'}
  /attachments:
    get:
      operationId: attachments_list
      parameters:
        - {name: parent, in: query, required: true, schema: {type: string}}
        - {name: workspace, in: query, required: true, schema: {type: string}}
      responses:
        '200':
          description: the attachments
          content:
            application/json:
              schema:
                type: object
                properties:
                  attachments: {type: array, items: {$ref: '#/components/schemas/attachment'}}
        '401': {$ref: '#/components/responses/error'}
        '400': {$ref: '#/components/responses/error'}
    post:
      operationId: attachments_create
      requestBody:
        required: true
        content:
          multipart/form-data:
            schema:
              type: object
              required: [title, parent]
              properties:
                title: {type: string, example: a file}
                parent: {type: string, example: task-1}
                workspace: {type: string, example: w-1}
                file: {type: string, format: binary}
      responses:
        '201':
          description: created
          content:
            application/json:
              schema:
                type: object
                properties:
                  attachment: {$ref: '#/components/schemas/attachment'}
        '401': {$ref: '#/components/responses/error'}
        '400': {$ref: '#/components/responses/error'}
        '415': {$ref: '#/components/responses/error'}
  /attachments/{attachment_id}:
    parameters:
      - {name: attachment_id, in: path, required: true, schema: {type: string}}
    get:
      operationId: attachments_get
      responses:
        '200':
          description: one
          content:
            application/json:
              schema:
                type: object
                properties:
                  attachment: {$ref: '#/components/schemas/attachment'}
        '401': {$ref: '#/components/responses/error'}
        '400': {$ref: '#/components/responses/error'}
        '404': {$ref: '#/components/responses/error'}
    delete:
      operationId: attachments_delete
      responses:
        '204': {description: deleted}
        '401': {$ref: '#/components/responses/error'}
        '400': {$ref: '#/components/responses/error'}
        '404': {$ref: '#/components/responses/error'}
components:
  securitySchemes:
    bearer_auth: {type: http, scheme: bearer}
  responses:
    error:
      description: an error
      content:
        application/json:
          schema:
            type: object
            required: [id, message]
            properties:
              id: {type: string}
              message: {type: string}
  schemas:
    registry:
      type: object
      required: [name]
      properties:
        name: {type: string, maxLength: 63, pattern: '^[a-z0-9-]{1,63}$', example: example}
        region: {type: string, enum: [nyc3, fra1], example: fra1}
        description: {type: string, maxLength: 100, example: my registry}
        created_at: {type: string, format: date-time, readOnly: true}
    key:
      type: object
      required: [label]
      properties:
        access_key: {type: string, readOnly: true}
        label: {type: string, maxLength: 64, example: my key}
        created_at: {type: string, format: date-time, readOnly: true}
    attachment:
      type: object
      properties:
        id: {type: string, readOnly: true}
        title: {type: string}
        parent: {type: string}
        workspace: {type: string}
"""

BEHAVIOUR = ("create_then_read", "partial_update", "delete_then_404", "boundary_lengths", "invalid_input")


def _contract(tmp_path):
    path = tmp_path / "subjects.yaml"
    path.write_text(CONTRACT)
    return path


def test_every_create_names_a_record_of_its_own_where_the_client_chooses_the_id(tmp_path):
    """A fresh id per create, valid for the id's schema, the same for the same seed."""
    options = Options(base_url="http://127.0.0.1:9/v2", token="t", contract=_contract(tmp_path), seed=3)
    target = Target(options)
    registries = target.focused(target.profile.resources["registries"])

    def names(seed: int) -> list[str]:
        probe = Probe(registries, GENERIC, Result(options=options, seed=seed), set(), random.Random(seed))
        try:
            return [probe.create_body()["name"] for _ in range(3)]
        finally:
            probe.close()

    first = names(3)
    assert len(set(first)) == 3 and "example" not in first
    assert all(re.fullmatch(r"[a-z0-9-]{1,63}", name) for name in first), first
    assert names(3) == first, "the same seed sends the same ids"
    assert names(4) != first


def test_the_scenarios_pass_on_a_conforming_server_of_such_resources(live_server_factory, tmp_path):
    """Served by the sandbox, every resource is created (409-free, 202 and multipart included),
    read back, updated (204 read back), deleted and removed: no behaviour finding."""
    contract = _contract(tmp_path)
    server = live_server_factory(None, extra=["--contract", str(contract)])
    token = httpx.get(server.url + "/__sandbox/credentials").json()[0]["value"]
    options = Options(
        base_url=server.url + "/v2", token=token, contract=contract, seed=5, max_examples=1, phases=("examples",)
    )
    result = run(options)
    behaviour = [f for f in result.findings if f.layer == "behaviour" and f.check in BEHAVIOUR]
    assert behaviour == [], [(f.operation, f.check, f.message[:200]) for f in behaviour]
    judged = {(label, check) for label, check in result.tallies}
    for create in ("POST /registries", "POST /keys", "POST /attachments"):
        assert (create, "create_then_read") in judged, create
    for update in ("PUT /registries/{registry_name}", "POST /keys/{access_key}"):
        assert (update, "partial_update") in judged, update
    assert ("PUT /registries/{registry_name}", "delete_then_404") in judged
    assert result.created >= 3 and result.not_removed == [], result.not_removed
