"""The behaviour layer: explicit request sequences with known outcomes, derived from the
contract model for any contract (and fed by the domain plug-in's bodies and predictions).

They run on every resource the contract model infers with a create, a read or a list, and a
delete, each
through a probe of its own (``subjects.py``: parents created for nested resources); a scenario
reads ``probe.target``, the contract focused on that resource.

Fuzzing finds semantic faults (an update that replaces, a tenant leak, a write not stored)
only by chance, so they are exercised here on purpose. Every answer is also judged against
the contract (``response_conformance``). Each scenario works on records of its own, created
for it; nothing that existed before the run is written to.
"""

from __future__ import annotations

import json
import re
import time
import typing as t
from urllib.parse import quote, unquote

import httpx

from .probe import NO_BODY, Identity, Probe
from .target import _merged, describe, error_shape_ok

if t.TYPE_CHECKING:
    from timbrix_sandbox.contract.model import Operation

    from .target import Target


def auth_required(probe: Probe) -> None:
    """No token or an unknown token: 401 in the contract's error format, on every secured
    operation; where the contract declares no 401 (nor ``4XX``/``default``), any client error it
    declares (Museum says 400), and nothing where it declares none."""
    mine = probe.create()
    for who in (probe.who["anonymous"], probe.who["unknown"]):
        for operation in probe.target.operations(secured=True):
            want = refusals(probe.target, operation)
            if want:
                probe.call(operation, mine, probe.payload(operation), who=who, check="auth_required", want=want)


def refusals(target: Target, operation: t.Any) -> tuple[int, ...]:
    """The statuses a request without valid credentials may get: 401 where declared, else the
    contract's declared 4xx statuses but 404 (the record asked for exists)."""
    if target.is_declared(operation, 401):
        return (401,)
    declared = (str(k) for k in target.raw(operation)["responses"])
    return tuple(sorted(int(k) for k in declared if k.isdigit() and 400 <= int(k) < 500 and k != "404"))


def create_read_update_delete(probe: Probe) -> None:
    """Create then read back and find in the list; a partial update keeps the unsent fields and
    the creation time and moves the update time; delete, then 404 everywhere."""
    target, domain = probe.target, probe.domain
    resource = target.resource
    create, read, update, delete = (target.op(a) for a in ("create", "read", "update", "delete"))
    body = probe.create_body()
    answers = target.successes(create)
    response = probe.call(create, body=body, check="create_then_read", want=answers, what="valid create")
    written = target.record(response, create)
    key = target.key(written)
    if not probe.expect(create, "create_then_read", key is not None, f"no {resource.id_field} in the answer"):
        return
    expected = domain.apply_write(target, "create", {}, body)
    answered = target.answered_fields(create)  # a 202 may answer a few fields of the record
    expected = {k: v for k, v in expected.items() if answered is None or k in answered}
    what = "the created record differs from what was sent"
    probe.matches(create, "create_then_read", expected, written, what, body=body)
    if read is not None:
        probe.call(read, key, check="create_then_read", want=(200,), same=written, what="read after create")
    listed = probe.listed()
    if listed is not None:
        probe.expect(target.op("list"), "create_then_read", key in listed, "a created record is missing from the list")

    change = domain.update_body(target, body, written, probe.run) if update is not None else None
    if change is not None:
        _tick(written.get(resource.updated_field))
        done = target.successes(update)
        answered = probe.call(update, key, change, check="partial_update", want=done, what="partial update")
        after = None
        if answered.status_code in done:  # an answer without the record (204): read it back
            after = target.record(answered, update) if answered.content else probe.read(key)
        if isinstance(after, dict):
            want = domain.apply_write(target, "update", written, change)
            want.pop(resource.updated_field, None)
            what = "unsent fields changed, or sent ones did not"
            probe.matches(update, "partial_update", want, after, what, key, change)
            if resource.updated_field:
                was, now = written.get(resource.updated_field), after.get(resource.updated_field)
                what = f"{resource.updated_field} did not move: {was} -> {now}"
                probe.expect(update, "partial_update", str(now) > str(was), what, key, change)
            if read is not None:
                probe.call(read, key, check="partial_update", want=(200,), same=after, what="read after update")

    if delete is not None:
        sent = probe.delete_body(delete)
        probe.call(delete, key, sent, check="delete_then_404", want=target.successes(delete), what="delete")
        shown = probe.listed() if read is None else None  # no read to 404: the list must drop it
        if shown is not None:
            what = f"a deleted record is still listed: {key}"
            probe.expect(target.op("list"), "delete_then_404", key not in shown, what)
        for operation in (read, update, delete):
            # An update that names its record in the body (Petstore's PUT /pet) cannot name a
            # deleted one with the generic payload: only path-addressed operations are probed.
            if operation is not None and not operation.id_in_body:
                payload = probe.payload(operation)
                probe.call(operation, key, payload, check="delete_then_404", want=(404,), what="after delete")


