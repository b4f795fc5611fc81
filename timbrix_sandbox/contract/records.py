"""Records as a contract describes them: values a schema accepts, a record completed with its
required fields, a body projected onto a response schema, stored names and keys.

Pure functions of schemas and data, shared by the engine (which builds and stores records) and
the conformance suite (which predicts what a conforming server answers), so both read a
contract the same way.
"""

from __future__ import annotations

import json
import typing as t
import uuid

import jsonschema_rs
import orjson

from .identity import by_identity
from .model import Resource
from .shapes import flatten


def sample(schema: dict, now: str) -> t.Any:
    """A value the schema accepts, preferring what the contract itself offers. A nullable
    field without a default is ``null``: an example is illustration, not the customer's data."""
    for key in ("const", "default"):
        if key in schema:
            return schema[key]
    types = schema.get("type")
    if types == "null" or (isinstance(types, list) and "null" in types):
        return None
    if any(isinstance(b, dict) and b.get("type") == "null" for b in schema.get("anyOf", []) + schema.get("oneOf", [])):
        return None
    if schema.get("format") in ("date-time", "date"):
        return now if schema["format"] == "date-time" else now[:10]  # the moment of creation
    if "example" in schema:
        return schema["example"]
    if schema.get("examples"):
        return schema["examples"][0]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return sample(schema[key][0], now)
    types = schema.get("type", "object")
    kind = next((k for k in types if k != "null"), "null") if isinstance(types, list) else types
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "date-time":
            return now
        if fmt == "date":
            return now[:10]
        if fmt == "uuid":
            return str(uuid.uuid4())
        if fmt == "email":
            return "user@example.com"
        if fmt in ("uri", "url"):
            return "https://example.com"
        return "x" * int(schema.get("minLength", 0))
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    if kind == "boolean":
        return False
    if kind == "array":
        return []
    if kind == "null":
        return None
    return complete({}, schema, now)


def complete(record: dict, schema: dict, now: str) -> dict:
    """``record`` with every required property of ``schema`` present (nested objects too):
    ``record`` itself when nothing is missing (every create asks), else a copy."""
    out = record
    properties = schema.get("properties", {})
    for name in schema.get("required", ()):
        if name not in out and name in properties:
            if out is record:
                out = dict(record)
            out[name] = sample(properties[name], now)
    for name, value in tuple(out.items()):
        sub = properties.get(name)
        if isinstance(value, dict) and isinstance(sub, dict) and "properties" in sub:
            done = complete(value, sub, now)
            if done is not value:
                if out is record:
                    out = dict(record)
                out[name] = done
    return out


def project(value: t.Any, schema: dict | None) -> t.Any:
    """Only what the response schema declares (stored request-only fields stay internal), in
    the schema's order. Always new containers: the stored record is never handed out."""
    return projector(schema)(value)


Projector = t.Callable[[t.Any], t.Any]


@by_identity()
def projector(schema: dict | None) -> Projector:
    """:func:`project` for one schema, compiled once: every read pays for projection, so the
    schema is walked when first seen, not per record."""
    return _compile(schema)


