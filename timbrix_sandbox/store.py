"""Durable, thread-safe record store on TinyDB, whose write cost does not grow with its size.

TinyDB's stock ``JSONStorage`` re-reads and rewrites the whole file on every operation (about
180 ms per write at 10k documents), is not thread-safe and is not crash-atomic. This store keeps
TinyDB as the in-memory document store and query engine, and makes persistence cheap and safe:

* **Partitions.** Records live in partitions keyed by ``(collection, scope)`` - for Timbrix,
  ``("customers", organizationId)`` - each with its own lock, so tenants never contend and a
  reset touches only one file pair. The store knows nothing about customers or contracts.
* **In-place tables.** :class:`RecordTable` uses record ids (strings) as TinyDB document ids and
  mutates the table in place, so an insert/update/delete is O(1) instead of TinyDB's O(n)
  rebuild of the whole table.
* **Write-ahead journal.** Each write appends one JSON line to ``<scope>.journal`` and fsyncs it
  *before* the change is applied and acknowledged, so an acknowledged write survives ``kill -9``.
  A torn last line (crash mid-append) is ignored on load: it was never acknowledged.
* **Atomic snapshots.** ``<scope>.json`` is a TinyDB JSON file (string document ids, so open
  it with :class:`RecordTable` as the table class), rewritten only by
  compaction via temp file + fsync + ``os.replace``: a crash leaves the old or the new snapshot,
  never a mix. Compaction runs on load, on close and once the journal outgrows the partition
  (``max(COMPACT_MIN_LINES, records)`` lines), which keeps its cost amortised O(1) per write.

With ``data_dir=None`` everything stays in memory (tests, throwaway sandboxes).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import typing as t
from pathlib import Path

from tinydb import TinyDB
from tinydb.storages import Storage
from tinydb.table import Document, Table

logger = logging.getLogger("timbrix_sandbox.store")

COMPACT_MIN_LINES = 1000
TABLE_NAME = "records"
META_TABLE = "_meta"
SEEDED_MARKER = ".seeded"
CONTRACT_MARKER = ".contract"
_SAFE_SCOPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$")

Record = dict[str, t.Any]


class RecordTable(Table):
    """A TinyDB table keyed by the records' own string ids, updated in place.

    TinyDB's ``Table._update_table`` copies the whole table twice per write (to convert ids to
    ``int`` and back); with string ids there is nothing to convert, so the updater can run on
    the stored dict directly. Relies on TinyDB 4.9 internals (pinned).
    """

    document_id_class = str

    def _update_table(self, updater: t.Callable[[dict], None]) -> None:
        tables = self._storage.read()
        updater(tables.setdefault(self.name, {}))
        self.clear_cache()


class _LiveMemoryStorage(Storage):
    """Keeps the data dict itself (``MemoryStorage`` starts from ``None`` and needs writes)."""

    def __init__(self) -> None:
        self.data: dict[str, dict] = {}

    def read(self) -> dict[str, dict]:
        return self.data

    def write(self, data: dict[str, dict]) -> None:
        self.data = data


class _RecordDB(TinyDB):
    table_class = RecordTable
    default_table_name = TABLE_NAME


class CorruptJournal(Exception):
    """A journal line other than the last one could not be read."""


class _Partition:
    def __init__(self, directory: Path | None, scope: str) -> None:
        self.lock = threading.RLock()
        self.db = _RecordDB(storage=_LiveMemoryStorage)
        self.table: RecordTable = self.db.table(TABLE_NAME)  # type: ignore[assignment]
        self.journal_lines = 0
        self.generation = 0
        self._journal_fd: int | None = None
        self.snapshot_path = self.journal_path = None
        if directory is not None:
            name = scope if _SAFE_SCOPE.match(scope) else hashlib.sha256(scope.encode()).hexdigest()
            self.snapshot_path = directory / f"{name}.json"
            self.journal_path = directory / f"{name}.journal"
            self._load()

    # -- persistence -------------------------------------------------------------------------
    def _load(self) -> None:
        """Snapshot + the journal entries written on top of *that* snapshot.

        Entries carry the generation of the snapshot they follow. A crash between writing a
        new snapshot and emptying the journal leaves entries of an older generation behind;
        they are already in the snapshot (compaction) or superseded by it (reset), so they are
        skipped rather than replayed over it.
        """
        assert self.snapshot_path is not None and self.journal_path is not None
        records: dict[str, Record] = {}
        if not self.snapshot_path.exists() and not self.journal_path.exists():
            return
        if self.snapshot_path.exists():
            raw = json.loads(self.snapshot_path.read_text(encoding="utf-8") or "{}")
            records = dict(raw.get(TABLE_NAME, {}))
            self.generation = int(raw.get(META_TABLE, {}).get("1", {}).get("generation", 0))
        if self.journal_path.exists():
            lines = self.journal_path.read_bytes().split(b"\n")
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    if number >= len(lines) - 1:  # torn tail: never acknowledged
                        logger.warning("ignoring torn journal tail in %s", self.journal_path)
                        break
                    raise CorruptJournal(f"{self.journal_path}:{number} is not valid JSON") from None
                if entry.get("g", 0) != self.generation:
                    continue
                if entry["op"] == "put":
                    records[entry["doc"]["id"]] = entry["doc"]
                else:
                    records.pop(entry["id"], None)
        self.db.storage.data = {TABLE_NAME: records}  # type: ignore[attr-defined]
        self.table.clear_cache()
        self.compact()

    def _append(self, entry: dict) -> None:
        """Durably append one entry, or raise having written nothing.

        A raw fd, not a buffered file: after a failed write or fsync (disk full, I/O error) a
        buffer would keep the partial entry and flush it with the *next* write, resurrecting
        a write the client was told had failed. Here the file is cut back to where it was.
        """
        if self.journal_path is None:
            return
        if self._journal_fd is None:
            self._journal_fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        data = json.dumps({**entry, "g": self.generation}, ensure_ascii=False).encode() + b"\n"
        offset = os.fstat(self._journal_fd).st_size
        try:
            written = os.write(self._journal_fd, data)
            if written != len(data):
                raise OSError(f"short write to {self.journal_path}")
            os.fsync(self._journal_fd)
        except BaseException:
            try:
                os.ftruncate(self._journal_fd, offset)
                os.fsync(self._journal_fd)
            except OSError:
                logger.exception("could not roll back %s", self.journal_path)
            raise
        self.journal_lines += 1

    def _maybe_compact(self) -> None:
        """Called only after a journaled change is applied in memory, so the snapshot that
        replaces the journal contains it."""
        if self.journal_lines > max(COMPACT_MIN_LINES, len(self._raw())):
            self.compact()

    def compact(self) -> None:
        """Write the next-generation snapshot atomically, then empty the journal."""
        if self.snapshot_path is None or self.journal_path is None:
            return
        generation = self.generation + 1
        snapshot = {TABLE_NAME: self._raw(), META_TABLE: {"1": {"generation": generation}}}
        _atomic_write_json(self.snapshot_path, snapshot)
        self.generation = generation
        self._close_journal()
        with open(self.journal_path, "wb") as journal:
            os.fsync(journal.fileno())
        self.journal_lines = 0

    def _close_journal(self) -> None:
        if self._journal_fd is not None:
            os.close(self._journal_fd)
            self._journal_fd = None

    def close(self) -> None:
        self.compact()
        self._close_journal()

    # -- records -----------------------------------------------------------------------------
    # Reads take no lock: a stored record is never mutated (an update stores a new dict), and
    # dict.get / dict.copy are atomic under the GIL. A GET therefore never waits for a writer's
    # fsync or a compaction, and never blocks the event loop.
    def _raw(self) -> dict[str, Record]:
        return self.db.storage.data.setdefault(TABLE_NAME, {})  # type: ignore[attr-defined]

    def get(self, record_id: str) -> Record | None:
        doc = self._raw().get(record_id)
        return _copy(doc) if doc is not None else None

    def values(self) -> list[Record]:
        return _copy(list(self._raw().copy().values()))

    def put(self, record: Record) -> None:
        self._append({"op": "put", "doc": record})
        if record["id"] in self._raw():
            # Swap in the new dict rather than TinyDB's in-place update: lock-free readers see
            # the old record or the new one, never a half-written one.
            self._raw()[record["id"]] = record
            self.table.clear_cache()
        else:
            self.table.insert(Document(record, doc_id=record["id"]))
        self._maybe_compact()

    def delete(self, record_id: str) -> None:
        self._append({"op": "del", "id": record_id})
        self.table.remove(doc_ids=[record_id])
        self._maybe_compact()

    def replace_all(self, records: t.Iterable[Record]) -> None:
        self.db.storage.data = {TABLE_NAME: {r["id"]: _copy(r) for r in records}}  # type: ignore[attr-defined]
        self.table.clear_cache()
        self.compact()


class StoreInUse(RuntimeError):
    """Another process has this data directory open."""


class WrongContract(RuntimeError):
    """The data directory holds another contract's records."""


