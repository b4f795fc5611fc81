"""What the sandbox infers from a contract: its resources, their operations, ids, tenants,
envelopes, lists and error format.

Pure (dicts in, dataclasses out, no web imports), so the server and the conformance suite
read a contract the same way. Inference follows REST conventions, so that a public contract
nobody wrote for the sandbox is served unmodified:

* **Every operation** gets an :class:`Operation`. A *resource* is a collection path (keyed with
  its parameter names erased and a ``.json`` suffix dropped) that has a create and a read or a
  list, whose records name themselves by their id; its operations are ``list | create | read |
  update | delete`` (an update is ``PUT``/``PATCH``/``POST`` on the item path, or ``PUT`` on
  the collection with the id in the body, Petstore 3's ``PUT /pet``). Every other operation
  (actions, form posts, logins, searches, ``GET /``, a ``default``-only answer) is
  ``answer``: answered from its examples or its schema (``engine/answers.py``). Nothing an
  operation declares stops a contract from loading.
* **Names.** A resource is named by its last fixed segment (``customers``), with the segments
  before it when that name is taken (``articles_comments``): two ``.../comments`` collections
  are two resources.
* **Scope.** The collection path's tenant parameter (``organizationId``, ``orgId``,
  ``tenant_id``; or ``x-sandbox.tenant.path``) names the tenant; its other parameters are
  *parents*: a record created under ``/repos/octocat/hello/issues`` lives there only.
  Suffixed item paths (``/Calls/{Sid}.json``) belong to their suffixed collection.
* **Record shape.** The union of what the read, create, update and list answer, with
  ``allOf`` merged and the object branch of ``oneOf``/``anyOf`` (``shapes.flatten``). The id
  field: ``x-sandbox-id``; else the item parameter when the record has it (``eventId``,
  ``slug``, ``username``); else the property the parameter ends with (``project_gid`` ->
  ``gid``, ``petId`` -> ``id``); else ``id``/``gid``/``sid``... Its kind (uuid, integer,
  24-hex, a pattern such as Twilio's ``^CH[0-9a-f]{32}$``, ipv4) from the property or any item
  path parameter. A create may name the id when its body declares it (``username``).
* **Wrappers.** A request body of one object property the record lacks is a wrapper
  (Asana's ``{data: ...}``, Conduit's ``{article: ...}``); a response body whose one object
  property (beside ``links``/``meta``) is not itself a record is an envelope around it.
* **Lists.** A bare array, or an object whose array of objects (``data``, ``items``,
  ``results``, Conduit's ``articles``) holds the records, with counts beside it or one level
  down (``articlesCount``, ``meta.total``) and a cursor (``next_page``); ``limit``/``per_page``,
  ``offset``/cursor and ``page`` query parameters page it (:class:`Listing`).
* **Errors.** Without ``x-sandbox.errors``, the error schema the contract declares most
  (petstore-expanded's ``Error {code, message}``) gives the error body, unless the default
  body already fits it; statuses are mapped onto declared ones (:func:`declared_status`).

Where a contract cannot say what the sandbox needs, the ``x-sandbox`` extensions below do
(all optional):

Top level ``x-sandbox``:

* ``plugin``: the name of a domain plug-in (Timbrix: ``timbrix``, its CFDI rules and field
  mapping); the plug-in is looked up in the engine's registry, never imported by name.
* ``tenant``: ``{header: NAME}`` or ``{path: NAME}``: what scopes records to an organization.
  Default: a tenant-named parameter of the collection path (Timbrix's ``organizationId``);
  with none, the caller's own organization (a key bound to one account).
* ``envelope``: a template wrapping every successful body, e.g. BeeL's
  ``{success: true, data: "{{data}}", meta: {timestamp: "{{now}}", request_id: "{{request_id}}"}}``.
* ``errors``: ``{body: TEMPLATE, codes: {STATUS|kind: CODE}, messages: {STATUS: TEXT}}``: the
  error body (placeholders ``{{status}} {{code}} {{message}} {{details}} {{now}}
  {{request_id}}``; a key whose placeholder has no value is left out).

Per operation: ``x-sandbox-resource`` (the collection name) and ``x-sandbox-action``
(``list|create|read|update|delete``) override inference. Per schema property:
``x-sandbox-stored-as: NAME`` stores a request field under another name (the bookkeeping API
takes ``billingAddressZipcode`` and answers ``billingAddressPostcode``), or under a dotted path
into a nested object (Timbrix's flat ``addressZip`` is the record's ``address.zip``); without
it, a request field the record spells otherwise is stored under the record's spelling
(Twilio's ``FriendlyName`` is ``friendly_name``, ``records.field_aliases``). Per resource
schema: ``x-sandbox-id: FIELD`` names the id field.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import typing as t

# Both lived here before loading grew; imported from here by the HTTP layer and the suite.
from .errors import ContractError
from .identity import by_identity
from .refs import resolve_refs
from .shapes import flatten, instance, valid

HTTP_METHODS = ("get", "put", "post", "delete", "patch")
ACTIONS = ("list", "create", "read", "update", "delete")
PLACEHOLDER = re.compile(r"^\{\{(\w+)\}\}$")

DEFAULT_ERROR_BODY = {"statusCode": "{{status}}", "message": "{{message}}", "error": "{{code}}"}
DEFAULT_ERROR_CODES: dict[str, str] = {
    "400": "BAD_REQUEST",
    "401": "UNAUTHORIZED",
    "403": "FORBIDDEN",
    "404": "NOT_FOUND",
    "405": "METHOD_NOT_ALLOWED",
    "409": "CONFLICT",
    "413": "PAYLOAD_TOO_LARGE",
    "415": "UNSUPPORTED_MEDIA_TYPE",
    "421": "MISDIRECTED_REQUEST",
    "431": "REQUEST_HEADER_FIELDS_TOO_LARGE",
    "500": "INTERNAL_SERVER_ERROR",
}
DEFAULT_MESSAGES: dict[int, str] = {
    400: "Bad request",
    401: "Authentication required",
    403: "User is not a member of this organization",
    404: "Not found",
    405: "Method not allowed",
    413: "Request body is larger than 1 MiB",
    415: "Unsupported media type: send application/json",
    421: "This sandbox does not answer for that Host",
    431: "Request headers are too large",
    500: "Internal server error",
}
MAX_MESSAGE_LENGTH = 500


def render(template: t.Any, values: t.Mapping[str, t.Any]) -> t.Any:
    """Fill ``"{{name}}"`` placeholders (whole strings only, so a value keeps its JSON type).
    A key whose placeholder has no value (``None``) is dropped. Always new containers."""
    return _compiled_filler(template)(values)


Filler = t.Callable[[t.Mapping[str, t.Any]], t.Any]


@by_identity(limit=10_000)
def _compiled_filler(template: t.Any) -> Filler:
    """Templates are the contract's envelope and error bodies, rendered on every answer (BeeL
    wraps each success in one): each is walked once, not per answer."""
    return _filler(template)


def _placeholder(value: t.Any) -> str | None:
    match = PLACEHOLDER.match(value) if isinstance(value, str) else None
    return match[1] if match else None


def _filler(template: t.Any) -> Filler:
    if isinstance(template, dict):
        parts = [(key, _placeholder(value), _filler(value)) for key, value in template.items()]

        def fill_object(values: t.Mapping[str, t.Any]) -> dict:
            out = {}
            for key, name, fill in parts:
                if name is None:
                    out[key] = fill(values)
                elif (value := values.get(name)) is not None:
                    out[key] = value
            return out

        return fill_object
    if isinstance(template, list):
        items = [_filler(item) for item in template]
        return lambda values: [fill(values) for fill in items]
    name = _placeholder(template)
    if name is not None:
        return lambda values: values.get(name)
    return lambda _values: template


def placeholder_path(template: t.Any, name: str, path: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """Where ``"{{name}}"`` sits in a template, e.g. ``("data",)``."""
    if isinstance(template, dict):
        for key, value in template.items():
            found = placeholder_path(value, name, (*path, key))
            if found is not None:
                return found
    elif isinstance(template, str) and (match := PLACEHOLDER.match(template)) and match[1] == name:
        return path
    return None


@dataclasses.dataclass(frozen=True)
class ErrorFormat:
    """How a contract's error bodies look (default: the NestJS shape Timbrix uses)."""

    body: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_ERROR_BODY))
    codes: dict[str, str] = dataclasses.field(default_factory=lambda: dict(DEFAULT_ERROR_CODES))
    messages: dict[str, str | None] = dataclasses.field(default_factory=dict)
    """Fixed messages by status or error kind (``"400"``, ``"invalid_json"``); a kind mapped
    to ``null`` keeps the specific message."""

    def code(self, status: int, kind: str | None = None) -> str:
        if kind and kind in self.codes:
            return self.codes[kind]
        return self.codes.get(str(status)) or DEFAULT_ERROR_CODES.get(str(status), "ERROR")

    def render(
        self,
        status: int,
        message: str | None = None,
        *,
        details: t.Any = None,
        kind: str | None = None,
        now: str | None = None,
        request_id: str | None = None,
    ) -> dict[str, t.Any]:
        """The error body. A fixed message for the status (``messages``) wins; the specific
        text then travels in ``details`` (BeeL's ``{"message": "Validation error",
        "details": {"field": "reason"}}``) if the template has a place for it."""
        if status < 400 or status > 599:
            status = 500
        text = message or DEFAULT_MESSAGES.get(status, "Error")
        fixed = self.messages[kind] if kind in self.messages else self.messages.get(str(status))
        if fixed is not None and fixed != text and details is None and message:
            details = {"reason": _bounded(message)}
        return render(
            self.body,
            {
                "status": status,
                "code": self.code(status, kind),
                "message": _bounded(fixed or text),
                "details": details,
                "now": now,
                "request_id": request_id,
            },
        )


