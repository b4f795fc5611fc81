"""The CFDI 4.0 receptor rules, in order: the single oracle for handlers and tests.

Why one function and a fixed order: the sandbox must answer like the vendor,
which reports one error at a time. The order below (reference §3.4, extended
with the RFC and ZIP checks) reproduces the three messages documented by
Timbrix word for word, so the *first* failing rule is the one reported.

===  ========================  ===================  =====================================
 #   rule                      field                SAT counterpart
===  ========================  ===================  =====================================
 1   rfc_format                taxId                tdCFDI:t_RFC pattern (12 or 13 chars)
 2   rfc_date                  taxId                real YYMMDD date (stdnum, nodecfdi)
 3   rfc_check_digit           taxId                only with strict=True
 4   regimen_not_in_catalog    taxSystem            CFDI40157
 5   regimen_persona           taxSystem            CFDI40158
 6   generic_rfc_regimen       taxSystem            CFDI40159
 7   uso_not_in_catalog        defaultInvoiceUse    CFDI40160
 8   uso_persona               defaultInvoiceUse    CFDI40161 (persona part)
 9   uso_regimen               defaultInvoiceUse    CFDI40161 (régimen part)
10   zip_format                addressZip           cfdv40.xsd [0-9]{5}
11   zip_not_in_catalog        addressZip           c_CodigoPostal (00000 rejected)
===  ========================  ===================  =====================================

Consequences of the order worth knowing:

* A generic RFC with a persona-moral régimen (e.g. XAXX010101000 + 601) fails
  ``regimen_persona`` before ``generic_rfc_regimen``, because generic RFCs are
  13 characters, i.e. persona física.
* ``uso_persona`` can only fire for persona moral: every CFDI 4.0 uso applies to
  persona física.
* The ZIP is never compared with a state: the CFDI 4.0 receptor has no state
  field, and the vendor's own example pairs 86500 (Tabasco) with Sonora.
"""

from __future__ import annotations

import re

from cfdi import rfc as _rfc
from cfdi._text import shown
from cfdi.catalogs import regimen_cfdi40, regimen_not_in_catalog_message, uso_cfdi40
from cfdi.postal import postal_code_exists

RULES: tuple[str, ...] = (
    "rfc_format",
    "rfc_date",
    "rfc_check_digit",
    "regimen_not_in_catalog",
    "regimen_persona",
    "generic_rfc_regimen",
    "uso_not_in_catalog",
    "uso_persona",
    "uso_regimen",
    "zip_format",
    "zip_not_in_catalog",
)
"""Every rule code, in the order the rules are checked."""

FIELD_BY_RULE: dict[str, str] = {
    "rfc_format": "taxId",
    "rfc_date": "taxId",
    "rfc_check_digit": "taxId",
    "regimen_not_in_catalog": "taxSystem",
    "regimen_persona": "taxSystem",
    "generic_rfc_regimen": "taxSystem",
    "uso_not_in_catalog": "defaultInvoiceUse",
    "uso_persona": "defaultInvoiceUse",
    "uso_regimen": "defaultInvoiceUse",
    "zip_format": "addressZip",
    "zip_not_in_catalog": "addressZip",
}
"""The API field each rule blames (names as in the Timbrix customer body)."""

# The wording the vendor documents for the 12-char case; the 13-char wording is
# the analogous (inferred) one.
_PERSONA_TEXT = {
    "moral": "persona moral (RFC de 12 caracteres)",
    "fisica": "persona física (RFC de 13 caracteres)",
}

# cfdv40.xsd: [0-9]{5}. Never \d (it matches "٥" and "５"); fullmatch so that a
# trailing "\n" is not accepted the way "^...$" would accept it.
_ZIP = re.compile(r"[0-9]{5}")