def _tick(timestamp: t.Any) -> None:
    """Wait long enough for the update time to move at the precision the server writes it
    (whole seconds: a second; milliseconds: a few)."""
    fraction = re.search(r"\.(\d+)", str(timestamp or ""))
    time.sleep(max(0.002, 1.05 * 10 ** -len(fraction[1])) if fraction else 1.05)


def invalid_input(probe: Probe) -> None:
    """A body the schema rejects gets 400 in the contract's error format, and changes nothing."""
    target = probe.target
    create, update = target.op("create"), target.op("update")
    required = target.body_schema("create").get("required", [])
    if required:
        before = probe.listed()
        body = {k: v for k, v in probe.create_body().items() if k != required[0]}
        probe.call(create, body=body, check="invalid_input", want=(400,), what=f"create without {required[0]}")
        after = probe.listed()
        probe.expect(create, "invalid_input", after == before, "a rejected create changed the list", body=body)
    mine = probe.create()
    if update is not None and mine is not None:
        before = probe.read(mine)
        probe.call(update, mine, [], check="invalid_input", want=(400,), what="update with a JSON array body")
        probe.unchanged(update, "invalid_input", mine, before, "a rejected update changed the record", [])


def tenant_isolation(probe: Probe) -> None:
    """Another tenant's credentials cannot see, change or delete this tenant's records (404: the
    record is not in their tenant), get 403 on every operation that names this tenant, and a
    record of theirs is not found in ours."""
    outsider, intruder = probe.who["outsider"], probe.who["intruder"]
    target = probe.target
    mine = probe.create()
    if mine is None or not (outsider or intruder):
        return
    before = probe.read(mine)
    if intruder is not None:
        _everywhere(probe, mine, intruder, (403,))
    if outsider is not None:
        for operation in _item_operations(probe):
            payload, want = probe.payload(operation), _not_found(target, operation)
            probe.call(operation, mine, payload, who=outsider, check="tenant_isolation", want=want)
        shown = probe.listed(outsider)
        if shown is not None:
            probe.expect(target.op("list"), "tenant_isolation", mine not in shown, "another tenant's list shows ours")
    probe.unchanged(target.reader(), "tenant_isolation", mine, before, "another tenant changed this tenant's record")
    if outsider is None:
        return
    theirs = probe.create(who=outsider)
    if theirs is None:
        return
    listed = probe.listed()
    if listed is not None:
        probe.expect(target.op("list"), "tenant_isolation", theirs not in listed, "another tenant's record is listed")
    for operation in _item_operations(probe):
        payload, want = probe.payload(operation), _not_found(target, operation)
        probe.call(operation, theirs, payload, check="tenant_isolation", want=want, what="another tenant's record")


def _everywhere(probe: Probe, key: str, who: Identity, want: tuple[int, ...]) -> None:
    for operation in probe.target.operations(secured=True):
        probe.call(operation, key, probe.payload(operation), who=who, check="tenant_isolation", want=want)


def _item_operations(probe: Probe) -> list[Operation]:
    return [o for o in (probe.target.op(a) for a in ("read", "update", "delete")) if o is not None]


def _not_found(target: Target, operation: Operation) -> tuple[int, ...]:
    """Across tenants a record is not found (a contract that declares no 404 answers 403)."""
    return (404,) if target.is_declared(operation, 404) else (403,)


