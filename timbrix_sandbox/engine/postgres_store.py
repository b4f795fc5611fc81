"""The record store on PostgreSQL (psycopg 3), for a sandbox served by several processes.

TinyDB's data directory belongs to one process. A shared sandbox (``serve --workers N``, or
processes on several hosts behind a proxy) keeps its state in one PostgreSQL database instead;
this module implements :class:`~timbrix_sandbox.engine.stores.RecordStore` on it, with the same
semantics the engine relies on (``tests/test_store_contract.py`` runs on both stores):

* **One JSONB document per record**, keyed by ``(collection, scope, id)`` in
  ``sandbox_records``; ``seq`` (a sequence) keeps insertion order, which an update does not
  change. JSONB does not keep the key order of free-form objects (responses are projected in
  the schema's order, so declared fields are unaffected).
* **Durable on commit.** Every write is one transaction; PostgreSQL makes a commit visible only
  after its WAL is flushed (``synchronous_commit`` on, the default), so no reader in any process
  sees a write a crash could undo.
* **No lost update: compare-and-swap.** ``update`` reads the document and its ``version``
  (from one sequence: never reused), runs the change in Python, and writes only
  ``WHERE version = <read>``; if another writer won (in another process) it reads again and
  re-runs the change. No transaction is held open across Python code; a process that wrote the
  record last swaps against what it wrote without reading it again (one round trip).
* **Resets are atomic per tenant and across tenants.** ``replace_partitions`` runs in one
  transaction that first locks the partitions' rows in ``sandbox_partitions`` (in key order:
  two resets cannot deadlock). Every record references its partition row (a foreign key), so an
  insert waits for a reset of its partition and lands after it; records that survive a reset
  are rewritten in place (upsert, new version), so a concurrent update retries on the
  fixture, and the others are deleted.
* **Creates never collide**: the primary key refuses a duplicate id (``KeyError``, like
  TinyDB); integer ids come from ``sandbox_counters`` (one row per collection, incremented
  atomically), never from a per-process counter.
* **Seeding once.** :meth:`PostgresStore.startup` holds a session advisory lock while a process
  claims, seeds and upgrades the database; the seeding markers and the contract claim are rows
  of ``sandbox_meta``.

The tables live in the connection's schema (``search_path``): one contract per database or per
schema (``postgresql://.../db?options=-csearch_path%3Dbeel``).
"""

from __future__ import annotations

import contextlib
import threading
import typing as t
import urllib.parse

import anyio
import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from timbrix_sandbox.contract.records import copy_json
from timbrix_sandbox.engine.store import RecordExists, WrongContract

Record = dict[str, t.Any]

POOL_MIN = 2
POOL_MAX = 16
"""Connections per process; reads and writes run in worker threads (anyio's, up to 40)."""
UPDATE_STRIPES = 64
"""In-process locks, by record key: of this process's updates of one record, one at a time
tries its compare-and-swap (the others would only lose it and retry); see ``update``."""
REMEMBERED_WRITES = 4096
"""Records whose last write by this process is remembered (``update``); forgotten all at once."""
CONNECT_TIMEOUT = 10
STARTUP_LOCK = 0x7462_7378_0001  # "tbsx" 1: held while a process claims and seeds
SCHEMA_LOCK = 0x7462_7378_0002  # "tbsx" 2: creating the tables (CREATE IF NOT EXISTS races)

SCHEMA = """
CREATE TABLE IF NOT EXISTS sandbox_partitions (
    collection text NOT NULL,
    scope text NOT NULL,
    PRIMARY KEY (collection, scope)
);
CREATE SEQUENCE IF NOT EXISTS sandbox_versions;
CREATE TABLE IF NOT EXISTS sandbox_records (
    collection text NOT NULL,
    scope text NOT NULL,
    id text NOT NULL,
    seq bigserial NOT NULL,
    version bigint NOT NULL DEFAULT nextval('sandbox_versions'),
    doc jsonb NOT NULL,
    PRIMARY KEY (collection, scope, id),
    FOREIGN KEY (collection, scope) REFERENCES sandbox_partitions (collection, scope)
);
CREATE INDEX IF NOT EXISTS sandbox_records_order ON sandbox_records (collection, scope, seq);
CREATE TABLE IF NOT EXISTS sandbox_counters (
    collection text PRIMARY KEY,
    value bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS sandbox_meta (
    key text PRIMARY KEY,
    value jsonb NOT NULL
);
"""


