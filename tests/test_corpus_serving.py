"""The public contracts of the shared corpus (``../shared/corpus``, see its MANIFEST.tsv), served
unmodified, without a fixtures file, statefully.

For each spec: the sandbox starts in-process (``create_app`` over an in-memory store, driven
through Starlette's test client like ``conftest.client``), and every resource with a create and
a read passes the round trip a client relies on: create -> read answers what the create did ->
an update is persisted and the fields it did not send are kept -> the list contains the record
-> delete -> the read is a 404 (under whichever status the operation declares for it).

Request bodies are a minimal valid instance of each request schema; parent path parameters
(``{ServiceSid}``) a valid instance of theirs. Credentials are the generated development user's,
in the form each operation's first security requirement asks for.

DigitalOcean (659 operations, multi-file) runs only with ``TIMBRIX_SANDBOX_CORPUS=all``.
"""

from __future__ import annotations

import base64
import json
import os
import typing as t
from pathlib import Path

import pytest
from conftest import LOCAL, ROOT

from timbrix_sandbox.contract.loading import load_contract
from timbrix_sandbox.contract.model import ContractError, Operation, is_json_media, resolve_refs
from timbrix_sandbox.contract.records import field_aliases
from timbrix_sandbox.contract.shapes import flatten, instance
from timbrix_sandbox.http.app import create_app
from timbrix_sandbox.profiles.sandboxes import make_sandbox

CORPUS = ROOT.parent / "shared" / "corpus"
HEAVY = {"digitalocean"}
"""Opt-in (``TIMBRIX_SANDBOX_CORPUS=all``): DigitalOcean's 659 operations over a multi-file
document. Asana (247 operations) takes ~6 s here and runs by default."""


def _manifest() -> list[tuple[str, Path]]:
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.exists():
        return []
    rows = [line.split("\t") for line in manifest.read_text().splitlines()[1:] if line.strip()]
    return [(row[0], CORPUS / row[1]) for row in rows]


def _specs() -> list[t.Any]:
    """The corpus specs to serve: all with ``TIMBRIX_SANDBOX_CORPUS=all``, else all but the heavy."""
    every = os.environ.get("TIMBRIX_SANDBOX_CORPUS") == "all"
    return [pytest.param(name, path, id=name) for name, path in _manifest() if every or name not in HEAVY]


pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"the shared corpus is not beside the repo ({CORPUS})")


class Client:
    """Requests to one in-process sandbox, with the development user's credentials for each
    operation in the form its security requirement names."""

    def __init__(self, path: Path) -> None:
        self.sandbox = make_sandbox(contract=path, data_dir=None)
        self.spec = resolve_refs(load_contract(path), load_contract(path))
        self.app = create_app(self.sandbox)
        self.http = self.app.test_client(base_url=LOCAL)
        self.profile = self.sandbox.profile
        self.base = self.app.base_path.rstrip("/")
        """Where the contract's paths are served: its first server URL's path."""

    def __enter__(self) -> Client:
        self.http.__enter__()
        return self

    def __exit__(self, *exc: t.Any) -> None:
        self.http.__exit__(*exc)

    def credentials(self, operation: Operation) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
        """Headers, query parameters and cookies that authenticate the development user."""
        user = self.sandbox.fixtures.users[0]
        headers: dict[str, str] = {}
        query: dict[str, str] = {}
        cookies: dict[str, str] = {}
        security = self.sandbox.security
        for requirement in security.of(operation.operation_id)[:1]:
            for name, _scopes in requirement:
                scheme = security.schemes.get(name)
                if scheme is None:
                    continue
                if scheme.basic:
                    value = "Basic " + base64.b64encode(f"{user.id}:{user.token}".encode()).decode()
                elif scheme.auth_scheme:
                    value = f"Bearer {user.token}"
                else:
                    value = user.token
                {"header": headers, "query": query, "cookie": cookies}[scheme.location][scheme.field] = value
        return headers, query, cookies

    def parameter(self, operation: Operation, name: str) -> t.Any:
        """A valid value of a path parameter (``ServiceSid``: ``IS`` and 32 hex digits)."""
        item = self.spec["paths"][operation.path]
        params = [*item.get("parameters", []), *item[operation.method.lower()].get("parameters", [])]
        schema = next((p.get("schema") for p in params if p.get("name") == name), None) or {}
        value = instance(flatten(schema))
        return value if value not in ("", None) else "parent1"

    def widest_page(self, operation: Operation) -> dict[str, t.Any]:
        """The largest page the list allows (records seeded from the contract's examples come
        first; the round trip's record must be on the page)."""
        limit = operation.listing.limit_param if operation.listing else None
        if limit is None:
            return {}
        item = self.spec["paths"][operation.path]
        params = [*item.get("parameters", []), *item[operation.method.lower()].get("parameters", [])]
        schema = flatten(next((p.get("schema") for p in params if p.get("name") == limit), None) or {})
        return {limit: schema.get("maximum", 100)}

    def call(
        self,
        operation: Operation,
        path_values: t.Mapping[str, t.Any],
        body: t.Any = None,
        query: t.Mapping[str, t.Any] | None = None,
    ):
        path = operation.path
        for name, value in path_values.items():
            path = path.replace("{" + name + "}", str(value))
        headers, credential_query, cookies = self.credentials(operation)
        item = self.spec["paths"][operation.path]
        for param in [*item.get("parameters", []), *item[operation.method.lower()].get("parameters", [])]:
            schema = param.get("schema") or {}
            if param.get("in") == "header" and (param.get("required") or "enum" in schema):  # DigitalOcean's Accept
                headers.setdefault(param["name"], str(instance(flatten(schema))))
            if param.get("in") == "query" and param.get("required"):  # Asana's ?workspace=
                credential_query.setdefault(param["name"], _form_value(instance(flatten(schema))) or "1")
        kwargs: dict[str, t.Any] = {"headers": headers, "params": {**credential_query, **(query or {})}}
        kwargs["cookies"] = cookies
        if body is not None:
            media = operation.body_media[0] if operation.body_media else "application/json"
            if is_json_media(media):
                kwargs["json"] = body
            elif "multipart" in media:
                kwargs["files"] = {k: (None, _form_value(v)) for k, v in body.items()}
            else:
                kwargs["data"] = {k: _form_value(v) for k, v in body.items()}
        return self.http.request(operation.method, self.base + path, **kwargs)