def boundary_lengths(probe: Probe) -> None:
    """Every free-text field at the maximum length the contract allows is accepted on create and
    on update, and echoed intact. Fuzzing reaches these boundaries only by chance: a planted
    crash above 100 characters survived some seeds."""
    target, domain = probe.target, probe.domain
    for action in ("create", "update"):
        operation, longest = target.op(action), target.longest_text(action)
        mine = probe.create() if action == "update" and operation is not None and longest else None
        if operation is None or not longest or (action == "update" and mine is None):
            continue
        body = probe.create_body(**longest)
        if action == "update":  # only the long fields, and what an update requires
            keep = {*longest, *target.body_schema(action).get("required", [])}
            body = {k: v for k, v in body.items() if k in keep}
        what = f"maximum-length fields {sorted(longest)} on {action}"
        want = target.successes(operation)
        response = probe.call(operation, mine, body, check="boundary_lengths", want=want, what=what)
        if 200 <= response.status_code < 300 and response.content:
            expected = domain.apply_write(target, action, {}, body)
            answered = target.answered_fields(operation)
            expected = {k: v for k, v in expected.items() if answered is None or k in answered}
            echoed = target.record(response, operation)
            probe.matches(operation, "boundary_lengths", expected, echoed, "not echoed intact", mine, body)


def list_order(probe: Probe) -> None:
    """Where the list operation states its order (``x-sandbox-list-order``), two records created
    one after the other are listed in that order, and the run's records are sorted by the field."""
    target = probe.target
    order, listing = target.list_order(), target.op("list")
    if order is None or listing is None:
        return
    field, ascending = order
    first, second = probe.create(), probe.create()
    if first is None or second is None:
        return
    records = target.record(probe.call(listing))
    if not isinstance(records, list):
        return
    keys = [target.key(r) for r in records]
    ours = [r for r in records if target.key(r) in (first, second)]
    stated = "oldest first" if ascending else "newest first"
    if probe.expect(listing, "list_order", len(ours) == 2, f"the two records just created are not both listed: {keys}"):
        went_first = first if ascending else second
        message = f"the contract states the list {stated} by {field}; {first} was created before {second}: {keys}"
        probe.expect(listing, "list_order", target.key(ours[0]) == went_first, message)
        values = [str(r.get(field)) for r in ours]
        probe.expect(listing, "list_order", values == sorted(values, reverse=not ascending), f"{field}: {values}")


def refused_variants(probe: Probe) -> None:
    """A valid value sent in a form its field's pattern refuses (lowercase, padded with a space,
    a trailing newline: what a lenient server "fixes") is a 400 in the contract's error format,
    and nothing is stored. Fuzzing almost never builds these: they sit one character from valid."""
    target = probe.target
    create = target.op("create")
    if create is None:
        return
    body = probe.create_body()
    for name, sub in target.body_schema("create").get("properties", {}).items():
        value = body.get(name)
        if not isinstance(value, str) or "pattern" not in _merged(sub):
            continue
        validator = target.validator(("variants", name), sub)
        for variant in dict.fromkeys((value.lower(), f" {value}", f"{value} ", f"{value}\n")):
            if variant == value or validator.is_valid(variant):
                continue
            sent = {**body, name: variant}
            what = f"{name} sent as {variant!r} (valid: {value!r})"
            probe.call(create, body=sent, check="refused_variants", want=(400,), what=what)


def body_limit(probe: Probe) -> None:
    """A valid body one byte over the limit the contract declares for 413
    (``x-sandbox-max-body-bytes``) gets 413 and stores nothing. Fuzzing never sends more
    than a few KB."""
    target = probe.target
    create = target.op("create")
    limit = target.max_body_bytes(create) if create is not None else None
    if limit is None:
        return
    raw = json.dumps(probe.create_body()).encode()
    padded = raw[:-1] + b" " * (limit + 1 - len(raw)) + raw[-1:]  # still the same valid JSON object
    who = probe.member
    url = target.url(create, None, who.tenant)
    headers = {**who.send(), "content-type": "application/json"}
    try:
        response = probe.http.request(create.method, url, content=padded, headers=headers)
    except httpx.HTTPError as exc:
        probe.expect(create, "body_limit", False, f"a body of {limit + 1} bytes: the server failed: {exc}")
        return
    if create.action == "create":
        probe._track(create, response, who, None)
    message = f"a valid body of {limit + 1} bytes (limit {limit}): expected 413 in the contract's error format, got "
    ok = target.error_ok(create, response, (413,))
    probe.expect(create, "body_limit", ok, message + describe(response), status=response.status_code)