def _bounded(text: str) -> str:
    text = " ".join(text.split())
    return text[:MAX_MESSAGE_LENGTH] + "..." if len(text) > MAX_MESSAGE_LENGTH else text


@dataclasses.dataclass(frozen=True)
class Resource:
    name: str
    collection_path: str
    item_path: str | None
    id_param: str | None
    id_field: str
    id_kind: str  # "uuid" | "integer" | "objectid" | "string"
    schema: dict  # the record as responses show it (resolved, composition merged, envelope removed)
    created_field: str | None
    updated_field: str | None
    tenant_param: str | None = None
    """The collection path parameter that names the tenant (Timbrix's ``organizationId``)."""
    parent_params: tuple[str, ...] = ()
    """The other collection path parameters: a record lives under its parents' values
    (``/repos/{owner}/{repo}/issues``), positions as in ``collection_path``."""
    client_ids: bool = False
    """A create may name the record's id (a natural key such as Petstore's ``username``)."""
    id_schema: dict | None = None
    """The id's schema, for ids of kind ``string`` that must fit a pattern or length."""


@dataclasses.dataclass(frozen=True)
class Listing:
    """How a list answer is built from the response schema: where the records go, what else
    the page says, and which query parameters page it."""

    items_path: tuple[str, ...] = ()
    """Where the array sits in the body (``()``: the body is the array; ``("data",)``)."""
    page_schema: dict | None = None
    """The body's schema around the array (``None`` for a bare array)."""
    count_fields: tuple[tuple[str, ...], ...] = ()
    """Integer properties beside the array (or one object down: DigitalOcean's ``meta.total``)
    that say how many records there are in all."""
    next_field: str | None = None
    """A property beside the array that says where the next page starts (a cursor)."""
    limit_param: str | None = None
    offset_param: str | None = None
    page_param: str | None = None
    offset_is_token: bool = False
    """The offset parameter is an opaque cursor string (Asana's ``offset``): the sandbox's
    cursors are the decimal position."""
    default_limit: int | None = None


@dataclasses.dataclass(frozen=True)
class ErrorMedia:
    """One media type an error response declares, with its schema and example."""

    media_type: str
    schema: dict | None = None
    example: t.Any = None


@dataclasses.dataclass(frozen=True)
class ErrorContent:
    """An error response an operation declares: its key and its media types (none: the
    response has no body)."""

    key: str
    media: tuple[ErrorMedia, ...] = ()


@dataclasses.dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    path: str
    action: str  # one of ACTIONS, or "answer": answered from the contract, not the store
    resource: str  # "" for an answered operation
    status: int  # the declared success status
    body_schema: dict | None  # resolved request body schema (without the envelope or wrapper)
    response_schema: dict | None  # resolved success body schema (with the envelope)
    required_scopes: tuple[str, ...]
    secured: bool  # a token is required
    id_param: str | None = None
    """This operation's item path parameter (names differ between paths of one resource)."""
    parent_params: tuple[str, ...] = ()
    """This operation's parent path parameters, in the resource's order."""
    body_key: str | None = None
    """The request wraps the record under this key (Conduit's ``{article: {...}}``)."""
    record_path: tuple[str, ...] = ()
    """Where the record (or the list page) sits in the success body beyond the x-sandbox
    envelope (Asana's ``("data",)``); siblings are completed from the schema."""
    listing: Listing | None = None
    id_in_body: bool = False
    """An update on the collection path that names the record by the id in its body
    (Petstore 3's ``PUT /pet``)."""
    media_types: tuple[str, ...] = ()
    """The success response's media types, as declared (JSON ones first)."""
    declared: tuple[str, ...] = ()
    """The response keys the operation declares (``"200"``, ``"4XX"``, ``"default"``)."""
    success_key: str = ""
    """The response key the success status answers under (``"default"`` when no 2xx is)."""
    body_media: tuple[str, ...] = ()
    """The request body's media types."""
    response_media: tuple[str, ...] = ()
    """Every media type any of its responses declares (Connexion needs to be told which one
    an answer is in as soon as there are several, even across statuses)."""
    examples: tuple[tuple[str, t.Any], ...] = ()
    """``(media type, example)`` for each success media type that offers one (the response's
    ``example``, its first ``examples`` value, or its schema's example)."""
    errors: tuple[ErrorContent, ...] = ()
    """The error responses it declares (4xx, 5xx, ``4XX``, ``default``), with their content."""


