"""Código postal rules: 5 ASCII digits, then membership in SAT's c_CodigoPostal (minus 00000)."""

from __future__ import annotations

import pytest
from conftest import assert_violation

from cfdi import first_violation, postal_code_exists
from cfdi.postal import postal_catalog_info, postal_codes


def check(zip_code: str | None):
    return first_violation(tax_id="ABC101010111", tax_system="601", invoice_use="G03", zip_code=zip_code)


@pytest.mark.parametrize(
    ("zip_code", "why"),
    [
        ("86500", "vendor example: Cárdenas, Tabasco"),
        ("85900", "Huatabampo, Sonora"),
        ("01234", "Facturapi example, CDMX; leading zero kept"),
        ("01000", "first real code in the catalog"),
        ("99999", "last code in the catalog"),
    ],
)
def test_catalog_codes_are_accepted(zip_code: str, why: str) -> None:
    assert check(zip_code) is None, why
    assert postal_code_exists(zip_code)


def test_zip_is_not_cross_checked_against_any_state() -> None:
    # The vendor example pairs 86500 (Tabasco) with Sonora; the rules take no state
    # at all, so the pair cannot be rejected.
    assert check("86500") is None and check("85900") is None


def test_00000_is_rejected_although_sat_ships_it() -> None:
    v = check("00000")
    message = 'El código postal "00000" no existe en el catálogo c_CodigoPostal del SAT'
    assert_violation(v, "zip_not_in_catalog", message, "addressZip")
    assert not postal_code_exists("00000")


@pytest.mark.parametrize("zip_code", ["17000", "18000", "19000", "17999", "19500"])
def test_codes_absent_from_the_catalog_are_rejected(zip_code: str) -> None:
    v = check(zip_code)
    assert v.rule == "zip_not_in_catalog"
    assert v.message == f'El código postal "{zip_code}" no existe en el catálogo c_CodigoPostal del SAT'
    assert not postal_code_exists(zip_code)


def test_no_code_starts_with_17_18_or_19() -> None:
    assert not [c for c in postal_codes() if c[:2] in ("17", "18", "19")]


@pytest.mark.parametrize(
    ("zip_code", "shown"),
    [
        ("8650", "8650"),
        ("865000", "865000"),
        ("8650A", "8650A"),
        ("ABCDE", "ABCDE"),
        ("", ""),
        ("８６５００", "８６５００"),  # full-width digits: str.isdigit() and \d would accept them
        ("١٢٣٤٥", "١٢٣٤٥"),  # Arabic-Indic digits
        ("86500\n", "86500?"),  # "^\d{5}$" would accept this trailing newline
        (" 86500", " 86500"),
        ("86 500", "86 500"),
        ("-8650", "-8650"),
        ("86500.0", "86500.0"),
    ],
)
def test_zip_must_be_exactly_five_ascii_digits(zip_code: str, shown: str) -> None:
    v = check(zip_code)
    assert_violation(v, "zip_format", f'El código postal "{shown}" debe tener 5 dígitos', "addressZip")
    assert not postal_code_exists(zip_code)


def test_none_skips_zip_rules() -> None:
    assert check(None) is None


def test_zip_rules_come_last() -> None:
    v = first_violation(tax_id="ABC101010111", tax_system="601", invoice_use="D01", zip_code="x")
    assert v.rule == "uso_persona"


def test_postal_code_exists_is_exact_membership() -> None:
    assert not postal_code_exists("86500 ")
    assert not postal_code_exists("8650")
    assert not postal_code_exists(86500)  # type: ignore[arg-type]


def test_loaded_set_has_every_sat_code_but_00000() -> None:
    codes = postal_codes()
    assert isinstance(codes, frozenset)
    assert len(codes) == 95_748  # 95,749 in SAT's catalog, minus 00000
    assert "00000" not in codes
    assert postal_codes() is codes  # loaded once


def test_catalog_info_records_provenance() -> None:
    info = postal_catalog_info()
    assert info["source"].startswith("satcfdi==26.10.1")
    assert len(info["wheel_sha256"]) == 64
    assert info["codes_in_file"] == 95_749
    assert info["usable_codes"] == 95_748
    assert info["load_seconds"] < 2
