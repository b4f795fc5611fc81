"""RFC rules: format, real date, optional check digit, generic RFCs, persona by length."""

from __future__ import annotations

import pytest
from conftest import assert_violation

from cfdi import first_violation, is_valid_rfc, persona_for_rfc

ZIP = "86500"


def check(tax_id: str, tax_system: str = "601", invoice_use: str = "G03", strict: bool = False):
    return first_violation(tax_id=tax_id, tax_system=tax_system, invoice_use=invoice_use, zip_code=ZIP, strict=strict)


def ok_for(tax_id: str, strict: bool = False):
    """Validate *tax_id* with a régimen/uso pair valid for its persona type."""
    regimen = "601" if len(tax_id) == 12 else "612"
    return check(tax_id, regimen, "G03", strict)


# Reference §3.2, written out independently of stdnum so the strict mode can be
# tested on RFCs with & and Ñ whose digit is not listed anywhere.
_ALPHABET = "0123456789ABCDEFGHIJKLMN&OPQRSTUVWXYZ Ñ"


def reference_check_digit(rfc_without_digit: str) -> str:
    padded = rfc_without_digit.rjust(12)
    total = sum(_ALPHABET.index(c) * (13 - i) for i, c in enumerate(padded))
    r = total % 11
    return "0" if r == 0 else "A" if r == 1 else str(11 - r)


@pytest.mark.parametrize(
    ("rfc", "digit"),
    [  # table in reference §3.2
        ("DUM901231AB3", "6"),
        ("ABC101010111", "1"),
        ("XAXX010101000", "4"),
        ("XEXX010101000", "0"),
        ("EKU9003173C9", "9"),
        ("GODE561231GR8", "8"),
        ("AAA010101AAA", "1"),
    ],
)
def test_reference_check_digit_helper_matches_reference_table(rfc: str, digit: str) -> None:
    assert reference_check_digit(rfc[:-1]) == digit


# --- format ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rfc",
    ["GODE561231GR8", "ABC101010111", "DUM901231AB3", "EKU9003173C9", "XAXX010101000", "XEXX010101000"],
)
def test_documented_rfcs_are_accepted_by_default(rfc: str) -> None:
    if rfc in ("XAXX010101000", "XEXX010101000"):
        assert check(rfc, "616", "S01") is None
    else:
        assert ok_for(rfc) is None
    assert is_valid_rfc(rfc)


@pytest.mark.parametrize(
    ("rfc", "why"),
    [
        ("ABC10101011", "length 11"),
        ("GODE561231GR8X", "length 14"),
        ("", "empty"),
        ("abc101010111", "lowercase moral"),
        ("gode561231gr8", "lowercase física"),
        ("Gode561231GR8", "mixed case"),
        ("GODE561231gr8", "lowercase homoclave"),
        ("ABC101010111\n", "trailing newline"),
        (" ABC101010111", "leading space"),
        ("ABC-101010-111", "separators"),
        ("ABC10101011B", "last char must be a digit or A"),
        ("ABC101310111", "month 13"),
        ("ABC101000111", "month 00"),
        ("ABC101032111", "day 32"),
        ("ABC101100111", "day 00"),
        ("1BC101010111", "digit among the letters"),
        ("AB1C101010111", "digit among física letters"),
        ("ABC1010101_1", "underscore in homoclave"),
        ("ÀBC101010111", "accented letter other than Ñ"),
        ("ABC１01010111", "full-width digit"),
    ],
)
def test_bad_format_is_rejected_not_normalised(rfc: str, why: str) -> None:
    v = ok_for(rfc)
    assert v is not None and v.rule == "rfc_format", why
    assert v.field == "taxId"
    assert not is_valid_rfc(rfc)
    assert not is_valid_rfc(rfc, strict=True)


@pytest.mark.parametrize(
    "rfc", ["A&C101010111", "R&S010203AB1", "MAÑ101010AB1", "ÑAÑ101010AB1", "MUÑO561231GR8", "&&&&561231GR8"]
)
def test_ampersand_and_enye_are_valid_letters(rfc: str) -> None:
    assert ok_for(rfc) is None
    assert persona_for_rfc(rfc) == ("moral" if len(rfc) == 12 else "fisica")


# --- date ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rfc", "yymmdd"),
    [
        ("ABC990231AB1", "990231"),  # passes the XSD (day <= 31) but Feb 31 does not exist
        ("ABC010229AB1", "010229"),  # 2001 is not a leap year
        ("GODE010229GR8", "010229"),
        ("GODE990431GR8", "990431"),  # April has 30 days
        ("ABC230229AB1", "230229"),
    ],
)
def test_impossible_dates_are_rejected(rfc: str, yymmdd: str) -> None:
    v = ok_for(rfc)
    assert_violation(v, "rfc_date", f'El RFC "{rfc}" contiene una fecha inválida ("{yymmdd}")', "taxId")
    assert not is_valid_rfc(rfc)


@pytest.mark.parametrize("rfc", ["ABC000229AB1", "GODE000229GR8", "ABC240229AB1", "GODE991231GR8", "ABC010101AB1"])
def test_real_dates_including_leap_days_pass(rfc: str) -> None:
    # YY is read as 20YY, so 00 and 24 are leap years.
    assert ok_for(rfc) is None
    assert is_valid_rfc(rfc)


