"""The stateful default for operations without a hand-written handler.

Each operation of the contract is one of ``list | create | read | update | delete`` on a
resource (see ``profile.py``); records live in the store per ``(resource, tenant)``. Bodies are
built from the stored record and shaped by the response schema: declared properties only,
required ones filled (default, example, a value of the right type) when a record was created,
so reads answer exactly what the create answered. The envelope and error format are the
contract's own. Injected faults act here as they do in the Timbrix handlers.
"""

from __future__ import annotations

import itertools
import threading
import typing as t
import uuid

import anyio
from connexion import NoContent
from connexion import request as connexion_request
from connexion.context import context as connexion_context

from timbrix_sandbox.contract.model import Operation, Profile, Resource, scope_params
from timbrix_sandbox.contract.records import complete, project, record_key, stored_doc, stored_fields
from timbrix_sandbox.engine.clock import new_object_id, new_request_id, utc_now, utc_now_after
from timbrix_sandbox.http.context import current_sandbox
from timbrix_sandbox.http.errors import error_response

NOT_FOUND = "Resource not found"


class _Rejected(Exception):
    def __init__(self, response) -> None:
        super().__init__()
        self.response = response


class IdGenerator:
    """New ids in the format the schema asks for; integer ids count up per resource from the
    largest one stored (ids are unique across tenants, like a real database's)."""

    def __init__(self) -> None:
        self._counters: dict[str, itertools.count] = {}
        self._lock = threading.Lock()

    def new(self, resource: Resource, existing: t.Callable[[], t.Iterable[str]]) -> t.Any:
        if resource.id_kind == "uuid":
            return str(uuid.uuid4())
        if resource.id_kind == "objectid":
            return new_object_id()
        if resource.id_kind == "integer":
            with self._lock:
                counter = self._counters.get(resource.name)
                if counter is None:
                    start = max((int(i) for i in existing() if str(i).isdigit()), default=0) + 1
                    counter = self._counters[resource.name] = itertools.count(start)
                return next(counter)
        return new_object_id()


def tenant_path_param(profile: Profile, resource: Resource) -> str | None:
    """The path parameter naming the tenant, if one does."""
    params = scope_params(resource)
    return profile.tenant.get("path") or (params[0] if params else None)


def tenant(profile: Profile, path_param: str | None, path_values: dict, token_info: dict, headers: t.Mapping) -> str:
    """The organization the request acts in, checked against the caller's memberships."""
    sandbox = current_sandbox()
    memberships = tuple(token_info.get("organizations", ()))
    ignore = sandbox.has_fault("membership-ignored")
    if path_param is not None:
        organization = record_key(path_values[path_param])
    elif profile.tenant.get("header"):
        header = profile.tenant["header"]
        organization = headers.get(header)
        if organization is None:
            if len(memberships) != 1:
                raise _Rejected(
                    error_response(400, f"The {header} header is required for a token of several organizations")
                )
            organization = memberships[0]
    else:
        if not memberships:
            raise _Rejected(error_response(403, "This key belongs to no account"))
        organization = memberships[0]
    if not ignore and organization not in memberships:
        raise _Rejected(error_response(403, "Not a member of this organization"))
    return organization


