"""The ids the engine makes: in the shapes the contracts declare, unique, and unique across the
worker processes of ``serve --workers`` (each forked worker draws its own seed)."""

from __future__ import annotations

import os
import re
import uuid

from timbrix_sandbox.engine.clock import new_object_id, new_request_id, new_uuid

UUID_V4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def test_uuids_are_version_4_and_unique():
    made = [new_uuid() for _ in range(10_000)]
    assert all(UUID_V4.fullmatch(u) and uuid.UUID(u).version == 4 for u in made)
    assert len(set(made)) == len(made)


def test_request_ids_and_object_ids_keep_their_shapes():
    assert re.fullmatch(r"[0-9a-f]{32}", new_request_id())
    assert re.fullmatch(r"[0-9a-f]{24}", new_object_id())


def _in_a_fork() -> list[str]:
    """What a forked worker's first ids are (read back through a pipe)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave at once, running nothing else of the test process
        os.close(read)
        os.write(write, " ".join([new_uuid(), new_request_id(), new_object_id()]).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read().decode().split()
    os.waitpid(pid, 0)
    return answer


def test_two_forked_workers_never_draw_the_same_ids():
    first, second = _in_a_fork(), _in_a_fork()
    mine = [new_uuid(), new_request_id(), new_object_id()]
    for a, b, c in zip(first, second, mine, strict=True):
        assert len({a, b, c}) == 3, (a, b, c)


COUNTED = """\
openapi: 3.0.3
info: {title: counted ids, version: "1"}
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
      responses:
        '201':
          description: created
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Pet'}
        '400': {description: bad request}
        '409': {description: conflict}
  /pets/{petId}:
    get:
      operationId: getPet
      parameters:
        - {name: petId, in: path, required: true, schema: {type: integer, format: int64}}
      responses:
        '200':
          description: the pet
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Pet'}
        '404': {description: not found}
components:
  schemas:
    Pet:
      type: object
      required: [name]
      properties:
        id: {type: integer, format: int64}
        name: {type: string}
"""


def _pets(tmp_path, contract: str):
    from conftest import LOCAL

    from timbrix_sandbox.http.app import create_app
    from timbrix_sandbox.profiles.sandboxes import make_sandbox

    path = tmp_path / "pets.yaml"
    path.write_text(contract, encoding="utf-8")
    return create_app(make_sandbox(contract=path, data_dir=tmp_path / "data")).test_client(base_url=LOCAL)


def test_a_counted_id_never_runs_past_what_the_id_schema_allows(tmp_path):
    """After a client created id 2**63 - 1, counting on answered 9223372036854775808: a 500 on
    every later create, each record stored anyway, and a restart did not help."""
    top = 2**63 - 1
    with _pets(tmp_path, COUNTED) as client:
        assert client.post("/api/pets", json={"id": top, "name": "max"}).status_code == 201
        made = [client.post("/api/pets", json={"name": f"next {n}"}) for n in range(5)]
        assert [r.status_code for r in made] == [201] * 5, made[-1].text
        ids = [r.json()["id"] for r in made]
        assert all(1 <= i < top for i in ids) and len(set(ids)) == 5
        assert all(client.get(f"/api/pets/{i}").json()["name"] == f"next {n}" for n, i in enumerate(ids))
    with _pets(tmp_path, COUNTED) as client:  # restarted on the same data: counting resumes past the top
        again = client.post("/api/pets", json={"name": "after restart"})
        assert again.status_code == 201 and 1 <= again.json()["id"] < top


def test_when_every_id_the_schema_allows_is_taken_a_create_is_refused_and_stores_nothing(tmp_path):
    small = COUNTED.replace("id: {type: integer, format: int64}", "id: {type: integer, minimum: 1, maximum: 3}")
    assert small != COUNTED
    with _pets(tmp_path, small) as client:
        assert [client.post("/api/pets", json={"name": n}).json()["id"] for n in "abc"] == [1, 2, 3]
        refused = client.post("/api/pets", json={"name": "d"})
        assert refused.status_code == 409, refused.text
        assert [client.get(f"/api/pets/{i}").json()["name"] for i in (1, 2, 3)] == ["a", "b", "c"]
