"""The conformance suite for any contract: the contract and behaviour layers, driven by what
``timbrix_sandbox.profile`` infers (resources, ids, tenant, envelope, error bodies).

The Timbrix contract gets ``runner.py`` (which adds the CFDI layer); every other contract gets
this. The same promises hold: it needs no sandbox-only endpoint, it deletes what it created
and only that, and it never writes to a record that existed before the run.
"""

from __future__ import annotations

import random
import time
import typing as t
import uuid

import httpx
import jsonschema_rs
import yaml
from schemathesis.config import SchemathesisConfig

from timbrix_sandbox.contract.model import Operation, Profile, Resource, load_profile, resolve_refs
from timbrix_sandbox.contract.records import complete, record_key

from . import checks
from .model import Finding, Options, Result, StopRun, UsageProblem, curl_line
from .runner import UNIT_PHASES, Progress, _execute

TIMESTAMP = "2026-01-01T00:00:00.000Z"
TIMBRIX_ONLY_CHECKS = ("fiscal_rules", "sat_catalogs", "tenant_scoped_bodies")


class Target:
    """One resource of the contract and its operations, as the suite exercises them."""

    def __init__(self, options: Options) -> None:
        self.options = options
        spec = yaml.safe_load(options.contract.read_text(encoding="utf-8"))
        self.profile: Profile = load_profile(spec)
        self.spec = spec
        candidates = [r for r in self.profile.resources.values() if self.op(r, "create") and self.op(r, "read")]
        if not candidates:
            raise UsageProblem(f"{options.contract}: no resource with both a create and a read operation")
        self.resource: Resource = candidates[0]
        self._validators: dict[tuple[str, int], t.Any] = {}

    def op(self, resource: Resource, action: str) -> Operation | None:
        return next(
            (o for o in self.profile.operations.values() if o.resource == resource.name and o.action == action), None
        )

    def action(self, action: str) -> Operation | None:
        return self.op(self.resource, action)

    def url(self, operation: Operation, record_id: t.Any = None) -> str:
        path = operation.path
        if self.resource.id_param:
            path = path.replace("{" + self.resource.id_param + "}", record_key(record_id) if record_id else "0")
        return path

    def typed_id(self, key: str) -> t.Any:
        """A stored key as the path parameter's type (``"4"`` -> ``4`` for a numeric id), so
        schemathesis does not take the fixed value for a type mutation."""
        return int(key) if self.resource.id_kind == "integer" and key.isdigit() else key

    def declared(self, operation: Operation, status: int) -> dict | None:
        """The resolved response schema for ``status`` (``None``: not declared or no body)."""
        raw = self.spec["paths"][operation.path][operation.method.lower()]["responses"].get(str(status))
        if raw is None:
            return None
        resolved = resolve_refs(raw, self.spec)
        content = resolved.get("content", {})
        media = next((m for m in content if "json" in m), None)
        return content[media].get("schema", {}) if media else {}

    def nonconformance(self, operation: Operation, response: httpx.Response) -> str | None:
        """Why the response breaks the contract (undeclared status, wrong media type, body
        against the schema), or ``None``. The scenarios judge every answer they get, so a
        drifted body is caught without waiting for the fuzzer."""
        status = response.status_code
        if not self.is_declared(operation, status):
            return f"status {status} is not declared for {operation.method} {operation.path}"
        schema = self.declared(operation, status)
        if schema is None or schema == {}:
            return None
        media = response.headers.get("content-type", "")
        if "json" not in media or "problem" in media:
            return f"{status} answered as {media!r}, the contract says application/json"
        try:
            body = response.json()
        except ValueError:
            return f"{status} body is not JSON: {response.text[:100]!r}"
        key = (operation.operation_id, status)
        validator = self._validators.get(key)
        if validator is None:
            validator = self._validators[key] = jsonschema_rs.validator_for(schema, validate_formats=True)
        error = next(iter(validator.iter_errors(body)), None)
        return None if error is None else f"{status} body breaks the schema: {error.message[:200]}"

    def is_declared(self, operation: Operation, status: int) -> bool:
        return str(status) in self.spec["paths"][operation.path][operation.method.lower()]["responses"]

    def valid_create_body(self, run: str) -> dict:
        """The create body's example if it validates, else one built from the schema."""
        schema = self.action("create").body_schema or {"type": "object"}
        validator = jsonschema_rs.validator_for(schema, validate_formats=True)
        for candidate in (schema.get("example"), *(schema.get("examples") or []), complete({}, schema, TIMESTAMP)):
            if isinstance(candidate, dict) and validator.is_valid(candidate):
                return dict(candidate)
        raise UsageProblem("cannot build a valid create body from the contract: give the create schema an example")


