"""Exact Spanish messages, including the three the vendor documents, and their safety."""

from __future__ import annotations

import pytest

from cfdi import RULES, CfdiViolation, first_violation

MORAL, FISICA, ZIP = "ABC101010111", "GODE561231GR8", "86500"


def violation(tax_id=MORAL, tax_system="601", invoice_use="G03", zip_code=ZIP, strict=False):
    return first_violation(
        tax_id=tax_id, tax_system=tax_system, invoice_use=invoice_use, zip_code=zip_code, strict=strict
    )


# --- the vendor's documented texts, verbatim (docs.timbrix.mx) ------------------------------


def test_vendor_message_regimen_not_for_persona_moral() -> None:
    v = violation(tax_id="DUM901231AB3", tax_system="621")
    assert v.message == 'El régimen fiscal "621" no aplica para persona moral (RFC de 12 caracteres)'


def test_vendor_message_uso_not_for_persona_moral() -> None:
    v = violation(tax_id="DUM901231AB3", tax_system="601", invoice_use="D01")
    assert v.message == 'El uso de CFDI "D01" no aplica para persona moral (RFC de 12 caracteres)'


def test_vendor_message_uso_not_compatible_with_regimen() -> None:
    v = violation(tax_id=FISICA, tax_system="605", invoice_use="G01")
    assert v.message == 'El uso de CFDI "G01" no es compatible con el régimen fiscal "605"'


# --- one case per rule: code, field and exact text -----------------------------------------

RULE_CASES = [
    (
        dict(tax_id="ABC10101011"),
        "rfc_format",
        "taxId",
        'El RFC "ABC10101011" no tiene un formato válido (12 caracteres para persona moral, 13 para persona física)',
    ),
    (
        dict(tax_id="ABC990231AB1"),
        "rfc_date",
        "taxId",
        'El RFC "ABC990231AB1" contiene una fecha inválida ("990231")',
    ),
    (
        dict(tax_id="DUM901231AB3", strict=True),
        "rfc_check_digit",
        "taxId",
        'El dígito verificador del RFC "DUM901231AB3" no es válido',
    ),
    (
        dict(tax_system="609"),
        "regimen_not_in_catalog",
        "taxSystem",
        'El régimen fiscal "609" no existe en el catálogo c_RegimenFiscal de CFDI 4.0',
    ),
    (
        dict(tax_id=FISICA, tax_system="601"),
        "regimen_persona",
        "taxSystem",
        'El régimen fiscal "601" no aplica para persona física (RFC de 13 caracteres)',
    ),
    (
        dict(tax_id="XAXX010101000", tax_system="612"),
        "generic_rfc_regimen",
        "taxSystem",
        'El RFC genérico "XAXX010101000" requiere el régimen fiscal "616" (Sin obligaciones fiscales)',
    ),
    (
        dict(invoice_use="P01"),
        "uso_not_in_catalog",
        "defaultInvoiceUse",
        'El uso de CFDI "P01" no existe en el catálogo c_UsoCFDI de CFDI 4.0',
    ),
    (
        dict(invoice_use="CN01"),
        "uso_persona",
        "defaultInvoiceUse",
        'El uso de CFDI "CN01" no aplica para persona moral (RFC de 12 caracteres)',
    ),
    (
        dict(tax_system="610", invoice_use="G01"),
        "uso_regimen",
        "defaultInvoiceUse",
        'El uso de CFDI "G01" no es compatible con el régimen fiscal "610"',
    ),
    (dict(zip_code="1234"), "zip_format", "addressZip", 'El código postal "1234" debe tener 5 dígitos'),
    (
        dict(zip_code="18000"),
        "zip_not_in_catalog",
        "addressZip",
        'El código postal "18000" no existe en el catálogo c_CodigoPostal del SAT',
    ),
]


@pytest.mark.parametrize(("kwargs", "rule", "field", "message"), RULE_CASES, ids=[c[1] for c in RULE_CASES])
def test_each_rule_message(kwargs: dict, rule: str, field: str, message: str) -> None:
    v = violation(**kwargs)
    assert isinstance(v, CfdiViolation)
    assert isinstance(v, Exception)
    assert (v.rule, v.field, v.message) == (rule, field, message)
    assert str(v) == message


def test_every_rule_has_a_case_and_rules_are_in_documented_order() -> None:
    assert [c[1] for c in RULE_CASES] == list(RULES)
    assert len(RULES) == 11


def test_fisica_rfc_can_be_blamed_for_regimen_persona_with_fisica_wording() -> None:
    v = violation(tax_id="GODE561231GR8", tax_system="624")
    assert v.message == 'El régimen fiscal "624" no aplica para persona física (RFC de 13 caracteres)'


def test_violation_can_be_raised() -> None:
    v = violation(tax_system="999")
    with pytest.raises(CfdiViolation) as info:
        raise v
    assert info.value.rule == "regimen_not_in_catalog"


# --- client values inside messages ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "quoted"),
    [
        (dict(tax_id="ABC\n101010111"), "ABC?101010111"),
        (dict(tax_id="ABC\r\n\t\x00"), "ABC????"),
        (dict(tax_system="60\u20281"), "60?1"),  # Unicode line separator
        (dict(tax_system="6\u202e01"), "6?01"),  # right-to-left override
        (dict(invoice_use="G\x1b[31m01"), "G?[31m01"),  # ANSI escape
        (dict(zip_code="865\n00"), "865?00"),
    ],
)
def test_control_characters_in_values_become_question_marks(kwargs: dict, quoted: str) -> None:
    v = violation(**kwargs)
    assert f'"{quoted}"' in v.message
    assert v.message.isprintable()


@pytest.mark.parametrize("field", ["tax_id", "tax_system", "invoice_use", "zip_code"])
def test_long_values_are_cut_to_40_characters(field: str) -> None:
    v = violation(**{field: "Z" * 10_000})
    assert '"' + "Z" * 39 + '…"' in v.message
    assert len(v.message) < 200


def test_values_are_quoted_as_given_not_escaped() -> None:
    v = violation(tax_system='6"0<1>')
    assert v.message == 'El régimen fiscal "6"0<1>" no existe en el catálogo c_RegimenFiscal de CFDI 4.0'


def test_non_string_values_fail_their_first_rule() -> None:
    assert violation(tax_id=None).rule == "rfc_format"
    assert violation(tax_system=601).rule == "regimen_not_in_catalog"
    assert violation(invoice_use=["G03"]).rule == "uso_not_in_catalog"
    assert violation(zip_code=86500).rule == "zip_format"
