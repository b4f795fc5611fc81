"""Customers: list, create, read, partial update, delete - scoped to one organization."""

from __future__ import annotations

import typing as t

import anyio
from connexion import NoContent

import cfdi
from timbrix_sandbox.clock import new_object_id, utc_now, utc_now_after
from timbrix_sandbox.context import current_sandbox
from timbrix_sandbox.errors import error_response
from timbrix_sandbox.sandbox import CUSTOMERS

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


def _check_fiscal(record: dict[str, t.Any], strict: bool) -> None:
    violation = cfdi.first_violation(
        tax_id=record["taxId"],
        tax_system=record["taxSystem"],
        invoice_use=record["defaultInvoiceUse"],
        zip_code=record["address"]["zip"],
        strict=strict,
    )
    if violation is not None:
        raise FiscalRejection(violation.message)


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
    records = current_sandbox().store.list(CUSTOMERS, organizationId)
    return [_ordered(r) for r in records], 200


async def find_one(organizationId: str, customerId: str):
    record = current_sandbox().store.get(CUSTOMERS, organizationId, customerId)
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
        _check_fiscal(record, sandbox.strict_rfc)
    except FiscalRejection as rejection:
        return error_response(400, rejection.message)
    # The journal fsync is blocking I/O: keep it off the event loop.
    await anyio.to_thread.run_sync(sandbox.store.insert, CUSTOMERS, organizationId, record)
    return record, 201


async def update(organizationId: str, customerId: str, body: dict[str, t.Any]):
    sandbox = current_sandbox()

    def change(current: dict[str, t.Any]) -> dict[str, t.Any] | None:
        if not body:
            return None
        updated = _apply(current, body)
        if FISCAL_FIELDS & body.keys():
            _check_fiscal(updated, sandbox.strict_rfc)
        updated["updatedAt"] = utc_now_after(current["updatedAt"])
        return updated

    try:
        record = await anyio.to_thread.run_sync(sandbox.store.update, CUSTOMERS, organizationId, customerId, change)
    except FiscalRejection as rejection:
        return error_response(400, rejection.message)
    if record is None:
        return error_response(404, NOT_FOUND)
    return _ordered(record), 200


async def remove(organizationId: str, customerId: str):
    sandbox = current_sandbox()
    deleted = await anyio.to_thread.run_sync(sandbox.store.delete, CUSTOMERS, organizationId, customerId)
    if not deleted:
        return error_response(404, NOT_FOUND)
    return NoContent, 204