class Probe:
    """HTTP with the run's credentials; records findings and what it created."""

    def __init__(self, target: Target, result: Result, created: set[str], existing: set[str]) -> None:
        self.target = target
        self.options = target.options
        self.result = result
        self.created = created
        self.existing = existing
        self.http = httpx.Client(base_url=self.options.api, timeout=30)
        self.run = uuid.uuid4().hex[:8]
        self.outsider_created: set[str] = set()  # by the outsider's credentials

    def headers(self, token: str | None, outsider: bool = False) -> dict[str, str]:
        extra = self.options.outsider_headers if outsider else self.options.headers
        auth = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return {**extra, **auth}

    def call(
        self, operation: Operation, record_id: t.Any = None, body: t.Any = None, *, token: str | None, outsider=False
    ) -> httpx.Response:
        response = self.http.request(
            operation.method,
            self.target.url(operation, record_id),
            headers=self.headers(token, outsider),
            json=body,
        )
        problem = self.target.nonconformance(operation, response)
        self.expect(operation, "response_conformance", problem is None, problem or "", record_id, body)
        if operation.action == "create" and 200 <= response.status_code < 300:
            record = self.record(response)
            if isinstance(record, dict) and self.target.resource.id_field in record:
                key = record_key(record[self.target.resource.id_field])
                if key in self.existing:
                    self.expect(operation, "create_then_read", False, f"a create answered an existing id: {key}")
                elif not outsider:
                    self.created.add(key)
                else:
                    self.outsider_created.add(key)
        return response

    def record(self, response: httpx.Response) -> t.Any:
        try:
            return self.target.profile.unwrap(response.json())
        except ValueError:
            return None

    def expect(self, operation: Operation, check: str, ok: bool, message: str, record_id=None, body=None) -> bool:
        label = f"{operation.method} {operation.path}"
        self.result.tally(label, check, ok)
        if not ok:
            url = self.options.api + self.target.url(operation, record_id)
            self.result.findings.append(
                Finding("behaviour", label, check, message, curl_line(operation.method, url, body))
            )
            if self.options.fail_fast:
                raise StopRun()
        return ok

    def error_ok(self, operation: Operation, response: httpx.Response, statuses: tuple[int, ...]) -> bool:
        """The status is one of ``statuses``, declared, JSON, and the body is the contract's
        own error body for it."""
        if response.status_code not in statuses or not self.target.is_declared(operation, response.status_code):
            return False
        schema = self.target.declared(operation, response.status_code)
        if not schema:
            return True
        if "json" not in response.headers.get("content-type", ""):
            return False
        try:
            body = response.json()
        except ValueError:
            return False
        return jsonschema_rs.validator_for(schema, validate_formats=True).is_valid(body)


def _describe(response: httpx.Response) -> str:
    return f"{response.status_code} {response.text[:200]}"


def _sample_update(target: Target, create_body: dict, current: dict, run: str) -> tuple[dict, str] | None:
    """A PUT/PATCH body that changes one free-text field (plus what the schema requires)."""
    update = target.action("update")
    schema = (update.body_schema or {}) if update else {}
    properties = schema.get("properties", {})
    body = {name: create_body[name] for name in schema.get("required", []) if name in create_body}
    record_props = target.resource.schema.get("properties", {})
    for name, sub in properties.items():
        stored = sub.get("x-sandbox-stored-as", name)
        kinds = sub.get("type") if isinstance(sub.get("type"), list) else [sub.get("type")]
        if name in body or "string" not in kinds or stored not in record_props:
            continue
        if sub.get("pattern") or sub.get("format") or sub.get("enum") or int(sub.get("maxLength", 64)) < 16:
            continue
        value = f"Conformance {run}"[: int(sub.get("maxLength", 64))]
        if current.get(stored) != value:
            return {**body, name: value}, stored
    return None


