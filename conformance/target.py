"""The contract under test, as the suite reads it: its resource, operations, ids, tenant, error
format and response schemas, all from the pure contract model (``timbrix_sandbox.contract``).

Nothing here knows a particular contract: Timbrix, BeeL and any other one are read the same
way, and what only one domain knows is a plug-in's business (``conformance/domains``).
"""

from __future__ import annotations

import copy
import typing as t

import httpx
import jsonschema_rs

from timbrix_sandbox.contract.loading import load_contract
from timbrix_sandbox.contract.model import (
    ContractError,
    Operation,
    Profile,
    Resource,
    load_profile,
    resolve_refs,
    scope_params,
)
from timbrix_sandbox.contract.records import record_key
from timbrix_sandbox.contract.security import ContractSecurity, read_security
from timbrix_sandbox.contract.shapes import fitting_id, flatten, instance

from .model import Options, UsageProblem

ABSENT_IDS = {"objectid": "0" * 24, "uuid": "00000000-0000-0000-0000-000000000000"}


def read_spec(options: Options) -> dict:
    try:
        return load_contract(options.contract)
    except ContractError as exc:
        raise UsageProblem(str(exc)) from None


def describe(response: httpx.Response) -> str:
    return f"{response.status_code} {response.text[:200]}"


def error_shape_ok(template: t.Any, body: t.Any, status: int) -> bool:
    """``body`` has the shape of the contract's error template (``x-sandbox.errors.body``):
    its constants, the status where ``{{status}}`` stands, a string code and message."""
    if isinstance(template, dict):
        if not isinstance(body, dict):
            return False
        for key, value in template.items():
            if value in ("{{details}}", "{{now}}", "{{request_id}}"):
                continue  # optional or variable
            if key not in body or not error_shape_ok(value, body[key], status):
                return False
        return True
    if isinstance(template, list):  # a list of messages (Conduit's ``errors.body: [...]``)
        first = template[0] if template else None
        return isinstance(body, list) and all(error_shape_ok(first, item, status) for item in body[:1])
    if template == "{{status}}":
        return body == status
    if template in ("{{code}}", "{{message}}"):
        return isinstance(body, str)
    return isinstance(template, str) and template.startswith("{{") or body == template


