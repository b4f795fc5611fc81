"""One self-contained document from a contract split over files (DigitalOcean's 2,900 files).

A ``$ref`` to another file (``models/droplet.yml``, ``../shared/pages.yml#/page_links``) is
replaced by a local one: the target is copied once into ``components/<section>/<name>`` (the
section from the position of the reference: a schema goes to ``schemas``, a response to
``responses``...) under a name made from the file and the pointer, unique in the document. Where
no component can hold it (a path item, a tag's description, an example value) the target is
inlined. A reference to a file that is not YAML or JSON (a Markdown description) becomes the
file's text. References inside the other files are read relative to the file they are in.

Hand-written rather than taken from a library: ``referencing`` (installed, used by jsonschema)
resolves references but does not bundle, and the bundlers that exist (prance, the Redocly and
swagger-cli tools) either inline everything (DigitalOcean's shared schemas copied into each of
659 operations) or are not Python. Hoisting by position needs the OpenAPI structure
(``structure.py``), which a JSON Schema library does not know.
"""

from __future__ import annotations

import os
import re
import typing as t

from .errors import ContractError
from .refs import RECURSIVE, pointer_parts
from .structure import COMPONENT_SECTION, child_kind

STRUCTURED_SUFFIXES = (".yaml", ".yml", ".json")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_EXTERNAL_REF = re.compile(r"""["']?\$ref["']?\s*:\s*["']?(?!#)[^\s"'#]""")


def has_external_refs(text: str) -> bool:
    """Whether a contract's text has a ``$ref`` to something other than its own ``#...``
    (cheap, on the text: most single-file contracts skip bundling entirely)."""
    return _EXTERNAL_REF.search(text) is not None


class Bundler:
    """Builds the bundled document of one root file. ``read(path)`` returns a file's parsed
    content (YAML/JSON) or its text (anything else), and is the loader's cache."""

    def __init__(self, root: str, read: t.Callable[[str], t.Any]) -> None:
        self.root = os.path.abspath(root)
        self.read = read
        self.document: dict = {}
        self.names: dict[tuple[str, str, str], str] = {}  # (file, pointer, section) -> name
        self.taken: dict[str, set[str]] = {}  # section -> names in use
        self.hoisted: dict[str, dict[str, t.Any]] = {}  # section -> name -> content
        self.inlining: set[tuple[str, str]] = set()  # (file, pointer) being inlined

    def bundle(self) -> dict:
        root = self.read(self.root)
        for section, entries in (root.get("components") or {}).items():
            if isinstance(entries, dict):
                self.taken[section] = set(entries)
        document = self._walk(root, "document", self.root, in_root=True)
        if self.hoisted:
            components = document.setdefault("components", {})
            for section, entries in self.hoisted.items():
                components.setdefault(section, {}).update(entries)
        return document

    # -- walking ---------------------------------------------------------------------------------
    def _walk(self, node: t.Any, kind: str, base: str, in_root: bool) -> t.Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and not (in_root and ref.startswith("#")):
                return self._reference(node, ref, kind, base, in_root)
            return {key: self._walk(value, child_kind(kind, key, value), base, in_root) for key, value in node.items()}
        if isinstance(node, list):
            return [self._walk(item, child_kind(kind, index, item), base, in_root) for index, item in enumerate(node)]
        return node

    def _reference(self, node: dict, ref: str, kind: str, base: str, in_root: bool) -> t.Any:
        location, _, fragment = ref.partition("#")
        if location.startswith(("http://", "https://")):
            raise ContractError(f"{_shown(base)}: $ref {ref!r} is remote; only files beside the contract are read")
        path = os.path.normpath(os.path.join(os.path.dirname(base), location)) if location else base
        siblings = {
            key: self._walk(value, child_kind(kind, key, value), base, in_root)
            for key, value in node.items()
            if key != "$ref"
        }
        if path == self.root:
            return {"$ref": "#" + fragment, **siblings}  # back into the root document
        section = COMPONENT_SECTION.get(kind)
        if section is not None and path.endswith(STRUCTURED_SUFFIXES):
            name = self._hoist(path, fragment, kind, section, ref, base)
            return {"$ref": f"#/components/{section}/{name}", **siblings}
        key = (path, fragment)
        if key in self.inlining:  # a cycle through positions no component holds: cut it here
            return {**siblings, RECURSIVE: ref}
        self.inlining.add(key)
        try:
            content = self._walk(self._target(path, fragment, ref, base), kind, path, in_root=False)
        finally:
            self.inlining.discard(key)
        if isinstance(content, dict):
            return {**content, **siblings}
        return content

    def _hoist(self, path: str, fragment: str, kind: str, section: str, ref: str, base: str) -> str:
        key = (path, fragment, section)
        name = self.names.get(key)
        if name is None:
            name = self.names[key] = self._new_name(path, fragment, section)
            # Named before it is walked: a schema that refers to itself gets a local cycle,
            # which refs.cut_cycles handles like any other.
            target = self._target(path, fragment, ref, base)
            self.hoisted.setdefault(section, {})[name] = self._walk(target, kind, path, in_root=False)
        return name

    def _target(self, path: str, fragment: str, ref: str, base: str) -> t.Any:
        try:
            node = self.read(path)
        except FileNotFoundError:
            raise ContractError(f"{_shown(base)}: $ref {ref!r}: no such file {_shown(path)}") from None
        for part in pointer_parts(fragment):
            if isinstance(node, dict) and isinstance(node.get("$ref"), str) and part not in node:
                node = self._target_of_ref(node["$ref"], path)
            try:
                node = node[int(part)] if isinstance(node, list) else node[part]
            except (KeyError, IndexError, ValueError, TypeError):
                raise ContractError(f"{_shown(base)}: $ref {ref!r} points to nothing in {_shown(path)}") from None
        return node

    def _target_of_ref(self, ref: str, base: str) -> t.Any:
        location, _, fragment = ref.partition("#")
        path = os.path.normpath(os.path.join(os.path.dirname(base), location)) if location else base
        return self._target(path, fragment, ref, base)

    def _new_name(self, path: str, fragment: str, section: str) -> str:
        stem = os.path.splitext(os.path.basename(path))[0]
        parts = pointer_parts(fragment)
        candidates = [parts[-1], f"{stem}_{parts[-1]}"] if parts else [stem]
        taken = self.taken.setdefault(section, set())
        for candidate in candidates:
            clean = _UNSAFE.sub("_", candidate).strip("_") or "ref"
            if clean not in taken:
                taken.add(clean)
                return clean
        number = 2
        while f"{clean}_{number}" in taken:
            number += 1
        taken.add(f"{clean}_{number}")
        return f"{clean}_{number}"


def _shown(path: str) -> str:
    return repr(os.path.relpath(path)) if not os.path.relpath(path).startswith("../..") else repr(path)