def auth_required(probe: Probe, anchor: str) -> None:
    """No token or an unknown token: 401 in the contract's error format, on every operation."""
    target = probe.target
    body = target.valid_create_body(probe.run)
    for token, what in ((None, "without a token"), (f"invalid-{probe.run}", "with an unknown token")):
        for operation in target.profile.operations.values():
            if operation.resource != target.resource.name or not operation.secured:
                continue
            payload = body if operation.body_schema is not None else None
            response = probe.call(operation, anchor, payload, token=token)
            probe.expect(
                operation,
                "auth_required",
                probe.error_ok(operation, response, (401,)),
                f"{what}: expected 401 in the contract's error format, got {_describe(response)}",
                anchor,
                payload,
            )


def create_read_update_delete(probe: Probe, create_body: dict) -> None:
    """Create, read back, partial update (unsent fields and the creation time unchanged, the
    update time moves), list, delete, then 404."""
    target, token = probe.target, probe.options.token
    resource = target.resource
    create, read = target.action("create"), target.action("read")
    response = probe.call(create, body=create_body, token=token)
    if not probe.expect(
        create,
        "create_then_read",
        response.status_code == create.status,
        f"valid create: expected {create.status}, got {_describe(response)}",
        body=create_body,
    ):
        return
    written = probe.record(response)
    record_id = written.get(resource.id_field) if isinstance(written, dict) else None
    if not probe.expect(create, "create_then_read", record_id is not None, f"no {resource.id_field} in the answer"):
        return
    properties = create.body_schema.get("properties", {}) if create.body_schema else {}
    for name, value in create_body.items():
        stored = properties.get(name, {}).get("x-sandbox-stored-as", name)
        if stored in resource.schema.get("properties", {}):
            probe.expect(
                create,
                "create_then_read",
                written.get(stored) == value,
                f"created {stored} is {written.get(stored)!r}, sent {value!r}",
                body=create_body,
            )
    reply = probe.call(read, record_id, token=token)
    probe.expect(
        read,
        "create_then_read",
        reply.status_code == 200 and probe.record(reply) == written,
        f"read after create: expected 200 with the created record, got {_describe(reply)}",
        record_id,
    )
    listing = target.action("list")
    if listing is not None:
        listed = probe.call(listing, token=token)
        ids = [r.get(resource.id_field) for r in probe.record(listed) or [] if isinstance(r, dict)]
        probe.expect(listing, "create_then_read", record_id in ids, "a created record is missing from the list")
    update = target.action("update")
    change = _sample_update(target, create_body, written, probe.run)
    if update is not None and change is not None:
        body, field = change
        time.sleep(0.002)  # timestamps with millisecond precision must move
        answered = probe.call(update, record_id, body, token=token)
        after = probe.record(answered) if answered.status_code == 200 else None
        if probe.expect(
            update,
            "partial_update",
            isinstance(after, dict) and after.get(field) == body[list(body)[-1]],
            f"update of {field}: expected 200 with the new value, got {_describe(answered)}",
            record_id,
            body,
        ):
            moved = {resource.updated_field, field}
            unchanged = [k for k, v in written.items() if k not in moved and after.get(k) != v]
            probe.expect(
                update,
                "partial_update",
                not unchanged,
                f"fields not sent changed on update: {unchanged}",
                record_id,
                body,
            )
            if resource.updated_field:
                probe.expect(
                    update,
                    "partial_update",
                    str(after.get(resource.updated_field)) > str(written.get(resource.updated_field)),
                    f"{resource.updated_field} did not move on update",
                    record_id,
                    body,
                )
            reread = probe.call(read, record_id, token=token)
            probe.expect(
                read,
                "read_after_write",
                reread.status_code == 200 and probe.record(reread) == after,
                f"read after update: expected the updated record, got {_describe(reread)}",
                record_id,
            )
    delete = target.action("delete")
    if delete is not None:
        gone = probe.call(delete, record_id, token=token)
        probe.expect(
            delete,
            "delete_then_404",
            gone.status_code == delete.status,
            f"delete: expected {delete.status}, got {_describe(gone)}",
            record_id,
        )
        for operation, payload in ((read, None), (update, change[0] if change else {}), (delete, None)):
            if operation is None:
                continue
            response = probe.call(operation, record_id, payload, token=token)
            probe.expect(
                operation,
                "delete_then_404",
                probe.error_ok(operation, response, (404,)),
                f"after delete: expected 404 in the contract's error format, got {_describe(response)}",
                record_id,
                payload,
            )


