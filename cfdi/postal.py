"""SAT c_CodigoPostal membership, from the committed ``cfdi/data/codigos_postales.txt``.

Why a text file: the catalog (95,749 codes) comes from satcfdi's wheel via
``scripts/generate_postal_codes.py``; committing the extracted list means the
sandbox needs neither network nor satcfdi at run time, and the file header
records package, version and sha256 for provenance.

Why lazy: most processes (the conformance tests of other rules, CLI tools) never
look at a ZIP code, so the set is built on first use only, once per process,
under a lock. It is a frozenset, so lookups are O(1) and thread-safe.

``00000`` is in the file because SAT ships it (one odd row assigned to
Tlaxcala, listed 29 times in catCFDI.xsd), but it is not a real postal code:
phpcfdi's importer drops it on purpose, and so does this loader. Keeping it in
the data and rejecting it here keeps the data file a faithful copy of SAT's.

Format checking (5 ASCII digits) is the caller's job (rule ``zip_format``);
:func:`postal_code_exists` simply answers False for anything not in the set.
"""

from __future__ import annotations

import threading
import time
from importlib import resources
from typing import Any

from cfdi.catalogs import CatalogDataError

DATA_FILE = "codigos_postales.txt"
REJECTED_CODES: frozenset[str] = frozenset({"00000"})

_lock = threading.Lock()
_codes: frozenset[str] | None = None
_info: dict[str, Any] = {}


def _is_zip(line: str) -> bool:
    # isdigit() alone accepts "٥" or "５"; isascii() restricts it to 0-9.
    return len(line) == 5 and line.isascii() and line.isdigit()


def _load() -> frozenset[str]:
    started = time.perf_counter()
    text = resources.files("cfdi").joinpath("data", DATA_FILE).read_text(encoding="ascii")
    header: dict[str, str] = {}
    codes: list[str] = []
    for line in text.splitlines():
        if line.startswith("#"):
            key, sep, value = line[1:].partition(":")
            if sep and key.strip() not in header:
                header[key.strip()] = value.strip()
        elif _is_zip(line):
            codes.append(line)
        else:
            raise CatalogDataError(f"{DATA_FILE}: not a 5-digit code: {line[:20]!r}")
    unique = frozenset(codes)
    declared = header.get("count")
    if declared is None or not declared.isdigit() or int(declared) != len(codes):
        raise CatalogDataError(f"{DATA_FILE}: header count {declared!r} != {len(codes)} codes")
    if len(unique) != len(codes):
        raise CatalogDataError(f"{DATA_FILE}: duplicate codes")
    usable = unique - REJECTED_CODES
    _info.update(
        source=header.get("source"),
        wheel_sha256=header.get("wheel-sha256"),
        generated=header.get("generated"),
        codes_in_file=len(codes),
        usable_codes=len(usable),
        load_seconds=time.perf_counter() - started,
    )
    return usable


def postal_codes() -> frozenset[str]:
    """The usable c_CodigoPostal codes (file contents minus ``00000``), loaded once."""
    global _codes
    codes = _codes
    if codes is None:
        with _lock:
            if _codes is None:
                _codes = _load()
            codes = _codes
    return codes


def postal_code_exists(zip_code: str) -> bool:
    """True if *zip_code* is a usable SAT postal code. False for ``"00000"``.

    Exact string membership: no stripping, no padding, so ``"8650"`` or
    ``" 86500"`` are False. A non-string argument is False too.
    """
    return isinstance(zip_code, str) and zip_code in postal_codes()


def postal_catalog_info() -> dict[str, Any]:
    """Provenance and load statistics of the postal-code set (loads it if needed).

    Keys: ``source``, ``wheel_sha256``, ``generated``, ``codes_in_file``,
    ``usable_codes``, ``load_seconds``.
    """
    postal_codes()
    return dict(_info)