def _form_value(value: t.Any) -> str:
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def _under(operation: Operation, create: Operation, parents: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The parents' values, under ``operation``'s own names for its parent parameters."""
    return {mine: parents[theirs] for mine, theirs in zip(operation.parent_params, create.parent_params, strict=False)}


def _inside(body: t.Any, path: tuple[str, ...]) -> t.Any:
    for key in path:
        body = body[key]
    return body


def _operations(profile: t.Any, resource: str) -> dict[str, Operation]:
    """The resource's operation per action (an update that takes a body over one that does not)."""
    chosen: dict[str, Operation] = {}
    for operation in profile.operations.values():
        if operation.resource != resource:
            continue
        current = chosen.get(operation.action)
        if current is None or (current.body_schema is None and operation.body_schema is not None):
            chosen[operation.action] = operation
    return chosen


def _changeable(update: Operation, record_schema: dict, id_field: str) -> tuple[str, str] | None:
    """A plain string field the update sends and the record answers: ``(sent name, record name)``."""
    sent = flatten(update.body_schema or {}).get("properties", {})
    answered = record_schema.get("properties", {})
    aliases = field_aliases(update.body_schema, record_schema)
    for name, schema in sent.items():
        stored = aliases.get(name, name)
        sub, out = flatten(schema), flatten(answered.get(stored) or {})
        plain = all(s.get("type") == "string" and not (s.keys() & {"enum", "format", "pattern"}) for s in (sub, out))
        if stored != id_field and stored in answered and plain and not sub.get("readOnly"):
            return name, stored
    return None


def round_trip(client: Client, resource_name: str) -> list[str]:
    """The round trip on one resource; the problems found (empty: it passed)."""
    profile = client.profile
    resource = profile.resources[resource_name]
    ops = _operations(profile, resource_name)
    create, read = ops["create"], ops["read"]
    parents = {name: client.parameter(create, name) for name in create.parent_params}
    body = instance(create.body_schema) if create.body_schema is not None else None
    if create.body_key:
        body = {create.body_key: body}
    created = client.call(create, parents, body)
    if created.status_code != create.status:
        return [f"create: {created.status_code} {created.text[:300]}"]
    record = _inside(created.json(), create.record_path)
    key = record.get(resource.id_field)
    problems = []
    item = {**_under(read, create, parents), read.id_param: key}
    got = client.call(read, item)
    if got.status_code != 200:
        return [f"read: {got.status_code} {got.text[:300]}"]
    shown = _inside(got.json(), read.record_path)
    differing = {k: (v, shown.get(k)) for k, v in record.items() if k in shown and shown[k] != v}
    if differing:
        problems.append(f"read differs from create: {differing}")
    update = ops.get("update")
    if update is not None and update.body_schema is not None:
        field = _changeable(update, resource.schema, resource.id_field)
        if field is not None:
            sent, stored = field
            # The update's required fields (minimal values) and the one change.
            change: dict[str, t.Any] = {**instance(update.body_schema), sent: "changed by the round trip"}
            if update.id_in_body:
                change[resource.id_field] = key
            written = {field_aliases(update.body_schema, resource.schema).get(k, k) for k in change}
            if update.body_key:
                change = {update.body_key: change}
            where = {**_under(update, create, parents), **({update.id_param: key} if update.id_param else {})}
            updated = client.call(update, where, change)
            after = client.call(read, item)
            now = _inside(after.json(), read.record_path) if after.status_code == 200 else {}
            if updated.status_code != update.status or now.get(stored) != "changed by the round trip":
                problems.append(f"update not persisted: {updated.status_code} {updated.text[:200]} -> {now}")
            moved = {
                k: (v, now.get(k))
                for k, v in shown.items()
                if k not in written and k != resource.updated_field and now.get(k) != v
            }
            if moved:
                problems.append(f"update changed fields it did not send: {moved}")
    listing = ops.get("list")
    if listing is not None:
        listed = client.call(listing, _under(listing, create, parents), query=client.widest_page(listing))
        items = _inside(listed.json(), listing.listing.items_path) if listed.status_code == 200 else []
        if not any(isinstance(i, dict) and i.get(resource.id_field) == key for i in items):
            problems.append(f"list does not contain it: {listed.status_code} {listed.text[:200]}")
    delete = ops.get("delete")
    if delete is not None:
        where = {**_under(delete, create, parents), delete.id_param: key}
        deleted = client.call(delete, where, instance(delete.body_schema) if delete.body_schema else None)
        gone = client.call(read, item)
        if deleted.status_code != delete.status:
            problems.append(f"delete: {deleted.status_code} {deleted.text[:200]}")
        missing = 404 if "404" in read.declared or "default" in read.declared else None
        if gone.status_code == 200 or (missing and gone.status_code != missing):
            problems.append(f"read after delete: {gone.status_code} {gone.text[:200]}")
    return problems


def _crud_resources(profile: t.Any) -> list[str]:
    return [name for name in profile.resources if {"create", "read"} <= set(_operations(profile, name))]


@pytest.mark.parametrize(("name", "path"), _specs())
def test_corpus_spec_starts_without_fixtures_and_round_trips(name: str, path: Path) -> None:
    try:
        client = Client(path)
    except ContractError as exc:
        pytest.fail(f"{name} does not start: {exc}")
    with client:
        health = client.http.get("/__sandbox/health")
        assert health.status_code == 200 and health.json()["basePath"] == client.app.base_path
        resources = _crud_resources(client.profile)
        failures = {resource: problems for resource in resources if (problems := round_trip(client, resource))}
        passed = [r for r in resources if r not in failures]
        assert not failures, f"{name}: {len(passed)} of {len(resources)} resources round-trip; failing: {failures}"


@pytest.mark.parametrize(("name", "path"), _specs())
def test_every_operation_that_is_not_crud_answers_within_the_contract(name: str, path: Path) -> None:
    """Actions, searches, logins, ``GET /``, read-only lists: each answers a minimal valid
    request with a status it declares (or one ``default`` covers), never a 5xx.

    Not covered: operations taking ``multipart/form-data`` (Discourse's ``POST /uploads.json``
    refuses a valid one with 400: its string fields arrive as one-element lists from
    Connexion's multipart parsing, an open defect of the request validation, not of the
    answer)."""
    with Client(path) as client:
        wrong = []
        for operation in client.profile.operations.values():
            if operation.action not in ("answer", "list"):
                continue
            if any("multipart" in media for media in operation.body_media):
                continue
            values = {p: client.parameter(operation, p) for p in _path_params(operation)}
            body = instance(operation.body_schema) if operation.body_schema is not None else None
            if body is not None and not isinstance(body, dict) and not is_json_media(operation.body_media[0]):
                body = None
            answered = client.call(operation, values, body)
            covered = str(answered.status_code) in operation.declared or "default" in operation.declared
            if answered.status_code >= 500 or not covered:
                wrong.append(f"{operation.method} {operation.path}: {answered.status_code} {answered.text[:150]}")
        assert not wrong, f"{name}: {len(wrong)} operations answered outside the contract: {wrong[:10]}"


def _path_params(operation: Operation) -> list[str]:
    return [segment[1:].split("}")[0] for segment in operation.path.split("/") if segment.startswith("{")]