@dataclasses.dataclass(frozen=True)
class Profile:
    title: str
    plugin: str | None
    tenant: dict[str, str]  # {} | {"header": name} | {"path": name}
    envelope: dict | None
    errors: ErrorFormat
    resources: dict[str, Resource]
    operations: dict[str, Operation]  # by operationId

    @property
    def data_path(self) -> tuple[str, ...]:
        """Where the record sits inside a successful body (``()`` without an envelope)."""
        if self.envelope is None:
            return ()
        return placeholder_path(self.envelope, "data") or ()

    def wrap(self, data: t.Any, now: str, request_id: str) -> t.Any:
        if self.envelope is None:
            return data
        return render(self.envelope, {"data": data, "now": now, "request_id": request_id})

    def unwrap(self, body: t.Any) -> t.Any:
        for key in self.data_path:
            if not isinstance(body, dict):
                return None
            body = body.get(key)
        return body

    def resource_of(self, operation_id: str) -> Resource | None:
        operation = self.operations.get(operation_id)
        return self.resources.get(operation.resource) if operation else None


_PREFERRED_STAND_INS: dict[int, tuple[int, ...]] = {
    400: (400, 422),
    401: (401, 403),
    403: (403, 401, 404),
    404: (404, 410, 400, 422),
    409: (409, 400, 422),
    422: (422, 400),
}