class CfdiViolation(Exception):
    """The first CFDI rule a receptor's data breaks.

    ``rule`` is one of :data:`RULES`, ``message`` the Spanish text for the API
    client (one line, client values quoted as sent, control characters replaced
    by ``?`` and long values cut at 40 characters), ``field`` the API field.
    Returned (not raised) by :func:`first_violation`; it is an exception so
    callers may raise it.
    """

    def __init__(self, rule: str, message: str, field: str | None = None) -> None:
        if rule not in FIELD_BY_RULE:
            raise ValueError(f"unknown rule {rule!r}")
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.field = field if field is not None else FIELD_BY_RULE[rule]

    def __repr__(self) -> str:
        return f"CfdiViolation(rule={self.rule!r}, field={self.field!r}, message={self.message!r})"


def _violation(rule: str, message: str) -> CfdiViolation:
    return CfdiViolation(rule, message, FIELD_BY_RULE[rule])


def first_violation(
    *,
    tax_id: str,
    tax_system: str,
    invoice_use: str,
    zip_code: str | None,
    strict: bool = False,
) -> CfdiViolation | None:
    """Return the first rule broken by this receptor data, or None if all pass.

    ``zip_code=None`` skips the two ZIP rules (e.g. an update that does not touch
    the address); it is required so a caller cannot forget it silently.
    ``strict=True`` adds the RFC check digit (generic RFCs exempt). Values are
    judged exactly as given: nothing is trimmed or upper-cased. A non-string
    value fails the first rule of its field.
    """
    # 1-3: RFC
    if not _rfc.has_valid_format(tax_id):
        return _violation(
            "rfc_format",
            f'El RFC "{shown(tax_id)}" no tiene un formato válido '
            "(12 caracteres para persona moral, 13 para persona física)",
        )
    if not _rfc.has_valid_date(tax_id):
        return _violation(
            "rfc_date",
            f'El RFC "{tax_id}" contiene una fecha inválida ("{_rfc.date_part(tax_id)}")',
        )
    if strict and not _rfc.has_valid_check_digit(tax_id):
        return _violation("rfc_check_digit", f'El dígito verificador del RFC "{tax_id}" no es válido')
    # A well-formed RFC is 12 or 13 characters, so persona is never None here.
    persona = _rfc.persona_for_rfc(tax_id)
    assert persona is not None

    # 4-6: régimen fiscal
    regimen = regimen_cfdi40(tax_system)
    if regimen is None:
        return _violation("regimen_not_in_catalog", regimen_not_in_catalog_message(tax_system))
    if not regimen.applies_to(persona):
        return _violation(
            "regimen_persona",
            f'El régimen fiscal "{regimen.codigo}" no aplica para {_PERSONA_TEXT[persona]}',
        )
    if _rfc.is_generic_rfc(tax_id) and regimen.codigo != "616":
        return _violation(
            "generic_rfc_regimen",
            f'El RFC genérico "{tax_id}" requiere el régimen fiscal "616" (Sin obligaciones fiscales)',
        )

    # 7-9: uso de CFDI
    uso = uso_cfdi40(invoice_use)
    if uso is None:
        return _violation(
            "uso_not_in_catalog",
            f'El uso de CFDI "{shown(invoice_use)}" no existe en el catálogo c_UsoCFDI de CFDI 4.0',
        )
    if not uso.applies_to(persona):
        return _violation(
            "uso_persona",
            f'El uso de CFDI "{uso.codigo}" no aplica para {_PERSONA_TEXT[persona]}',
        )
    if regimen.codigo not in uso.regimenes:
        return _violation(
            "uso_regimen",
            f'El uso de CFDI "{uso.codigo}" no es compatible con el régimen fiscal "{regimen.codigo}"',
        )

    # 10-11: código postal
    if zip_code is not None:
        if not (isinstance(zip_code, str) and _ZIP.fullmatch(zip_code)):
            return _violation("zip_format", f'El código postal "{shown(zip_code)}" debe tener 5 dígitos')
        if not postal_code_exists(zip_code):
            return _violation(
                "zip_not_in_catalog",
                f'El código postal "{zip_code}" no existe en el catálogo c_CodigoPostal del SAT',
            )
    return None