def head_like_get(probe: Probe) -> None:
    """HTTP requires HEAD wherever GET is served (RFC 9110, 9.1 and 9.3.2): the same status and
    headers, no body. A contract lists GET only; the server must still answer HEAD."""
    target = probe.target
    mine = probe.create()
    for operation in target.operations():
        if operation.method.upper() != "GET":
            continue
        url = target.url(operation, mine, probe.member.tenant)
        try:
            got = probe.http.get(url, headers=probe.member.send())
            head = probe.http.head(url, headers=probe.member.send())
        except httpx.HTTPError as exc:
            probe.expect(operation, "head_like_get", False, f"HEAD {url} failed: {exc}")
            continue
        same = head.status_code == got.status_code and not head.content
        message = (
            f"HEAD answered {head.status_code} with {len(head.content)} body bytes; GET answered {got.status_code}"
        )
        probe.expect(operation, "head_like_get", same, message, mine, status=None)


def _variants(value: str) -> list[tuple[str, str]]:
    """(what, already percent-encoded path segment) for malformed forms of a valid path value."""
    encoded = quote(value, safe="")
    return [
        ("one character too many", quote(value + value[-1], safe="")),
        ("one character short", quote(value[:-1], safe="")),
        ("upper-cased", quote(value.upper(), safe="")),
        ("with a leading space", "%20" + encoded),
        ("with a trailing newline", encoded + "%0A"),
        ("with a percent-encoded slash inside", quote(value[:4], safe="") + "%2F" + quote(value[4:], safe="")),
        ("with a non-ASCII letter", "%C3%91" + quote(value[1:], safe="")),
        ("ten times as long", quote(value * 10, safe="")),
    ]


def malformed_path_parameters(probe: Probe) -> None:
    """Every path parameter of every operation of the resource (the tenant and the id), in every
    malformed form its schema refuses, is refused with a 4xx (never served, never a 5xx), and the
    run's record is left as it was."""
    target = probe.target
    mine = probe.create()
    if mine is None:
        return
    before = probe.read(mine)
    tenant = probe.member.tenant or ""
    for operation in target.operations():
        schemas = target.path_params(operation)
        valid = {name: tenant for name in target.scope} | (
            {target.resource.id_param: mine} if target.resource.id_param in schemas else {}
        )
        payload = probe.payload(operation)
        for name, value in valid.items():
            if name not in schemas or not value:
                continue
            validator = target.validator(("path", operation.operation_id, name), schemas[name])
            for what, segment in _variants(value):
                if segment == quote(value, safe="") or validator.is_valid(_typed(schemas[name], unquote(segment))):
                    # A well-formed value (an upper-case UUID where the pattern allows it, "1" for
                    # "11"): it could name a record that is not ours, so it is never sent.
                    continue
                path = operation.path
                for other, good in valid.items():
                    path = path.replace("{" + other + "}", segment if other == name else quote(good, safe=""))
                content = None if payload is NO_BODY else json.dumps(payload).encode()
                headers = {**probe.member.send(), **({"content-type": "application/json"} if content else {})}
                try:
                    response = probe.http.request(operation.method, path, content=content, headers=headers)
                except httpx.HTTPError as exc:
                    probe.expect(operation, "malformed_path_parameters", False, f"{path}: the server failed: {exc}")
                    continue
                if operation.action == "create":
                    probe._track(operation, response, probe.member, payload)
                body = _json(response)
                ok = 400 <= response.status_code < 500 and (
                    body is None or error_shape_ok(target.profile.errors.body, body, response.status_code)
                )
                message = f"{name} {what} ({operation.method} {path}): expected a 4xx error, got {describe(response)}"
                probe.expect(operation, "malformed_path_parameters", ok, message, status=response.status_code)
    probe.unchanged(target.reader(), "malformed_path_parameters", mine, before, "a malformed request changed it")


def _typed(schema: dict, text: str) -> t.Any:
    """A path segment as its parameter's type, the way a server would read it."""
    kind = _merged(schema).get("type")
    if kind == "integer" and re.fullmatch(r"-?[0-9]+", text):
        return int(text)
    if kind == "number" and re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", text):
        return float(text)
    return text


def _json(response: httpx.Response) -> t.Any:
    if "json" not in response.headers.get("content-type", "") or not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


SCENARIOS: list[t.Callable[[Probe], None]] = [
    auth_required,
    create_read_update_delete,
    invalid_input,
    tenant_isolation,
    boundary_lengths,
    list_order,
    refused_variants,
    body_limit,
    head_like_get,
    malformed_path_parameters,
]

__all__ = ["NO_BODY", "SCENARIOS"]
