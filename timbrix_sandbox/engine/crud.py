"""The one stateful implementation of a contract's resources: list, create, read, update and
delete, for every contract (Timbrix included).

Each operation of the contract is one of ``list | create | read | update | delete`` on a
resource (see ``contract/model.py``); records live in the store per ``(resource, tenant)``,
each kept whole under ``data`` beside its string key. Bodies are built from the stored record
and shaped by the response schema: declared properties only, in the schema's order, required
ones filled (default, ``null``, example, a value of the right type) when a record is created,
so reads answer exactly what the create answered. Updates merge only the fields sent; an empty
update changes nothing.

A domain plug-in (``engine/plugins.py``) adds what a schema cannot say: the fields a new
record starts with and the rules the record to be stored must pass. Injected faults
(``engine/faults.py``) are asked at the points where their bugs live.

Plain Python: requests come in as ``(tenant, params, body)`` - the tenant already resolved by
the access policy - and answers go out as :class:`Reply` or :class:`Refusal`; the HTTP layer
renders both.
"""

from __future__ import annotations

import math
import secrets
import typing as t

import anyio

from timbrix_sandbox.contract.model import Operation, Profile, Resource
from timbrix_sandbox.contract.records import (
    EACH_ITEM,
    StoredViews,
    apply_body,
    complete,
    conform,
    copy_json,
    field_aliases,
    page_of,
    projector,
    record_key,
    stored_doc,
    stored_paths,
    wrap_record,
)
from timbrix_sandbox.contract.shapes import fitting_id, flatten
from timbrix_sandbox.engine.answers import ContractAnswer
from timbrix_sandbox.engine.clock import new_object_id, new_request_id, new_uuid, utc_now, utc_now_after
from timbrix_sandbox.engine.faults import Behaviours
from timbrix_sandbox.engine.plugins import DomainPlugin, Reply
from timbrix_sandbox.engine.policy import Refusal
from timbrix_sandbox.engine.store import RecordExists
from timbrix_sandbox.engine.stores import RecordStore

Record = dict[str, t.Any]
_T = t.TypeVar("_T")
_FITTED_FORMATS = ("ipv4", "ipv6", "email", "uri", "url", "hostname")
_INTEGER_FORMATS = {"int32": 2**31 - 1, "int64": 2**63 - 1}
NEW_ID_ATTEMPTS = 64
"""Ids a create tries before it gives up: each taken one (a client chose it) costs one more."""


def integer_id_range(schema: t.Mapping[str, t.Any]) -> tuple[int, int]:
    """The positive ids an integer id schema allows: from its minimum (at least 1) to its
    maximum, else its format's (``int32``), else int64's - what clients, databases and JSON
    parsers such as orjson hold, and what Petstore's ``format: int64`` ids are refused past."""
    def bound(key: str) -> int | float | None:
        value = schema.get(key)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    low, high = 1, _INTEGER_FORMATS.get(schema.get("format"), _INTEGER_FORMATS["int64"])
    if (minimum := bound("minimum")) is not None:
        low = max(low, math.ceil(minimum))
    if (above := bound("exclusiveMinimum")) is not None:
        low = max(low, math.floor(above) + 1)
    if (maximum := bound("maximum")) is not None:
        high = min(high, math.floor(maximum))
    if (below := bound("exclusiveMaximum")) is not None:
        high = min(high, math.ceil(below) - 1)
    return low, high


class IdGenerator:
    """New ids in the format the schema asks for. Integer ids count up per resource from the
    largest one stored (unique across tenants, like a real database's); the store counts them,
    because with several processes on one store no process may count alone."""

    def __init__(self, store: RecordStore) -> None:
        self.store = store

    def new(self, resource: Resource) -> t.Any:
        if resource.id_kind == "uuid":
            return new_uuid()
        if resource.id_kind == "objectid":
            return new_object_id()
        if resource.id_kind == "integer":
            counted = self.store.next_integer_id(resource.name)
            low, high = integer_id_range(resource.id_schema or {})
            if low <= counted <= high or high < low:
                return counted
            # The count is outside what the schema allows (a client created id 2**63 - 1, and
            # the next count would answer a record no response may carry): a random id in the
            # range instead, which ``_new_id`` replaces if it is taken.
            return low + secrets.randbelow(high - low + 1)
        entropy = new_object_id()
        schema = resource.id_schema or {}
        constrained = "pattern" in schema or "maxLength" in schema or schema.get("format") in _FITTED_FORMATS
        if constrained or int(schema.get("minLength", 0)) > len(entropy):
            # Twilio's sids: a prefix and 32 hex digits; fill the pattern from fresh entropy.
            return fitting_id(schema, entropy + new_request_id()) or entropy
        return entropy


