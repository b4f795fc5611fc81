"""The layers (see ARCHITECTURE.md), enforced on the source: every import of every module under
``timbrix_sandbox/``, ``conformance/`` and ``cfdi/`` (module level, function level, relative,
under ``if TYPE_CHECKING``, and ``importlib.import_module("literal")``) is checked against
:data:`RULES`. Read statically with ``ast``: nothing is imported, so a violation is reported
even in a module that would not import."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("timbrix_sandbox", "conformance", "cfdi")

WEB = frozenset({"connexion", "starlette", "uvicorn", "httpx", "anyio", "schemathesis"})
"""Web frameworks, servers and clients. ``anyio`` counts as web for the pure layers; the engine
and the profiles' handlers may use it: it is a concurrency library (the store's blocking calls
run in a worker thread through ``anyio.to_thread``), not a web dependency."""

ALL_PROJECT = frozenset({"root", "contract", "engine", "http", "catalogue", "profiles", "cli", "conformance", "cfdi"})


@dataclasses.dataclass(frozen=True)
class Rule:
    may_import: frozenset[str]
    """Project layers this layer may import (its own always included)."""
    forbidden: frozenset[str]
    """Third-party top-level modules this layer may not import."""


def rule(may_import: set[str], forbidden: frozenset[str] | set[str] = frozenset()) -> Rule:
    return Rule(frozenset(may_import), frozenset(forbidden))


RULES: dict[str, Rule] = {
    # layer        may import (project layers)                                         may not import (third party)
    "root":        rule(set(),                                                         WEB),
    "contract":    rule({"root"},                                                      WEB),
    "engine":      rule({"root", "contract", "cfdi"},                                  WEB - {"anyio"}),
    "http":        rule({"root", "contract", "engine", "catalogue", "cfdi"}),
    "catalogue":   rule(set(),                                                         WEB),
    "profiles":    rule({"root", "contract", "engine", "catalogue", "cfdi"},           WEB - {"anyio"}),
    "cli":         rule(ALL_PROJECT),
    "conformance": rule({"root", "contract", "catalogue", "cfdi"},                     {"connexion", "starlette", "uvicorn", "tinydb"}),  # noqa: E501
    "cfdi":        rule(set(),                                                         WEB),
}  # fmt: skip
"""Layer -> what it may import. The layers, by module:

* ``root``: ``timbrix_sandbox/__init__.py`` (run by every import of the package, the suite's too);
* ``contract``: ``timbrix_sandbox/contract/`` (floor 1);
* ``engine``: ``timbrix_sandbox/engine/`` (floor 2);
* ``http``: ``timbrix_sandbox/http/`` (floor 3, the only web code; it loads the profiles' handlers by
  name from the contract, never by import);
* ``catalogue``: ``timbrix_sandbox/profiles/__init__.py``, the shipped contracts by name (pure paths);
* ``profiles``: the rest of ``timbrix_sandbox/profiles/`` (floor 4: the hand-written handlers);
* ``cli``: ``timbrix_sandbox/cli.py``, ``__main__.py``, ``testing.py`` and ``pytest_plugin.py`` (floor 5);
* ``conformance``: ``conformance/``, which talks to a server over HTTP only;
* ``cfdi``: ``cfdi/``, pure domain rules.
"""


def layer_of_module(name: str) -> str | None:
    """The layer of a project module by dotted name; ``None`` for a third-party one."""
    parts = name.split(".")
    top = parts[0]
    if top in ("conformance", "cfdi"):
        return top
    if top != "timbrix_sandbox":
        return None
    if len(parts) == 1:
        return "root"
    sub = parts[1]
    if sub in ("contract", "engine", "http"):
        return sub
    if sub == "profiles":
        return "catalogue" if len(parts) == 2 else "profiles"
    if sub in ("cli", "__main__", "testing", "pytest_plugin"):
        return "cli"
    return "unclassified"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@dataclasses.dataclass(frozen=True)
class Import:
    line: int
    module: str
    type_only: bool = False


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def collect_imports(source: str, module: str, is_package: bool, filename: str = "<source>") -> list[Import]:
    """Every import in ``source`` as absolute dotted names. ``from X import y`` counts as
    ``X.y`` when that is a project module (``from timbrix_sandbox.http import oas31``), else as
    ``X``; relative imports are resolved against ``module``."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: list[Import] = []

    def visit(node: ast.AST, type_only: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, type_only)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(node.lineno, alias.name, type_only) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                is_module = layer_of_module(candidate) is not None and _module_exists(candidate)
                found.append(Import(node.lineno, candidate if is_module else target, type_only))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append(Import(node.lineno, node.args[0].value, type_only))
        for child in ast.iter_child_nodes(node):
            visit(child, type_only)

    visit(ast.parse(source, filename), False)
    return found


def _module_exists(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def modules() -> list[Path]:
    return sorted(path for top in SOURCES for path in (ROOT / top).rglob("*.py") if "__pycache__" not in path.parts)


def violations(layer: str) -> list[str]:
    """``file:line -> module (rule broken)`` for every import of ``layer``'s modules that its rule forbids."""
    allowed = RULES[layer].may_import | {layer}
    found = []
    for path in modules():
        name = module_name(path)
        if layer_of_module(name) != layer:
            continue
        relative = path.relative_to(ROOT)
        for imp in collect_imports(path.read_text(), name, path.name == "__init__.py", str(relative)):
            target = layer_of_module(imp.module)
            top = imp.module.split(".")[0]
            if target is None and top not in RULES[layer].forbidden:
                continue
            if target is not None and target in allowed:
                continue
            if target is None:
                why = f"{layer} may not import {top}"
            else:
                why = f"{layer} may not import the {target} layer"
            note = ", type-checking only" if imp.type_only else ""
            found.append(f"{relative}:{imp.line} -> {imp.module} ({why}{note})")
    return found


@pytest.mark.parametrize("layer", list(RULES))
def test_layer_imports_only_what_it_may(layer):
    found = violations(layer)
    allowed = ", ".join(sorted(RULES[layer].may_import)) or "nothing of the project"
    assert not found, (
        f"{len(found)} import(s) break the {layer} layer's rule (may import: {allowed}; "
        f"never: {', '.join(sorted(RULES[layer].forbidden)) or '-'}):\n  " + "\n  ".join(found)
    )


def test_every_module_belongs_to_a_layer():
    unclassified = [str(p.relative_to(ROOT)) for p in modules() if layer_of_module(module_name(p)) not in RULES]
    assert not unclassified, "give these a layer in tests/test_architecture.py (and ARCHITECTURE.md): " + ", ".join(
        unclassified
    )


def test_every_layer_has_modules():
    """A rule that matches no file would pass vacuously (a renamed directory)."""
    present = {layer_of_module(module_name(p)) for p in modules()}
    assert set(RULES) <= present, f"no modules for {sorted(set(RULES) - present)}"


def test_the_collector_sees_every_kind_of_import():
    source = """
import cfdi
import starlette.types as st
from . import sibling
from .. import contract
from ..engine.store import Store
from timbrix_sandbox.http import oas31
from timbrix_sandbox.profiles import CONTRACTS
import typing as t
if t.TYPE_CHECKING:
    from timbrix_sandbox.cli import main

def handler():
    from connexion import NoContent
    import importlib
    return importlib.import_module("timbrix_sandbox.http.errors")
"""
    found = collect_imports(source, "timbrix_sandbox.engine.crud", is_package=False)
    assert [(i.line, i.module, i.type_only) for i in found] == [
        (2, "cfdi", False),
        (3, "starlette.types", False),
        (4, "timbrix_sandbox.engine", False),  # `sibling` is no module: the package itself
        (5, "timbrix_sandbox.contract", False),
        (6, "timbrix_sandbox.engine.store", False),
        (7, "timbrix_sandbox.http.oas31", False),
        (8, "timbrix_sandbox.profiles", False),
        (9, "typing", False),
        (11, "timbrix_sandbox.cli", True),
        (14, "connexion", False),
        (15, "importlib", False),
        (16, "timbrix_sandbox.http.errors", False),
    ]
    assert [layer_of_module(i.module) for i in found] == [
        "cfdi", None, "engine", "contract", "engine", "http", "catalogue", None, "cli", None, None, "http",
    ]
