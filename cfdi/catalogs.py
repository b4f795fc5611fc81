"""SAT catalogs c_RegimenFiscal and c_UsoCFDI (CFDI 4.0), loaded from data files.

Why data files: the catalog content is SAT's, with provenance recorded in the
YAML headers (``cfdi/data/*.yaml``); code only interprets it. The files are
small, so they are parsed and checked once at import time, and any
inconsistency (duplicate code, unknown régimen in a uso's list, ...) fails the
import instead of producing wrong answers later.

Legacy CFDI 3.3 codes (régimen 609, 628, 629, 630 and uso P01) are present
with ``cfdi40=False``: they are *known*, so :data:`REGIMENES` / :data:`USOS`
can describe them, but they are never listed and the rules reject them as
"not in the catalog", which is what a PAC does for a CFDI 4.0 document.

Listing semantics (``tipo_persona``), used by :func:`regimenes` and :func:`usos`:

* ``"fisica"``: every code that applies to persona física, including the ones
  that apply to both (those rows are marked ``"ambas"``);
* ``"moral"``: likewise for persona moral;
* ``"ambas"``: only the codes that apply to both;
* ``None``: every CFDI 4.0 code.

Rows come in catalog order: régimen codes numerically, usos in SAT's order
(G01-G03, I01-I08, D01-D10, S01, CP01, CN01).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any, Literal

import yaml

from cfdi._text import shown

TipoPersona = Literal["fisica", "moral", "ambas"]
TIPOS_PERSONA: tuple[str, ...] = ("fisica", "moral", "ambas")


class CatalogDataError(RuntimeError):
    """A catalog data file is malformed or inconsistent (a packaging bug)."""


class UnknownCatalogValue(ValueError):
    """A listing filter names a value that does not exist.

    ``message`` is the Spanish text for the API client; ``parameter`` is the
    filter at fault (``"tipoPersona"`` or ``"regimen"``).
    """

    def __init__(self, message: str, parameter: str) -> None:
        super().__init__(message)
        self.message = message
        self.parameter = parameter


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """Fields shared by c_RegimenFiscal and c_UsoCFDI rows.

    ``cfdi40`` is False for CFDI 3.3-only codes (known, but rejected).
    """

    codigo: str
    descripcion: str
    fisica: bool
    moral: bool
    cfdi40: bool

    @property
    def tipo_persona(self) -> TipoPersona:
        """``"ambas"`` when the code applies to both persona types."""
        if self.fisica and self.moral:
            return "ambas"
        return "fisica" if self.fisica else "moral"

    def applies_to(self, persona: str) -> bool:
        """True if the code applies to *persona* (``"fisica"`` or ``"moral"``)."""
        if persona == "fisica":
            return self.fisica
        if persona == "moral":
            return self.moral
        return False


@dataclass(frozen=True, slots=True)
class Regimen(CatalogEntry):
    """One c_RegimenFiscal row."""


@dataclass(frozen=True, slots=True)
class Uso(CatalogEntry):
    """One c_UsoCFDI row plus its compatible ``RegimenFiscalReceptor`` codes."""

    regimenes: frozenset[str] = frozenset()


def _read_yaml(name: str) -> dict[str, Any]:
    text = resources.files("cfdi").joinpath("data", name).read_text(encoding="utf-8")
    # libyaml's safe loader when present (5x faster import); same semantics.
    data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    if not isinstance(data, dict):
        raise CatalogDataError(f"{name}: top level must be a mapping")
    return data


def _base_fields(name: str, row: Any) -> dict[str, Any]:
    """Check the fields every catalog row has; return them typed."""
    if not isinstance(row, dict):
        raise CatalogDataError(f"{name}: every row must be a mapping, got {row!r}")
    fields: dict[str, Any] = {}
    for key, typ in (
        ("codigo", str),
        ("descripcion", str),
        ("fisica", bool),
        ("moral", bool),
        ("cfdi40", bool),
    ):
        value = row.get(key)
        if not isinstance(value, typ):
            raise CatalogDataError(f"{name}: {row.get('codigo')!r}: {key} must be {typ.__name__}")
        fields[key] = value
    if not (fields["fisica"] or fields["moral"]):
        raise CatalogDataError(f"{name}: {fields['codigo']}: applies to no persona type")
    return fields


def _load_regimenes() -> Mapping[str, Regimen]:
    name = "regimenes_fiscales.yaml"
    rows = _read_yaml(name).get("regimenes")
    if not isinstance(rows, list):
        raise CatalogDataError(f"{name}: 'regimenes' must be a list")
    out: dict[str, Regimen] = {}
    for row in rows:
        entry = Regimen(**_base_fields(name, row))
        if entry.codigo in out:
            raise CatalogDataError(f"{name}: duplicate code {entry.codigo}")
        out[entry.codigo] = entry
    return MappingProxyType(out)


def _load_usos(regimenes_by_code: Mapping[str, Regimen]) -> Mapping[str, Uso]:
    name = "usos_cfdi.yaml"
    rows = _read_yaml(name).get("usos")
    if not isinstance(rows, list):
        raise CatalogDataError(f"{name}: 'usos' must be a list")
    out: dict[str, Uso] = {}
    for row in rows:
        fields = _base_fields(name, row)
        codes = row.get("regimenes")
        if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
            raise CatalogDataError(f"{name}: {fields['codigo']}: regimenes must be a list of strings")
        for code in codes:
            regimen = regimenes_by_code.get(code)
            # A uso may only point at CFDI 4.0 régimen codes: that is what makes
            # the legacy codes unusable even if they slipped past the catalog rule.
            if regimen is None or not regimen.cfdi40:
                raise CatalogDataError(f"{name}: {fields['codigo']}: unknown régimen {code}")
        if len(set(codes)) != len(codes):
            raise CatalogDataError(f"{name}: {fields['codigo']}: duplicate régimen in list")
        entry = Uso(**fields, regimenes=frozenset(codes))
        if entry.codigo in out:
            raise CatalogDataError(f"{name}: duplicate code {entry.codigo}")
        out[entry.codigo] = entry
    return MappingProxyType(out)


REGIMENES: Mapping[str, Regimen] = _load_regimenes()
"""Every known régimen code (CFDI 4.0 and legacy), read-only, in catalog order."""

USOS: Mapping[str, Uso] = _load_usos(REGIMENES)
"""Every known uso code (CFDI 4.0 and legacy P01), read-only, in catalog order."""


def regimen_cfdi40(code: object) -> Regimen | None:
    """The CFDI 4.0 régimen for *code*, or None if unknown or legacy."""
    entry = REGIMENES.get(code) if isinstance(code, str) else None
    return entry if entry is not None and entry.cfdi40 else None


def uso_cfdi40(code: object) -> Uso | None:
    """The CFDI 4.0 uso for *code*, or None if unknown or legacy."""
    entry = USOS.get(code) if isinstance(code, str) else None
    return entry if entry is not None and entry.cfdi40 else None


def regimen_not_in_catalog_message(code: object) -> str:
    """Spanish text shared by the listing filter and the validation rule."""
    return f'El régimen fiscal "{shown(code)}" no existe en el catálogo c_RegimenFiscal de CFDI 4.0'


def _check_tipo_persona(tipo_persona: object) -> None:
    if tipo_persona is not None and tipo_persona not in TIPOS_PERSONA:
        raise UnknownCatalogValue(
            f'El tipoPersona "{shown(tipo_persona)}" no es válido: use fisica, moral o ambas',
            "tipoPersona",
        )


def _matches(entry: CatalogEntry, tipo_persona: str | None) -> bool:
    if tipo_persona is None:
        return True
    if tipo_persona == "ambas":
        return entry.fisica and entry.moral
    return entry.applies_to(tipo_persona)


def _row(entry: CatalogEntry) -> dict[str, str]:
    return {"codigo": entry.codigo, "descripcion": entry.descripcion, "tipoPersona": entry.tipo_persona}


def regimenes(tipo_persona: str | None = None) -> list[dict[str, str]]:
    """List CFDI 4.0 régimen codes as ``{"codigo", "descripcion", "tipoPersona"}``.

    See the module docstring for the ``tipo_persona`` semantics. Legacy codes are
    never listed. Raises :class:`UnknownCatalogValue` for any other
    ``tipo_persona`` (the check is exact: ``"Moral"`` or ``"física"`` are refused,
    matching the contract's enum). Returns fresh dicts, safe to mutate.
    """
    _check_tipo_persona(tipo_persona)
    return [_row(e) for e in REGIMENES.values() if e.cfdi40 and _matches(e, tipo_persona)]


def usos(tipo_persona: str | None = None, regimen: str | None = None) -> list[dict[str, str]]:
    """List CFDI 4.0 usos as ``{"codigo", "descripcion", "tipoPersona"}``.

    ``tipo_persona`` filters as in the module docstring. ``regimen`` keeps only
    usos whose compatible-régimen list contains it. The two filters are
    independent: whether the régimen itself applies to ``tipo_persona`` is not
    checked here (the vendor's example ``tipoPersona=ambas&regimen=601`` returns
    G01 and G03 although 601 is moral only); :func:`cfdi.first_violation` is
    where a combination is judged. Raises :class:`UnknownCatalogValue` for an
    unknown ``tipo_persona`` or an unknown/legacy ``regimen``.
    """
    _check_tipo_persona(tipo_persona)
    if regimen is not None and regimen_cfdi40(regimen) is None:
        raise UnknownCatalogValue(regimen_not_in_catalog_message(regimen), "regimen")
    return [
        _row(e)
        for e in USOS.values()
        if e.cfdi40 and _matches(e, tipo_persona) and (regimen is None or regimen in e.regimenes)
    ]
