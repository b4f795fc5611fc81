"""SAT catalog endpoints, answered from the ``cfdi`` package (the same data the rules use)."""

from __future__ import annotations

import cfdi
from timbrix_sandbox.http.errors import error_response


async def regimenes_fiscales(tipoPersona: str | None = None):
    try:
        return cfdi.regimenes(tipoPersona), 200
    except cfdi.UnknownCatalogValue as exc:
        return error_response(400, exc.message)


async def usos_cfdi(tipoPersona: str | None = None, regimen: str | None = None):
    try:
        return cfdi.usos(tipoPersona, regimen), 200
    except cfdi.UnknownCatalogValue as exc:
        return error_response(400, exc.message)
