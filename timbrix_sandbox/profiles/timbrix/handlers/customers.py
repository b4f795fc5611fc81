"""Customers: list, create, read, partial update, delete - scoped to one organization."""

from __future__ import annotations

import typing as t

import anyio
from connexion import NoContent

import cfdi
from timbrix_sandbox.engine.clock import new_object_id, utc_now, utc_now_after
from timbrix_sandbox.engine.faults import SKIPPED_RULES
from timbrix_sandbox.engine.sandbox import CUSTOMERS, Sandbox
from timbrix_sandbox.http.context import current_sandbox
from timbrix_sandbox.http.errors import error_response

# Flat request field -> key of the nested ``address`` object, in the docs' response order.
ADDRESS_FIELDS = {
    "addressStreet": "street",
    "addressExterior": "exterior",
    "addressInterior": "interior",
    "addressNeighborhood": "neighborhood",
    "addressCity": "city",
    "addressMunicipality": "municipality",
    "addressZip": "zip",
    "addressState": "state",
    "addressCountry": "country",
}
TOP_LEVEL_FIELDS = ("legalName", "taxId", "taxSystem", "email", "phone", "defaultInvoiceUse")
FISCAL_FIELDS = {"taxId", "taxSystem", "defaultInvoiceUse", "addressZip"}
NOT_FOUND = "Customer not found"


class FiscalRejection(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _ordered(record: dict[str, t.Any]) -> dict[str, t.Any]:
    """The docs' field order, so responses read like the documentation."""
    address = record["address"]
    return {
        "id": record["id"],
        "organizationId": record["organizationId"],
        "legalName": record["legalName"],
        "taxId": record["taxId"],
        "taxSystem": record["taxSystem"],
        "email": record["email"],
        "phone": record.get("phone"),
        "defaultInvoiceUse": record["defaultInvoiceUse"],
        "address": {
            "street": address["street"],
            "exterior": address["exterior"],
            "interior": address.get("interior"),
            "neighborhood": address["neighborhood"],
            "city": address["city"],
            "municipality": address["municipality"],
            "zip": address["zip"],
            "state": address["state"],
            "country": address["country"],
        },
        "createdAt": record["createdAt"],
        "updatedAt": record["updatedAt"],
    }


def _check_fiscal(record: dict[str, t.Any], sandbox: Sandbox) -> None:
    violation = cfdi.first_violation(
        tax_id=record["taxId"],
        tax_system=record["taxSystem"],
        invoice_use=record["defaultInvoiceUse"],
        zip_code=record["address"]["zip"],
        strict=sandbox.strict_rfc,
    )
    if violation is not None and not _fault_skips(sandbox, violation.rule):
        raise FiscalRejection(violation.message)


def _fault_skips(sandbox: Sandbox, rule: str) -> bool:
    return any(sandbox.has_fault(fault) for fault, skipped in SKIPPED_RULES.items() if skipped == rule)


def _crash_on_long_name(sandbox: Sandbox, body: dict[str, t.Any]) -> None:
    if sandbox.has_fault("server-error-long-name") and len(body.get("legalName") or "") > 100:
        raise RuntimeError("injected fault: legalName column is VARCHAR(100)")


def _apply(record: dict[str, t.Any], body: dict[str, t.Any]) -> dict[str, t.Any]:
    """``record`` with the flat ``body`` fields merged in (only the fields sent)."""
    merged = {**record, "address": dict(record["address"])}
    for field, value in body.items():
        if field in ADDRESS_FIELDS:
            merged["address"][ADDRESS_FIELDS[field]] = value
        else:
            merged[field] = value
    return merged


async def find_all(organizationId: str):
    sandbox = current_sandbox()
    if sandbox.has_fault("list-all-tenants"):
        records = [r for org in sandbox.store.scopes(CUSTOMERS) for r in sandbox.store.list(CUSTOMERS, org)]
        return [_ordered(r) for r in records], 200
    records = sandbox.store.list(CUSTOMERS, organizationId)
    return [_ordered(r) for r in records], 200


async def find_one(organizationId: str, customerId: str):
    sandbox = current_sandbox()
    record = sandbox.store.get(CUSTOMERS, organizationId, customerId)
    if record is None and sandbox.has_fault("cross-tenant-read"):
        for other in sandbox.store.scopes(CUSTOMERS):
            record = record or sandbox.store.get(CUSTOMERS, other, customerId)
    if record is None:
        return error_response(404, NOT_FOUND)
    return _ordered(record), 200


async def create(organizationId: str, body: dict[str, t.Any]):
    sandbox = current_sandbox()
    now = utc_now()
    blank = {
        "id": new_object_id(),
        "organizationId": organizationId,
        "phone": None,
        "address": {"interior": None, "country": "MEX"},
        "createdAt": now,
        "updatedAt": now,
    }
    record = _ordered(_apply(blank, body))
    try:
        _check_fiscal(record, sandbox)
    except FiscalRejection as rejection:
        return error_response(400, rejection.message)
    _crash_on_long_name(sandbox, body)
    if sandbox.has_fault("create-upserts"):
        same = [r for r in sandbox.store.list(CUSTOMERS, organizationId) if r["taxId"] == record["taxId"]]
        if same:
            return _ordered(same[0]), 201
    if not sandbox.has_fault("create-not-persisted"):
        # The journal fsync is blocking I/O: keep it off the event loop.
        await anyio.to_thread.run_sync(sandbox.store.insert, CUSTOMERS, organizationId, record)
    return record, 201


async def update(organizationId: str, customerId: str, body: dict[str, t.Any]):
    sandbox = current_sandbox()

    unsaved: list[dict[str, t.Any]] = []  # only the update-not-persisted fault fills it

    def change(current: dict[str, t.Any]) -> dict[str, t.Any] | None:
        if not body:
            return None
        if sandbox.has_fault("put-replaces"):
            current = {**current, "phone": None, "address": {**current["address"], "interior": None}}
        updated = _apply(current, body)
        if FISCAL_FIELDS & body.keys():
            if (
                not sandbox.has_fault("cfdi-update-unmerged")
                or {"taxId", "taxSystem", "defaultInvoiceUse"} <= body.keys()
            ):
                _check_fiscal(updated, sandbox)
        _crash_on_long_name(sandbox, body)
        if not sandbox.has_fault("updated-at-frozen"):
            updated["updatedAt"] = utc_now_after(current["updatedAt"])
        if sandbox.has_fault("created-at-moves"):
            updated["createdAt"] = updated["updatedAt"]
        if sandbox.has_fault("update-not-persisted"):
            unsaved.append(updated)
            return None
        return updated

    try:
        record = await anyio.to_thread.run_sync(sandbox.store.update, CUSTOMERS, organizationId, customerId, change)
    except FiscalRejection as rejection:
        return error_response(400, rejection.message)
    if record is None:
        return error_response(404, NOT_FOUND)
    return _ordered(unsaved[-1] if unsaved else record), 200


async def remove(organizationId: str, customerId: str):
    sandbox = current_sandbox()
    if sandbox.has_fault("delete-not-persisted"):
        deleted = sandbox.store.get(CUSTOMERS, organizationId, customerId) is not None
    else:
        deleted = await anyio.to_thread.run_sync(sandbox.store.delete, CUSTOMERS, organizationId, customerId)
    if not deleted:
        return error_response(404, NOT_FOUND)
    return NoContent, 204
