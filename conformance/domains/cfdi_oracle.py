"""What a conformant Timbrix server must answer to a customer write, per the CFDI rules.

Pure functions over JSON-like data, so they can judge any implementation: the expected
outcome is computed from the request (and, for an update, the record as it was stored), never
from the server's own answer.
"""

from __future__ import annotations

import typing as t

import cfdi

# The flat-to-nested address mapping is written out here on purpose, not imported from the
# sandbox's handlers: the oracle judges implementations, the sandbox included, and must not
# share the code it judges. The CFDI rules are shared (``cfdi``): they are data, not behaviour.
CREATE = "CustomersController_create"
UPDATE = "CustomersController_update"
FISCAL_FIELDS = ("taxId", "taxSystem", "defaultInvoiceUse", "addressZip")
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


def flat_fiscal(record: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The fiscal fields of a stored (nested) customer, in request (flat) names."""
    return {
        "taxId": record.get("taxId"),
        "taxSystem": record.get("taxSystem"),
        "defaultInvoiceUse": record.get("defaultInvoiceUse"),
        "addressZip": (record.get("address") or {}).get("zip"),
    }


def expected_violation(
    operation_id: str,
    body: t.Mapping[str, t.Any],
    stored: t.Mapping[str, t.Any] | None = None,
    *,
    strict: bool = False,
) -> cfdi.CfdiViolation | None:
    """The CFDI violation a server must report for this write, or ``None`` if it must accept.

    * create: the body's fiscal fields are checked;
    * update: only when a fiscal field is sent, the stored record merged with the body is
      checked as a whole (the docs: "re-validates the full combination").
    """
    if operation_id == UPDATE:
        if not any(field in body for field in FISCAL_FIELDS):
            return None
        merged = {**flat_fiscal(stored or {}), **{k: body[k] for k in FISCAL_FIELDS if k in body}}
    elif operation_id == CREATE:
        merged = {field: body.get(field) for field in FISCAL_FIELDS}
    else:
        return None
    return cfdi.first_violation(
        tax_id=merged["taxId"],
        tax_system=merged["taxSystem"],
        invoice_use=merged["defaultInvoiceUse"],
        zip_code=merged["addressZip"],
        strict=strict,
    )


def apply_update(stored: t.Mapping[str, t.Any], body: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The record a partial update must produce (timestamps aside)."""
    result = {**stored, "address": dict(stored.get("address") or {})}
    for field, value in body.items():
        if field in ADDRESS_FIELDS:
            result["address"][ADDRESS_FIELDS[field]] = value
        else:
            result[field] = value
    return result


def expected_catalog(operation_id: str, query: t.Mapping[str, t.Any]) -> tuple[bool, list[tuple[str, str]] | None]:
    """(applicable, expected rows as (codigo, tipoPersona)) for the SAT catalog endpoints;
    ``None`` rows mean the query names an unknown value and must be a 400. Descriptions are not
    compared: the vendor's own texts differ from SAT's in accents."""
    try:
        if operation_id == "SatController_regimenesFiscales":
            rows = cfdi.regimenes(query.get("tipoPersona"))
        elif operation_id == "SatController_usosCfdi":
            rows = cfdi.usos(query.get("tipoPersona"), query.get("regimen"))
        else:
            return False, None
    except cfdi.UnknownCatalogValue:
        return True, None
    return True, [(row["codigo"], row["tipoPersona"]) for row in rows]