def declared_status(declared: t.Collection[str], status: int) -> int:
    """The status to send for ``status`` among the responses an operation declares: itself
    when declared, or covered by ``4XX`` or ``default``; else the declared error status that
    means most nearly the same (a missing record under a contract declaring only ``422`` is a
    422: a client can only be expected to handle what the contract lists); with no declared
    error status at all, ``status`` itself."""
    keys = {str(k).upper() for k in declared}
    if not keys or str(status) in keys or "DEFAULT" in keys or f"{status // 100}XX" in keys:
        return status
    errors = sorted(int(k) for k in keys if k.isdigit() and 400 <= int(k) < 600)
    for candidate in _PREFERRED_STAND_INS.get(status, ()):
        if candidate in errors:
            return candidate
    if status >= 500:
        return status  # the sandbox's own failure: never passed off as the client's
    if status // 100 == 4:
        for candidate in (400, 422):
            if candidate in errors:
                return candidate
    same_class = [code for code in errors if code // 100 == status // 100]
    if same_class:
        return min(same_class, key=lambda code: abs(code - status))
    ranges = sorted(int(k[0]) * 100 for k in keys if len(k) == 3 and k[0] in "45" and k.endswith("XX"))
    if ranges:
        return ranges[0]
    return errors[0] if errors else status


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


_ITEM_SEGMENT = re.compile(r"^\{([^}]+)\}(\.[A-Za-z0-9]+)?$")
_SUFFIX = re.compile(r"^(.*[^.])(\.[A-Za-z0-9]+)$")
_TENANT_PARAM = re.compile(r"^(organization|org|tenant)[_-]?id$", re.IGNORECASE)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_ID_NAMES = ("id", "gid", "sid", "uuid", "guid", "uid", "key", "slug", "code", "name")
_META_NAMES = ("links", "_links", "meta", "_meta", "pagination", "paging", "error", "errors", "metadata")
_LIST_KEYS = ("data", "items", "results", "records", "entries", "values", "elements", "content")
_COUNT_NAMES = re.compile(r"^(total|count|total_?count|total_?results|total_?items|\w+Count|\w+_count)$", re.I)
_NEXT_NAMES = ("next_page", "nextPage", "next", "next_cursor", "nextCursor", "next_page_token", "nextPageToken",
               "cursor")
_LIMIT_PARAMS = ("limit", "per_page", "perPage", "page_size", "pageSize", "PageSize", "max_results", "maxResults",
                 "size", "count", "top", "$top")
_OFFSET_PARAMS = ("offset", "skip", "start", "$skip", "starting_after", "after", "cursor", "page_token",
                  "pageToken")
_PAGE_PARAMS = ("page", "Page", "page_number", "pageNumber", "PageNumber")


def _param_name(segment: str) -> str | None:
    match = _ITEM_SEGMENT.match(segment)
    return match[1] if match else None


def _infer_action(method: str, path: str) -> str | None:
    """The CRUD role a method and path shape suggest (whether the resource really is stateful
    is decided once all its operations are known, see :func:`load_profile`)."""
    last = _segments(path)[-1] if _segments(path) else ""
    item = _param_name(last) is not None
    return {
        ("get", False): "list",
        ("post", False): "create",
        ("get", True): "read",
        ("put", True): "update",
        ("patch", True): "update",
        ("post", True): "update",
        ("delete", True): "delete",
        ("put", False): "update",
        ("patch", False): "update",
    }.get((method, item))


def _collection_of(path: str, action: str) -> str:
    """The collection path an operation works on: its path, or its item path's parent (the
    item segment's suffix moves to the parent: ``/Calls/{Sid}.json`` -> ``/Calls.json``)."""
    segments = _segments(path)
    if not segments or _param_name(segments[-1]) is None:
        return "/" + "/".join(segments)
    suffix = _ITEM_SEGMENT.match(segments[-1])[2] or ""
    parent = segments[:-1]
    if parent and suffix:
        parent = [*parent[:-1], parent[-1] + suffix]
    return "/" + "/".join(parent)


def _collection_key(collection: str) -> str:
    """What two paths of one resource share: parameter names erased, a suffix (``.json``)
    dropped, so ``/c/{slug}/x.json`` and ``/c/{id}/x`` are one collection."""
    segments = ["{}" if _param_name(s) else s for s in _segments(collection)]
    if segments and (match := _SUFFIX.match(segments[-1])) and segments[-1] != "{}":
        segments[-1] = match[1]
    return "/" + "/".join(segments)


def _status_keys(operation: dict) -> list[str]:
    return [str(code) for code in (operation.get("responses") or {})]


def _success_key(operation: dict) -> str | None:
    """The response a successful call answers with: the lowest 2xx, else ``2XX``, else
    ``default``, else the lowest declared status (a 301-only operation)."""
    keys = _status_keys(operation)
    twos = sorted(k for k in keys if k.isdigit() and k.startswith("2"))
    if twos:
        return twos[0]
    for key in ("2XX", "2xx", "default"):
        if key in keys:
            return key
    numbers = sorted(k for k in keys if k.isdigit())
    return numbers[0] if numbers else None


def _status_of(key: str | None) -> int:
    if key is None or not key[:1].isdigit():
        return 200
    return int(key) if key.isdigit() else int(key[0]) * 100


def _response(operation: dict, key: str | None) -> dict:
    responses = operation.get("responses") or {}
    for code, response in responses.items():
        if str(code) == key and isinstance(response, dict):
            return response
    return {}


def is_json_media(media: str) -> bool:
    """``application/json``, ``application/problem+json``, ``*/*``: the sandbox answers JSON."""
    media = media.split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json") or media == "*/*" or "json" in media


_is_json = is_json_media


def media_types(content: t.Any) -> tuple[str, ...]:
    """The media types of a ``content`` map, JSON ones first (the sandbox prefers JSON)."""
    if not isinstance(content, dict):
        return ()
    names = [str(m) for m in content]
    return tuple(sorted(names, key=lambda m: not _is_json(m)))


def _json_schema(body: dict | None) -> dict | None:
    if not isinstance(body, dict):
        return None
    content = body.get("content") or {}
    media = next((m for m in media_types(content) if _is_json(m)), None)
    if media is None:
        # Form posts (Twilio's) carry the same fields: their schema describes the record too.
        media = next((m for m in content if "form" in m), None)
    schema = content[media].get("schema") if media and isinstance(content[media], dict) else None
    return schema if isinstance(schema, dict) else None


def _sub_schema(schema: dict | None, path: tuple[str, ...]) -> dict | None:
    for key in path:
        if not isinstance(schema, dict):
            return None
        schema = flatten(schema).get("properties", {}).get(key)
    return schema


def _record_schema(schema: dict | None) -> dict | None:
    """The record shape from a list or item body (arrays give their items; composition is
    merged, see ``shapes.flatten``)."""
    if not isinstance(schema, dict):
        return None
    schema = flatten(schema)
    if schema.get("type") == "array" or "items" in schema:
        return _record_schema(schema.get("items"))
    return schema


def _objectish(schema: t.Any) -> bool:
    if not isinstance(schema, dict):
        return False
    flat = flatten(schema)
    return bool(flat.get("properties")) or flat.get("type") == "object"


def _arrayish(schema: t.Any) -> bool:
    if not isinstance(schema, dict):
        return False
    flat = flatten(schema)
    types = flat.get("type")
    return types == "array" or (isinstance(types, list) and "array" in types) or "items" in flat


def _looks_like_record(schema: dict, id_hint: str | None) -> bool:
    """Has an id-like scalar of its own: the body is the record, not a wrapper around it."""
    properties = flatten(schema).get("properties", {})
    # Only scalar properties name a record: ``{floating_ip: {...}}`` wraps one, even though
    # its item parameter is ``{floating_ip}`` too.
    names = {n.lower() for n, sub in properties.items() if not _objectish(sub) and not _arrayish(sub)}
    if id_hint and id_hint.lower() in names:
        return True
    return any(n in names for n in _ID_NAMES[:7])


def _wrapper_key(schema: dict | None, id_hint: str | None) -> str | None:
    """The property an item body wraps its record in (Asana's ``data``, Conduit's ``article``,
    DigitalOcean's ``droplet``): the one object-valued property of a body that is not itself a
    record (other properties, such as ``links``, may sit beside it)."""
    if not isinstance(schema, dict):
        return None
    flat = flatten(schema)
    properties = flat.get("properties") or {}
    if not properties or len(properties) > 4 or _looks_like_record(flat, id_hint):
        return None
    objects = [
        name
        for name, sub in properties.items()
        if _objectish(sub) and not _arrayish(sub) and name.lower() not in _META_NAMES
    ]
    if len(objects) == 1:
        return objects[0]
    preferred = [name for name in objects if name in _LIST_KEYS]
    return preferred[0] if len(preferred) == 1 else None


def _list_key(schema: dict | None) -> str | None:
    """The property of a list body holding the records (``data``, ``items``, ``results``,
    Conduit's ``articles``): the one array of objects, or the conventional name among several."""
    if not isinstance(schema, dict):
        return None
    properties = flatten(schema).get("properties") or {}
    arrays = [name for name, sub in properties.items() if _arrayish(sub) and _objectish(flatten(sub).get("items"))]
    if not arrays:
        arrays = [name for name, sub in properties.items() if _arrayish(sub)]
    if len(arrays) == 1:
        return arrays[0]
    preferred = [name for name in arrays if name in _LIST_KEYS]
    return preferred[0] if preferred else None


def _listing(response: dict | None, params: dict[str, dict]) -> Listing | None:
    """How a list answer is shaped and paged (``None``: the body holds no list)."""
    if not isinstance(response, dict):
        return None
    query = {name: p for name, p in params.items() if p.get("in") == "query"}
    limit = next((n for n in _LIMIT_PARAMS if n in query), None)
    offset = next((n for n in _OFFSET_PARAMS if n in query), None)
    page = next((n for n in _PAGE_PARAMS if n in query), None)
    offset_schema = flatten(query[offset].get("schema") or {}) if offset else {}
    limit_schema = flatten(query[limit].get("schema") or {}) if limit else {}
    default_limit = limit_schema.get("default") if isinstance(limit_schema.get("default"), int) else None
    paging = dict(
        limit_param=limit,
        offset_param=offset,
        page_param=page,
        offset_is_token=offset_schema.get("type") not in ("integer", "number"),
        default_limit=default_limit,
    )
    if _arrayish(response):
        return Listing(**paging)
    key = _list_key(response)
    if key is None:
        return None
    page_schema = flatten(response)
    properties = page_schema.get("properties", {})
    counts: list[tuple[str, ...]] = []
    for name, sub in properties.items():
        if name == key:
            continue
        flat = flatten(sub) if isinstance(sub, dict) else {}
        if _COUNT_NAMES.match(name) and flat.get("type") in ("integer", "number"):
            counts.append((name,))
        for inner, deeper in (flat.get("properties") or {}).items():
            if _COUNT_NAMES.match(inner) and flatten(deeper).get("type") in ("integer", "number"):
                counts.append((name, inner))
    next_field = next((n for n in _NEXT_NAMES if n in properties and n != key), None)
    return Listing(
        items_path=(key,), page_schema=page_schema, count_fields=tuple(counts), next_field=next_field, **paging
    )


def _body_key(schema: dict | None, record: dict | None) -> str | None:
    """The key a request body wraps its record in (Asana's ``{data: {...}}``, Conduit's
    ``{article: {...}}``): the one object-valued property of the body, which the record does
    not have, beside at most request options the record does not have either (Discourse's
    ``{post: {raw, edit_reason}, bypass_bump: true}``: read as one flat record, ``post`` was
    stored as a stray field, and the update answered 200 having changed nothing)."""
    if not isinstance(schema, dict):
        return None
    properties = flatten(schema).get("properties") or {}
    record_properties = (record or {}).get("properties", {})
    if not properties or any(name in record_properties for name in properties):
        return None
    wrappers = [name for name, sub in properties.items() if _objectish(sub)]
    return wrappers[0] if len(wrappers) == 1 else None


def id_kind(schema: dict | None) -> str:
    """Which id generator the schema asks for."""
    schema = flatten(schema or {})
    types = schema.get("type")
    types = types if isinstance(types, list) else [types]
    if "integer" in types or "number" in types:
        return "integer"
    if schema.get("format") == "uuid":
        return "uuid"
    if schema.get("pattern") in ("^[0-9a-f]{24}$", "^[a-f0-9]{24}$"):
        return "objectid"
    return "string"


def infer_id_field(schema: dict, id_param: str | None) -> str:
    """The record's id property: ``x-sandbox-id``; the item path parameter itself when the
    record has it (Museum's ``eventId``, Conduit's ``slug``, Petstore's ``username``); the
    property the parameter ends with (``project_gid`` -> ``gid``, ``petId`` -> ``id``,
    ``ChannelSid`` -> ``sid``); else ``id``, ``gid``, ``sid``... whichever the record has."""
    if schema.get("x-sandbox-id"):
        return str(schema["x-sandbox-id"])
    properties = schema.get("properties", {}) or {}
    if id_param:
        if id_param in properties:
            return id_param
        lowered = {name.lower(): name for name in properties}
        if id_param.lower() in lowered:
            return lowered[id_param.lower()]
        for name in sorted(properties, key=len, reverse=True):
            if len(name) >= 2 and id_param.lower().endswith(name.lower()):
                return name
    return next((name for name in _ID_NAMES[:7] if name in properties), "id")


def _timestamp_field(schema: dict, names: tuple[str, ...]) -> str | None:
    """The first of ``names`` the record holds as a date-time string: the engine writes its
    ISO-8601 stamps there on create and update. A field of another shape (Unix seconds as an
    integer, a ``date``, an RFC 2822 ``format``) is filled like any other field instead: a
    stamp of ours in it would break the contract (an integer ``updated_at`` answered 500)."""
    properties = schema.get("properties", {})
    return next((n for n in names if n in properties and _holds_a_stamp(flatten(properties[n]))), None)


def _holds_a_stamp(field: dict) -> bool:
    kind = field.get("type", "string")
    strings = kind == "string" or (isinstance(kind, list) and "string" in kind)
    return strings and field.get("format", "date-time") == "date-time"


def _error_format(spec: dict, extension: dict) -> ErrorFormat:
    errors = extension.get("errors")
    if errors is None:
        inferred = infer_error_body(spec)
        return ErrorFormat(body=inferred) if inferred is not None else ErrorFormat()
    errors = errors or {}
    return ErrorFormat(
        body=errors.get("body", dict(DEFAULT_ERROR_BODY)),
        codes={**DEFAULT_ERROR_CODES, **{str(k): str(v) for k, v in (errors.get("codes") or {}).items()}},
        messages={str(k): (None if v is None else str(v)) for k, v in (errors.get("messages") or {}).items()},
    )


_MESSAGE_NAMES = ("message", "detail", "error_description", "description", "title", "msg", "reason", "error")
_CODE_NAMES = ("code", "error_code", "errorCode", "type", "error", "status")


def infer_error_body(spec: dict) -> dict | None:
    """An error template from the error schema the contract declares most (petstore-expanded's
    ``Error {code: int32, message}``, Conduit's ``{errors: {body: [string]}}``), so a contract
    without ``x-sandbox.errors`` gets errors its own schema accepts. ``None``: no JSON error
    schema is declared (the default format is used)."""
    counts: dict[str, tuple[int, dict]] = {}
    for item in (spec.get("paths") or {}).values():
        if not isinstance(item, dict):
            continue
        for method in HTTP_METHODS:
            operation = item.get(method)
            if not isinstance(operation, dict):
                continue
            for code, response in (operation.get("responses") or {}).items():
                code = str(code)
                if not (code == "default" or code[:1] in ("4", "5")):
                    continue
                response = resolve_refs(response, spec) if isinstance(response, dict) else {}
                schema = _json_schema(response)
                if not _objectish(schema):
                    continue
                key = repr(sorted(flatten(schema).get("properties", {})))
                seen, _ = counts.get(key, (0, schema))
                counts[key] = (seen + 1, schema)
    if not counts:
        return None
    schema = max(counts.values(), key=lambda entry: entry[0])[1]
    default = ErrorFormat().render(404)
    named = set(flatten(schema).get("properties", {}))
    if valid(schema, default) and (not named or named & set(default)):
        # The default format already fits, and is what the schema describes (Timbrix's own
        # contract); a schema that merely tolerates it (Museum's problem+json ``{type,
        # title}``, open to any property) gets its own fields instead.
        return None
    template = _error_template(schema, 0)
    if not isinstance(template, dict) or not template or not valid(schema, ErrorFormat(body=template).render(404)):
        return None
    return template


def _error_template(schema: dict, depth: int) -> t.Any:
    flat = flatten(schema)
    if depth > 4:
        return instance(flat)
    kind = flat.get("type")
    kind = next((k for k in kind if k != "null"), None) if isinstance(kind, list) else kind
    if kind == "array" or "items" in flat:
        items = flat.get("items") if isinstance(flat.get("items"), dict) else {}
        return [_error_template(items, depth + 1)]
    if kind == "string" or (kind is None and "properties" not in flat):
        return "{{message}}" if not flat.get("enum") and not flat.get("format") else instance(flat)
    if kind != "object" and "properties" not in flat:
        return instance(flat)
    properties = flat.get("properties", {}) or {}
    required = set(flat.get("required", []) or [])
    out: dict[str, t.Any] = {}
    message = next((n for n in _MESSAGE_NAMES if n in properties and _scalar(properties[n]) == "string"), None)
    for name, sub in properties.items():
        scalar = _scalar(sub)
        if name == message:
            out[name] = "{{message}}"
        elif scalar in ("integer", "number") and name.lower() in ("code", "status", "statuscode", "status_code"):
            out[name] = "{{status}}"
        elif scalar == "string" and name in _CODE_NAMES and not flatten(sub).get("enum"):
            out[name] = "{{code}}"
        elif name in required or (message is None and scalar is None):
            out[name] = _error_template(sub, depth + 1)
    return out


def _scalar(schema: t.Any) -> str | None:
    flat = flatten(schema) if isinstance(schema, dict) else {}
    kind = flat.get("type")
    kind = next((k for k in kind if k != "null"), None) if isinstance(kind, list) else kind
    return kind if kind in ("string", "integer", "number", "boolean") else None


def _resource_name(collection: str, taken: set[str]) -> str:
    """A store collection name for a collection path: its last fixed segment (``customers``),
    with the fixed segments before it when another collection already took that name
    (``articles_comments``); safe as a directory name."""
    fixed = [_SUFFIX.sub(r"\1", s) if _SUFFIX.match(s) else s for s in _segments(collection) if not _param_name(s)]
    fixed = [_SAFE_NAME.sub("-", s).strip("-.") or "x" for s in fixed] or ["root"]
    for size in range(1, len(fixed) + 1):
        name = "_".join(fixed[-size:])
        if name not in taken:
            return name
    base, number = "_".join(fixed), 2
    while f"{base}_{number}" in taken:
        number += 1
    return f"{base}_{number}"


def _tenant_param(params: list[str], tenant: dict[str, str]) -> str | None:
    if tenant.get("path"):
        return tenant["path"] if tenant["path"] in params else None
    if tenant.get("header"):
        return None
    return next((p for p in params if _TENANT_PARAM.match(p)), None)


@dataclasses.dataclass
class _Draft:
    """One operation as read, before its resource is known to be stateful."""

    operation_id: str
    method: str
    path: str
    role: str | None
    key: str
    collection: str
    operation: dict
    params: dict[str, dict]
    forced: bool


def load_profile(spec: dict) -> Profile:
    """Infer the profile of a contract (``spec`` is the parsed document, refs unresolved).

    Every operation gets an :class:`Operation`. Those of a *stateful* resource - a collection
    with a create and a read or a list (or named by ``x-sandbox-action``) - are CRUD; every
    other one (actions, form posts, searches, ``GET /``, a collection that cannot be written)
    is ``answer``: answered from its examples or schema. Nothing an operation declares stops
    a contract from loading."""
    extension = spec.get("x-sandbox", {}) or {}
    envelope = extension.get("envelope")
    data_path = (placeholder_path(envelope, "data") or ()) if envelope else ()
    tenant = dict(extension.get("tenant") or {})
    global_security = spec.get("security", [])
    drafts: list[_Draft] = []
    for path, item in (spec.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        shared = resolve_refs(item.get("parameters", []) or [], spec)
        for method in HTTP_METHODS:
            raw = item.get(method)
            if not isinstance(raw, dict):
                continue
            operation = resolve_refs(raw, spec)
            params = {p["name"]: p for p in [*shared, *(operation.get("parameters") or [])] if "name" in p}
            forced = operation.get("x-sandbox-action")
            if forced is not None and forced not in ACTIONS:
                raise ContractError(f"{method.upper()} {path}: x-sandbox-action must be one of {', '.join(ACTIONS)}")
            role = forced or _infer_action(method, path)
            collection = _collection_of(path, role or "")
            key = operation.get("x-sandbox-resource") or _collection_key(collection)
            operation_id = str(operation.get("operationId") or f"{method}_{path}")
            drafts.append(_Draft(operation_id, method, path, role, key, collection, operation, params, bool(forced)))

    by_key: dict[str, list[_Draft]] = {}
    for draft in drafts:
        by_key.setdefault(draft.key, []).append(draft)
    names: dict[str, str] = {}
    resources: dict[str, Resource] = {}
    stateful_roles: dict[int, str] = {}
    for key, group in by_key.items():
        roles = {d.role: d for d in group if d.role}
        has_item = any(_param_name(_segments(d.path)[-1] or "") for d in group if _segments(d.path))
        has_create = "create" in roles and _create_ok(roles["create"], data_path)
        has_list = "list" in roles and _listing(_success_body(roles["list"], data_path), roles["list"].params)
        # Writable (a create, and a list or item path to see the records again), or read-only
        # (a list or a read, served from what the fixtures or the contract's examples seed);
        # either way its records must name themselves by an id (checked below).
        writable = has_create and (has_list or has_item)
        read_only = "create" not in roles and ("list" in roles or "read" in roles)
        if not (any(d.forced for d in group) or writable or read_only):
            continue
        schema, shape = _resource_shape(group, data_path)
        item_draft = next((d for d in group if d.role in ("read", "update", "delete") and _item_param(d)), None)
        id_param = _item_param(item_draft) if item_draft else None
        id_field = infer_id_field(schema, id_param)
        if not any(d.forced for d in group) and not _names_records(roles.get("create"), schema, id_field, data_path):
            continue  # what the create answers is not a record that names itself (a job, a status)
        param_schema = item_draft.params.get(id_param, {}).get("schema") if item_draft and id_param else None
        id_schema = schema.get("properties", {}).get(id_field) or param_schema
        for draft in group:
            own = _item_param(draft) if draft.role in ("read", "update", "delete") else None
            path_schema = draft.params.get(own, {}).get("schema") if own else None
            if path_schema and id_kind(path_schema) != "string" and id_kind(id_schema) == "string":
                id_schema = path_schema  # a path says more (DigitalOcean's resource_uuid: format uuid)
        collection = shape.collection
        params = [p for p in (_param_name(s) for s in _segments(collection)) if p]
        tenant_param = _tenant_param(params, tenant)
        name = (
            group[0].operation.get("x-sandbox-resource")
            if group[0].operation.get("x-sandbox-resource")
            else _resource_name(collection, set(resources))
        )
        names[key] = name
        create = roles.get("create")
        create_body = _json_schema(create.operation.get("requestBody")) if create else None
        create_record = _sub_schema(create_body, (_body_key(create_body, schema),)) if create_body else None
        if create_body and _body_key(create_body, schema) is None:
            create_record = create_body
        create_properties = flatten(create_record or {}).get("properties", {})
        resources[name] = Resource(
            name=name,
            collection_path=collection,
            item_path=item_draft.path if item_draft else None,
            id_param=id_param,
            id_field=id_field,
            id_kind=id_kind(id_schema),
            schema=schema,
            created_field=_timestamp_field(schema, ("createdAt", "created_at", "date_created", "dateCreated")),
            updated_field=_timestamp_field(schema, ("updatedAt", "updated_at", "date_updated", "dateUpdated")),
            tenant_param=tenant_param,
            parent_params=tuple(p for p in params if p != tenant_param),
            client_ids=id_field in create_properties and not flatten(create_properties[id_field]).get("readOnly"),
            id_schema=id_schema,
        )
        for draft in group:
            if draft.role is None:
                continue
            if draft.role == "update" and not _item_param(draft):
                # An update by an id in the body: only where a client can send the id (not
                # DigitalOcean's PUT /v2/projects/default, whose project id is readOnly).
                sent = _body_properties(draft, schema).get(id_field)
                if not (draft.method in ("put", "patch") and sent is not None and not flatten(sent).get("readOnly")):
                    continue
            if draft.role == "list" and not _listing(_success_body(draft, data_path), draft.params):
                continue
            if draft.role == "create" and not has_create:
                continue
            stateful_roles[id(draft)] = draft.role

    operations: dict[str, Operation] = {}
    for draft in drafts:
        operation = draft.operation
        action = stateful_roles.get(id(draft), "answer")
        resource = resources.get(names.get(draft.key, ""))
        if resource is None:
            action = "answer"
        success_key = _success_key(operation)
        success = _response(operation, success_key)
        response = _json_schema(success) if success else None
        record_path: tuple[str, ...] = ()
        listing = None
        body = _json_schema(operation.get("requestBody"))
        body_key = None
        if action != "answer" and resource is not None:
            inner = _sub_schema(response, data_path) if data_path else response
            if action == "list":
                listing = _listing(inner, draft.params)
            elif response is not None:
                key = _wrapper_key(inner, resource.id_field)
                record_path = (key,) if key else ()
            body_key = _body_key(body, resource.schema)
            if body_key is not None:
                body = _sub_schema(body, (body_key,))
        segment_params = [p for p in (_param_name(s) for s in _segments(_collection_of(draft.path, draft.role or "")))
                          if p]
        security = operation.get("security", global_security) or []
        scopes = tuple(sorted({s for requirement in security for values in requirement.values() for s in values}))
        request_body = operation.get("requestBody") if isinstance(operation.get("requestBody"), dict) else {}
        operations[draft.operation_id] = Operation(
            operation_id=draft.operation_id,
            method=draft.method.upper(),
            path=draft.path,
            action=action,
            resource=resource.name if resource is not None and action != "answer" else "",
            status=_status_of(success_key),
            body_schema=body,
            response_schema=response,
            required_scopes=scopes,
            secured=bool(security),
            id_param=_item_param(draft) if action in ("read", "update", "delete") else None,
            parent_params=tuple(p for p in segment_params if resource is None or p != resource.tenant_param),
            body_key=body_key,
            record_path=record_path,
            listing=listing,
            id_in_body=action == "update" and not _item_param(draft),
            media_types=media_types(success.get("content")),
            declared=tuple(_status_keys(operation)),
            success_key=success_key or "",
            body_media=media_types(request_body.get("content")),
            examples=_examples(success.get("content")),
            errors=_error_contents(operation),
            response_media=tuple(
                dict.fromkeys(
                    m
                    for response in (operation.get("responses") or {}).values()
                    if isinstance(response, dict)
                    for m in media_types(response.get("content"))
                )
            ),
        )
    return Profile(
        title=str((spec.get("info") or {}).get("title", "API")),
        plugin=extension.get("plugin"),
        tenant=tenant,
        envelope=copy.deepcopy(envelope),
        errors=_error_format(spec, extension),
        resources=resources,
        operations=operations,
    )


def _examples(content: t.Any) -> tuple[tuple[str, t.Any], ...]:
    """The examples a success response offers, per media type (refs already inlined)."""
    found = []
    for media in media_types(content):
        entry = content[media] if isinstance(content[media], dict) else {}
        schema = entry.get("schema") if isinstance(entry.get("schema"), dict) else {}
        examples = entry.get("examples")
        if "example" in entry:
            found.append((media, entry["example"]))
        elif isinstance(examples, dict) and examples:
            first = next(iter(examples.values()))
            if isinstance(first, dict) and "value" in first:
                found.append((media, first["value"]))
        elif "example" in schema:
            found.append((media, schema["example"]))
        elif isinstance(schema.get("examples"), list) and schema["examples"]:
            found.append((media, schema["examples"][0]))
    return tuple(found)


def _error_contents(operation: dict) -> tuple[ErrorContent, ...]:
    """The error responses of an operation (refs already inlined), media types in declared
    order (a client reads the first one as the preferred)."""
    found = []
    for code, response in (operation.get("responses") or {}).items():
        key = str(code)
        if not (key == "default" or key[:1] in ("4", "5")) or not isinstance(response, dict):
            continue
        content = response.get("content") if isinstance(response.get("content"), dict) else {}
        media = []
        for name, entry in content.items():
            entry = entry if isinstance(entry, dict) else {}
            schema = entry.get("schema") if isinstance(entry.get("schema"), dict) else None
            example = _examples({name: entry})
            media.append(ErrorMedia(str(name), schema, example[0][1] if example else None))
        found.append(ErrorContent(key, tuple(media)))
    return tuple(found)


def error_content(operation: Operation | None, status: int) -> ErrorContent | None:
    """The declared error response an error of ``status`` answers under: the status itself,
    else its ``4XX``/``5XX`` range, else ``default`` (``None``: none is declared)."""
    if operation is None:
        return None
    by_key = {content.key.upper(): content for content in operation.errors}
    return by_key.get(str(status)) or by_key.get(f"{status // 100}XX") or by_key.get("DEFAULT")


_FITTED_ERRORS: dict[int, tuple[ErrorFormat, dict, ErrorFormat]] = {}


def operation_errors(errors: ErrorFormat, operation: Operation | None, status: int) -> ErrorFormat:
    """The error format for one operation's ``status``: the contract's, unless that operation
    declares a JSON error schema the contract's format does not fit (DigitalOcean's nfs
    operations declare ``{code, message}`` where the rest declare ``{id, message}``); then a
    template from that schema, as :func:`infer_error_body` makes one for the contract. Cached
    by the declared schema (errors are the exception, but a fuzz run sends many)."""
    content = error_content(operation, status)
    schemas = [m.schema for m in content.media if m.schema and is_json_media(m.media_type)] if content else []
    if not schemas:
        return errors
    schema = schemas[0]
    cached = _FITTED_ERRORS.get(id(schema))
    if cached is not None and cached[0] is errors and cached[1] is schema:
        return cached[2]
    fitted = errors
    if not valid(schema, errors.render(status)):
        template = _error_template(schema, 0)
        if isinstance(template, dict) and template:
            candidate = dataclasses.replace(errors, body=template)
            if valid(schema, candidate.render(status)):
                fitted = candidate
    _FITTED_ERRORS[id(schema)] = (errors, schema, fitted)
    return fitted


def error_media(operation: Operation | None, status: int) -> ErrorMedia | None:
    """The media type an error of ``status`` goes out in: ``None`` for plain
    ``application/json`` (the default: declared, or nothing declared), else the declared one
    the sandbox can write - another JSON type (``application/problem+json``: the same body),
    or a text type (Tic Tac Toe's ``text/html``: the message as text)."""
    content = error_content(operation, status)
    if content is None or not content.media:
        return None
    names = [m.media_type.split(";")[0].strip().lower() for m in content.media]
    if "application/json" in names:
        return None
    for media in content.media:
        if is_json_media(media.media_type) and media.media_type.strip() != "*/*":
            return media
    return content.media[0] if not any(m.media_type.strip() == "*/*" for m in content.media) else None


def error_text(media: ErrorMedia, status: int, message: str) -> str:
    """The body of an error declared as text (``text/html``, ``text/plain``): the message,
    cut to the schema's ``maxLength``; the declared example (else a minimal instance) when
    the schema constrains the text further (an enum, a pattern). An XML type gets the same
    message in one element, so that it parses."""
    schema = media.schema or {}
    text = message
    flat = flatten(schema) if schema else {}
    if isinstance(flat.get("maxLength"), int):
        text = text[: flat["maxLength"]]
    if schema and not valid(schema, text):
        example = media.example
        text = example if isinstance(example, str) and valid(schema, example) else instance(schema)
        text = text if isinstance(text, str) else ""
    if "xml" in media.media_type.lower():
        escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return f'<?xml version="1.0" encoding="UTF-8"?><error><status>{status}</status><message>{escaped}</message>' \
            "</error>"
    return text


def _item_param(draft: _Draft | None) -> str | None:
    if draft is None or not _segments(draft.path):
        return None
    return _param_name(_segments(draft.path)[-1])


def _success_body(draft: _Draft, data_path: tuple[str, ...]) -> dict | None:
    response = _json_schema(_response(draft.operation, _success_key(draft.operation)))
    return _sub_schema(response, data_path) if data_path else response


def _create_ok(draft: _Draft, data_path: tuple[str, ...]) -> bool:
    """A create answers with a record (or nothing) and takes a body, or at least no other
    kind of input than a record's."""
    response = _success_body(draft, data_path)
    return response is None or _objectish(response)


def _names_records(create: _Draft | None, schema: dict, id_field: str, data_path: tuple[str, ...]) -> bool:
    """The record has its id field, and the create (if it answers a body) answers a record
    with it: Discourse's ``POST /admin/backups.json`` answers ``{success: "OK"}``, a job
    started, not a backup to read back."""
    if id_field not in schema.get("properties", {}):
        return False
    body = _success_body(create, data_path) if create is not None else None
    if body is None:
        return True
    key = _wrapper_key(body, id_field)
    answered = flatten(_sub_schema(body, (key,)) if key else body)
    return not answered.get("properties") or id_field in answered["properties"]


def _body_properties(draft: _Draft, record: dict) -> dict:
    body = _json_schema(draft.operation.get("requestBody"))
    key = _body_key(body, record)
    if key is not None:
        body = _sub_schema(body, (key,))
    return flatten(body or {}).get("properties", {})


@dataclasses.dataclass
class _Shape:
    collection: str


def _resource_shape(group: list[_Draft], data_path: tuple[str, ...]) -> tuple[dict, _Shape]:
    """The record schema of a resource (a read's or create's answer wins over a list's items)
    and its collection path (the create's or list's own path, else the item path's parent)."""
    found: list[dict] = []
    collection = next((d.collection for d in group if d.role in ("create", "list")), group[0].collection)
    for preferred in (("read",), ("create",), ("update",), ("list",)):
        for draft in group:
            if draft.role not in preferred:
                continue
            body = _success_body(draft, data_path)
            if draft.role == "list":
                listing = _listing(body, draft.params)
                if listing is not None:
                    body = _sub_schema(body, listing.items_path) if listing.items_path else body
            else:
                key = _wrapper_key(body, _item_param(draft))
                body = _sub_schema(body, (key,)) if key else body
            record = _record_schema(body)
            if record is not None and _objectish(record):
                found.append(record)
    if not found:
        return {"type": "object"}, _Shape(collection)
    # One record answers every operation: the read's shape first, with every property and
    # required field the others show (a create that answers fewer fields than the list
    # requires would otherwise store records the list cannot answer).
    schema = dict(found[0])
    properties = dict(schema.get("properties", {}))
    required = list(schema.get("required", []))
    for other in found[1:]:
        for name, sub in other.get("properties", {}).items():
            properties.setdefault(name, sub)
        required += [name for name in other.get("required", []) if name not in required]
    schema["properties"] = properties
    if required:
        schema["required"] = required
    return schema, _Shape(collection)


def describe_operation(operation: Operation) -> str:
    """What the sandbox made of one operation, for ``serve`` (``GET /pets findPets -> list
    pets``, ``POST /pet/{petId}/uploadImage uploadFile -> example``)."""
    if operation.action == "answer":
        made = "example" if operation.examples else ("schema" if operation.response_schema else "no content")
        made = f"{made} {operation.status}"
    else:
        made = f"{operation.action} {operation.resource}"
    return f"{operation.method} {operation.path} {operation.operation_id} -> {made}"


def describe_profile(profile: Profile) -> str:
    """One line: how many operations are served statefully, on which resources, and how many
    are answered from the contract."""
    stateful = [o for o in profile.operations.values() if o.action != "answer"]
    answered = len(profile.operations) - len(stateful)
    names = ", ".join(profile.resources) or "none"
    return (
        f"{len(profile.operations)} operations: {len(stateful)} stateful on {len(profile.resources)} "
        f"resources ({names}), {answered} answered from the contract's examples or schemas"
    )


def scope_params(resource: Resource) -> tuple[str, ...]:
    """Path parameters of the collection path: they scope records (``organizationId``)."""
    return tuple(p for p in (_param_name(s) for s in _segments(resource.collection_path)) if p)


def tenant_param(resource: Resource | None) -> str | None:
    """The collection path parameter that names the tenant, if any (see :class:`Resource`)."""
    return resource.tenant_param if resource is not None else None