class Target:
    """The contract under test, focused on one resource: the behaviour layer's subject.

    ``Target(options)`` is focused on the *primary* resource (the first with a create and a
    read, as it always was: the fuzz phase's anchor and guard serve it); :meth:`subjects` gives
    one focused view per resource the scenarios can test."""

    def __init__(self, options: Options, spec: dict | None = None) -> None:
        self.options = options
        self.spec = spec if spec is not None else read_spec(options)
        try:
            self.profile: Profile = load_profile(self.spec)
        except ContractError as exc:
            raise UsageProblem(f"{options.contract}: {exc}") from None
        self.security: ContractSecurity = read_security(self.spec)
        """The contract's security schemes: where each ``--credential`` travels."""
        candidates = [r for r in self.profile.resources.values() if self._op(r, "create") and self._op(r, "read")]
        self._focus(candidates[0] if candidates else None)

    def _focus(self, resource: Resource | None) -> None:
        self.resource: Resource | None = resource
        """The behaviour layer's subject. ``None`` for a contract with no resource that can be
        created and read (Tic Tac Toe): only the contract layer runs."""
        tenant = self.resource.tenant_param if self.resource is not None else None
        self.scope: tuple[str, ...] = (tenant,) if tenant else ()
        """The path parameter that names the tenant (Timbrix's ``organizationId``), if any."""
        parents = scope_params(self.resource) if self.resource is not None else ()
        self.parents: tuple[str, ...] = tuple(p for p in parents if p != tenant)
        """The other collection path parameters: a parent record's id (Twilio's ``{ServiceSid}``)."""
        self.parent_values: dict[str, str] = {}
        """Parent parameter -> the id of a parent record (one the run created, else an existing one)."""
        self._validators: dict[t.Any, t.Any] = {}

    def focused(self, resource: Resource) -> Target:
        """A view of the same contract on ``resource`` (its own parents, values and validators)."""
        view = copy.copy(self)
        view._focus(resource)
        return view

    def subjects(self) -> list[Target]:
        """One view per resource the scenarios can test, in contract order, the primary first:
        a create, a read or a list to see the record again (Conduit's comments have no read),
        and a delete to remove it (the suite leaves nothing behind on a real system: Discourse's
        tag groups, which cannot be deleted, are left to the contract layer)."""
        testable = [
            r
            for r in self.profile.resources.values()
            if self._op(r, "create") and (self._op(r, "read") or self._op(r, "list")) and self._op(r, "delete")
        ]
        if self.resource is None:
            return []
        return [self, *(self.focused(r) for r in testable if r.name != self.resource.name)]

    def parent_resource(self, param: str) -> Resource | None:
        """The resource whose records ``param`` names: the one whose collection is this
        resource's path before ``/{param}`` (Twilio's ``/v2/Services`` for ``{ServiceSid}``)."""
        prefix = self.resource.collection_path.split("/{" + param + "}")[0]
        return next((r for r in self.profile.resources.values() if r.collection_path == prefix), None)

    # -- operations and URLs ---------------------------------------------------------------

    def _op(self, resource: Resource, action: str) -> Operation | None:
        return next(
            (o for o in self.profile.operations.values() if o.resource == resource.name and o.action == action), None
        )

    def op(self, action: str) -> Operation | None:
        return self._op(self.resource, action) if self.resource is not None else None

    def reader(self) -> Operation | None:
        """The operation that shows a record again: its read, else its list."""
        return self.op("read") or self.op("list")

    def operations(self, *, secured: bool = False) -> list[Operation]:
        """The resource's operations in contract order (only those needing a token)."""
        if self.resource is None:
            return []
        return [
            o
            for o in self.profile.operations.values()
            if o.resource == self.resource.name and (o.secured or not secured)
        ]

    def of_case(self, operation_id: str) -> Operation | None:
        """The resource's operation with this id (``None`` for other resources' operations)."""
        operation = self.profile.operations.get(operation_id)
        if operation is None or self.resource is None:
            return None
        return operation if operation.resource == self.resource.name else None

    def url(self, operation: Operation, record_id: t.Any = None, tenant: str | None = None) -> str:
        path = operation.path
        for name in self.scope:
            path = path.replace("{" + name + "}", tenant or "")
        for name, value in self.parent_values.items():
            path = path.replace("{" + name + "}", value)
        if self.resource is not None and self.resource.id_param:
            path = path.replace("{" + self.resource.id_param + "}", record_key(record_id) if record_id else "0")
        return path

    def parent_listing(self, param: str) -> Operation | None:
        """The list operation of the resource whose records ``param`` names (the collection
        before ``/{param}`` in this resource's path, or the resource whose item parameter it
        is), if that list needs no parameter the suite cannot fill."""
        known = {*self.scope, *self.parent_values}
        marker = "/{" + param + "}"
        prefix = self.resource.collection_path.split(marker)[0]
        for resource in self.profile.resources.values():
            if resource.collection_path != prefix and resource.id_param != param:
                continue
            listing = self._op(resource, "list")
            if listing is not None and set(scope_params(resource)) <= known:
                return listing
        return None

    # -- ids ---------------------------------------------------------------------------------

    def typed_id(self, key: str) -> t.Any:
        """A stored key as the path parameter's type (``"4"`` -> ``4`` for a numeric id), so
        schemathesis does not take the fixed value for a type mutation."""
        return int(key) if self.resource.id_kind == "integer" and key.isdigit() else key

    def absent_id(self) -> str:
        """A well-formed id that names no record (where a create the suite needed failed)."""
        return ABSENT_IDS.get(self.resource.id_kind, "0") if self.resource is not None else "0"

    def id_could_exist(self, value: t.Any) -> bool:
        """The value is a well-formed id (valid for the id parameter's schema): a record could
        have it. Malformed ids (negative cases) cannot."""
        operation = self.op("read")
        item = self.spec["paths"][operation.path]
        declared = item.get("parameters", []) + item[operation.method.lower()].get("parameters", [])
        params = resolve_refs(declared, self.spec)
        schema = next((p.get("schema") for p in params if p.get("name") == self.resource.id_param), None)
        if schema is None:
            return True
        return self.validator(("id", self.resource.id_param), schema).is_valid(value)

    def required_query(self, listing: Operation) -> list[str]:
        """The names of the query parameters the list cannot be asked without."""
        item = self.spec["paths"][listing.path]
        declared = resolve_refs(item.get("parameters", []) + self.raw(listing).get("parameters", []), self.spec)
        return [p["name"] for p in declared if p.get("in") == "query" and p.get("required") and "name" in p]

    def with_list_filters(self, body: t.Any) -> t.Any:
        """``body`` naming what the list requires to be filtered by, where the create takes it
        and the body does not say (Asana's ``POST /portfolios`` takes an optional ``workspace``;
        ``GET /portfolios`` requires ``?workspace=``): else the run's records are never listed."""
        listing = self.op("list")
        if listing is None or not isinstance(body, dict):
            return body
        schema = self.body_schema("create")
        properties = flatten(schema).get("properties", {})
        validator = self.validator(("list-filters",), schema)
        for name in self.required_query(listing):
            if name not in body and name in properties:
                candidate = {**body, name: instance(properties[name])}
                body = candidate if validator.is_valid(candidate) else body
        return body

    def list_filters(self, listing: Operation, body: t.Any) -> dict[str, str]:
        """The query parameters the list requires (Asana's ``GET /portfolios?workspace=``,
        ``GET /attachments?parent=``), valued as the suite's creates send them: the create
        body's field of that name (a reference object: its id), so the run's records are in
        the answer. A required parameter the body does not name is left out (``Probe.list_query``
        then does not ask the list for the run's records at all)."""
        filters: dict[str, str] = {}
        for name in self.required_query(listing) if isinstance(body, dict) else ():
            value = body.get(name)
            if isinstance(value, dict):  # a compact reference ({gid: ...}): the id it names
                value = next((v for k, v in value.items() if k in ("gid", "id", "uuid")), None)
            if isinstance(value, str | int) and not isinstance(value, bool):
                filters[name] = str(value)
        return filters

    def with_fresh_id(self, body: t.Any, entropy: str) -> t.Any:
        """``body`` with a new id of the client's choosing, where the resource's id is one
        (DigitalOcean's database ``name``, a schema registry's ``subject_name``): the contract's
        example names the same record every time, so a second create would be a 409 conflict.
        The id fits the create body's schema for it (else the body is kept as it was)."""
        resource = self.resource
        if resource is None or not resource.client_ids or not isinstance(body, dict) or resource.id_field not in body:
            return body
        schema = self.body_schema("create")
        field_schema = flatten(schema).get("properties", {}).get(resource.id_field) or resource.id_schema
        integer = flatten(field_schema or {}).get("type") == "integer"
        # A pattern fitting_id cannot fill (DigitalOcean's ``^[a-z0-9-]{1,63}$``) may still
        # take the lower-case hex entropy as it is.
        tries = (int(entropy[-7:], 16),) if integer else (fitting_id(field_schema, entropy), entropy)
        validator = self.validator(("fresh-id",), schema)
        candidates = ({**body, resource.id_field: fresh} for fresh in tries if fresh is not None)
        return next((c for c in candidates if validator.is_valid(c)), body)

    def successes(self, operation: Operation) -> tuple[int, ...]:
        """Every 2xx status the operation declares (DigitalOcean's ``POST /v2/byoip_prefixes``
        answers 202, a destination's update 204): any of them is a success."""
        declared = tuple(int(k) for k in operation.declared if k.isdigit() and 200 <= int(k) < 300)
        return declared or (operation.status,)

    def key(self, record: t.Any) -> str | None:
        if self.resource is not None and isinstance(record, dict) and self.resource.id_field in record:
            return record_key(record[self.resource.id_field])
        return None

    # -- bodies ------------------------------------------------------------------------------

    def record(self, response: httpx.Response, operation: Operation | None = None) -> t.Any:
        """The record (or list) a response carries, out of the contract's envelope and the
        operation's own wrapper (a list's items path, a record's ``{article: ...}``). Without
        ``operation``, the list's items path where the body has a list there, else the read's
        wrapper."""
        try:
            body = self.profile.unwrap(response.json())
        except ValueError:
            return None
        if operation is not None:
            return walk(body, inner_path(operation))
        listing = self.op("list")
        items = inner_path(listing) if listing is not None else ()
        if items and isinstance(walk(body, items), list):
            return walk(body, items)
        single = self.op("read") or self.op("create")  # no read (Conduit's comments): the create's wrapper
        return walk(body, inner_path(single)) if single is not None else body

    def same_record(self, shown: t.Any, written: t.Any) -> bool:
        """The read shows the record as written: equal, or, where the contract gives the read a
        narrower record than the create (Discourse's ``POST /posts.json`` answers
        ``draft_sequence``, which ``GET /posts/{id}.json`` does not declare), equal on the
        fields the read declares."""
        fields = self.shared_fields()
        if fields is None or not (isinstance(shown, dict) and isinstance(written, dict)):
            return shown == written
        return {k: v for k, v in shown.items() if k in fields} == {k: v for k, v in written.items() if k in fields}

    def shared_fields(self) -> set[str] | None:
        """The fields both the read's and the create's records declare, where the two differ:
        a read narrower than the create (Discourse), or a create that answers an acceptance
        with a few fields of the record (DigitalOcean's 202 ``{uuid, region}`` for a BYOIP
        prefix). ``None``: they declare the same fields (or one declares none)."""
        read, create = self.op("read"), self.op("create")
        if read is None or create is None:
            return None
        shown, made = self._record_fields(read), self._record_fields(create)
        return shown & made if shown is not None and made is not None and shown != made else None

    def answered_fields(self, operation: Operation) -> set[str] | None:
        """The fields the operation's answer declares for the record (``None``: any)."""
        return self._record_fields(operation)

    def _record_fields(self, operation: Operation) -> set[str] | None:
        schema = operation.response_schema or {}
        for key in (*self.profile.data_path, *inner_path(operation)):
            schema = _merged(schema).get("properties", {}).get(key) or {}
        properties = _merged(schema).get("properties")
        return set(properties) if isinstance(properties, dict) and properties else None

    def keys(self, response: httpx.Response, operation: Operation | None = None) -> list[str]:
        records = self.record(response, operation) if response.status_code == 200 else None
        return [k for k in map(self.key, records if isinstance(records, list) else []) if k is not None]

    def validator(self, key: t.Any, schema: dict) -> t.Any:
        validator = self._validators.get(key)
        if validator is None:
            validator = self._validators[key] = jsonschema_rs.validator_for(schema, validate_formats=True)
        return validator

    def declared(self, operation: Operation, status: int) -> dict | None:
        """The resolved response schema for ``status`` (``None``: not declared or no body)."""
        responses = self.raw(operation)["responses"]
        raw = next((responses[k] for k in (str(status), f"{str(status)[0]}XX", "default") if k in responses), None)
        if raw is None:
            return None
        content = resolve_refs(raw, self.spec).get("content", {})
        media = next((m for m in content if "json" in m), None)
        return content[media].get("schema", {}) if media else {}

    def declared_media(self, operation: Operation, status: int) -> tuple[str, ...]:
        """The JSON media types the response for ``status`` declares (Museum's errors:
        ``application/problem+json`` only)."""
        responses = self.raw(operation)["responses"]
        raw = next((responses[k] for k in (str(status), f"{str(status)[0]}XX", "default") if k in responses), None)
        content = resolve_refs(raw, self.spec).get("content", {}) if raw is not None else {}
        return tuple(m.split(";")[0].strip().lower() for m in content if "json" in m)

    def is_declared(self, operation: Operation, status: int) -> bool:
        """Declared exactly, by its range (``4XX``) or by ``default``."""
        responses = self.spec["paths"][operation.path][operation.method.lower()]["responses"]
        keys = {str(k).upper() for k in responses}
        return bool({str(status), f"{str(status)[0]}XX", "DEFAULT"} & keys)

    def stand_ins(self, operation: Operation, want: t.Iterable[int]) -> tuple[int, ...]:
        """``want``, or, where the operation declares none of the error statuses wanted, the
        client errors it does declare (401 and 403 aside): Conduit answers everything with 422."""
        want = tuple(want)
        if not want or any(status < 400 or self.is_declared(operation, status) for status in want):
            return want  # something wanted is declared: the contract says which answer is right
        declared = [int(k) for k in map(str, self.raw(operation)["responses"]) if k.isdigit()]
        return tuple(s for s in declared if 400 <= s < 500 and s not in (401, 403))

    def raw(self, operation: Operation) -> dict:
        return self.spec["paths"][operation.path][operation.method.lower()]

    def list_order(self) -> tuple[str, bool] | None:
        """(field, ascending) where the list operation states its order
        (``x-sandbox-list-order: {by: createdAt, direction: ascending}``)."""
        listing = self.op("list")
        order = self.raw(listing).get("x-sandbox-list-order") if listing is not None else None
        if not isinstance(order, dict) or not order.get("by"):
            return None
        return str(order["by"]), str(order.get("direction", "ascending")).lower().startswith("asc")

    def max_body_bytes(self, operation: Operation) -> int | None:
        """The body limit the operation's 413 response declares (``x-sandbox-max-body-bytes``)."""
        raw = self.raw(operation)["responses"].get("413")
        limit = resolve_refs(raw, self.spec).get("x-sandbox-max-body-bytes") if raw is not None else None
        return limit if isinstance(limit, int) and limit > 0 else None

    def path_params(self, operation: Operation) -> dict[str, dict]:
        """Name -> schema of the operation's path parameters."""
        item = self.spec["paths"][operation.path]
        declared = resolve_refs(item.get("parameters", []) + self.raw(operation).get("parameters", []), self.spec)
        return {p["name"]: p.get("schema") or {} for p in declared if p.get("in") == "path"}

    def nonconformance(self, operation: Operation, response: httpx.Response) -> str | None:
        """Why the response breaks the contract (undeclared status, wrong media type, body
        against the schema), or ``None``. The scenarios judge every answer they get, so a
        drifted body is caught without waiting for the fuzzer."""
        status = response.status_code
        if not self.is_declared(operation, status):
            return f"status {status} is not declared for {operation.method} {operation.path}"
        schema = self.declared(operation, status)
        if not schema:
            return None
        media = response.headers.get("content-type", "")
        declared = self.declared_media(operation, status)
        if media.split(";")[0].strip().lower() not in declared:
            return f"{status} answered as {media!r}, the contract says {', '.join(declared)}"
        try:
            body = response.json()
        except ValueError:
            return f"{status} body is not JSON: {response.text[:100]!r}"
        error = next(iter(self.validator((operation.operation_id, status), schema).iter_errors(body)), None)
        return None if error is None else f"{status} body breaks the schema: {error.message[:200]}"

    def error_ok(self, operation: Operation, response: httpx.Response, statuses: t.Collection[int]) -> bool:
        """The status is one of ``statuses``, declared, and the body is the contract's own
        error body for it (its schema and its error format's shape)."""
        status = response.status_code
        if status not in statuses or not self.is_declared(operation, status):
            return False
        if not self.declared(operation, status):
            return True
        if "json" not in response.headers.get("content-type", "") or self.nonconformance(operation, response):
            return False
        return error_shape_ok(self.profile.errors.body, response.json(), status)

    def body_schema(self, action: str) -> dict:
        operation = self.op(action)
        return (operation.body_schema if operation else None) or {}

    def longest_text(self, action: str) -> dict[str, str]:
        """Every free-text field of the action's body at its ``maxLength``: the longest value
        its schema accepts (a field with a format or a stricter pattern is left out)."""
        longest = {}
        for name, sub in self.body_schema(action).get("properties", {}).items():
            limit = _merged(sub).get("maxLength")
            if isinstance(limit, int) and 0 < limit <= 10_000:
                value = "Ñ" * limit
                if self.validator(("longest", action, name), sub).is_valid(value):
                    longest[name] = value
        return longest


def inner_path(operation: Operation) -> tuple[str, ...]:
    """Where the record (or the list's array) sits inside the envelope, as the model inferred."""
    return operation.listing.items_path if operation.listing is not None else operation.record_path


def walk(body: t.Any, path: t.Sequence[str]) -> t.Any:
    for key in path:
        if not isinstance(body, dict):
            return None
        body = body.get(key)
    return body


def _merged(schema: dict) -> dict:
    """A schema with its ``allOf`` parts folded in (enough to read string limits)."""
    merged: dict = {}
    for part in schema.get("allOf", []):
        merged.update(_merged(part))
    merged.update({k: v for k, v in schema.items() if k != "allOf"})
    return merged