def test_name_blacklist_of_stdnum_is_not_reported_as_a_bad_date() -> None:
    # stdnum rejects física RFCs starting with some offensive words; SAT's t_RFC does
    # not, and a valid date must never be reported as "fecha inválida".
    assert ok_for("CACA561231GR8") is None
    assert is_valid_rfc("CACA561231GR8")


# --- check digit (strict only) --------------------------------------------------------------


def test_vendor_example_passes_by_default_and_fails_strict() -> None:
    assert ok_for("DUM901231AB3") is None
    v = ok_for("DUM901231AB3", strict=True)
    assert_violation(v, "rfc_check_digit", 'El dígito verificador del RFC "DUM901231AB3" no es válido', "taxId")
    assert is_valid_rfc("DUM901231AB3")
    assert not is_valid_rfc("DUM901231AB3", strict=True)


@pytest.mark.parametrize("rfc", ["ABC101010111", "EKU9003173C9", "GODE561231GR8"])
def test_rfcs_with_correct_check_digit_pass_strict(rfc: str) -> None:
    assert ok_for(rfc, strict=True) is None
    assert is_valid_rfc(rfc, strict=True)


def test_wrong_check_digit_fails_strict_only() -> None:
    assert ok_for("AAA010101AAA") is None
    assert ok_for("AAA010101AAA", strict=True).rule == "rfc_check_digit"
    assert ok_for("GODE561231GR9", strict=True).rule == "rfc_check_digit"


@pytest.mark.parametrize("stem", ["A&C101010AB", "MAÑ101010AB", "MUÑO561231GR", "ABC10101000"])
def test_strict_uses_the_sat_algorithm_on_special_letters(stem: str) -> None:
    good = stem + reference_check_digit(stem)
    assert ok_for(good, strict=True) is None, good
    wrong = next(d for d in "0123456789A" if d != good[-1])
    assert ok_for(stem + wrong, strict=True).rule == "rfc_check_digit"


def test_strict_checks_only_the_digit_not_stdnums_homoclave_pattern() -> None:
    # "ABC10101000x" has homoclave "00", which stdnum's strict mode refuses; the
    # check digit itself is what strict mode is about.
    rfc = "ABC10101000" + reference_check_digit("ABC10101000")
    assert is_valid_rfc(rfc, strict=True)


@pytest.mark.parametrize("rfc", ["XAXX010101000", "XEXX010101000"])
def test_generic_rfcs_are_exempt_from_the_check_digit(rfc: str) -> None:
    assert check(rfc, "616", "S01", strict=True) is None
    assert is_valid_rfc(rfc, strict=True)


def test_xaxx_really_fails_the_check_digit_it_is_exempt_from() -> None:
    assert reference_check_digit("XAXX01010100") != "0"


# --- generic RFCs -------------------------------------------------------------------------


@pytest.mark.parametrize("rfc", ["XAXX010101000", "XEXX010101000"])
@pytest.mark.parametrize("uso", ["S01", "G02", "CP01"])
def test_generic_rfc_with_616_is_accepted(rfc: str, uso: str) -> None:
    assert check(rfc, "616", uso) is None


@pytest.mark.parametrize("rfc", ["XAXX010101000", "XEXX010101000"])
@pytest.mark.parametrize("regimen", ["612", "605", "626", "610"])
def test_generic_rfc_with_other_fisica_regimen_needs_616(rfc: str, regimen: str) -> None:
    v = check(rfc, regimen, "S01")
    message = f'El RFC genérico "{rfc}" requiere el régimen fiscal "616" (Sin obligaciones fiscales)'
    assert_violation(v, "generic_rfc_regimen", message, "taxSystem")


@pytest.mark.parametrize("rfc", ["XAXX010101000", "XEXX010101000"])
def test_generic_rfc_with_moral_regimen_fails_persona_first(rfc: str) -> None:
    # Generic RFCs are 13 characters (persona física), and regimen_persona is checked
    # before generic_rfc_regimen, so 601 is reported as not applying to física.
    v = check(rfc, "601", "G03")
    assert v.rule == "regimen_persona"
    assert v.message == 'El régimen fiscal "601" no aplica para persona física (RFC de 13 caracteres)'


def test_generic_rfc_616_with_g03_is_rejected_like_the_pac_does() -> None:
    v = check("XAXX010101000", "616", "G03")
    assert v.rule == "uso_regimen"
    assert v.message == 'El uso de CFDI "G03" no es compatible con el régimen fiscal "616"'


def test_lookalike_of_generic_rfc_is_not_generic() -> None:
    # Same shape, different date: an ordinary física RFC, so 612 is fine.
    assert check("XAXX010102000", "612", "G03") is None


# --- persona by length --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rfc", "persona"),
    [
        ("ABC101010111", "moral"),
        ("GODE561231GR8", "fisica"),
        ("XAXX010101000", "fisica"),
        ("XEXX010101000", "fisica"),
        ("MAÑ101010AB1", "moral"),
        ("ABC10101011", None),
        ("GODE561231GR8X", None),
        ("", None),
    ],
)
def test_persona_for_rfc_is_by_length(rfc: str, persona: str | None) -> None:
    assert persona_for_rfc(rfc) == persona


def test_rfc_rules_run_before_everything_else() -> None:
    v = first_violation(tax_id="abc", tax_system="999", invoice_use="P01", zip_code="x")
    assert v.rule == "rfc_format"
