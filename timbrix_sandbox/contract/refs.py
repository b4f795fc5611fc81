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

Acyclic is not enough for inliners: schemas that share schemas (Stripe's objects link to each
other through expandable fields) inline to a copy per path, exponentially many. The same walk
therefore also cuts a reference nested deeper than :data:`MAX_REF_DEPTH`, and the largest
references of a component that would inline to more than :data:`MAX_INLINED_NODES` objects.
The shared corpus needs none of those; each cut is listed (``LoadedContract.cut_refs``).
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


MAX_REF_DEPTH = 40
"""References nested inside one another beyond this are cut (inliners recurse once per level)."""
MAX_INLINED_NODES = 20_000
"""A component whose references, inlined, would make more objects than this has its largest
references cut. Inlining a graph of schemas that share schemas copies every shared one once
per path to it: a contract like Stripe's, whose objects link to each other through expandable
fields, would otherwise inline to millions of objects per operation."""


def cut_cycles(document: dict) -> list[str]:
    """Make the document's local references acyclic and bounded, in place (see the module
    docstring). Returns the pointers of the references it cut, for ``serve`` to report."""
    return _Cutter(document).run()


class _Cutter:
    """A depth-first walk over the reference graph, paths first (so a resource keeps its own
    schema whole and the cut falls on the nested re-entry), then webhooks and components.

    * A reference to a schema being expanded, or to one that contains a schema being expanded,
      is a back edge: cut.
    * Each schema is walked once; on the way back the walk knows how big and how deep each
      target inlines, and cuts a reference nested deeper than :data:`MAX_REF_DEPTH`, then, in a
      component that would inline to more than :data:`MAX_INLINED_NODES` objects, its largest
      references until it fits."""

    def __init__(self, document: dict) -> None:
        self.document = document
        self.grey: list[str] = []
        self.grey_set: set[str] = set()
        self.grey_prefixes: dict[str, int] = {}  # proper prefixes of grey pointers -> count
        self.inlined: dict[str, tuple[int, int]] = {}  # finished target -> (objects, depth)
        self.cut: list[str] = []

    def run(self) -> list[str]:
        document = self.document
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 20000))
        try:
            for section in ("paths", "webhooks"):
                for key, item in (document.get(section) or {}).items():
                    self.visit(f"/{section}/{_escape(key)}", item)
            for section, entries in (document.get("components") or {}).items():
                if isinstance(entries, dict):
                    for key, item in entries.items():
                        target = f"/components/{_escape(section)}/{_escape(key)}"
                        if target not in self.inlined:
                            self.visit(target, item)
            for key, value in document.items():
                if key not in ("paths", "webhooks", "components"):
                    self.scan(value, [], [0])
        finally:
            sys.setrecursionlimit(limit)
        return self.cut

    # -- the walk ------------------------------------------------------------------------------
    def _finished_region(self, target: str) -> bool:
        parts = target.split("/")
        return any("/".join(parts[:i]) in self.inlined for i in range(2, len(parts)))

    def _re_enters(self, target: str) -> bool:
        return target in self.grey_set or target in self.grey_prefixes

    def _push(self, target: str) -> None:
        self.grey.append(target)
        self.grey_set.add(target)
        parts = target.split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            self.grey_prefixes[prefix] = self.grey_prefixes.get(prefix, 0) + 1

    def _pop(self) -> None:
        target = self.grey.pop()
        self.grey_set.discard(target)
        parts = target.split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            self.grey_prefixes[prefix] -= 1
            if not self.grey_prefixes[prefix]:
                del self.grey_prefixes[prefix]

    def _cut(self, node: dict, why: str) -> None:
        target = node.pop("$ref")
        node[RECURSIVE] = target
        self.cut.append(f"{target} ({why})")

    def visit(self, target: str, node: t.Any) -> tuple[int, int]:
        """Walk ``target``'s subtree; its inlined (objects, depth) once bounded."""
        self._push(target)
        refs: list[tuple[dict, int, int]] = []
        count = [0]
        self.scan(node, refs, count)
        self._pop()
        kept = []
        for ref, objects, depth in refs:
            if depth + 1 > MAX_REF_DEPTH:
                self._cut(ref, "nested too deep")
            else:
                kept.append((ref, objects, depth))
        total = count[0] + sum(objects for _, objects, _ in kept)
        if total > MAX_INLINED_NODES and target.startswith("/components/"):
            kept.sort(key=lambda entry: entry[1])
            while kept and total > MAX_INLINED_NODES:
                ref, objects, _ = kept.pop()
                self._cut(ref, "too large to inline")
                total -= objects - 1
        result = (total, max((depth + 1 for _, _, depth in kept), default=0))
        self.inlined[target] = result
        return result

    def scan(self, node: t.Any, refs: list[tuple[dict, int, int]], count: list[int]) -> None:
        count[0] += 1
        if isinstance(node, dict):
            target = _local_target(node)
            if target is not None:
                if self._re_enters(target) or len(self.grey) >= 4 * MAX_REF_DEPTH:
                    self._cut(node, "recursive" if self._re_enters(target) else "nested too deep")
                else:
                    refs.append((node, *self._inlined(target)))
            for value in node.values():
                if isinstance(value, (dict, list)):
                    self.scan(value, refs, count)
        elif isinstance(node, list):
            for value in node:
                if isinstance(value, (dict, list)):
                    self.scan(value, refs, count)

    def _inlined(self, target: str) -> tuple[int, int]:
        known = self.inlined.get(target)
        if known is not None:
            return known
        try:
            resolved = lookup(self.document, target)
        except KeyError:
            raise ContractError(f"$ref '#{target}' points to nothing in the contract") from None
        if self._finished_region(target):  # a part of a walked schema: measure it, no new cuts
            refs: list[tuple[dict, int, int]] = []
            count = [0]
            self._measure(resolved, refs, count)
            result = (count[0] + sum(o for _, o, _ in refs), max((d + 1 for _, _, d in refs), default=0))
            self.inlined[target] = result
            return result
        return self.visit(target, resolved)

    def _measure(self, node: t.Any, refs: list[tuple[dict, int, int]], count: list[int]) -> None:
        count[0] += 1
        if isinstance(node, dict):
            target = _local_target(node)
            if target is not None:
                refs.append((node, *self._inlined(target)))
            for value in node.values():
                if isinstance(value, (dict, list)):
                    self._measure(value, refs, count)
        elif isinstance(node, list):
            for value in node:
                if isinstance(value, (dict, list)):
                    self._measure(value, refs, count)


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