def invalid_input(probe: Probe, anchor: str, create_body: dict) -> None:
    """A body the schema rejects: 400 in the contract's error format, and nothing stored."""
    target, token = probe.target, probe.options.token
    create, read = target.action("create"), target.action("read")
    schema = create.body_schema or {}
    required = schema.get("required", [])
    if required:
        body = {k: v for k, v in create_body.items() if k != required[0]}
        response = probe.call(create, body=body, token=token)
        probe.expect(
            create,
            "invalid_input",
            probe.error_ok(create, response, (400,)),
            f"create without {required[0]}: expected 400 in the contract's error format, got {_describe(response)}",
            body=body,
        )
    update = target.action("update")
    if update is not None:
        before = probe.record(probe.call(read, anchor, token=token))
        response = probe.call(update, anchor, [], token=token)
        probe.expect(
            update,
            "invalid_input",
            probe.error_ok(update, response, (400,)),
            f"update with a JSON array body: expected 400, got {_describe(response)}",
            anchor,
            [],
        )
        after = probe.record(probe.call(read, anchor, token=token))
        probe.expect(update, "invalid_input", before == after, "a rejected update changed the record", anchor)


def tenant_isolation(probe: Probe, anchor: str) -> None:
    """Another tenant's credentials never see, change or delete this tenant's record."""
    options, target = probe.options, probe.target
    if not options.outsider_token:
        return
    read = target.action("read")
    before = probe.record(probe.call(read, anchor, token=options.token))
    for action in ("read", "update", "delete"):
        operation = target.action(action)
        if operation is None:
            continue
        payload = _sample_update(target, target.valid_create_body(probe.run), {}, probe.run)
        body = payload[0] if action == "update" and payload else None
        response = probe.call(operation, anchor, body, token=options.outsider_token, outsider=True)
        probe.expect(
            operation,
            "tenant_isolation",
            probe.error_ok(operation, response, (403, 404)),
            f"another tenant's credentials on this tenant's record: expected 404 or 403, got {_describe(response)}",
            anchor,
            body,
        )
    listing = target.action("list")
    if listing is not None:
        listed = probe.call(listing, token=options.outsider_token, outsider=True)
        records = probe.record(listed) if listed.status_code == 200 else []
        ids = [record_key(r.get(target.resource.id_field)) for r in records or [] if isinstance(r, dict)]
        probe.expect(listing, "tenant_isolation", anchor not in ids, "another tenant's list shows this tenant's record")
    after = probe.record(probe.call(read, anchor, token=options.token))
    probe.expect(read, "tenant_isolation", before == after, "another tenant changed this tenant's record", anchor)
    if options.outsider_headers == {} and options.headers:
        # A tenant named in a header: the outsider naming *our* tenant must be refused.
        for header, value in options.headers.items():
            response = probe.http.get(
                target.url(read, anchor),
                headers={header: value, "Authorization": f"Bearer {options.outsider_token}"},
            )
            probe.expect(
                read,
                "tenant_isolation",
                probe.error_ok(read, response, (403, 404)),
                f"outsider naming this tenant in {header}: expected 403 or 404, got {_describe(response)}",
                anchor,
            )


def _config(options: Options, target: Target, seed: int, phases: t.Sequence[str], anchor: str | None, victim: str):
    data: dict[str, t.Any] = {
        "seed": seed,
        "base-url": options.api,
        "headers": {**options.headers, "Authorization": f"Bearer {options.token}"},
        "continue-on-failure": not options.fail_fast,
        **({"max-failures": 1} if options.fail_fast else {}),
        "workers": options.workers,
        "generation": {"max-examples": options.max_examples},
        "phases": {
            **{phase: {"enabled": phase in phases} for phase in UNIT_PHASES},
            "stateful": {"enabled": "stateful" in phases, "inference": {"algorithms": []}},
        },
        "checks": {
            # fiscal_positive_data_acceptance is the built-in for any non-Timbrix operation.
            "positive_data_acceptance": {"enabled": False},
            **{name: {"enabled": False} for name in TIMBRIX_ONLY_CHECKS},
        },
    }
    name = target.resource.id_param
    if anchor and name:
        data["parameters"] = {f"path.{name}": target.typed_id(anchor)}
        delete = target.action("delete")
        if delete is not None:
            data["operations"] = [
                {"include-operation-id": delete.operation_id, "parameters": {f"path.{name}": target.typed_id(victim)}}
            ]
    return SchemathesisConfig.from_dict(data)


