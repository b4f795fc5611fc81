#!/usr/bin/env python3
"""Bootstrap and run: ``python3 dev.py serve [args]`` or ``python3 dev.py test [pytest args]``.

Needs only Python 3.11. Creates ``.venv`` on first use and (re)installs the project with its
pinned dependencies whenever ``pyproject.toml`` or ``constraints.txt`` change, then runs the
command inside it. Everything else (``lint``, ``bench``, any ``timbrix-sandbox`` subcommand)
is passed through.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
STAMP = VENV / ".installed"


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "constraints.txt"):
        path = ROOT / name
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure_environment() -> None:
    if sys.version_info[:2] != (3, 11):
        print(f"note: running under Python {sys.version.split()[0]}; the project targets 3.11", file=sys.stderr)
    if not PYTHON.exists():
        print("creating .venv ...", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if STAMP.exists() and STAMP.read_text() == _fingerprint():
        return
    print("installing timbrix-sandbox and its pinned dependencies into .venv ...", file=sys.stderr)
    pip = [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-c", "constraints.txt", "-e", ".[test,postgresql]"], check=True, cwd=ROOT)
    STAMP.write_text(_fingerprint())


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    ensure_environment()
    command, rest = argv[0], argv[1:]
    if command == "test":
        lint = subprocess.call([str(BIN / "ruff"), "check", "."], cwd=ROOT)
        tests = subprocess.call([str(PYTHON), "-m", "pytest", *rest], cwd=ROOT)
        return tests or lint
    if command == "lint":
        return subprocess.call([str(BIN / "ruff"), "check", ".", *rest], cwd=ROOT)
    if command == "bench":
        return subprocess.call([str(PYTHON), "bench/run.py", *rest], cwd=ROOT)
    return subprocess.call([str(BIN / "timbrix-sandbox"), command, *rest], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
