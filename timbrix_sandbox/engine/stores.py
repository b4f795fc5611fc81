"""The store interface the engine, the sandbox and the control API use, and the factory that
picks an implementation from a URL or a directory.

Two implementations:

* :class:`TinyDBStore` (``engine/store.py``): the embedded default, one process, a data
  directory (journal + snapshots) or memory. Its directory is locked to one process.
* :class:`~timbrix_sandbox.engine.postgres_store.PostgresStore`: one PostgreSQL database shared
  by any number of processes (``serve --workers N``, or several hosts).

Records are JSON documents with a string ``"id"``, partitioned by ``(collection, scope)``: for
Timbrix ``("customers", organizationId)``. What every implementation must keep (the contract
tests in ``tests/test_store_contract.py`` run on both):

* ``update`` is a read-modify-write that no concurrent writer can interleave with (a lock or a
  row lock): no lost update. ``change`` gets a copy; raising or returning ``None`` writes nothing.
* ``insert`` of an id that exists raises ``KeyError`` (never overwrites).
* ``list``/``peek_all`` return a partition in insertion order (an update keeps the position).
* ``replace_partitions`` is all or nothing, and every reader (in every process) sees either the
  old or the new content of all the partitions it names.
* An acknowledged write is durable.
* ``next_integer_id`` never hands out the same id twice, across processes too.
* ``startup()`` is held while a process claims, seeds and upgrades the store, so that of many
  processes starting at once exactly one seeds.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import typing as t

from timbrix_sandbox.engine.store import Store

Record = dict[str, t.Any]

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class StoreUnavailable(RuntimeError):
    """The store cannot be opened (a database that does not answer, a wrong URL); the message
    says which and why."""


@t.runtime_checkable
class RecordStore(t.Protocol):
    """What the rest of the code may call on a store (see the module docstring)."""

    @property
    def storage(self) -> str:
        """``"memory"``, ``"file"`` or ``"postgresql"`` (the control API's health reports it)."""
        ...

    @property
    def location(self) -> str | None:
        """Where the data lives, for people: the data directory, or the database URL without
        its password; ``None`` in memory."""
        ...

    @property
    def shared(self) -> bool:
        """Several processes may serve this store at once (``serve --workers``)."""
        ...

    @property
    def blocking_reads(self) -> bool:
        """Reads wait on I/O (a database round trip): the engine runs them in a worker thread,
        off the event loop. TinyDB reads memory: they run on the loop."""
        ...

    def get(self, collection: str, scope: str, record_id: str) -> Record | None: ...

    def peek(self, collection: str, scope: str, record_id: str) -> Record | None:
        """The record for a reader that never mutates it (may be the stored object itself)."""
        ...

    def peek_all(self, collection: str, scope: str) -> list[Record]: ...

    def list(self, collection: str, scope: str) -> list[Record]: ...

    def count(self, collection: str, scope: str) -> int: ...

    def insert(self, collection: str, scope: str, record: Record) -> Record: ...

    def update(
        self, collection: str, scope: str, record_id: str, change: t.Callable[[Record], Record | None]
    ) -> Record | None: ...

    def delete(self, collection: str, scope: str, record_id: str) -> bool: ...

    # The engine's writes: awaited on the event loop, answered once durable (TinyDB batches
    # concurrent writes into one fsync; PostgreSQL commits each in a worker thread).
    async def insert_async(self, collection: str, scope: str, record: Record) -> Record: ...

    async def update_async(
        self, collection: str, scope: str, record_id: str, change: t.Callable[[Record], Record | None]
    ) -> Record | None: ...

    async def delete_async(self, collection: str, scope: str, record_id: str) -> bool: ...

    def scopes(self, collection: str) -> list[str]: ...

    def replace_partitions(self, contents: t.Mapping[tuple[str, str], t.Iterable[Record]]) -> None: ...

    def next_integer_id(self, collection: str) -> int:
        """A new integer id for ``collection``: above every stored one, never handed out before."""
        ...

    def open_all(self, collection: str) -> None: ...

    def claim(self, contract: str, unmarked_owner: str | None = None, layout: int = 1) -> int: ...

    def set_layout(self, contract: str, layout: int) -> None: ...

    def is_seeded(self) -> bool: ...

    def begin_seeding(self) -> None: ...

    def seeding_interrupted(self) -> bool: ...

    def mark_seeded(self) -> None: ...

    def startup(self) -> t.ContextManager[None]:
        """Held while claiming, seeding and upgrading (one process at a time)."""
        ...

    def close(self) -> None: ...


class TinyDBStore(Store):
    """The embedded store (``engine/store.py``) with what the interface adds to it: its kind,
    integer ids counted in this process (the data directory is locked to it, so no other
    process hands out ids) and a startup that needs no lock for the same reason."""

    def __init__(
        self, data_dir: str | os.PathLike[str] | None = None, discard_damaged: bool = False, **options: t.Any
    ) -> None:
        super().__init__(data_dir, discard_damaged=discard_damaged, **options)
        self._id_counters: dict[str, t.Iterator[int]] = {}
        self._id_lock = threading.Lock()

    @property
    def storage(self) -> str:
        return "memory" if self.in_memory else "file"

    @property
    def location(self) -> str | None:
        return None if self.data_dir is None else str(self.data_dir)

    @property
    def shared(self) -> bool:
        return False

    @property
    def blocking_reads(self) -> bool:
        return False

    def next_integer_id(self, collection: str) -> int:
        with self._id_lock:
            counter = self._id_counters.get(collection)
            if counter is None:
                stored = (d["id"] for s in self.scopes(collection) for d in self.peek_all(collection, s))
                start = max((int(i) for i in stored if i.isdigit()), default=0) + 1
                counter = self._id_counters[collection] = itertools.count(start)
            return next(counter)

    def startup(self) -> t.ContextManager[None]:
        return contextlib.nullcontext()


def is_database_url(url_or_dir: str | os.PathLike[str] | None) -> bool:
    return isinstance(url_or_dir, str) and url_or_dir.startswith(POSTGRES_SCHEMES)


def open_store(url_or_dir: str | os.PathLike[str] | None, *, discard_damaged: bool = False) -> RecordStore:
    """``postgresql://...`` (or ``postgres://``): a :class:`PostgresStore`; a directory: the
    TinyDB store on it; ``None``: the TinyDB store in memory."""
    if is_database_url(url_or_dir):
        try:  # psycopg only when asked for: it is an optional dependency
            from timbrix_sandbox.engine.postgres_store import PostgresStore
        except ImportError as exc:
            raise StoreUnavailable(
                f"a PostgreSQL store needs psycopg ({exc}): pip install 'timbrix-sandbox[postgresql]'"
            ) from None
        return PostgresStore(t.cast(str, url_or_dir))
    return TinyDBStore(url_or_dir, discard_damaged=discard_damaged)
