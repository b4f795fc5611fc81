"""Catalog listings (/sat/regimenes-fiscales, /sat/usos-cfdi) and the catalog data itself."""

from __future__ import annotations

import dataclasses

import pytest

from cfdi import REGIMENES, USOS, UnknownCatalogValue, first_violation, regimenes, usos

LEGACY_REGIMENES = ["609", "628", "629", "630"]


def codes(rows: list[dict]) -> list[str]:
    return [r["codigo"] for r in rows]


# --- regimenes() -----------------------------------------------------------------------------


def test_all_regimenes_are_the_19_cfdi40_codes_in_order() -> None:
    assert codes(regimenes()) == [
        "601", "603", "605", "606", "607", "608", "610", "611", "612", "614", "615", "616", "620", "621", "622",
        "623", "624", "625", "626",
    ]


def test_moral_includes_codes_valid_for_both_marked_ambas() -> None:
    rows = {r["codigo"]: r for r in regimenes("moral")}
    assert codes(regimenes("moral")) == ["601", "603", "610", "620", "622", "623", "624", "626"]
    assert rows["601"] == {
        "codigo": "601",
        "descripcion": "General de Ley Personas Morales",
        "tipoPersona": "moral",
    }
    assert rows["603"]["tipoPersona"] == "moral"
    assert rows["610"]["tipoPersona"] == "ambas"
    assert rows["626"]["tipoPersona"] == "ambas"
    assert "605" not in rows


def test_fisica_includes_codes_valid_for_both() -> None:
    assert codes(regimenes("fisica")) == [
        "605", "606", "607", "608", "610", "611", "612", "614", "615", "616", "621", "625", "626",
    ]


def test_ambas_lists_only_codes_valid_for_both() -> None:
    assert codes(regimenes("ambas")) == ["610", "626"]


def test_descriptions_are_sat_texts_with_accents() -> None:
    rows = {r["codigo"]: r["descripcion"] for r in regimenes()}
    assert rows["612"] == "Personas Físicas con Actividades Empresariales y Profesionales"
    assert rows["610"] == "Residentes en el Extranjero sin Establecimiento Permanente en México"
    assert rows["625"] == ("Régimen de las Actividades Empresariales con ingresos a través de Plataformas Tecnológicas")


@pytest.mark.parametrize("tipo", [None, "fisica", "moral", "ambas"])
def test_legacy_regimenes_are_never_listed(tipo: str | None) -> None:
    assert not set(codes(regimenes(tipo))) & set(LEGACY_REGIMENES)


@pytest.mark.parametrize("tipo", ["", "Moral", "MORAL", "física", "persona moral", "todas", "x\ny"])
def test_unknown_tipo_persona_raises(tipo: str) -> None:
    with pytest.raises(UnknownCatalogValue) as info:
        regimenes(tipo)
    shown = tipo.replace("\n", "?")
    assert info.value.message == f'El tipoPersona "{shown}" no es válido: use fisica, moral o ambas'
    with pytest.raises(UnknownCatalogValue):
        usos(tipo)


def test_listing_returns_fresh_rows() -> None:
    regimenes()[0]["descripcion"] = "changed"
    usos()[0]["codigo"] = "changed"
    assert regimenes()[0]["descripcion"] == "General de Ley Personas Morales"
    assert usos()[0]["codigo"] == "G01"


# --- usos() --------------------------------------------------------------------------------------


def test_all_usos_are_the_24_cfdi40_codes_in_catalog_order() -> None:
    assert codes(usos()) == (
        ["G01", "G02", "G03"]
        + [f"I0{n}" for n in range(1, 9)]
        + [f"D{n:02d}" for n in range(1, 11)]
        + ["S01", "CP01", "CN01"]
    )


def test_vendor_example_ambas_and_601() -> None:
    rows = {r["codigo"]: r for r in usos(tipo_persona="ambas", regimen="601")}
    assert rows["G01"] == {
        "codigo": "G01",
        "descripcion": "Adquisición de mercancías.",
        "tipoPersona": "ambas",
    }
    assert rows["G03"] == {"codigo": "G03", "descripcion": "Gastos en general.", "tipoPersona": "ambas"}
    assert not any(c.startswith("D") for c in rows)


def test_usos_for_616_are_g02_s01_cp01() -> None:
    assert codes(usos(regimen="616")) == ["G02", "S01", "CP01"]