def redacted(url: str) -> str:
    """``url`` without its password, for banners, logs and the health answer."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


class PostgresStore:
    """Records in one PostgreSQL database; see the module docstring."""

    def __init__(self, url: str, *, pool_min: int = POOL_MIN, pool_max: int = POOL_MAX) -> None:
        from timbrix_sandbox.engine.stores import StoreUnavailable

        self.url = url
        self._update_locks = [threading.Lock() for _ in range(UPDATE_STRIPES)]
        self._written: dict[tuple[str, str, str], tuple[int, Record]] = {}
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                    conn.execute(SCHEMA)
        except psycopg.Error as exc:
            raise StoreUnavailable(f"cannot use the database {redacted(url)}: {' '.join(str(exc).split())}") from None
        self._pool = ConnectionPool(
            url,
            min_size=pool_min,
            max_size=pool_max,
            kwargs={"autocommit": True},
            open=False,
            name="timbrix-sandbox",
        )
        self._pool.open(wait=True, timeout=CONNECT_TIMEOUT)

    # -- what it is ---------------------------------------------------------------------------
    @property
    def storage(self) -> str:
        return "postgresql"

    @property
    def location(self) -> str | None:
        return redacted(self.url)

    @property
    def shared(self) -> bool:
        return True

    @property
    def blocking_reads(self) -> bool:
        return True

    def _query(self, sql: str, params: t.Sequence[t.Any] = ()) -> list[tuple]:
        with self._pool.connection() as conn:
            return conn.execute(sql, params).fetchall()

    # -- reads ----------------------------------------------------------------------------------
    def get(self, collection: str, scope: str, record_id: str) -> Record | None:
        rows = self._query(
            "SELECT doc FROM sandbox_records WHERE collection = %s AND scope = %s AND id = %s",
            (collection, scope, record_id),
        )
        return rows[0][0] if rows else None

    def peek(self, collection: str, scope: str, record_id: str) -> Record | None:
        """Every read decodes a new document: nothing is shared with the store."""
        return self.get(collection, scope, record_id)

    def list(self, collection: str, scope: str) -> list[Record]:
        """A partition's records in insertion order."""
        rows = self._query(
            "SELECT doc FROM sandbox_records WHERE collection = %s AND scope = %s ORDER BY seq",
            (collection, scope),
        )
        return [row[0] for row in rows]

    def peek_all(self, collection: str, scope: str) -> list[Record]:
        return self.list(collection, scope)

    def count(self, collection: str, scope: str) -> int:
        rows = self._query(
            "SELECT count(*) FROM sandbox_records WHERE collection = %s AND scope = %s", (collection, scope)
        )
        return int(rows[0][0])

    def scopes(self, collection: str) -> list[str]:
        """Scopes ever written to (reset ones too, even if empty), sorted as Python sorts."""
        rows = self._query("SELECT scope FROM sandbox_partitions WHERE collection = %s", (collection,))
        return sorted(row[0] for row in rows)

    # -- writes ---------------------------------------------------------------------------------
    def insert(self, collection: str, scope: str, record: Record) -> Record:
        """Refuses an id that exists (``KeyError``). Waits for a reset of the partition (the
        foreign key locks its row), so the record lands after it, never inside it."""
        with self._pool.connection() as conn:
            for _attempt in range(2):
                try:
                    conn.execute(
                        "INSERT INTO sandbox_records (collection, scope, id, doc) VALUES (%s, %s, %s, %s)",
                        (collection, scope, record["id"], Jsonb(record)),
                    )
                    return record
                except psycopg.errors.UniqueViolation:
                    raise RecordExists(f"record {record['id']} already exists") from None
                except psycopg.errors.ForeignKeyViolation:  # the partition's first record
                    conn.execute(
                        "INSERT INTO sandbox_partitions (collection, scope) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                        (collection, scope),
                    )
        raise RuntimeError(f"partition {collection}/{scope} vanished while inserting")  # pragma: no cover

    def update(
        self,
        collection: str,
        scope: str,
        record_id: str,
        change: t.Callable[[Record], Record | None],
    ) -> Record | None:
        """Read-modify-write by compare-and-swap on the row's ``version``: ``change`` may run
        more than once (on the newer record) when another process's writer got there first, so
        it must not have effects beyond its result. Same contract as ``Store.update``.

        Two optimisations, neither of which correctness rests on (the swap is what keeps
        writers apart):

        * Within one process, updates of one record queue on a striped lock: 32 clients
          updating one record would otherwise mostly lose the swap, wait for the winner's
          commit and retry.
        * The version and document this process last wrote are remembered, so the next update
          of the record swaps against them without reading first (one round trip, not two).
          Versions come from one sequence and are never reused, so a remembered version that
          still matches means the remembered document is the stored one; if it does not match
          (another process wrote, a reset, a delete), the update reads and runs again. A
          change that refuses a remembered document is run again on the stored one too, so a
          stale memory never turns into an error.
        """
        key = (collection, scope, record_id)
        with self._update_locks[hash(key) % UPDATE_STRIPES], self._pool.connection() as conn:
            known = self._written.pop(key, None)
            while True:
                if known is None:
                    row = conn.execute(
                        "SELECT version, doc FROM sandbox_records WHERE collection = %s AND scope = %s AND id = %s",
                        key,
                    ).fetchone()
                    if row is None:
                        return None
                    version, current = row  # a document decoded for this call: a copy
                else:
                    version, current = known[0], copy_json(known[1])
                try:
                    updated = change(current)
                except Exception:
                    if known is None:
                        raise
                    known = None  # judged on what this process wrote last: judge the stored record
                    continue
                if updated is None:
                    return self._decoded(conn, key)  # as stored (``change`` may have mutated its copy)
                if updated.get("id") != record_id:
                    raise ValueError("an update must not change the record id")
                row = conn.execute(
                    "UPDATE sandbox_records SET doc = %s, version = nextval('sandbox_versions') "
                    "WHERE collection = %s AND scope = %s AND id = %s AND version = %s RETURNING version",
                    (Jsonb(updated), *key, version),
                ).fetchone()
                if row is not None:
                    if len(self._written) >= REMEMBERED_WRITES:
                        self._written.clear()
                    self._written[key] = (row[0], copy_json(updated))
                    return updated
                known = None

    def _decoded(self, conn: psycopg.Connection, key: tuple[str, str, str]) -> Record | None:
        row = conn.execute(
            "SELECT doc FROM sandbox_records WHERE collection = %s AND scope = %s AND id = %s", key
        ).fetchone()
        return row[0] if row else None

    # Writes block on the database's commit: the engine awaits them in a worker thread, so the
    # event loop keeps serving meanwhile.
    async def insert_async(self, collection: str, scope: str, record: Record) -> Record:
        return await anyio.to_thread.run_sync(self.insert, collection, scope, record)

    async def update_async(
        self, collection: str, scope: str, record_id: str, change: t.Callable[[Record], Record | None]
    ) -> Record | None:
        return await anyio.to_thread.run_sync(self.update, collection, scope, record_id, change)

    async def delete_async(self, collection: str, scope: str, record_id: str) -> bool:
        return await anyio.to_thread.run_sync(self.delete, collection, scope, record_id)

    def delete(self, collection: str, scope: str, record_id: str) -> bool:
        with self._pool.connection() as conn:
            deleted = conn.execute(
                "DELETE FROM sandbox_records WHERE collection = %s AND scope = %s AND id = %s",
                (collection, scope, record_id),
            ).rowcount
        return bool(deleted)

    def replace_partitions(self, contents: t.Mapping[tuple[str, str], t.Iterable[Record]]) -> None:
        """Swap several partitions' content in one transaction (a reset): every process sees
        the old content of all of them or the new content of all of them."""
        keys = sorted(contents)
        new = {key: list(contents[key]) for key in keys}
        with self._pool.connection() as conn, conn.transaction():
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO sandbox_partitions (collection, scope) VALUES (%s, %s) ON CONFLICT DO NOTHING", keys
                )
            for key in keys:  # in key order: two resets lock in the same order
                conn.execute(
                    "SELECT 1 FROM sandbox_partitions WHERE collection = %s AND scope = %s FOR UPDATE", key
                )
            for (collection, scope), records in new.items():
                conn.execute(
                    "DELETE FROM sandbox_records WHERE collection = %s AND scope = %s AND NOT (id = ANY(%s))",
                    (collection, scope, [r["id"] for r in records]),
                )
                if records:
                    with conn.cursor() as cursor:
                        cursor.executemany(
                            "INSERT INTO sandbox_records AS r (collection, scope, id, doc) VALUES (%s, %s, %s, %s) "
                            "ON CONFLICT (collection, scope, id) DO UPDATE "
                            "SET doc = EXCLUDED.doc, seq = EXCLUDED.seq, version = EXCLUDED.version",
                            [(collection, scope, r["id"], Jsonb(r)) for r in records],
                        )

    def replace_all(self, collection: str, scope: str, records: t.Iterable[Record]) -> None:
        self.replace_partitions({(collection, scope): records})

    def next_integer_id(self, collection: str) -> int:
        """One counter row per collection, started above the largest integer id stored."""
        with self._pool.connection() as conn:
            row = conn.execute(
                "UPDATE sandbox_counters SET value = value + 1 WHERE collection = %s RETURNING value", (collection,)
            ).fetchone()
            if row is None:
                row = conn.execute(
                    "INSERT INTO sandbox_counters AS c (collection, value) "
                    "SELECT %s, COALESCE(MAX(id::bigint), 0) + 1 FROM sandbox_records "
                    "WHERE collection = %s AND id ~ '^[0-9]{1,18}$' "
                    "ON CONFLICT (collection) DO UPDATE SET value = c.value + 1 RETURNING value",
                    (collection, collection),
                ).fetchone()
            assert row is not None
            return int(row[0])

    # -- lifecycle ------------------------------------------------------------------------------
    def open_all(self, collection: str) -> None:
        """Nothing to load: every process reads the database itself."""

    def _meta(self, key: str) -> t.Any:
        rows = self._query("SELECT value FROM sandbox_meta WHERE key = %s", (key,))
        return rows[0][0] if rows else None

    def _set_meta(self, key: str, value: t.Any) -> None:
        self._query(
            "INSERT INTO sandbox_meta (key, value) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value RETURNING key",
            (key, Jsonb(value)),
        )

    def claim(self, contract: str, unmarked_owner: str | None = None, layout: int = 1) -> int:
        """Tie the database (schema) to one contract, as ``Store.claim`` ties a directory."""
        written = self._meta("contract")
        owner = written["contract"] if written else None
        if owner is None and self.is_seeded():
            owner = unmarked_owner
        if owner is not None and owner != contract:
            raise WrongContract(
                f"{self.location} holds data of {owner!r}, not {contract!r}: use another database or schema"
            )
        if owner is None:
            self._set_meta("contract", {"contract": contract, "layout": layout})
            return layout
        return int((written or {}).get("layout", 1))

    def set_layout(self, contract: str, layout: int) -> None:
        self._set_meta("contract", {"contract": contract, "layout": layout})

    def is_seeded(self) -> bool:
        return self._meta("seeded") is not None

    def begin_seeding(self) -> None:
        self._set_meta("seeding", True)

    def seeding_interrupted(self) -> bool:
        return self._meta("seeding") is not None and not self.is_seeded()

    def mark_seeded(self) -> None:
        with self._pool.connection() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO sandbox_meta (key, value) VALUES ('seeded', 'true') ON CONFLICT (key) DO NOTHING"
            )
            conn.execute("DELETE FROM sandbox_meta WHERE key = 'seeding'")

    @contextlib.contextmanager
    def startup(self) -> t.Iterator[None]:
        """A session advisory lock on its own connection: of processes starting at once, one
        claims and seeds while the others wait, then find the store seeded."""
        with psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (STARTUP_LOCK,))
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (STARTUP_LOCK,))

    def close(self) -> None:
        self._pool.close()
