"""A success answer's JSON bytes and its verdict against the contract, once per stored view.

Every answer is validated against the contract before it leaves. On reads most of that work
repeats: a record read again is the same stored view, unchanged (``StoredViews`` in
``contract/records.py``), and validating it (about 2 us for a Timbrix customer with
jsonschema-rs) cost more than finding it. Here each view's verdict and bytes are kept in the
view's memo, and an answer is checked as its container (the envelope, the page, the array)
plus each record in it:

* an object schema with ``properties`` holds for an object if and only if the schema with
  ``properties[key]`` replaced by ``true`` (the *shell*) holds and, when ``key`` is present,
  ``properties[key]`` holds for its value: ``properties`` is a conjunction over the object's
  properties, and its annotation (which names ``unevaluatedProperties`` reads) is the set of
  names matched, whatever their subschemas;
* likewise an array schema's ``items`` (without ``prefixItems``, which shifts what ``items``
  covers): the shell with ``items: true``, and every item against ``items``.

A split is only made along the path where the operation's records sit (``record_path`` in
:class:`AnswerCheck`), in a schema without ``$ref``, ``$id`` or anchors (a reference into the
replaced subschema would change meaning); everything else is validated whole, as before. A
value that is not a stored view has no memo and is validated in full every time.
"""

from __future__ import annotations

import typing as t

import jsonschema_rs
import orjson

from timbrix_sandbox.contract.records import EACH_ITEM, json_bytes
from timbrix_sandbox.http.oas31 import compiled_validator

Memo = t.Callable[[t.Any], dict[t.Any, t.Any] | None]
"""A view's memo, or ``None`` for a value that is not a stored view (``StoredViews.memo``)."""

_JSON = "json"
"""A memo's key for the view's JSON bytes and their ``orjson.Fragment`` (verdicts are keyed by
their validator)."""

_REFERENCING = frozenset({"$ref", "$dynamicRef", "$recursiveRef", "$id", "$anchor", "$dynamicAnchor"})
_ABSENT = object()


def _no_memo(value: t.Any) -> None:
    return None


class _Node:
    """One schema on the record path. ``check`` answers a value's verdict and what to
    serialise in its place: a view's ``orjson.Fragment`` (from its memo) where the path ends,
    a container copied around the fragments on the way, or the value itself."""

    def __init__(self, schema: dict, path: tuple[str, ...]) -> None:
        self.validator: jsonschema_rs.Validator = compiled_validator(schema)
        self.key: t.Hashable = self.validator
        """Its verdicts' key in a memo: the validator itself, held there, so no other validator
        can ever take its place (an ``id`` could be reused once it is freed)."""
        self.leaf = not path
        """Where the path ends: the records' own schema, where views are looked up."""
        self.step: str | None = None
        self.shell: jsonschema_rs.Validator | None = None
        """``schema`` with the subschema at ``step`` replaced by ``true``."""
        self.child: _Node | None = None
        if not path or not _splittable(schema):
            return
        step, rest = path[0], path[1:]
        shell: dict | None = None
        if step == EACH_ITEM:
            items = schema.get("items")
            if isinstance(items, dict) and "prefixItems" not in schema:
                shell, self.child = {**schema, "items": True}, _Node(items, rest)
        else:
            properties = schema.get("properties")
            sub = properties.get(step) if isinstance(properties, dict) else None
            if isinstance(sub, dict):
                shell, self.child = {**schema, "properties": {**properties, step: True}}, _Node(sub, rest)
        if shell is not None:
            self.step = step
            self.shell = compiled_validator(shell)

    def check(self, value: t.Any, memo: Memo) -> tuple[t.Any, bool]:
        if self.leaf:
            found = memo(value)
            if found is None:
                return value, self.validator.is_valid(value)
            return _rendered(value, found)[1], self.verdict(value, found)
        child, shell = self.child, self.shell
        if child is None or shell is None:
            return value, self.validator.is_valid(value)
        if self.step == EACH_ITEM:
            if type(value) is not list:
                return value, self.validator.is_valid(value)
            valid, items, swapped = True, [], False
            for item in value:
                out, verdict = child.check(item, memo)
                valid = valid and verdict
                swapped = swapped or out is not item
                items.append(out)
            return (items if swapped else value), valid and shell.is_valid(value)
        inner = value.get(self.step, _ABSENT) if type(value) is dict else _ABSENT
        if inner is _ABSENT:
            return value, self.validator.is_valid(value)
        out, verdict = child.check(inner, memo)
        return (value if out is inner else {**value, self.step: out}), verdict and shell.is_valid(value)

    def verdict(self, view: t.Any, memo: dict[t.Any, t.Any]) -> bool:
        """A view's verdict against this schema, from its memo (worked out on first use)."""
        found = memo.get(self.key)
        if found is None:
            found = memo[self.key] = self.validator.is_valid(view)
        return found


def _rendered(view: t.Any, memo: dict[t.Any, t.Any]) -> tuple[bytes, orjson.Fragment]:
    found = memo.get(_JSON)
    if found is None:
        data = json_bytes(view)
        found = memo[_JSON] = (data, orjson.Fragment(data))
    return found


def _splittable(schema: dict) -> bool:
    """No keyword anywhere in ``schema`` that could refer into a part the shell replaces."""
    seen: set[int] = set()
    stack: list[t.Any] = [schema]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, dict):
            if _REFERENCING.intersection(node):
                return False
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return True


class AnswerCheck:
    """Whether an answer of one status conforms to its schema, and its bytes; with
    ``record_path``, the records found there are taken from their memos when they are views
    (``()``: the whole answer is the record; ``("data", "*")``: each item of ``data``)."""

    def __init__(self, schema: dict, record_path: tuple[str, ...] | None = None, memo: Memo | None = None) -> None:
        self.schema = schema
        self.record_path = record_path
        self.memo: Memo = memo if memo is not None and record_path is not None else _no_memo
        self.root = _Node(schema, record_path or ())
        self._plain = self.memo is _no_memo

    def answer(self, data: t.Any) -> tuple[bytes, bool]:
        """The answer's bytes as both pipelines send it (``operations.response_bytes``) and
        whether it conforms."""
        if self._plain:
            return json_bytes(data) + b"\n", self.root.validator.is_valid(data)
        root = self.root
        if root.leaf:  # the answer is the record (Timbrix's read): no container to copy
            found = self.memo(data)
            if found is None:
                return json_bytes(data) + b"\n", root.validator.is_valid(data)
            return _rendered(data, found)[0] + b"\n", root.verdict(data, found)
        out, valid = root.check(data, self.memo)
        if out is data:
            return json_bytes(data) + b"\n", valid
        try:
            return orjson.dumps(out) + b"\n", valid
        except TypeError:  # an integer orjson refuses, outside the records: json.dumps, without fragments
            return json_bytes(data) + b"\n", valid

    def valid(self, data: t.Any) -> bool:
        return self.root.check(data, self.memo)[1]
