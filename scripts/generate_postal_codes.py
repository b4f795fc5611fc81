#!/usr/bin/env python3
"""Generate ``cfdi/data/codigos_postales.txt`` from SAT's c_CodigoPostal catalog.

Why this script exists: the sandbox must validate ZIP codes offline, without
satcfdi installed, so the catalog is committed as a plain text file. This
script is the only way that file is produced, and it records where the data
came from so a reviewer can reproduce it byte for byte (except the date).

What it does:

1. ``pip download --no-deps --only-binary=:all: satcfdi==VERSION`` into a
   temporary directory. The wheel is never installed or imported, and
   ``--only-binary`` guarantees pip runs no build code from an sdist.
2. Checks the wheel's sha256 against the pinned value (for the default version).
3. Reads c_CodigoPostal twice, from two independent artefacts in the wheel:
   * ``satcfdi/catalogs/catalogs.db`` (sqlite; the table whose name ends in
     ``_c_CodigoPostal``; keys are pickled ``str``), and
   * SAT's own ``catCFDI.xsd`` (the ``c_CodigoPostal`` enumeration).
   The two sets must be identical and every code must be 5 ASCII digits;
   otherwise the script fails loudly and writes nothing.
4. Writes the sorted codes, one per line, after a short ``#`` header with the
   package, version, wheel sha256, file names, date and count. ``00000`` is
   kept exactly as SAT ships it; the rule rejecting it lives in ``cfdi.postal``.

The pickled keys are decoded with :mod:`pickletools` (a disassembler), never
with :func:`pickle.loads`: unpickling data from a downloaded file could run
arbitrary code.

Usage::

    .venv/bin/python scripts/generate_postal_codes.py            # default pin
    .venv/bin/python scripts/generate_postal_codes.py --wheel path/to/satcfdi.whl

If the pinned version ever disappears from PyPI, pass ``--version`` with the
nearest available one (and ``--expected-sha256`` / ``--expected-count`` if you
know them); the header records whatever was actually used.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import hashlib
import io
import os
import pickletools
import re
import sqlite3
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

PACKAGE = "satcfdi"
DEFAULT_VERSION = "26.10.1"
# sha256 of satcfdi-26.10.1-py3-none-any.whl as served by PyPI (checked 2026-11-21).
PINNED_SHA256 = {
    "26.10.1": "119a59502dde9e3126750417ddf412c82ae6143e8509b4b148da513d98c7d112",
}
DEFAULT_EXPECTED_COUNT = 95_749

DB_MEMBER = "satcfdi/catalogs/catalogs.db"
XSD_MEMBER = "satcfdi/transform/schemas/www.sat.gob.mx/sitio_internet/cfd/catalogos/catCFDI.xsd"
XSD_NS = "{http://www.w3.org/2001/XMLSchema}"
XSD_TYPE = "c_CodigoPostal"

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "cfdi" / "data" / "codigos_postales.txt"

# [0-9], not \d: \d also matches non-ASCII digits such as "٥".
ZIP_RE = re.compile(r"[0-9]{5}")

# Opcodes a pickled plain ``str`` may use. Anything else (GLOBAL, REDUCE, ...)
# means the value is not a plain string and is refused.
_SAFE_STR_OPCODES = frozenset(
    {
        "PROTO",
        "FRAME",
        "SHORT_BINUNICODE",
        "BINUNICODE",
        "BINUNICODE8",
        "UNICODE",
        "MEMOIZE",
        "BINPUT",
        "PUT",
        "STOP",
    }
)


class GenerationError(RuntimeError):
    """Raised when the source data is missing, inconsistent or unexpected."""


def decode_pickled_str(blob: bytes) -> str:
    """Return the ``str`` stored in a pickle without executing the pickle.

    satcfdi stores catalog keys as pickles. :func:`pickle.loads` would execute
    whatever the pickle says, so instead the opcodes are disassembled with
    :func:`pickletools.genops` and only a lone string literal is accepted.
    """
    strings: list[str] = []
    try:
        for opcode, arg, _pos in pickletools.genops(blob):
            if opcode.name not in _SAFE_STR_OPCODES:
                raise GenerationError(f"unexpected pickle opcode {opcode.name} in {blob!r}")
            if isinstance(arg, str):
                strings.append(arg)
    except (ValueError, EOFError) as exc:  # malformed pickle
        raise GenerationError(f"cannot disassemble pickle {blob!r}: {exc}") from exc
    if len(strings) != 1:
        raise GenerationError(f"expected exactly one string in pickle {blob!r}, got {strings!r}")
    return strings[0]


def download_wheel(version: str, dest: Path) -> Path:
    """Download the satcfdi wheel (no dependencies, wheels only) into *dest*."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(dest),
        f"{PACKAGE}=={version}",
    ]
    print("running:", " ".join(cmd), file=sys.stderr)
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise GenerationError(
            f"pip download of {PACKAGE}=={version} failed (exit {result.returncode}).\n"
            f"{result.stderr.strip()}\n"
            "If this version is no longer available, rerun with --version set to the "
            "nearest available release."
        )
    wheels = sorted(dest.glob(f"{PACKAGE}-{version}-*.whl"))
    if len(wheels) != 1:
        raise GenerationError(f"expected one wheel in {dest}, found {wheels}")
    return wheels[0]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def codes_from_db(db_bytes: bytes, workdir: Path) -> tuple[str, set[str]]:
    """Return (table name, set of codes) from satcfdi's ``catalogs.db``.

    The table is found by name (``*_c_CodigoPostal``) rather than hard-coded,
    because satcfdi prefixes table names with a schema hash that can change.
    """
    db_path = workdir / "catalogs.db"
    db_path.write_bytes(db_bytes)
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        tables = [
            row[0]
            for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if row[0].endswith("_" + XSD_TYPE)
        ]
        if len(tables) != 1:
            raise GenerationError(f"expected one *_{XSD_TYPE} table in catalogs.db, found {tables}")
        table = tables[0]
        codes: set[str] = set()
        # The table name comes from the database itself, not from user input;
        # quote it anyway.
        quoted = '"' + table.replace('"', '""') + '"'
        for (key,) in conn.execute(f"SELECT key FROM {quoted}"):
            if not isinstance(key, bytes):
                raise GenerationError(f"unexpected key type {type(key).__name__} in {table}")
            code = decode_pickled_str(key)
            if code in codes:
                raise GenerationError(f"duplicate code {code!r} in {table}")
            codes.add(code)
    finally:
        conn.close()
    return table, codes


