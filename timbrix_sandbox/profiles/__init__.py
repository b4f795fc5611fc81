"""The contracts that ship with timbrix-sandbox, as packaged data: name -> contract file.

Pure paths (no engine, no web imports): the CLI, the server and the conformance suite all find
a shipped contract here, by name (``--contract beel``) or by path, whatever the working
directory or install location.
"""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent

CONTRACTS: dict[str, Path] = {
    "timbrix": HERE / "timbrix" / "openapi.yaml",
    "beel": HERE / "beel" / "beel.yaml",
    "bookkeeping": HERE / "bookkeeping" / "bookkeeping.yaml",
}
DEFAULT_CONTRACT = CONTRACTS["timbrix"]
TIMBRIX_FIXTURES = HERE / "timbrix" / "fixtures.yaml"


def contract_path(name_or_path: str | os.PathLike[str]) -> Path:
    """A shipped contract's file by name (``beel``), else the path as given."""
    text = os.fspath(name_or_path)
    return CONTRACTS.get(text, Path(text))


def is_default(contract: str | os.PathLike[str]) -> bool:
    return contract_path(contract).resolve() == DEFAULT_CONTRACT.resolve()


def short_name(contract: str | os.PathLike[str]) -> str:
    """``beel`` for ``.../beel.yaml``: names the default data directory and fixtures file."""
    return contract_path(contract).name.split(".")[0]


def default_fixtures(contract: str | os.PathLike[str]) -> Path:
    """Timbrix's fixtures for the Timbrix contract; for ``x.yaml``, ``x.fixtures.yaml`` beside it."""
    path = contract_path(contract)
    if is_default(path):
        return TIMBRIX_FIXTURES
    return path.with_name(short_name(path) + ".fixtures.yaml")