class Engine:
    """What every operation of one sandbox shares: the contract model, the store, the plug-in,
    the active faults and the serve options."""

    def __init__(
        self,
        profile: Profile,
        store: RecordStore,
        plugin: DomainPlugin,
        behaviours: Behaviours,
        options: frozenset[str] = frozenset(),
    ) -> None:
        self.profile = profile
        self.store = store
        self.plugin = plugin
        self.behaviours = behaviours
        self.options = options
        self.ids = IdGenerator(store)

    def operations(self) -> dict[str, EngineOperation]:
        """operationId -> callable for every operation served: the plug-in's own, then CRUD."""
        served: dict[str, EngineOperation] = {}
        own = self.plugin.operations()
        for op_id, operation in self.profile.operations.items():
            if op_id in own:
                served[op_id] = _PluginOperation(own[op_id])
            elif operation.action == "answer":
                served[op_id] = ContractAnswer(operation)
            else:
                served[op_id] = CrudOperation(operation, self)
        for op_id, handler in own.items():
            served.setdefault(op_id, _PluginOperation(handler))
        return served


class EngineOperation(t.Protocol):
    def __call__(self, tenant: str | None, params: t.Mapping[str, t.Any], body: t.Any) -> t.Awaitable[Reply]: ...


class _PluginOperation:
    def __init__(self, handler: t.Callable[[t.Mapping[str, t.Any], t.Any], t.Awaitable[Reply]]) -> None:
        self.handler = handler

    async def __call__(self, tenant: str | None, params: t.Mapping[str, t.Any], body: t.Any) -> Reply:
        return await self.handler(params, body)


