"""CFDI 4.0 receptor rules and SAT catalogs for the timbrix-sandbox.

This package is the single oracle of the rules that decide whether a customer's
fiscal data (RFC, régimen fiscal, uso de CFDI, código postal) would be accepted
for a CFDI 4.0 invoice. The HTTP handlers and the conformance tests both ask it,
so they cannot drift apart. It is pure: no web framework, no I/O beyond reading
its own data files, dependencies limited to PyYAML and python-stdnum.

Main entry points:

* :func:`first_violation` - validate a receptor; the first broken rule wins.
* :func:`regimenes`, :func:`usos` - catalog listings for ``/sat/*`` endpoints.
* :func:`postal_code_exists`, :func:`is_valid_rfc`, :func:`persona_for_rfc`.
"""

from cfdi.catalogs import (
    REGIMENES,
    USOS,
    CatalogDataError,
    Regimen,
    UnknownCatalogValue,
    Uso,
    regimenes,
    usos,
)
from cfdi.postal import postal_catalog_info, postal_code_exists, postal_codes
from cfdi.rfc import GENERIC_RFCS, is_valid_rfc, persona_for_rfc
from cfdi.rules import FIELD_BY_RULE, RULES, CfdiViolation, first_violation

__all__ = [
    "CfdiViolation",
    "first_violation",
    "persona_for_rfc",
    "regimenes",
    "usos",
    "UnknownCatalogValue",
    "postal_code_exists",
    "REGIMENES",
    "USOS",
    "is_valid_rfc",
    # extras
    "CatalogDataError",
    "FIELD_BY_RULE",
    "GENERIC_RFCS",
    "RULES",
    "Regimen",
    "Uso",
    "postal_catalog_info",
    "postal_codes",
]
