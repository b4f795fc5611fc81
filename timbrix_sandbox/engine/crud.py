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

import typing as t
import uuid

import anyio

from timbrix_sandbox.contract.model import Operation, Profile, Resource, scope_params
from timbrix_sandbox.contract.records import (
    StoredViews,
    apply_body,
    complete,
    copy_json,
    projector,
    record_key,
    stored_doc,
)
from timbrix_sandbox.engine.clock import new_object_id, new_request_id, utc_now, utc_now_after
from timbrix_sandbox.engine.faults import Behaviours
from timbrix_sandbox.engine.plugins import DomainPlugin, Reply
from timbrix_sandbox.engine.policy import Refusal
from timbrix_sandbox.engine.stores import RecordStore

Record = dict[str, t.Any]
_T = t.TypeVar("_T")


class IdGenerator:
    """New ids in the format the schema asks for. Integer ids count up per resource from the
    largest one stored (unique across tenants, like a real database's); the store counts them,
    because with several processes on one store no process may count alone."""

    def __init__(self, store: RecordStore) -> None:
        self.store = store

    def new(self, resource: Resource) -> t.Any:
        if resource.id_kind == "uuid":
            return str(uuid.uuid4())
        if resource.id_kind == "objectid":
            return new_object_id()
        if resource.id_kind == "integer":
            return self.store.next_integer_id(resource.name)
        return new_object_id()


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
        self.tenant_fields = tuple(p for p in scope_params(self.resource) if p in declared)
        self.not_found = engine.plugin.not_found(self.name)
        self.project = projector(self.resource.schema)
        self.stored_view = StoredViews(self.project)
        """Reads project a stored record once, not on every read (see ``StoredViews``)."""
        self.action = getattr(self, operation.action)

    def __call__(self, tenant: str | None, params: t.Mapping[str, t.Any], body: t.Any) -> t.Awaitable[Reply]:
        return self.action(tenant or "", params, body)

    # -- answers --------------------------------------------------------------------------------
    def _answer(self, data: t.Any) -> Reply:
        status = self.operation.status
        if status == 204 or self.operation.response_schema is None:
            return Reply(status)
        if self.profile.envelope is None:
            return Reply(status, data)
        return Reply(status, self.profile.wrap(data, utc_now(), new_request_id()))

    def _view(self, record: Record) -> Record:
        return self.project(record)

    def _key(self, params: t.Mapping[str, t.Any]) -> str:
        return record_key(params[self.resource.id_param])

    async def _read(self, read: t.Callable[..., _T], *args: t.Any) -> _T:
        """A store read: on the event loop for TinyDB (memory, microseconds), in a worker
        thread for a store whose reads wait on a database (``RecordStore.blocking_reads``), so
        that the loop keeps serving other requests meanwhile."""
        if self.engine.store.blocking_reads:
            return await anyio.to_thread.run_sync(read, *args)
        return read(*args)

    # -- actions --------------------------------------------------------------------------------
    async def list(self, tenant: str, params: t.Mapping[str, t.Any], body: t.Any) -> Reply:
        store = self.engine.store
        if self.engine.behaviours.lists_across_tenants():
            docs = await self._read(
                lambda: [doc for scope in store.scopes(self.name) for doc in store.peek_all(self.name, scope)]
            )
        else:
            docs = await self._read(store.peek_all, self.name, tenant)
        return self._answer([self.stored_view(doc["data"]) for doc in docs])

    async def read(self, tenant: str, params: t.Mapping[str, t.Any], body: t.Any) -> Reply:
        store, key = self.engine.store, self._key(params)
        doc = await self._read(store.peek, self.name, tenant, key)
        if doc is None and self.engine.behaviours.reads_across_tenants():
            doc = await self._read(
                lambda: next((d for s in store.scopes(self.name) if (d := store.peek(self.name, s, key))), None)
            )
        if doc is None:
            raise Refusal(404, self.not_found)
        return self._answer(self.stored_view(doc["data"]))

    def _fresh(self, tenant: str, now: str, keep: Record | None = None) -> Record:
        """A record as a create starts it: the plug-in's initial fields, the tenant, ``keep``."""
        record = copy_json(self.engine.plugin.initial(self.name))
        for field in self.tenant_fields:
            record[field] = tenant
        record.update(keep or {})
        return record

    async def create(self, tenant: str, params: t.Mapping[str, t.Any], body: t.Any) -> Reply:
        engine, resource = self.engine, self.resource
        body = body or {}
        now = utc_now()
        record = apply_body(self._fresh(tenant, now), body, self.operation.body_schema, skip=resource.id_field)
        store = engine.store
        record[resource.id_field] = engine.ids.new(resource)
        for field in (resource.created_field, resource.updated_field):
            if field:
                record[field] = now
        record = complete(record, resource.schema, now)
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
            await store.insert_async(self.name, tenant, stored_doc(record, resource))
        return self._answer(self._view(record))

    async def update(self, tenant: str, params: t.Mapping[str, t.Any], body: t.Any) -> Reply:
        engine, resource = self.engine, self.resource
        body = {k: v for k, v in (body or {}).items() if k != resource.id_field}
        behaviours = engine.behaviours
        unsaved: list[Record] = []

        def change(doc: dict) -> dict | None:
            if not body:
                return None  # nothing sent, nothing changes (not even the update time)
            current = doc["data"]

            def fresh() -> Record:
                kept = {k: current[k] for k in (resource.id_field, resource.created_field) if k and k in current}
                return complete(self._fresh(tenant, utc_now(), kept), resource.schema, utc_now())

            base = behaviours.update_base(current, fresh()) if behaviours else current
            updated = apply_body(base, body, self.operation.body_schema, skip=resource.id_field)
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

        doc = await engine.store.update_async(self.name, tenant, self._key(params), change)
        if doc is None:
            raise Refusal(404, self.not_found)
        return self._answer(self._view(unsaved[-1] if unsaved else doc["data"]))

    async def delete(self, tenant: str, params: t.Mapping[str, t.Any], body: t.Any) -> Reply:
        store, key = self.engine.store, self._key(params)
        doc = await self._read(store.get, self.name, tenant, key)
        if doc is None:
            raise Refusal(404, self.not_found)
        if self.engine.behaviours.persists("delete"):
            if not await store.delete_async(self.name, tenant, key):
                raise Refusal(404, self.not_found)  # deleted by a concurrent request meanwhile
        return self._answer(self._view(doc["data"]))