def codes_from_xsd(xsd_bytes: bytes) -> list[str]:
    """Return the ``xs:enumeration`` values of ``simpleType c_CodigoPostal``, in order.

    Duplicates are returned as they appear: SAT's catCFDI.xsd repeats some values
    (26.10.1 lists ``00000`` 29 times), which is harmless for XSD validation, so
    the caller reports them instead of failing.
    """
    found_types = 0
    codes: list[str] = []
    in_type = False
    for event, elem in ET.iterparse(io.BytesIO(xsd_bytes), events=("start", "end")):
        if elem.tag == XSD_NS + "simpleType" and elem.get("name") == XSD_TYPE:
            if event == "start":
                found_types += 1
                in_type = True
            else:
                in_type = False
        elif in_type and event == "start" and elem.tag == XSD_NS + "enumeration":
            value = elem.get("value")
            if value is None:
                raise GenerationError("xs:enumeration without a value in c_CodigoPostal")
            codes.append(value)
        if event == "end" and not in_type:
            elem.clear()  # keep memory flat on the 5 MB file
    if found_types != 1:
        raise GenerationError(f"expected one simpleType {XSD_TYPE} in catCFDI.xsd, found {found_types}")
    return codes


def compare(db_codes: set[str], xsd_codes: set[str]) -> None:
    """Fail loudly unless both sources list exactly the same codes."""
    if db_codes == xsd_codes:
        return
    only_db = sorted(db_codes - xsd_codes)
    only_xsd = sorted(xsd_codes - db_codes)
    raise GenerationError(
        "catalogs.db and catCFDI.xsd disagree on c_CodigoPostal: "
        f"{len(only_db)} only in catalogs.db (e.g. {only_db[:10]}), "
        f"{len(only_xsd)} only in catCFDI.xsd (e.g. {only_xsd[:10]})"
    )


