"""The behaviour layer: explicit request sequences with known outcomes, derived from the
contract model for any contract (and fed by the domain plug-in's bodies and predictions).

Fuzzing finds semantic faults (an update that replaces, a tenant leak, a write not stored)
only by chance, so they are exercised here on purpose. Every answer is also judged against
the contract (``response_conformance``). Each scenario works on records of its own, created
for it; nothing that existed before the run is written to.
"""

from __future__ import annotations

import re
import time
import typing as t

from .probe import NO_BODY, Identity, Probe

if t.TYPE_CHECKING:
    from timbrix_sandbox.contract.model import Operation

    from .target import Target


def auth_required(probe: Probe) -> None:
    """No token or an unknown token: 401 in the contract's error format, on every secured operation."""
    mine = probe.create()
    for who in (probe.who["anonymous"], probe.who["unknown"]):
        for operation in probe.target.operations(secured=True):
            probe.call(operation, mine, probe.payload(operation), who=who, check="auth_required", want=(401,))


def create_read_update_delete(probe: Probe) -> None:
    """Create then read back and find in the list; a partial update keeps the unsent fields and
    the creation time and moves the update time; delete, then 404 everywhere."""
    target, domain = probe.target, probe.domain
    resource = target.resource
    create, read, update, delete = (target.op(a) for a in ("create", "read", "update", "delete"))
    body = domain.create_body(target, probe.run)
    response = probe.call(create, body=body, check="create_then_read", want=(create.status,), what="valid create")
    written = target.record(response)
    key = target.key(written)
    if not probe.expect(create, "create_then_read", key is not None, f"no {resource.id_field} in the answer"):
        return
    expected = domain.apply_write(target, "create", {}, body)
    what = "the created record differs from what was sent"
    probe.matches(create, "create_then_read", expected, written, what, body=body)
    probe.call(read, key, check="create_then_read", want=(200,), same=written, what="read after create")
    listed = probe.listed()
    if listed is not None:
        probe.expect(target.op("list"), "create_then_read", key in listed, "a created record is missing from the list")

    change = domain.update_body(target, body, written, probe.run) if update is not None else None
    if change is not None:
        _tick(written.get(resource.updated_field))
        answered = probe.call(update, key, change, check="partial_update", want=(200,), what="partial update")
        after = target.record(answered) if answered.status_code == 200 else None
        if isinstance(after, dict):
            want = domain.apply_write(target, "update", written, change)
            want.pop(resource.updated_field, None)
            what = "unsent fields changed, or sent ones did not"
            probe.matches(update, "partial_update", want, after, what, key, change)
            if resource.updated_field:
                was, now = written.get(resource.updated_field), after.get(resource.updated_field)
                what = f"{resource.updated_field} did not move: {was} -> {now}"
                probe.expect(update, "partial_update", str(now) > str(was), what, key, change)
            probe.call(read, key, check="partial_update", want=(200,), same=after, what="read after update")

    if delete is not None:
        probe.call(delete, key, check="delete_then_404", want=(delete.status,), what="delete")
        for operation in (read, update, delete):
            if operation is not None:
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
        body = {k: v for k, v in probe.domain.create_body(target, probe.run).items() if k != required[0]}
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
    probe.unchanged(target.op("read"), "tenant_isolation", mine, before, "another tenant changed this tenant's record")
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
        body = domain.create_body(target, probe.run, **longest)
        if action == "update":  # only the long fields, and what an update requires
            keep = {*longest, *target.body_schema(action).get("required", [])}
            body = {k: v for k, v in body.items() if k in keep}
        what = f"maximum-length fields {sorted(longest)} on {action}"
        response = probe.call(operation, mine, body, check="boundary_lengths", want=(operation.status,), what=what)
        if 200 <= response.status_code < 300:
            expected = domain.apply_write(target, action, {}, body)
            echoed = target.record(response)
            probe.matches(operation, "boundary_lengths", expected, echoed, "not echoed intact", mine, body)


SCENARIOS: list[t.Callable[[Probe], None]] = [
    auth_required,
    create_read_update_delete,
    invalid_input,
    tenant_isolation,
    boundary_lengths,
]

__all__ = ["NO_BODY", "SCENARIOS"]