def _lock_directory(data_dir: Path) -> int:
    """An exclusive, advisory lock on the data directory for this process's lifetime.

    Two processes on one directory (two servers, or an offline ``reset`` beside a running
    server) would each keep their own in-memory state and journal over each other, losing
    acknowledged writes. The kernel drops the lock when the process dies, even by SIGKILL.
    """
    import fcntl

    fd = os.open(data_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise StoreInUse(
            f"{data_dir} is in use by another timbrix-sandbox process (pid {holder}); "
            "stop it, use another --data-dir, or reset the running one with `reset --url`"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def _copy(value: t.Any) -> t.Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars): records are JSON, and this is
    ~4x faster than ``copy.deepcopy`` on a customer, which every read pays."""
    kind = type(value)
    if kind is dict:
        return {key: _copy(item) for key, item in value.items()}
    if kind is list:
        return [_copy(item) for item in value]
    return value


def _atomic_write_json(path: Path, data: t.Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would make the data unreadable to other users
        with os.fdopen(fd, "wb") as handle:
            handle.write(json.dumps(data, ensure_ascii=False).encode())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Store:
    """Records partitioned by ``(collection, scope)``; see the module docstring."""

    def __init__(self, data_dir: str | os.PathLike[str] | None = None) -> None:
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self._partitions: dict[tuple[str, str], _Partition] = {}
        self._lock = threading.Lock()
        self._dir_lock: int | None = None
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._dir_lock = _lock_directory(self.data_dir)
            for leftover in self.data_dir.glob("*/.tmp-*"):
                leftover.unlink(missing_ok=True)

    def open_all(self, collection: str) -> None:
        """Load every persisted partition now (at startup), not on a first request."""
        for scope in self.scopes(collection):
            self._partition(collection, scope)

    def claim(self, contract: str, unmarked_owner: str | None = None) -> None:
        """Tie the data directory to one contract: records shaped for BeeL must never be
        served as Timbrix customers. A seeded directory without a marker (written before
        markers existed) belongs to ``unmarked_owner``."""
        if self.data_dir is None:
            return
        marker = self.data_dir / CONTRACT_MARKER
        owner = json.loads(marker.read_text())["contract"] if marker.exists() else None
        if owner is None and self.is_seeded():
            owner = unmarked_owner
        if owner is not None and owner != contract:
            self._release_dir_lock()
            raise WrongContract(f"{self.data_dir} holds data of {owner!r}, not {contract!r}: pass another --data-dir")
        if owner is None:
            _atomic_write_json(marker, {"contract": contract})

    def mark_seeded(self) -> None:
        """Record that the first seeding finished (a seed cut short by a crash is redone)."""
        if self.data_dir is not None:
            _atomic_write_json(self.data_dir / SEEDED_MARKER, {"seeded": True})
        self._seeded_in_memory = True

    def abandon(self) -> None:
        """Let go of the data directory as a crash would: nothing compacted or flushed. For
        tests that reopen a directory in-process to check what a crash leaves behind."""
        for partition in self._partitions.values():
            partition._close_journal()
        self._release_dir_lock()

    def _release_dir_lock(self) -> None:
        if self._dir_lock is not None:
            os.close(self._dir_lock)  # closing the descriptor releases the flock
            self._dir_lock = None

    @property
    def in_memory(self) -> bool:
        return self.data_dir is None

    def _partition(self, collection: str, scope: str) -> _Partition:
        key = (collection, scope)
        partition = self._partitions.get(key)
        if partition is None:
            with self._lock:
                partition = self._partitions.get(key)
                if partition is None:
                    directory = None
                    if self.data_dir is not None:
                        directory = self.data_dir / collection
                        directory.mkdir(parents=True, exist_ok=True)
                    partition = _Partition(directory, scope)
                    self._partitions[key] = partition
        return partition

    def scopes(self, collection: str) -> list[str]:
        """Scopes with data, including ones persisted by an earlier run but not yet opened."""
        with self._lock:
            found = {scope for (c, scope) in self._partitions if c == collection}
        if self.data_dir is not None and (self.data_dir / collection).is_dir():
            for path in (self.data_dir / collection).iterdir():
                if path.suffix in (".json", ".journal") and not path.name.startswith("."):
                    found.add(path.stem)
        return sorted(found)

    def is_seeded(self) -> bool:
        if self.data_dir is None:
            return getattr(self, "_seeded_in_memory", False)
        return (self.data_dir / SEEDED_MARKER).exists()

    # Reads take no lock (see _Partition): they never wait for a writer's fsync.
    def get(self, collection: str, scope: str, record_id: str) -> Record | None:
        return self._partition(collection, scope).get(record_id)

    def list(self, collection: str, scope: str) -> list[Record]:
        """All records of a partition in insertion order (copies)."""
        return self._partition(collection, scope).values()

    def count(self, collection: str, scope: str) -> int:
        return len(self._partition(collection, scope)._raw())

    def insert(self, collection: str, scope: str, record: Record) -> Record:
        partition = self._partition(collection, scope)
        with partition.lock:
            if record["id"] in partition._raw():
                raise KeyError(f"record {record['id']} already exists")
            partition.put(_copy(record))
        return record

    def update(
        self,
        collection: str,
        scope: str,
        record_id: str,
        change: t.Callable[[Record], Record | None],
    ) -> Record | None:
        """Read-modify-write under the partition lock.

        ``change`` gets a copy of the stored record and returns the new record, or ``None`` to
        leave it untouched; if it raises, nothing is written. Returns the stored record, or
        ``None`` if ``record_id`` does not exist.
        """
        partition = self._partition(collection, scope)
        with partition.lock:
            current = partition.get(record_id)
            if current is None:
                return None
            updated = change(current)
            if updated is None:
                return partition.get(record_id)
            if updated.get("id") != record_id:
                raise ValueError("an update must not change the record id")
            partition.put(_copy(updated))
            return updated

    def delete(self, collection: str, scope: str, record_id: str) -> bool:
        partition = self._partition(collection, scope)
        with partition.lock:
            if record_id not in partition._raw():
                return False
            partition.delete(record_id)
            return True

    def replace_all(self, collection: str, scope: str, records: t.Iterable[Record]) -> None:
        """Swap a partition's whole content (used by reset-to-fixtures)."""
        partition = self._partition(collection, scope)
        with partition.lock:
            partition.replace_all(records)

    def close(self) -> None:
        """Compact every partition (fast restart, short journals) and release the directory."""
        with self._lock:
            for partition in self._partitions.values():
                with partition.lock:
                    partition.close()
        self._release_dir_lock()