class CrudOperation:
    """One contract operation served from the store."""

    def __init__(self, operation: Operation, engine: Engine) -> None:
        self.operation = operation
        self.engine = engine
        self.profile = engine.profile
        self.resource = engine.profile.resources[operation.resource]
        self.name = self.resource.name
        # The collection path's parameters a record declares (Timbrix's organizationId).
        declared = self.resource.schema.get("properties", {})
        self.tenant_fields = tuple(p for p in (self.resource.tenant_param,) if p and p in declared)
        # Parent path parameters a record declares by the same name (its owner's id).
        self.parent_fields = tuple(
            (param, mine)
            for param, mine in zip(self.resource.parent_params, operation.parent_params, strict=False)
            if param in declared
        )
        self.aliases = field_aliases(operation.body_schema, self.resource.schema)
        self.not_found = engine.plugin.not_found(self.name)
        self.project = projector(self._record_schema())
        self.stored_view = StoredViews(self.project)
        """Reads project a stored record once, not on every read (see ``StoredViews``)."""
        self.min_items = self._min_items()
        self.fallback = ContractAnswer(operation)
        self.answers_record = self._answers_record()
        self.action = getattr(self, operation.action)

    def __call__(self, tenant: str | None, params: t.Mapping[str, t.Any], body: t.Any) -> t.Awaitable[Reply]:
        return self.action(tenant or "", params, body)

    # -- answers --------------------------------------------------------------------------------
    def shared_views(self) -> tuple[tuple[str, ...], t.Callable[[t.Any], dict | None]] | None:
        """Where this operation's success body holds stored views - shared, never changed
        (``StoredViews``) - and the views' memos: for a read, the record's place (envelope,
        then ``record_path``); for a list, each item of the array there (``EACH_ITEM``). ``None``
        for the others, whose answers are projected afresh."""
        operation = self.operation
        if operation.action not in ("read", "list") or operation.response_schema is None:
            return None
        path = (*self.profile.data_path, *operation.record_path)
        if operation.action == "list":
            path = (*path, *(operation.listing.items_path if operation.listing else ()), EACH_ITEM)
        return path, self.stored_view.memo

    def _answer(self, data: t.Any) -> Reply:
        status = self.operation.status
        if status == 204 or self.operation.response_schema is None:
            return Reply(status)
        if self.operation.record_path:
            data = wrap_record(data, self.operation.record_path, self._inner_schema(), utc_now())
        if self.profile.envelope is None:
            return Reply(status, data)
        return Reply(status, self.profile.wrap(data, utc_now(), new_request_id()))

    def _inner_schema(self) -> dict | None:
        """The success body's schema inside the x-sandbox envelope."""
        schema = self.operation.response_schema
        for key in self.profile.data_path:
            schema = (schema or {}).get("properties", {}).get(key)
        return schema

    def _record_schema(self) -> dict:
        """The record as this operation answers it (an update may answer fewer fields than a
        read); the resource's shape when the operation's own says nothing more."""
        schema = self._inner_schema() if self.operation.response_schema is not None else None
        path = self.operation.listing.items_path if self.operation.listing else self.operation.record_path
        for key in path:
            schema = flatten(schema or {}).get("properties", {}).get(key)
        if isinstance(schema, dict):
            schema = flatten(schema)
            if schema.get("type") == "array" or "items" in schema:
                schema = flatten(schema.get("items") or {})
        if isinstance(schema, dict) and schema.get("properties"):
            return schema
        return self.resource.schema

    def _answers_record(self) -> bool:
        """Whether the success body shows the record (``False``: a status object without the
        record's id, Discourse's delete answering ``{success: "OK"}``, answered from the
        contract's example or schema once the record is gone)."""
        if self.operation.action != "delete" or self.operation.response_schema is None:
            return True
        properties = self._record_schema().get("properties", {})
        return self._record_schema() is self.resource.schema or self.resource.id_field in properties

    def _min_items(self) -> int:
        """The fewest records a list answer may hold (``minItems`` of its array)."""
        if self.operation.listing is None:
            return 0
        schema = self._inner_schema()
        for key in self.operation.listing.items_path:
            schema = flatten(schema or {}).get("properties", {}).get(key)
        return int(flatten(schema or {}).get("minItems", 0)) if isinstance(schema, dict) else 0

    def _sent(self, body: t.Mapping[str, t.Any]) -> list[str]:
        """The record fields a body writes (stored names, top level)."""
        paths = stored_paths(self.operation.body_schema, self.aliases)
        return [(paths.get(name) or (self.aliases.get(name, name).split(".")[0],))[0] for name in body]

    def _view(self, record: Record) -> Record:
        return self.project(record)

    def _key(self, params: t.Mapping[str, t.Any]) -> str:
        return record_key(params[self.operation.id_param])

    def _scope(self, tenant: str, params: t.Mapping[str, t.Any]) -> str:
        """The partition a record lives in: its tenant, and under a nested collection its
        parents' path values (an issue of ``octocat/hello`` is not one of ``someone/else``)."""
        if not self.operation.parent_params:
            return tenant
        parents = "/".join(record_key(params.get(name, "")) for name in self.operation.parent_params)
        return f"{tenant}/{parents}"

    def _unwrapped(self, body: t.Any) -> dict:
        """The record fields of a request body (inside its wrapper, Conduit's ``article``)."""
        if self.operation.body_key is not None and isinstance(body, dict):
            body = body.get(self.operation.body_key)
        return body if isinstance(body, dict) else {}

    async def _read(self, read: t.Callable[..., _T], *args: t.Any) -> _T:
        """A store read: on the event loop for TinyDB (memory, microseconds), in a worker
        thread for a store whose reads wait on a database (``RecordStore.blocking_reads``), so
        that the loop keeps serving other requests meanwhile."""
        if self.engine.store.blocking_reads:
            return await anyio.to_thread.run_sync(read, *args)
        return read(*args)

    async def _new_id(self, store: RecordStore, tenant: str) -> t.Any:
        """A new id the scope does not hold yet. Integer ids count up, but a client may have
        chosen the next one itself (Petstore's ``POST /pet {"id": 2}``), so a counted id that
        is taken is skipped; uuids, ObjectIds and fitted patterns are random enough."""
        ids, resource = self.engine.ids, self.resource
        candidate = ids.new(resource)
        if resource.id_kind != "integer":
            return candidate
        for _ in range(NEW_ID_ATTEMPTS):
            if await self._read(store.peek, self.name, tenant, record_key(candidate)) is None:
                return candidate
            candidate = ids.new(resource)
        low, high = integer_id_range(resource.id_schema or {})
        raise Refusal(409, f"no free {resource.id_field} found between {low} and {high}, the ids its schema allows")

    # -- actions --------------------------------------------------------------------------------
    async def list(self, tenant: str, params: t.Mapping[str, t.Any], body: t.Any) -> Reply:
        store = self.engine.store
        if self.engine.behaviours.lists_across_tenants():
            docs = await self._read(
                lambda: [doc for scope in store.scopes(self.name) for doc in store.peek_all(self.name, scope)]
            )
        else:
            docs = await self._read(store.peek_all, self.name, self._scope(tenant, params))
        records = [doc["data"] for doc in docs]
        if len(records) < self.min_items:
            # The contract promises at least this many (Discourse's admin users list): until
            # the store holds them, its own example answers.
            return await self.fallback(tenant, params, body)
        listing = self.operation.listing
        if listing is None or (not listing.items_path and not _pages(listing, params)):
            return self._answer([self.stored_view(record) for record in records])
        page = page_of(records, listing, params, self._inner_schema(), utc_now())
        return self._answer(page(self.stored_view))

    async def read(self, tenant: str, params: t.Mapping[str, t.Any], body: t.Any) -> Reply:
        store, key = self.engine.store, self._key(params)
        tenant = self._scope(tenant, params)
        doc = await self._read(store.peek, self.name, tenant, key)
        if doc is None and self.engine.behaviours.reads_across_tenants():
            doc = await self._read(
                lambda: next((d for s in store.scopes(self.name) if (d := store.peek(self.name, s, key))), None)
            )
        if doc is None:
            raise Refusal(404, self.not_found)
        return self._answer(self.stored_view(doc["data"]))

    def _fresh(self, tenant: str, now: str, keep: Record | None = None, params: t.Mapping | None = None) -> Record:
        """A record as a create starts it: the plug-in's initial fields, the tenant, its
        parents' ids, ``keep``."""
        record = copy_json(self.engine.plugin.initial(self.name))
        for field in self.tenant_fields:
            record[field] = tenant
        for field, param in self.parent_fields:
            if params is not None and param in params:
                record[field] = params[param]
        record.update(keep or {})
        return record

    async def create(self, tenant: str, params: t.Mapping[str, t.Any], body: t.Any) -> Reply:
        engine, resource = self.engine, self.resource
        body = self._unwrapped(body)
        now = utc_now()
        owner, tenant = tenant, self._scope(tenant, params)
        record = apply_body(
            self._fresh(owner, now, params=params),
            body,
            self.operation.body_schema,
            skip=resource.id_field,
            aliases=self.aliases,
        )
        store = engine.store
        chosen = body.get(resource.id_field) if resource.client_ids else None
        if chosen is not None:
            if await self._read(store.peek, self.name, tenant, record_key(chosen)) is not None:
                raise Refusal(409, f"{resource.id_field} {record_key(chosen)} already exists")
            record[resource.id_field] = chosen
        else:
            record[resource.id_field] = await self._new_id(store, tenant)
        for field in (resource.created_field, resource.updated_field):
            if field:
                record[field] = now
        record = complete(conform(record, self._sent(body), resource.schema, now), resource.schema, now)
        if resource.id_field not in record:
            # A client-chosen id the record schema cannot answer is not stored, as any unfit
            # value is not (``conform``): the record gets an id of its own.
            record[resource.id_field] = await self._new_id(store, tenant)
        engine.plugin.check(
            self.name, record, body.keys(), creating=True, behaviours=engine.behaviours, options=engine.options
        )
        engine.behaviours.check_body(body)
        upsert = engine.behaviours.upsert_field()
        if upsert is not None and upsert in record:
            docs = await self._read(store.list, self.name, tenant)
            same = next((d for d in docs if d["data"].get(upsert) == record[upsert]), None)
            if same is not None:
                return self._answer(self._view(same["data"]))
        if engine.behaviours.persists("create"):
            # Answered once durable; the fsync runs on the store's writer threads, shared.
            try:
                await store.insert_async(self.name, tenant, stored_doc(record, resource))
            except RecordExists:
                # Two creates raced for one id: the client's own (checked above, taken since),
                # or a counted one a client chose meanwhile.
                taken = record_key(record[resource.id_field])
                raise Refusal(409, f"{resource.id_field} {taken} already exists") from None
        return self._answer(self._view(record))

    async def update(self, tenant: str, params: t.Mapping[str, t.Any], body: t.Any) -> Reply:
        engine, resource = self.engine, self.resource
        body = self._unwrapped(body)
        if self.operation.id_in_body:
            if body.get(resource.id_field) is None:
                raise Refusal(400, f"the body names no {resource.id_field}")
            key = record_key(body[resource.id_field])
        else:
            key = self._key(params)
        owner, tenant = tenant, self._scope(tenant, params)
        body = {k: v for k, v in body.items() if k != resource.id_field}
        behaviours = engine.behaviours
        unsaved: list[Record] = []

        def change(doc: dict) -> dict | None:
            if not body:
                return None  # nothing sent, nothing changes (not even the update time)
            current = doc["data"]

            def fresh() -> Record:
                kept = {k: current[k] for k in (resource.id_field, resource.created_field) if k and k in current}
                return complete(self._fresh(owner, utc_now(), kept, params), resource.schema, utc_now())

            base = behaviours.update_base(current, fresh()) if behaviours else current
            updated = apply_body(base, body, self.operation.body_schema, skip=resource.id_field, aliases=self.aliases)
            updated = conform(updated, self._sent(body), resource.schema, utc_now(), before=base)
            engine.plugin.check(
                self.name, updated, body.keys(), creating=False, behaviours=behaviours, options=engine.options
            )
            behaviours.check_body(body)
            if resource.updated_field and behaviours.stamps_updates():
                updated[resource.updated_field] = utc_now_after(current.get(resource.updated_field) or utc_now())
            if resource.created_field and resource.updated_field and behaviours.moves_created():
                updated[resource.created_field] = updated[resource.updated_field]
            if not behaviours.persists("update"):
                unsaved.append(updated)
                return None
            return {"id": doc["id"], "data": updated}

        doc = await engine.store.update_async(self.name, tenant, key, change)
        if doc is None:
            raise Refusal(404, self.not_found)
        return self._answer(self._view(unsaved[-1] if unsaved else doc["data"]))

    async def delete(self, tenant: str, params: t.Mapping[str, t.Any], body: t.Any) -> Reply:
        store, key = self.engine.store, self._key(params)
        tenant = self._scope(tenant, params)
        doc = await self._read(store.get, self.name, tenant, key)
        if doc is None:
            raise Refusal(404, self.not_found)
        if self.engine.behaviours.persists("delete"):
            if not await store.delete_async(self.name, tenant, key):
                raise Refusal(404, self.not_found)  # deleted by a concurrent request meanwhile
        if not self.answers_record:
            return self.fallback.reply()
        return self._answer(self._view(doc["data"]))


def _pages(listing: t.Any, params: t.Mapping[str, t.Any]) -> bool:
    """A bare-array list answers a page only when asked for one (or a limit is the default)."""
    return listing.default_limit is not None or any(
        params.get(p) is not None for p in (listing.limit_param, listing.offset_param, listing.page_param) if p
    )