def test_usos_for_605_include_nomina() -> None:
    assert codes(usos(regimen="605")) == [f"D{n:02d}" for n in range(1, 11)] + ["S01", "CP01", "CN01"]


def test_moral_usos_exclude_deductions_and_nomina() -> None:
    listed = codes(usos(tipo_persona="moral"))
    assert listed == ["G01", "G02", "G03"] + [f"I0{n}" for n in range(1, 9)] + ["S01", "CP01"]
    assert {r["tipoPersona"] for r in usos(tipo_persona="moral")} == {"ambas"}
    assert {r["tipoPersona"] for r in usos(tipo_persona="fisica", regimen="605")} == {"fisica", "ambas"}


def test_p01_is_never_listed() -> None:
    for tipo in (None, "fisica", "moral", "ambas"):
        assert "P01" not in codes(usos(tipo))


@pytest.mark.parametrize("regimen", ["999", "", "60", "601 ", "6O1", *LEGACY_REGIMENES])
def test_unknown_or_legacy_regimen_filter_raises(regimen: str) -> None:
    with pytest.raises(UnknownCatalogValue) as info:
        usos(regimen=regimen)
    assert info.value.message == (f'El régimen fiscal "{regimen}" no existe en el catálogo c_RegimenFiscal de CFDI 4.0')
    assert info.value.parameter == "regimen"


# --- legacy codes are known but rejected ----------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "rfc"),
    [("609", "ABC101010111"), ("628", "ABC101010111"), ("629", "GODE561231GR8"), ("630", "GODE561231GR8")],
)
def test_legacy_regimen_rejected_as_not_in_catalog(code: str, rfc: str) -> None:
    # Each with an RFC of the persona type the 3.3 catalog gave it, so only the
    # catalog rule can be the reason.
    assert REGIMENES[code].cfdi40 is False
    v = first_violation(tax_id=rfc, tax_system=code, invoice_use="S01", zip_code="86500")
    assert v.rule == "regimen_not_in_catalog"
    assert v.message == f'El régimen fiscal "{code}" no existe en el catálogo c_RegimenFiscal de CFDI 4.0'


def test_p01_rejected_as_not_in_catalog() -> None:
    assert USOS["P01"].cfdi40 is False
    assert USOS["P01"].descripcion == "Por definir"
    v = first_violation(tax_id="ABC101010111", tax_system="601", invoice_use="P01", zip_code="86500")
    assert v.rule == "uso_not_in_catalog"
    assert v.message == 'El uso de CFDI "P01" no existe en el catálogo c_UsoCFDI de CFDI 4.0'


def test_g02_with_616_is_accepted_for_fisica() -> None:
    assert "616" in USOS["G02"].regimenes
    v = first_violation(tax_id="GODE561231GR8", tax_system="616", invoice_use="G02", zip_code="86500")
    assert v is None


@pytest.mark.parametrize("code", ["g01", "G1", "G001", " G01", "CP1"])
def test_uso_codes_are_exact(code: str) -> None:
    v = first_violation(tax_id="ABC101010111", tax_system="601", invoice_use=code, zip_code="86500")
    assert v.rule == "uso_not_in_catalog"


# --- the read-only mappings -------------------------------------------------------------------------


def test_mappings_hold_cfdi40_and_legacy_codes() -> None:
    assert len(REGIMENES) == 23 and sum(r.cfdi40 for r in REGIMENES.values()) == 19
    assert len(USOS) == 25 and sum(u.cfdi40 for u in USOS.values()) == 24
    assert [c for c, r in REGIMENES.items() if not r.cfdi40] == LEGACY_REGIMENES


def test_mappings_and_entries_are_read_only() -> None:
    with pytest.raises(TypeError):
        REGIMENES["601"] = REGIMENES["605"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        USOS["G01"].moral = False  # type: ignore[misc]
    assert isinstance(USOS["G01"].regimenes, frozenset)


def test_entry_flags() -> None:
    r610 = REGIMENES["610"]
    assert (r610.codigo, r610.fisica, r610.moral, r610.tipo_persona) == ("610", True, True, "ambas")
    assert REGIMENES["605"].tipo_persona == "fisica"
    assert REGIMENES["601"].tipo_persona == "moral"
    assert USOS["CN01"].regimenes == frozenset({"605"})
    assert USOS["D01"].moral is False
