"""What the suite adds to schemathesis for any contract: bookkeeping of the records fuzzing
creates, read-after-write and tenant-scoped bodies as checks, and the safety guard on writes.

Registered with ``@schemathesis.check`` / ``@schemathesis.hook`` (schemathesis allows them only
globally, hence the module state: :func:`start` sets the run they serve, :func:`stop` clears it,
and outside a run they do nothing). Domain plug-ins add their own checks through
``Domain.check`` and read the run from :func:`current`.
"""

from __future__ import annotations

import dataclasses
import json
import re
import typing as t
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import schemathesis

from timbrix_sandbox.contract.records import record_key

from .causes import Sent, path_values
from .probe import MEMBER, identities, wrapped
from .target import inner_path, walk

if t.TYPE_CHECKING:
    from .domains import Domain
    from .model import Options
    from .probe import Probe
    from .target import Target

BEHAVIOUR_CHECKS = {"track_created", "read_after_write", "tenant_scoped_bodies"}
_HOP_HEADERS = {"content-length", "content-type", "host", "transfer-encoding", "connection", "accept-encoding"}


@dataclasses.dataclass
class Run:
    """What the checks and the guard need of the run in progress."""

    options: Options
    target: Target
    domain: Domain
    created: set[tuple[str, str]]  # (owner, key), shared with the probe
    existing: set[str]
    anchor: str
    victim: str
    others: t.Mapping[str, Probe] = dataclasses.field(default_factory=dict)
    """Resource name -> the probe of every other resource the scenarios tested: the records
    fuzzing creates there (under the same parents) are removed with theirs."""

    def created_keys(self) -> set[str]:
        return {key for _, key in self.created}

    def spare(self) -> str:
        """A fresh record of the run's own for a delete the guard redirects, so that the delete
        removes something real (a 404 right after a create would read as a lost record)."""
        create, options = self.target.op("create"), self.options
        member = identities(options, self.target)["member"]
        try:
            response = httpx.post(
                options.api + self.target.url(create, None, options.organization_id),
                json=wrapped(create, self.domain.create_body(self.target, "spare")),
                headers=member.send(),
                params=member.query(),
                timeout=30,
            )
            key = self.target.key(self.target.profile.unwrap(response.json()))
        except (httpx.HTTPError, ValueError):
            key = None
        if key is None or key in self.existing or not 200 <= response.status_code < 300:
            return self.victim
        self.created.add((MEMBER, key))
        return key


_run: Run | None = None


def start(run: Run) -> None:
    global _run
    _run = run


def stop() -> None:
    global _run
    _run = None


def current() -> Run | None:
    return _run


# -- helpers, also for plug-ins --------------------------------------------------------------


def operation_id(case) -> str:
    return case.operation.definition.raw.get("operationId", "")


def json_body(response) -> t.Any:
    try:
        return json.loads(response.content)
    except ValueError:
        return None


def is_positive(case) -> bool:
    meta = getattr(case, "meta", None)
    return bool(meta and meta.generation.mode.is_positive)