def run(options: Options, progress: Progress | None = None) -> Result:
    """The whole suite for a non-Timbrix contract. Raises :class:`UsageProblem` for exit 2."""
    progress = progress or (lambda kind, value: None)
    target = Target(options)
    seed = options.seed if options.seed is not None else random.randrange(2**31)
    result = Result(options=options, seed=seed)
    started = time.perf_counter()
    created: set[str] = set()
    existing = _preflight(target)
    probe = Probe(target, result, created, existing)
    create_body = target.valid_create_body(probe.run)
    try:
        anchor, victim = (_own_record(probe, create_body) for _ in range(2))
        checks.start_generic_tracking(target.profile, target.resource, created, anchor, victim, existing)
        progress("phase", "scenarios")
        for scenario in (
            lambda: auth_required(probe, anchor),
            lambda: create_read_update_delete(probe, create_body),
            lambda: invalid_input(probe, anchor, create_body),
            lambda: tenant_isolation(probe, anchor),
        ):
            scenario()
            progress("scenario", ".")
        unit = [p for p in options.phases if p in UNIT_PHASES]
        if unit:
            _execute(options, result, _config(options, target, seed, unit, anchor, victim), progress)
        if options.fail_fast and result.findings:
            raise StopRun()
        if "stateful" in options.phases:
            _execute(options, result, _config(options, target, seed, ["stateful"], None, victim), progress)
    except StopRun:
        pass
    finally:
        checks.stop_generic_tracking()
        result.created = len(created) + len(probe.outsider_created)
        result.cleaned = _cleanup(probe, created - existing, probe.outsider_created)
        probe.http.close()
        result.duration = time.perf_counter() - started
    return result


def _preflight(target: Target) -> set[str]:
    """Reachable, credentials accepted; returns the ids that exist before the run."""
    options = target.options
    listing = target.action("list")
    probe_op = listing or target.action("read")
    url = options.api + target.url(probe_op, "0")
    headers = {**options.headers, "Authorization": f"Bearer {options.token}"}
    try:
        response = httpx.get(url, headers=headers, timeout=15)
    except httpx.TransportError as exc:
        raise UsageProblem(f"cannot reach {options.api}: {exc}") from exc
    if response.status_code == 401:
        raise UsageProblem("the server rejected --token (401)")
    if response.status_code == 403:
        raise UsageProblem(f"--token cannot use this API (403): {response.text[:200]}")
    if listing is None:
        return set()
    if response.status_code != 200:
        raise UsageProblem(f"preflight GET {url} answered {response.status_code}: {response.text[:200]}")
    records = target.profile.unwrap(response.json())
    if not isinstance(records, list):
        raise UsageProblem(f"preflight GET {url}: the list is not where the contract says")
    return {record_key(r.get(target.resource.id_field)) for r in records if isinstance(r, dict)}


def _own_record(probe: Probe, body: dict) -> str:
    create = probe.target.action("create")
    response = probe.call(create, body=body, token=probe.options.token)
    record = probe.record(response) if 200 <= response.status_code < 300 else None
    if isinstance(record, dict) and probe.target.resource.id_field in record:
        return record_key(record[probe.target.resource.id_field])
    probe.expect(create, "create_then_read", False, f"a valid create was refused: {_describe(response)}", body=body)
    return "0"


def _cleanup(probe: Probe, created: set[str], outsider_created: set[str]) -> int:
    delete = probe.target.action("delete")
    if delete is None:
        return 0
    deleted = 0
    for keys, token, outsider in (
        (created, probe.options.token, False),
        (outsider_created, probe.options.outsider_token, True),
    ):
        for key in sorted(keys):
            if token is None:
                continue
            response = probe.http.request(
                delete.method, probe.target.url(delete, key), headers=probe.headers(token, outsider)
            )
            deleted += 200 <= response.status_code < 300
    return deleted


def is_generic_contract(options: Options) -> bool:
    """Contracts without a domain plug-in (everything but Timbrix's) take this suite."""
    spec = yaml.safe_load(options.contract.read_text(encoding="utf-8"))
    return not (spec.get("x-sandbox") or {}).get("plugin")
