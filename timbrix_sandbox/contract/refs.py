"""Local ``$ref`` handling for a loaded (bundled, single-document) contract: JSON pointers,
breaking reference cycles once at load time, and inlining references for the model.

Recursive schemas (a category with ``children: [category]``, Stripe's charge -> customer ->
charge) are legal JSON Schema, but everything that inlines references loops on them: the
model's inference and Connexion's own ``resolve_refs`` (which ``add_api`` and the fast path
run) both recurse without end. :func:`cut_cycles` therefore makes the document's reference
graph acyclic once, when it is loaded: a ``$ref`` that would re-enter a schema being expanded
becomes ``{}`` (any value) at that point, keeping its sibling keywords and naming what it cut in
``x-sandbox-recursive``. Validation is exact up to the cycle point and lenient past it, which
never rejects a valid body. Cutting in the one document means the model, Connexion and the
conformance suite all read the same acyclic contract.
"""

from __future__ import annotations

import sys
import typing as t
from urllib.parse import unquote

from .errors import ContractError

RECURSIVE = "x-sandbox-recursive"
"""Set on a schema whose recursive ``$ref`` was cut; names the schema it pointed back to."""


def pointer_parts(pointer: str) -> list[str]:
    """``"/components/schemas/a~1b"`` -> ``["components", "schemas", "a/b"]`` (the text after
    ``#`` of a URI fragment: percent-decoded, then JSON-pointer unescaped)."""
    pointer = unquote(pointer)
    if not pointer or pointer == "/":
        return []
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer.lstrip("/").split("/")]


def lookup(document: t.Any, pointer: str) -> t.Any:
    """The node at ``pointer`` (the text after ``#``) in ``document``; :class:`KeyError` if absent."""
    node = document
    for part in pointer_parts(pointer):
        if isinstance(node, list):
            try:
                node = node[int(part)]
            except (ValueError, IndexError):
                raise KeyError(pointer) from None
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(pointer)
    return node


def _local_target(node: dict) -> str | None:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#"):
        return ref[1:]
    return None


def cut_cycles(document: dict) -> list[str]:
    """Make the document's local references acyclic, in place (see the module docstring).
    Returns the pointers of the references it cut, for ``serve`` to report.

    A depth-first walk over the reference graph, paths first (so a resource keeps its own
    schema whole and the cut falls on the nested re-entry), then webhooks and components; a
    reference to a schema that is being expanded, or that contains one being expanded, is a
    back edge and is cut. Every schema is expanded once."""
    grey: list[str] = []
    grey_set: set[str] = set()
    black: set[str] = set()
    cut: list[str] = []

    def finished(target: str) -> bool:
        if target in black:
            return True
        parts = target.split("/")
        return any("/".join(parts[:i]) in black for i in range(2, len(parts)))

    def re_enters(target: str) -> bool:
        if target in grey_set:
            return True
        prefix = target + "/"
        return any(g.startswith(prefix) for g in grey)

    def visit(target: str, node: t.Any) -> None:
        grey.append(target)
        grey_set.add(target)
        scan(node)
        grey.pop()
        grey_set.discard(target)
        black.add(target)

    def scan(node: t.Any) -> None:
        if isinstance(node, dict):
            target = _local_target(node)
            if target is not None:
                if re_enters(target):
                    node.pop("$ref")
                    node[RECURSIVE] = "#" + target
                    cut.append("#" + target)
                elif not finished(target):
                    try:
                        resolved = lookup(document, target)
                    except KeyError:
                        raise ContractError(f"$ref '#{target}' points to nothing in the contract") from None
                    visit(target, resolved)
            for value in node.values():
                if isinstance(value, (dict, list)):
                    scan(value)
        elif isinstance(node, list):
            for value in node:
                if isinstance(value, (dict, list)):
                    scan(value)

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20000))
    try:
        for section in ("paths", "webhooks"):
            for key, item in (document.get(section) or {}).items():
                visit(f"/{section}/{_escape(key)}", item)
        for section, entries in (document.get("components") or {}).items():
            if isinstance(entries, dict):
                for key, item in entries.items():
                    target = f"/components/{_escape(section)}/{_escape(key)}"
                    if target not in black:
                        visit(target, item)
        for key, value in document.items():
            if key not in ("paths", "webhooks", "components"):
                scan(value)
    finally:
        sys.setrecursionlimit(limit)
    return cut


def _escape(key: t.Any) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def resolve_refs(node: t.Any, spec: dict, _expanding: frozenset[str] = frozenset()) -> t.Any:
    """``node`` with every local ``$ref`` inlined (sibling keywords kept, as 3.1 allows), as
    new containers (the caller may change the result without changing ``spec``).

    A contract from :func:`~timbrix_sandbox.contract.loading.load_contract` has no cycles left;
    for any other document, a reference back into a schema being expanded becomes ``{}`` here
    too, so this never loops."""
    if isinstance(node, dict):
        target = _local_target(node)
        siblings = {key: resolve_refs(value, spec, _expanding) for key, value in node.items() if key != "$ref"}
        if target is None:
            return siblings
        if target in _expanding:
            return {**siblings, RECURSIVE: "#" + target}
        try:
            resolved = lookup(spec, target)
        except KeyError:
            raise ContractError(f"$ref '#{target}' points to nothing in the contract") from None
        inlined = resolve_refs(resolved, spec, _expanding | {target})
        return {**inlined, **siblings} if isinstance(inlined, dict) else inlined
    if isinstance(node, list):
        return [resolve_refs(item, spec, _expanding) for item in node]
    return node