def follow_up(response, path: str | None = None) -> httpx.Response:
    """A read-only GET of ``path`` (default: the URL the case addressed) with the case's own
    credentials and headers; the server failing it is a finding, not a crash."""
    url = urlsplit(str(response.request.url))
    headers = {k: v for k, v in response.request.headers.items() if k.lower() not in _HOP_HEADERS}
    target = f"{url.scheme}://{url.netloc}{path or url.path}"
    try:
        return httpx.get(target, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        raise AssertionError(f"the server failed a follow-up GET {target}: {exc}") from None


def _action(run: Run, case) -> str | None:
    operation = run.target.of_case(operation_id(case))
    return operation.action if operation is not None else None


def _record(run: Run, response) -> t.Any:
    return run.target.profile.unwrap(json_body(response))


def carries_credentials(run: Run, sent: Sent) -> bool:
    """The request carried the member's credentials (every header and query parameter of
    them, with their values): a 401 to it is not a missing-credentials refusal."""
    member = identities(run.options, run.target)["member"]
    headers = {k.lower(): v for k, v in sent.headers.items()}
    query = parse_qs(urlsplit(sent.url).query)
    given = {**member.auth.headers, **({"Authorization": f"Bearer {member.token}"} if member.token else {})}
    return all(headers.get(k.lower()) == v for k, v in given.items()) and all(
        query.get(k) == [v] for k, v in member.query().items()
    )


def record_missing(run: Run, method: str, path: str, sent: Sent) -> bool | None:
    """A read of the record the request names finds nothing (``None``: cannot tell): its
    resource's read at the same ids, else its list under the same parents without it."""
    found = _operation_resource(run, method, path)
    if found is None:
        return None
    operation, resource = found
    values = path_values(path, urlsplit(sent.url).path) or {}
    key = values.get(operation.id_param or "") if operation.id_param else None
    return _absent(run, resource, values, key, sent)


def record_taken(run: Run, method: str, path: str, sent: Sent) -> bool | None:
    """A create whose JSON body names an id (the client chooses ids: Museum's ``eventId``)
    that a stored record already has (``None``: cannot tell)."""
    found = _operation_resource(run, method, path)
    if found is None or found[0].action != "create" or not found[1].client_ids or not sent.body:
        return None
    operation, resource = found
    try:
        body = json.loads(sent.body)
    except ValueError:
        return None
    if operation.body_key and isinstance(body, dict):
        body = body.get(operation.body_key)
    key = body.get(resource.id_field) if isinstance(body, dict) else None
    if key is None:
        return None
    absent = _absent(run, resource, path_values(path, urlsplit(sent.url).path) or {}, record_key(key), sent)
    return None if absent is None else not absent


def _operation_resource(run: Run, method: str, path: str) -> tuple[t.Any, t.Any] | None:
    profile = run.target.profile
    operation = next((o for o in profile.operations.values() if (o.method.upper(), o.path) == (method, path)), None)
    resource = profile.resources.get(operation.resource) if operation is not None else None
    if resource is None or run.target.resource is None:
        return None
    return operation, resource


def _absent(run: Run, resource: t.Any, values: dict[str, str], key: str | None, sent: Sent) -> bool | None:
    """The record ``key`` of ``resource`` under the parents in ``values`` is not there: its read
    says so, else its list does not show it (``None``: cannot tell)."""
    view = run.target if resource.name == run.target.resource.name else run.target.focused(resource)
    read, listing = view.op("read"), view.op("list")
    headers = {k: v for k, v in sent.headers.items() if k.lower() not in _HOP_HEADERS}
    member = identities(run.options, run.target)["member"]
    try:
        if read is not None:
            if read.id_param and key is not None:
                values = {**values, read.id_param: key}
            url = _filled(read.path, values)
            if url is None:
                return None
            reply = httpx.get(run.options.api + url, headers=headers, params=member.query(), timeout=30)
            return not 200 <= reply.status_code < 300
        if listing is None or key is None:
            return None
        url = _filled(listing.path, values)
        if url is None:
            return None
        reply = httpx.get(run.options.api + url, headers=headers, params=member.query(), timeout=30)
    except httpx.HTTPError:
        return None
    return reply.status_code != 200 or record_key(key) not in view.keys(reply, listing)


def _filled(template: str, values: t.Mapping[str, str]) -> str | None:
    """``template`` with every ``{name}`` filled from ``values`` (``None``: one is missing)."""
    names = re.findall(r"{([^}]+)}", template)
    if any(name not in values for name in names):
        return None
    for name in names:
        template = template.replace("{" + name + "}", quote(str(values[name]), safe=""))
    return template


# -- checks ----------------------------------------------------------------------------------


def _created_key(run: Run | None, case, response) -> str | None:
    if run is None or _action(run, case) != "create" or not 200 <= response.status_code < 300:
        return None
    return run.target.key(_record(run, response))


@schemathesis.check
def track_created(ctx, response, case) -> bool | None:
    """Flag a create that answers with a record that existed before the run (the records
    fuzzing creates are remembered as they come in, by :func:`after_call`)."""
    key = _created_key(_run, case, response)
    if key is not None and key in _run.existing:
        raise AssertionError(f"a create answered with the id of a record that existed before the run: {key}")
    return None


@schemathesis.check
def read_after_write(ctx, response, case) -> bool | None:
    """An acknowledged create or update is what a following GET returns."""
    run = _run
    action = _action(run, case) if run is not None else None
    if action not in ("create", "update") or not 200 <= response.status_code < 300:
        return None
    written = _record(run, response)
    key = run.target.key(written)
    if key is None:
        return None
    path = urlsplit(str(response.request.url)).path
    operation = run.target.of_case(operation_id(case))
    in_path = action == "update" and operation is not None and not operation.id_in_body
    item = path if in_path else _item_path(run, case, key) or f"{path.rstrip('/')}/{key}"
    reply = follow_up(response, item)
    if reply.status_code != 200:
        raise AssertionError(f"Acknowledged write not readable: GET {item} answered {reply.status_code}")
    if not run.target.same_record(_record(run, reply), written):
        raise AssertionError(f"GET after write differs from the write's response: {reply.text[:300]}")
    return None


def _item_path(run: Run, case, key: str) -> str | None:
    """The read's own path for ``key`` (Discourse's ``/posts/{id}.json``), under the API root,
    with the tenant the case named."""
    read = run.target.op("read")
    if read is None:
        return None
    tenant = next((str(v) for k, v in (case.path_parameters or {}).items() if k in run.target.scope), None)
    return urlsplit(run.options.api).path.rstrip("/") + run.target.url(read, key, tenant)


@schemathesis.check
def tenant_scoped_bodies(ctx, response, case) -> bool | None:
    """Records that carry their tenant (a field named like the tenant path parameter, such as
    Timbrix's ``organizationId``) belong to the tenant in the path: a list or a read that leaks
    another tenant's records is a violation even with the right status."""
    run = _run
    if run is None or _action(run, case) is None or not 200 <= response.status_code < 300:
        return None
    record_props = run.target.resource.schema.get("properties", {})
    body = _record(run, response)
    records = [r for r in (body if isinstance(body, list) else [body]) if isinstance(r, dict)]
    for name in run.target.scope:
        tenant = (case.path_parameters or {}).get(name)
        if name not in record_props or tenant is None:
            continue
        foreign = [run.target.key(r) for r in records if name in r and r[name] != tenant]
        if foreign:
            raise AssertionError(f"Response carries records of another tenant ({name} != {tenant}): {foreign[:5]}")
    return None


# -- the guard ---------------------------------------------------------------------------------


@schemathesis.hook
def after_call(context, case, response):
    """Remember every record fuzzing creates, as soon as it is answered: the run deletes them
    all, and a later step of the same scenario (checks run only after its last step) may update
    or delete it."""
    run = _run
    key = _created_key(run, case, response)
    if key is not None and key not in run.existing:
        run.created.add((MEMBER, key))
    elif run is not None and key is None:
        _track_other(run, case, response)


def _track_other(run: Run, case, response) -> None:
    """A create of another tested resource, under the parents its probe fills (Twilio's Roles
    under the run's own Service): its probe deletes it, before the parent."""
    operation = run.target.profile.operations.get(operation_id(case))
    probe = run.others.get(operation.resource) if operation is not None and operation.action == "create" else None
    if probe is None or probe.target is run.target or not 200 <= response.status_code < 300:
        return
    params = case.path_parameters or {}
    if any(str(params.get(name)) != value for name, value in probe.target.parent_values.items()):
        return  # created elsewhere: its delete would not reach it
    record = walk(run.target.profile.unwrap(json_body(response)), inner_path(operation))
    key = probe.target.key(record)
    if key is not None and key not in probe.existing:
        probe.created.add((MEMBER, key))


def _guard_body_id(run: Run, case, operation: t.Any, action: str) -> None:
    """:func:`before_call` for an update that names its record in the body (Petstore's ``PUT
    /pet {"id": 10, ...}``): its id, inside the body's wrapper, is rewritten the same way. The
    contract's example id named a record the run did not create, and was overwritten."""
    record = case.body.get(operation.body_key) if operation.body_key and isinstance(case.body, dict) else case.body
    id_field = run.target.resource.id_field
    if not isinstance(record, dict) or record.get(id_field) is None:
        return
    value = record[id_field]
    if record_key(value) in run.created_keys():
        return
    if record_key(value) in run.existing or run.target.id_could_exist(value):
        replacement = run.anchor if action == "update" else run.spare()
        record = {**record, id_field: run.target.typed_id(replacement)}
        case.body = {**case.body, operation.body_key: record} if operation.body_key else record


@schemathesis.hook
def before_call(context, case, kwargs):
    """The last line of the safety promise: whatever a phase generated (an example id from the
    contract, a guessed one), an update or delete is only sent to a record this run created.
    Any other well-formed id (one a record could have) goes to the run's own anchor (update)
    or to a fresh record of its own (delete) instead; malformed ids are left alone, so the
    server's rejection of them is still tested."""
    run = _run
    action = _action(run, case) if run is not None else None
    if action not in ("update", "delete"):
        return
    operation = run.target.of_case(operation_id(case))
    if operation is not None and operation.id_in_body:
        _guard_body_id(run, case, operation, action)
        return
    name = run.target.resource.id_param
    params = case.path_parameters or {}
    value = params.get(name)
    if value is None or record_key(value) in run.created_keys():
        return
    if record_key(value) in run.existing or run.target.id_could_exist(value):
        replacement = run.anchor if action == "update" else run.spare()
        case.path_parameters = {**params, name: run.target.typed_id(replacement)}
