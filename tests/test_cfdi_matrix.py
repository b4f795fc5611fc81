"""Every régimen x uso x persona combination against an independent expectation table.

The tables below were transcribed by hand from /work/shared/reference/cfdi-reference.md
(§1 persona columns, §2 "Compatible RegimenFiscalReceptor" column and the
"Usos allowed for each régimen" list). They deliberately do not read cfdi/data or
the reference YAML: a typo in the data files must make these tests fail.
"""

from __future__ import annotations

import itertools

import pytest

from cfdi import first_violation, regimenes, usos

FISICA, MORAL, AMBAS = "fisica", "moral", "ambas"

# §1 c_RegimenFiscal, columns Física / Moral.
REGIMEN_PERSONA = {
    "601": MORAL,
    "603": MORAL,
    "605": FISICA,
    "606": FISICA,
    "607": FISICA,
    "608": FISICA,
    "610": AMBAS,
    "611": FISICA,
    "612": FISICA,
    "614": FISICA,
    "615": FISICA,
    "616": FISICA,
    "620": MORAL,
    "621": FISICA,
    "622": MORAL,
    "623": MORAL,
    "624": MORAL,
    "625": FISICA,
    "626": AMBAS,
}

# §2 c_UsoCFDI: persona columns F/M and the compatible-régimen column.
_G = "601 603 606 612 620 621 622 623 624 625 626".split()
_G02 = "601 603 606 612 616 620 621 622 623 624 625 626".split()
_D = "605 606 607 608 611 612 614 615 625".split()
_ALL = list(REGIMEN_PERSONA)  # "all 19"
USO_TABLE = {
    "G01": (AMBAS, _G),
    "G02": (AMBAS, _G02),
    "G03": (AMBAS, _G),
    **{f"I0{n}": (AMBAS, _G) for n in range(1, 9)},
    **{f"D{n:02d}": (FISICA, _D) for n in range(1, 11)},
    "S01": (AMBAS, _ALL),
    "CP01": (AMBAS, _ALL),
    "CN01": (FISICA, ["605"]),
}

# §2 "Usos allowed for each régimen (derived from the table above)": a second,
# independent transcription used to check the first one.
_GI = ["G01", "G02", "G03"] + [f"I0{n}" for n in range(1, 9)]
_DD = [f"D{n:02d}" for n in range(1, 11)]
USOS_BY_REGIMEN = {
    **{r: _GI + ["S01", "CP01"] for r in "601 603 620 621 622 623 624 626".split()},
    **{r: _GI + _DD + ["S01", "CP01"] for r in "606 612 625".split()},
    **{r: _DD + ["S01", "CP01"] for r in "607 608 611 614 615".split()},
    "605": _DD + ["S01", "CP01", "CN01"],
    "610": ["S01", "CP01"],
    "616": ["G02", "S01", "CP01"],
}

# Valid, non-generic RFCs of each length, and a ZIP in the catalog.
RFC = {MORAL: "ABC101010111", FISICA: "GODE561231GR8"}
ZIP = "86500"
PERSONA_TEXT = {
    MORAL: "persona moral (RFC de 12 caracteres)",
    FISICA: "persona física (RFC de 13 caracteres)",
}


def _applies(flag: str, persona: str) -> bool:
    return flag == AMBAS or flag == persona


def expected(regimen: str, uso: str, persona: str) -> tuple[str, str] | None:
    """(rule, message) the receptor should get, following reference §3.4's order."""
    if not _applies(REGIMEN_PERSONA[regimen], persona):
        return "regimen_persona", f'El régimen fiscal "{regimen}" no aplica para {PERSONA_TEXT[persona]}'
    uso_persona, compatible = USO_TABLE[uso]
    if not _applies(uso_persona, persona):
        return "uso_persona", f'El uso de CFDI "{uso}" no aplica para {PERSONA_TEXT[persona]}'
    if regimen not in compatible:
        return "uso_regimen", f'El uso de CFDI "{uso}" no es compatible con el régimen fiscal "{regimen}"'
    return None


CASES = list(itertools.product(REGIMEN_PERSONA, USO_TABLE, (MORAL, FISICA)))


def test_transcriptions_are_complete_and_agree() -> None:
    assert len(REGIMEN_PERSONA) == 19
    assert len(USO_TABLE) == 24
    assert len(CASES) == 912
    from_uso_column = {r: [u for u, (_p, regs) in USO_TABLE.items() if r in regs] for r in REGIMEN_PERSONA}
    assert from_uso_column == USOS_BY_REGIMEN


def test_matrix_covers_exactly_the_served_catalogs() -> None:
    # A code added to the data but not to this table would otherwise go untested.
    assert [r["codigo"] for r in regimenes()] == list(REGIMEN_PERSONA)
    assert [u["codigo"] for u in usos()] == list(USO_TABLE)


@pytest.mark.parametrize(("regimen", "uso", "persona"), CASES, ids=["-".join(c) for c in CASES])
def test_matrix(regimen: str, uso: str, persona: str) -> None:
    violation = first_violation(tax_id=RFC[persona], tax_system=regimen, invoice_use=uso, zip_code=ZIP)
    want = expected(regimen, uso, persona)
    if want is None:
        assert violation is None, violation
    else:
        assert violation is not None
        assert (violation.rule, violation.message) == want
        assert violation.field == ("taxSystem" if want[0] == "regimen_persona" else "defaultInvoiceUse")


def test_matrix_outcome_counts() -> None:
    """Totals worked out by hand from the reference tables.

    regimen_persona: 11 física-only régimenes x 24 usos (moral RFC) + 6 moral-only x 24 (física RFC) = 408.
    uso_persona: 8 régimenes valid for moral x 11 física-only usos (D01-D10, CN01) = 88.
    accepted, moral: 6 moral-only x 13 (G, I, S01, CP01) + 610 x 2 + 626 x 13 = 93.
    accepted, física: 605 13, 606 23, 607 12, 608 12, 610 2, 611 12, 612 23, 614 12, 615 12,
                     616 3, 621 13, 625 23, 626 13 = 173.
    uso_regimen: the remaining 912 - 408 - 88 - 93 - 173 = 150.
    """
    outcomes: dict[str | None, int] = {}
    for regimen, uso, persona in CASES:
        v = first_violation(tax_id=RFC[persona], tax_system=regimen, invoice_use=uso, zip_code=ZIP)
        key = None if v is None else v.rule
        outcomes[key] = outcomes.get(key, 0) + 1
    assert outcomes == {"regimen_persona": 408, "uso_persona": 88, None: 93 + 173, "uso_regimen": 150}