def copy_json(value: t.Any) -> t.Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars): records are JSON, and this is
    ~4x faster than ``copy.deepcopy`` on a customer, which reads pay."""
    kind = type(value)
    if kind is dict:
        return {k: copy_json(v) for k, v in value.items()}
    if kind is list:
        return [copy_json(v) for v in value]
    return value


def json_bytes(value: t.Any) -> bytes:
    """``value`` as compact UTF-8 JSON: orjson (about 7x faster than ``json.dumps``, which the
    store's journal and snapshots and every response pay), or ``json.dumps`` for what orjson
    refuses and JSON allows (integers beyond 64 bits). A lone surrogate, which no UTF-8 text
    can hold, raises ``UnicodeEncodeError`` either way."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _compile(schema: dict | None) -> Projector:
    if not isinstance(schema, dict):
        return copy_json
    items = projector(schema["items"]) if isinstance(schema.get("items"), dict) else copy_json
    objects = schema
    branches: list[dict] = []
    for key in ("anyOf", "oneOf"):
        found = [b for b in schema.get(key, []) if isinstance(b, dict) and "properties" in b]
        if found:
            objects, branches = found[0], found
    properties = objects.get("properties")
    fields = None if properties is None else _answered_fields(objects)
    # Several object branches (DigitalOcean's static or dynamic autoscale config): each value is
    # projected onto the branch that declares most of its fields.
    alternatives = [_answered_fields(b) for b in branches[1:]]

    def project_one(value: t.Any) -> t.Any:
        kind = type(value)
        if kind is list:
            return [items(item) for item in value]
        if kind is not dict:
            return value
        if fields is None:
            return copy_json(value)
        chosen = fields
        if alternatives:
            chosen = max([fields, *alternatives], key=lambda option: sum(1 for name, _ in option if name in value))
        return {name: field(value[name]) for name, field in chosen if name in value}

    return project_one


def _answered_fields(schema: dict) -> list[tuple[str, Projector]]:
    """The properties a response carries, each with its projector: not a ``writeOnly`` one
    (OpenAPI: sent in requests, never in responses - DigitalOcean's domain ``ip_address``),
    and a ``required`` name the schema forgot to declare as well (DigitalOcean's logtail
    destination requires ``endpoint`` and declares only ``token``: dropping the sent value
    would answer a record its own schema refuses)."""
    properties = schema.get("properties") or {}
    fields = [
        (name, projector(sub))
        for name, sub in properties.items()
        if not (isinstance(sub, dict) and sub.get("writeOnly") is True)
    ]
    required = schema.get("required")
    if isinstance(required, list):
        fields += [(name, copy_json) for name in required if isinstance(name, str) and name not in properties]
    return fields


EACH_ITEM = "*"
"""In a path to records inside an answer (``CrudOperation.shared_views``): every item of the
array there."""


class StoredViews:
    """A projector for *stored* records that projects each one once.

    The store never changes a record it hands out in place (a write stores a new one), so a
    record's view stays right for as long as that record is the stored one: reads of a record
    nobody wrote since are answered from here (on a list of 14 customers projection was 40%
    of the request). Entries hold their record, so its ``id`` cannot be reused while cached,
    and the cache is emptied when it reaches ``limit`` (old versions do not pile up). Views
    are shared: whoever gets one must not change it (the engine wraps it, the HTTP layer
    serialises it). Never pass a record that may still change.

    Each view comes with a *memo* (:meth:`memo`): a dict where whoever renders the view keeps
    what it derives from it (its JSON bytes, its verdict against a schema), so a view read
    a thousand times is serialised and validated once. Because no view ever changes, nothing
    in a memo goes stale; it is dropped with its view."""

    def __init__(self, project: Projector, limit: int = 20_000) -> None:
        self._project = project
        self._limit = limit
        self._views: dict[int, tuple[t.Any, t.Any]] = {}
        self._memos: dict[int, tuple[t.Any, dict[t.Any, t.Any]]] = {}
        """``id(view) -> (view, memo)`` for every view in ``_views``."""

    def __call__(self, record: t.Any) -> t.Any:
        hit = self._views.get(id(record))
        if hit is not None and hit[0] is record:
            return hit[1]
        view = self._project(record)
        if len(self._views) >= self._limit:
            self._views, self._memos = {}, {}
        self._views[id(record)] = (record, view)
        self._memos[id(view)] = (view, {})
        return view

    def memo(self, value: t.Any) -> dict[t.Any, t.Any] | None:
        """The memo of ``value`` if it is a view handed out here (``None`` for anything else:
        a value that is not known never to change gets no memo)."""
        entry = self._memos.get(id(value))
        return entry[1] if entry is not None and entry[0] is value else None


def apply_body(
    record: dict,
    body: t.Mapping[str, t.Any],
    schema: dict | None,
    *,
    skip: str | None = None,
    aliases: t.Mapping[str, str] | None = None,
) -> dict:
    """``record`` with the request ``body`` merged in: only the fields sent change, each under
    its stored name. ``x-sandbox-stored-as`` may be a dotted path into a nested object
    (Timbrix's flat ``addressZip`` is the record's ``address.zip``); the objects on that path
    are copied, never shared with ``record``. ``aliases`` names the record field of a request
    field spelled otherwise (see :func:`field_aliases`). A field stored as ``skip`` (the id)
    is ignored."""
    paths = stored_paths(schema, aliases)
    merged = dict(record)
    copied: dict[tuple[str, ...], dict] = {}
    """The nested objects this merge has copied already, by their path: each is copied once,
    however many of its fields are sent (Timbrix sends eight address fields)."""
    for name, value in body.items():
        path = paths.get(name) or _stored_path(name, None, aliases)
        if path in copied:  # a value sent for an object copied before replaces it (and all in it:
            # every copied path's prefixes are copied paths too, so none is stale otherwise)
            for stale in [p for p in copied if p[: len(path)] == path]:
                del copied[stale]
        if len(path) == 1:
            if path[0] != skip:
                merged[path[0]] = value
            continue
        target = merged
        for depth in range(1, len(path)):
            child = copied.get(path[:depth])
            if child is None:
                child = target.get(path[depth - 1])
                child = copied[path[:depth]] = dict(child) if isinstance(child, dict) else {}
                target[path[depth - 1]] = child
            target = child
        target[path[-1]] = value
    return merged


@by_identity()
def stored_paths(schema: dict | None, aliases: t.Mapping[str, str] | None = None) -> t.Mapping[str, tuple[str, ...]]:
    """Where each field the request ``schema`` declares (or ``aliases`` names) is stored, as a
    path into the record: ``addressZip`` -> ``("address", "zip")``. Worked out once per schema
    and aliases (as :func:`projector` is): every create and update asks it for every field
    sent, and asking the schema each time was a tenth of a create's CPU."""
    properties = (schema or {}).get("properties", {})
    names = [*properties, *(aliases or {})] if isinstance(properties, dict) else list(aliases or {})
    return {name: _stored_path(name, schema, aliases) for name in names}


def _stored_path(name: str, schema: dict | None, aliases: t.Mapping[str, str] | None) -> tuple[str, ...]:
    properties = (schema or {}).get("properties")
    sub = properties.get(name) if isinstance(properties, dict) else None
    default = (aliases or {}).get(name, name)
    stored = sub.get("x-sandbox-stored-as", default) if isinstance(sub, dict) else default
    return tuple(stored.split("."))


def _spelling(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


def field_aliases(body_schema: dict | None, record_schema: dict | None) -> dict[str, str]:
    """Request fields the record spells otherwise: Twilio's form field ``FriendlyName`` is the
    record's ``friendly_name``. A field the record declares as it is sent, or that names
    ``x-sandbox-stored-as``, is not aliased; neither is one matching two record fields."""
    sent = flatten(body_schema or {}).get("properties", {}) if isinstance(body_schema, dict) else {}
    declared = flatten(record_schema or {}).get("properties", {}) if isinstance(record_schema, dict) else {}
    by_spelling: dict[str, list[str]] = {}
    for name in declared:
        by_spelling.setdefault(_spelling(name), []).append(name)
    aliases = {}
    for name, sub in sent.items():
        if name in declared or (isinstance(sub, dict) and "x-sandbox-stored-as" in sub):
            continue
        matches = by_spelling.get(_spelling(name), [])
        if len(matches) == 1:
            aliases[name] = matches[0]
    return aliases


def record_key(value: t.Any) -> str:
    """Store keys are strings; a numeric path id (``7`` or ``7.0``) is the integer's digits."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def stored_doc(record: dict, resource: Resource) -> dict:
    """The store keys documents by a string ``id``; a contract's id may be an integer or have
    another name, so the record is kept whole under ``data`` beside its key."""
    return {"id": record_key(record[resource.id_field]), "data": record}


def _properties(schema: dict | None) -> dict:
    return _flat(schema).get("properties", {})




def _flat(schema: t.Any) -> dict:
    """``flatten(schema)`` (``{}`` for no schema), computed once per schema object: every
    create and update fits each field it writes to its schema (:func:`conform`), and
    flattening them on every request was a fifth of a create's CPU. Cached by identity, as
    :func:`projector` is. Read-only: never mutate the result."""
    if not isinstance(schema, dict) or not schema:
        return {}
    return _flattened(schema)


@by_identity()
def _flattened(schema: dict) -> dict:
    return flatten(schema)


_STRING_RULES = ("pattern", "format", "minLength", "maxLength")
_NUMBER_RULES = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")


def _scalar_fits(value: str | int | float, schema: dict) -> bool:
    """``value`` meets the string rules (pattern, format, length) or number rules (bounds,
    ``multipleOf``) of the field's response ``schema``, where it has any: a validator per
    schema object and kind, built once, as in :func:`_flat`."""
    check = _string_check(schema) if isinstance(value, str) else _number_check(schema)
    return check is None or check(value)


def _rules_check(schema: dict, kind: str, rules: tuple[str, ...]) -> t.Callable[[t.Any], bool] | None:
    flat = _flat(schema)
    found = {k: flat[k] for k in rules if k in flat}
    if not found:
        return None
    try:
        return jsonschema_rs.validator_for({"type": kind, **found}, validate_formats=True).is_valid
    except (ValueError, TypeError):
        return None


@by_identity()
def _string_check(schema: dict) -> t.Callable[[t.Any], bool] | None:
    return _rules_check(schema, "string", _STRING_RULES)


@by_identity()
def _number_check(schema: dict) -> t.Callable[[t.Any], bool] | None:
    return _rules_check(schema, "number", _NUMBER_RULES)


def wrap_record(data: t.Any, path: tuple[str, ...], schema: dict | None, now: str) -> t.Any:
    """``data`` placed at ``path`` of a body shaped by ``schema`` (Asana's ``{data: ...}``),
    the body's other required properties completed from the schema."""
    if not path:
        return data
    head, *rest = path
    sub = _properties(schema).get(head)
    body = complete({head: wrap_record(data, tuple(rest), sub, now)}, _flat(schema), now)
    return body


class Page(t.NamedTuple):
    """One page of a list: its records and what the body says around them."""

    records: list
    total: int
    next_offset: int | None
    listing: t.Any
    schema: dict | None
    now: str

    def __call__(self, view: t.Callable[[t.Any], t.Any]) -> t.Any:
        items = [view(record) for record in self.records]
        listing = self.listing
        if not listing.items_path:
            return items
        body = wrap_record(items, listing.items_path, self.schema, self.now)
        properties = _properties(self.schema)
        for path in listing.count_fields:
            target = body
            for key in path[:-1]:
                sub = target.get(key)
                target[key] = sub = dict(sub) if isinstance(sub, dict) else {}
                target = sub
            target[path[-1]] = self.total
        if listing.next_field:
            cursor = _cursor(properties.get(listing.next_field), self.next_offset, self.now)
            required = listing.next_field in _flat(self.schema).get("required", [])
            if cursor is not None or (required and _nullable(properties.get(listing.next_field))):
                body[listing.next_field] = cursor
            else:
                body.pop(listing.next_field, None)  # the last page: no cursor
        return body


def page_of(records: list, listing: t.Any, params: t.Mapping[str, t.Any], schema: dict | None, now: str) -> Page:
    """The page of ``records`` the request's paging parameters ask for (``limit``/``per_page``,
    ``offset``/cursor, ``page``; a limit's declared default applies when none is sent)."""
    limit = _integer(params.get(listing.limit_param)) if listing.limit_param else None
    if limit is None:
        limit = listing.default_limit
    start = 0
    if listing.offset_param and params.get(listing.offset_param) is not None:
        start = _integer(params.get(listing.offset_param)) or 0
    elif listing.page_param and params.get(listing.page_param) is not None and limit:
        start = max((_integer(params.get(listing.page_param)) or 1) - 1, 0) * limit
    start = max(start, 0)
    end = len(records) if limit is None or limit < 0 else start + limit
    chosen = records[start:end]
    more = end < len(records)
    return Page(chosen, len(records), end if more else None, listing, schema, now)


def _integer(value: t.Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        return None


def _nullable(schema: t.Any) -> bool:
    if not isinstance(schema, dict):
        return False
    types = schema.get("type")
    branches = [*schema.get("anyOf", []), *schema.get("oneOf", [])]
    return (
        schema.get("nullable") is True
        or types == "null"
        or (isinstance(types, list) and "null" in types)
        or any(isinstance(b, dict) and b.get("type") == "null" for b in branches)
    )


def _cursor(schema: t.Any, offset: int | None, now: str) -> t.Any:
    """Where the next page starts, in the shape the contract gives its cursor (a string, a
    number, or an object such as Asana's ``{offset, path, uri}``); ``None`` on the last page."""
    if offset is None:
        return None
    flat = _flat(schema)
    kind = flat.get("type")
    kind = next((k for k in kind if k != "null"), None) if isinstance(kind, list) else kind
    if kind in ("integer", "number"):
        return offset
    if kind == "object" or "properties" in flat:
        properties = flat.get("properties", {})
        key = next((n for n in ("offset", "cursor", "token", "next", "starting_after") if n in properties), None)
        return complete({key: str(offset)} if key else {}, flat, now)
    return str(offset)


_JSON_TYPES: dict[type, tuple[str, ...]] = {
    dict: ("object",),
    list: ("array",),
    str: ("string",),
    bool: ("boolean",),
    int: ("integer", "number"),
    float: ("number",),
    type(None): ("null",),
}
_REFERENCE_KEYS = ("gid", "id", "sid", "uuid", "key", "slug", "name")
_DROP = object()


def conform(
    record: dict, sent: t.Iterable[str], schema: dict | None, now: str, before: t.Mapping[str, t.Any] | None = None
) -> dict:
    """``record`` with each field just written (``sent``, stored names) made to fit the record
    schema, where the request spells a value otherwise than responses do: Asana takes
    ``workspace: "123"`` and answers ``workspace: {gid: "123", ...}``, takes ``followers:
    "a,b"`` and answers a list of users. A value that cannot be made to fit is not stored (the
    record keeps what it had), so every answer stays valid against the contract."""
    properties = _properties(schema)
    if properties and properties is schema.get("properties") and _already_fits(record, schema):  # type: ignore[union-attr]
        # The whole record is valid, so is each field it holds (the schema's own ``properties``,
        # nothing merged into them): one compiled check instead of one per field written.
        return record
    out = record
    for name in sent:
        if name not in record or name not in properties:
            continue
        if _already_fits(record[name], properties[name]):
            continue  # the common case, one compiled check instead of walking the value
        fitted = _fit(record[name], properties[name], now)
        if fitted is record[name]:
            continue
        if out is record:
            out = dict(record)
        if fitted is _DROP and before is not None and name in before:
            out[name] = before[name]
        elif fitted is _DROP:
            out.pop(name, None)
        else:
            out[name] = fitted
    return out


def _already_fits(value: t.Any, schema: dict) -> bool:
    """``value`` is valid for its field's response ``schema`` as the response validator judges
    it (Draft 2020-12 with formats): :func:`_fit` would return it unchanged, so it is skipped.
    A validator per schema object, built once (``False`` where one cannot be built: ``_fit``
    then decides)."""
    check = _field_check(schema)
    if check is None:
        return False
    try:
        return bool(check(value))
    except (ValueError, TypeError, RecursionError):
        return False


@by_identity()
def _field_check(schema: dict) -> t.Callable[[t.Any], bool] | None:
    try:
        return jsonschema_rs.validator_for(schema, validate_formats=True).is_valid
    except (ValueError, TypeError, RecursionError):
        return None


@by_identity()
def _types(schema: dict) -> tuple[str, ...] | None:
    """The JSON types ``schema`` allows (``None``: any), once per schema object (see :func:`_flat`)."""
    kind = _flat(schema).get("type")
    kinds = None if kind is None else tuple(kind) if isinstance(kind, list) else (kind,)
    if kinds is not None and _flat(schema).get("nullable"):
        kinds = (*kinds, "null")
    return kinds


def _accepts_type(schema: t.Any, value: t.Any) -> bool:
    kinds = _types(schema) if isinstance(schema, dict) else None
    return kinds is None or any(k in kinds for k in _JSON_TYPES.get(type(value), ()))


def _fit(value: t.Any, schema: t.Any, now: str) -> t.Any:
    if not isinstance(schema, dict):
        return value
    kinds = _types(schema)
    if isinstance(value, list) and kinds is not None and "array" in kinds:
        # The items too: Asana takes ``followers: ["123"]`` and answers ``[{gid: "123", ...}]``.
        items = flatten(schema).get("items")
        fitted = [_fit(v, items, now) for v in value] if isinstance(items, dict) else value
        if any(v is _DROP for v in fitted):
            return _DROP
        return value if all(a is b for a, b in zip(fitted, value, strict=True)) else fitted
    if kinds is None or any(k in kinds for k in _JSON_TYPES.get(type(value), ())):
        enum = schema.get("enum")
        if isinstance(enum, list) and value not in enum and value is not None:
            # Asana's membership takes any access_level and answers one of four.
            return _DROP
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and not _scalar_fits(value, schema):
            # DigitalOcean's reserved IP takes any project_id and answers a uuid, its agent
            # guardrail any integer priority and answers an int32: a value the response
            # refuses is not stored (it would be answered as a 500).
            return _DROP
        if isinstance(value, dict) and value:
            return _fit_object(value, schema, now)
        return value
    flat = _flat(schema)
    if "object" in kinds and isinstance(value, (str, int)) and not isinstance(value, bool):
        properties = flat.get("properties", {})
        # The reference property that can hold the value: DigitalOcean's image ``"ubuntu-20-04"``
        # is the image's ``slug``, not its integer ``id``.
        key = next(
            (k for k in _REFERENCE_KEYS if k in properties and _accepts_type(properties[k], value)),
            None,
        )
        return complete({key: value}, flat, now) if key else _DROP
    if "array" in kinds:
        items = flat.get("items") if isinstance(flat.get("items"), dict) else {}
        values = value.split(",") if isinstance(value, str) else [value]
        fitted = [_fit(v.strip() if isinstance(v, str) else v, items, now) for v in values if v != ""]
        return _DROP if any(v is _DROP for v in fitted) else fitted
    if "integer" in kinds and isinstance(value, float) and value.is_integer():
        # JSON Schema's integer is any number with a zero fraction: Petstore's ``"id": -878.0``.
        return int(value)
    if "string" in kinds and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if ("integer" in kinds or "number" in kinds) and isinstance(value, str):
        try:
            return int(value) if "integer" in kinds else float(value)
        except ValueError:
            return _DROP
    return _DROP


def _fit_object(value: dict, schema: dict, now: str) -> t.Any:
    """An object's own fields fitted as :func:`conform` fits a record's (DigitalOcean's
    ``guardrails: [{priority}]``): a field that cannot be made to fit is left out, and a
    required one left out is completed from the schema; unchanged, the same object."""
    flat = _flat(schema)
    properties = flat.get("properties")
    if not isinstance(properties, dict) or not properties:
        return value
    out = value
    for name, field in value.items():
        sub = properties.get(name)
        if not isinstance(sub, dict):
            continue
        fitted = _fit(field, sub, now)
        if fitted is field:
            continue
        if out is value:
            out = dict(value)
        if fitted is _DROP:
            del out[name]
        else:
            out[name] = fitted
    if out is value:
        return value
    return complete(out, flat, now) if any(name not in out for name in flat.get("required", ())) else out