class GenericOperation:
    """One contract operation served from the store; Connexion resolves to its ``handle``
    (a coroutine function, so Connexion awaits it on the event loop)."""

    def __init__(self, operation: Operation, profile: Profile, ids: IdGenerator) -> None:
        self.operation = operation
        self.profile = profile
        self.resource = profile.resources[operation.resource]
        self.ids = ids
        self.tenant_param = tenant_path_param(profile, self.resource)  # once, not per request
        self.action = getattr(self, operation.action)

    async def handle(self, _token_info: dict | None = None, _headers: t.Mapping | None = None, **kwargs: t.Any):
        """Connexion calls with parameters and ``body``; the fast path also hands over what
        Connexion's request context would hold (the caller and the headers)."""
        if _token_info is None:
            _token_info = connexion_context.get("token_info") or {}
            _headers = connexion_request.headers
        try:
            organization = tenant(self.profile, self.tenant_param, kwargs, _token_info, _headers or {})
            return await self.action(organization, kwargs)
        except _Rejected as rejected:
            return rejected.response

    # -- responses -----------------------------------------------------------------------
    def _answer(self, data: t.Any, status: int | None = None):
        status = status or self.operation.status
        body = self.profile.wrap(data, utc_now(), new_request_id())
        if status == 204 or self.operation.response_schema is None:
            return NoContent, status
        return body, status

    def _view(self, record: dict) -> dict:
        return project(record, self.resource.schema)

    def _item_id(self, kwargs: dict) -> str:
        return record_key(kwargs[self.resource.id_param])

    # -- actions -------------------------------------------------------------------------
    async def list(self, organization: str, kwargs: dict):
        sandbox = current_sandbox()
        name = self.resource.name
        if sandbox.has_fault("list-all-tenants"):
            docs = [d for scope in sandbox.store.scopes(name) for d in sandbox.store.list(name, scope)]
        else:
            docs = sandbox.store.list(name, organization)
        return self._answer([self._view(d["data"]) for d in docs])

    async def read(self, organization: str, kwargs: dict):
        sandbox = current_sandbox()
        name, key = self.resource.name, self._item_id(kwargs)
        doc = sandbox.store.get(name, organization, key)
        if doc is None and sandbox.has_fault("cross-tenant-read"):
            for other in sandbox.store.scopes(name):
                doc = doc or sandbox.store.get(name, other, key)
        if doc is None:
            return error_response(404, NOT_FOUND)
        return self._answer(self._view(doc["data"]))

    async def create(self, organization: str, kwargs: dict):
        sandbox = current_sandbox()
        resource = self.resource
        now = utc_now()
        store = sandbox.store

        def existing() -> t.Iterable[str]:
            return (d["id"] for s in store.scopes(resource.name) for d in store.list(resource.name, s))

        record = stored_fields(kwargs.get("body") or {}, self.operation.body_schema)
        record[resource.id_field] = self.ids.new(resource, existing)
        for field in (resource.created_field, resource.updated_field):
            if field:
                record[field] = now
        record = complete(record, resource.schema, now)
        if not sandbox.has_fault("create-not-persisted"):
            await anyio.to_thread.run_sync(store.insert, resource.name, organization, stored_doc(record, resource))
        return self._answer(self._view(record))

    async def update(self, organization: str, kwargs: dict):
        sandbox = current_sandbox()
        resource = self.resource
        changes = stored_fields(kwargs.get("body") or {}, self.operation.body_schema)
        changes.pop(resource.id_field, None)
        unsaved: list[dict] = []

        def change(doc: dict) -> dict | None:
            current = doc["data"]
            base = current
            if sandbox.has_fault("put-replaces"):
                # Unsent fields fall back to what a fresh record would have.
                kept = {k: current[k] for k in (resource.id_field, resource.created_field) if k in current}
                base = complete(kept, resource.schema, utc_now())
            updated = {**base, **changes}
            if resource.updated_field and not sandbox.has_fault("updated-at-frozen"):
                updated[resource.updated_field] = utc_now_after(current.get(resource.updated_field) or utc_now())
            if resource.created_field and resource.updated_field and sandbox.has_fault("created-at-moves"):
                updated[resource.created_field] = updated[resource.updated_field]
            if sandbox.has_fault("update-not-persisted"):
                unsaved.append(updated)
                return None
            return {"id": doc["id"], "data": updated}

        key = self._item_id(kwargs)
        doc = await anyio.to_thread.run_sync(sandbox.store.update, resource.name, organization, key, change)
        if doc is None:
            return error_response(404, NOT_FOUND)
        return self._answer(self._view(unsaved[-1] if unsaved else doc["data"]))

    async def delete(self, organization: str, kwargs: dict):
        sandbox = current_sandbox()
        name, key = self.resource.name, self._item_id(kwargs)
        doc = sandbox.store.get(name, organization, key)
        if doc is None:
            return error_response(404, NOT_FOUND)
        if not sandbox.has_fault("delete-not-persisted"):
            await anyio.to_thread.run_sync(sandbox.store.delete, name, organization, key)
        return self._answer(self._view(doc["data"]))


def build_operations(profile: Profile) -> dict[str, t.Callable]:
    """operationId -> handler for every operation the profile recognises."""
    ids = IdGenerator()
    return {op_id: GenericOperation(op, profile, ids).handle for op_id, op in profile.operations.items()}


def is_generic(handler: t.Callable) -> bool:
    return isinstance(getattr(handler, "__self__", None), GenericOperation)
