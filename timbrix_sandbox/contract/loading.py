"""Reading a contract file: YAML or JSON, parsed once per file version, every mistake a user can
make (a missing path, a directory, invalid YAML, a document that is not OpenAPI) reported as one
:class:`ContractError` naming the file."""

from __future__ import annotations

import copy
import functools
import os

import yaml

from .model import ContractError


def load_contract(path: str | os.PathLike[str]) -> dict:
    """The parsed contract (a fresh copy: Connexion fills defaults into what it is given).

    Raises :class:`ContractError` naming the file for everything a user can get wrong: a
    missing path, a directory, unreadable or invalid YAML, a document that is not an OpenAPI
    object."""
    try:
        stat = os.stat(path)
        parsed = _parse_contract(os.fspath(path), stat.st_mtime_ns, stat.st_size)
    except FileNotFoundError:
        raise ContractError(f"contract {os.fspath(path)!r}: no such file") from None
    except IsADirectoryError:
        raise ContractError(f"contract {os.fspath(path)!r} is a directory, not an OpenAPI file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractError(f"contract {os.fspath(path)!r} cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        where = f" (line {exc.problem_mark.line + 1})" if getattr(exc, "problem_mark", None) else ""
        raise ContractError(f"contract {os.fspath(path)!r} is not valid YAML or JSON{where}") from None
    if not isinstance(parsed, dict) or "openapi" not in parsed or not isinstance(parsed.get("paths", {}), dict):
        raise ContractError(
            f"contract {os.fspath(path)!r} is not an OpenAPI document (expected a mapping with 'openapi' and 'paths')"
        )
    return copy.deepcopy(parsed)


@functools.lru_cache(maxsize=16)
def _parse_contract(path: str, _mtime_ns: int, _size: int) -> dict:
    # libyaml's loader when present: pure-Python YAML parsing was ~35 ms per load at startup.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=loader)  # noqa: S506 - a safe loader