def render(
    codes: set[str],
    *,
    version: str,
    wheel_name: str,
    wheel_sha: str,
    db_sha: str,
    xsd_sha: str,
    table: str,
    xsd_duplicates: list[str],
    today: datetime.date,
) -> str:
    """Render the data file: ``#`` header, then one code per line, sorted."""
    header = [
        "# c_CodigoPostal: SAT CFDI 4.0 postal-code catalog, one 5-digit code per line, sorted.",
        "# Generated by scripts/generate_postal_codes.py; do not edit by hand.",
        f"# source: {PACKAGE}=={version} (PyPI wheel {wheel_name})",
        f"# wheel-sha256: {wheel_sha}",
        f"# file: {DB_MEMBER} (table {table}) sha256 {db_sha}",
        f"# file: {XSD_MEMBER} (simpleType {XSD_TYPE}) sha256 {xsd_sha}",
        "# check: both files list exactly the same codes"
        + (f" (catCFDI.xsd repeats: {', '.join(xsd_duplicates)})" if xsd_duplicates else ""),
        f"# generated: {today.isoformat()}",
        "# note: 00000 is kept as SAT ships it; cfdi.postal rejects it in code.",
        f"# count: {len(codes)}",
    ]
    return "\n".join(header + sorted(codes)) + "\n"


def write_atomically(path: Path, text: str) -> None:
    """Write via a temp file + rename so a failed run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="ascii", newline="\n") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the file is committed data
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def generate(
    *, version: str, wheel: Path | None, expected_sha256: str | None, expected_count: int | None, output: Path
) -> int:
    with tempfile.TemporaryDirectory(prefix="postal-codes-") as tmp:
        workdir = Path(tmp)
        wheel_path = wheel if wheel is not None else download_wheel(version, workdir)
        wheel_bytes = wheel_path.read_bytes()
        wheel_sha = sha256_bytes(wheel_bytes)
        if expected_sha256 and wheel_sha != expected_sha256:
            raise GenerationError(f"sha256 mismatch for {wheel_path.name}: got {wheel_sha}, expected {expected_sha256}")
        with zipfile.ZipFile(io.BytesIO(wheel_bytes)) as zf:
            names = set(zf.namelist())
            for member in (DB_MEMBER, XSD_MEMBER):
                if member not in names:
                    raise GenerationError(f"{member} not found in {wheel_path.name}")
            db_bytes = zf.read(DB_MEMBER)
            xsd_bytes = zf.read(XSD_MEMBER)

        table, db_codes = codes_from_db(db_bytes, workdir)
        xsd_list = codes_from_xsd(xsd_bytes)
        xsd_codes = set(xsd_list)
        compare(db_codes, xsd_codes)
        duplicates = [f"{code} x{n}" for code, n in sorted(collections.Counter(xsd_list).items()) if n > 1]

        bad = sorted(c for c in db_codes if not ZIP_RE.fullmatch(c))
        if bad:
            raise GenerationError(f"{len(bad)} codes are not 5 ASCII digits, e.g. {bad[:10]}")
        if expected_count is not None and len(db_codes) != expected_count:
            raise GenerationError(
                f"expected {expected_count} codes, found {len(db_codes)} "
                "(pass --expected-count to accept a new catalog size)"
            )

        text = render(
            db_codes,
            version=version,
            wheel_name=wheel_path.name,
            wheel_sha=wheel_sha,
            db_sha=sha256_bytes(db_bytes),
            xsd_sha=sha256_bytes(xsd_bytes),
            table=table,
            xsd_duplicates=duplicates,
            today=datetime.datetime.now(datetime.UTC).date(),
        )
    write_atomically(output, text)
    print(f"wrote {len(db_codes)} codes to {output} (wheel sha256 {wheel_sha})", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default=DEFAULT_VERSION, help="satcfdi version (default %(default)s)")
    parser.add_argument("--wheel", type=Path, help="use this already-downloaded wheel instead of pip download")
    parser.add_argument(
        "--expected-sha256",
        default=None,
        help="required wheel sha256 (default: the pinned value for the default version)",
    )
    parser.add_argument(
        "--expected-count",
        type=int,
        default=None,
        help=f"required number of codes (default {DEFAULT_EXPECTED_COUNT} for the default version)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="output file")
    args = parser.parse_args(argv)

    expected_sha = args.expected_sha256 or PINNED_SHA256.get(args.version)
    expected_count = args.expected_count
    if expected_count is None and args.version == DEFAULT_VERSION:
        expected_count = DEFAULT_EXPECTED_COUNT
    try:
        return generate(
            version=args.version,
            wheel=args.wheel,
            expected_sha256=expected_sha,
            expected_count=expected_count,
            output=args.output,
        )
    except GenerationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
