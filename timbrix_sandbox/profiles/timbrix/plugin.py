"""The Timbrix domain plug-in: what CFDI 4.0 adds to the engine's customers, and the SAT
catalog endpoints.

The customers themselves are the engine's (``engine/crud.py``): the flat ``address*`` request
fields reach the nested ``address`` through ``x-sandbox-stored-as`` in ``openapi.yaml``, and
the response schema orders the answer. What a schema cannot say lives here:

* a new customer starts with ``phone`` and ``address.interior`` ``null`` and
  ``address.country`` ``MEX`` (the docs' defaults; the contract keeps them optional);
* the record to be stored passes the CFDI rules (``cfdi``, the single oracle): on create,
  and on an update that sends a fiscal field, the *merged* record, as the docs say;
* the SAT catalogs are answered from the same data the rules use.
"""

from __future__ import annotations

import typing as t

import cfdi
from timbrix_sandbox.engine.faults import Behaviours
from timbrix_sandbox.engine.plugins import DomainPlugin, OperationHandler, Reply
from timbrix_sandbox.engine.policy import Refusal

STRICT_RFC = "strict-rfc"
FISCAL_FIELDS = frozenset({"taxId", "taxSystem", "defaultInvoiceUse", "addressZip"})


async def regimenes_fiscales(params: t.Mapping[str, t.Any], body: t.Any) -> Reply:
    try:
        return Reply(200, cfdi.regimenes(params.get("tipoPersona")))
    except cfdi.UnknownCatalogValue as exc:
        raise Refusal(400, exc.message) from None


async def usos_cfdi(params: t.Mapping[str, t.Any], body: t.Any) -> Reply:
    try:
        return Reply(200, cfdi.usos(params.get("tipoPersona"), params.get("regimen")))
    except cfdi.UnknownCatalogValue as exc:
        raise Refusal(400, exc.message) from None


class TimbrixPlugin(DomainPlugin):
    name = "timbrix"
    options = frozenset({STRICT_RFC})

    def not_found(self, collection: str) -> str:
        return "Customer not found"

    def initial(self, collection: str) -> dict[str, t.Any]:
        return {"phone": None, "address": {"interior": None, "country": "MEX"}}

    def check(
        self,
        collection: str,
        record: dict[str, t.Any],
        sent: t.AbstractSet[str],
        *,
        creating: bool,
        behaviours: Behaviours,
        options: frozenset[str],
    ) -> None:
        if not creating and (not FISCAL_FIELDS & sent or not behaviours.revalidates_update(sent)):
            return
        violation = cfdi.first_violation(
            tax_id=record["taxId"],
            tax_system=record["taxSystem"],
            invoice_use=record["defaultInvoiceUse"],
            zip_code=record["address"]["zip"],
            strict=STRICT_RFC in options,
        )
        if violation is not None and not behaviours.skips_rule(violation.rule):
            raise Refusal(400, violation.message)

    def operations(self) -> t.Mapping[str, OperationHandler]:
        return {"SatController_regimenesFiscales": regimenes_fiscales, "SatController_usosCfdi": usos_cfdi}
