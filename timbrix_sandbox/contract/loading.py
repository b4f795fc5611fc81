"""Reading a contract file into the one document everything else reads: self-contained, OpenAPI
3.1, acyclic. Parsed once per file version; every mistake a user can make (a missing path, a
directory, invalid YAML, a document that is not OpenAPI, a ``$ref`` to nothing) reported as one
:class:`ContractError` naming the file.

The steps, each in its own module:

1. **Parse** YAML 1.2 / JSON (``yaml12.py``): a date-looking example stays a string, ``on`` and
   ``no`` stay strings, ``200:`` is the key ``"200"``.
2. **Bundle** ``$ref``s to other files into the document (``bundle.py``); a Markdown file
   referenced as a description becomes its text.
3. **Normalise** OpenAPI 3.0.x to 3.1 (``normalise.py``): ``nullable``, boolean
   ``exclusiveMinimum``; ``openapi: 3.1.0``; header parameters named ``Accept``,
   ``Content-Type`` or ``Authorization`` dropped (OpenAPI says they are ignored).
4. **Cut reference cycles** (``refs.py``): a recursive schema is cut to ``{}`` where it
   re-enters itself, so neither the model nor Connexion loops on it (and references that
   would inline too deep or too large are cut the same way).

The model, Connexion's ``add_api`` and the conformance suite are all handed this document, so
they read the contract the same way.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import marshal
import os
import typing as t

import yaml

from .bundle import STRUCTURED_SUFFIXES, Bundler, has_external_refs
from .errors import ContractError
from .normalise import drop_ignored_header_parameters, to_openapi_31
from .refs import cut_cycles, lookup
from .yaml12 import parse_yaml


def load_contract(path: str | os.PathLike[str]) -> dict:
    """The contract as one self-contained OpenAPI 3.1 document (a fresh copy: Connexion fills
    defaults into what it is given).

    Raises :class:`ContractError` naming the file for everything a user can get wrong: a
    missing path, a directory, unreadable or invalid YAML, a document that is not an OpenAPI
    object, a ``$ref`` to a missing file or to nothing."""
    return _copy(loaded_contract(path).document)


@dataclasses.dataclass(frozen=True)
class LoadedContract:
    """A loaded contract and what loading did to it (``serve`` can say so)."""

    document: dict
    """Shared by every caller of the cache: copy before changing (:func:`load_contract` does)."""
    source_version: str
    """The ``openapi`` version the file declared (the document says 3.1.0)."""
    files: tuple[tuple[str, int, int], ...]
    """Every file read, with its mtime and size: the cache entry is stale when one changes."""
    cut_refs: tuple[str, ...]
    """The references cut to ``{}``, each with why: recursive, nested too deep, or too large to
    inline (``refs.py``)."""


def loaded_contract(path: str | os.PathLike[str]) -> LoadedContract:
    """The cached :class:`LoadedContract` for ``path`` (re-read when any file it read changed)."""
    shown = os.fspath(path)
    absolute = os.path.abspath(shown)
    cached = _cache.get(absolute)
    if cached is not None and _unchanged(cached.files):
        return cached
    try:
        loaded = _load(absolute)
    except FileNotFoundError as exc:
        if exc.filename and os.path.abspath(exc.filename) != absolute:
            raise ContractError(f"contract {shown!r}: $ref to a missing file {exc.filename!r}") from None
        raise ContractError(f"contract {shown!r}: no such file") from None
    except IsADirectoryError:
        raise ContractError(f"contract {shown!r} is a directory, not an OpenAPI file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractError(f"contract {shown!r} cannot be read: {exc}") from None
    except ContractError as exc:
        text = str(exc)
        raise ContractError(f"contract {shown!r}{' ' if text.startswith('is ') else ': '}{text}") from None
    if len(_cache) >= _CACHE_SIZE:
        _cache.pop(next(iter(_cache)))
    _cache[absolute] = loaded
    return loaded


_CACHE_SIZE = 16
_cache: dict[str, LoadedContract] = {}


def _unchanged(files: tuple[tuple[str, int, int], ...]) -> bool:
    try:
        for name, mtime_ns, size in files:
            stat = os.stat(name)
            if stat.st_mtime_ns != mtime_ns or stat.st_size != size:
                return False
    except OSError:
        return False
    return True


def _load(path: str) -> LoadedContract:
    files: dict[str, tuple[int, int]] = {}

    @functools.cache
    def read(name: str) -> t.Any:
        stat = os.stat(name)
        with open(name, encoding="utf-8") as handle:
            text = handle.read()
        files[name] = (stat.st_mtime_ns, stat.st_size)
        if name == path:
            return parsed_root
        return _parse(name, text) if name.endswith(STRUCTURED_SUFFIXES) else text

    stat = os.stat(path)
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    files[path] = (stat.st_mtime_ns, stat.st_size)
    parsed_root = _parse(path, text, root=True)
    if isinstance(parsed_root, dict) and "swagger" in parsed_root and "openapi" not in parsed_root:
        raise ContractError("is Swagger 2.0; convert it to OpenAPI 3 first (swagger2openapi, or editor.swagger.io)")
    if (
        not isinstance(parsed_root, dict)
        or "openapi" not in parsed_root
        or not isinstance(parsed_root.get("paths", {}), dict)
    ):
        raise ContractError("is not an OpenAPI document (expected a mapping with 'openapi' and 'paths')")
    source_version = str(parsed_root["openapi"])
    document = Bundler(path, read).bundle() if has_external_refs(text) else parsed_root
    to_openapi_31(document)
    _inline_path_items(document)
    drop_ignored_header_parameters(document)
    cut = cut_cycles(document)
    return LoadedContract(
        document=document,
        source_version=source_version,
        files=tuple((name, *stamp) for name, stamp in files.items()),
        cut_refs=tuple(cut),
    )


def _inline_path_items(document: dict) -> None:
    """A path item given as a local ``$ref`` (3.1's ``components/pathItems``) is put in place:
    the model, the fast path and the suite read each path's operations directly."""
    for path, item in list((document.get("paths") or {}).items()):
        seen: set[str] = set()
        while isinstance(item, dict) and isinstance(item.get("$ref"), str) and item["$ref"].startswith("#"):
            target = item["$ref"]
            if target in seen:
                raise ContractError(f"path {path!r}: its $ref {target!r} refers back to itself")
            seen.add(target)
            try:
                resolved = lookup(document, target[1:])
            except KeyError:
                raise ContractError(f"path {path!r}: $ref {target!r} points to nothing in the contract") from None
            item = {**resolved, **{key: value for key, value in item.items() if key != "$ref"}}
        document["paths"][path] = item


def _parse(name: str, text: str, root: bool = False) -> t.Any:
    try:
        if name.endswith(".json"):
            try:
                return json.loads(text)
            except ValueError:
                pass  # JSON with comments or trailing commas: YAML may still read it
        return parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        subject = "" if root else f"{os.path.relpath(name)!r} "
        raise ContractError(f"{subject}is not valid YAML or JSON{where}") from None


def _copy(document: dict) -> dict:
    """A deep copy of the JSON-shaped document. ``marshal`` copies plain dicts, lists and
    scalars in C: ~10x faster than ``copy.deepcopy`` (asana's 3 MB contract)."""
    return marshal.loads(marshal.dumps(document))
