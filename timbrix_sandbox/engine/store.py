"""Durable, thread-safe record store on TinyDB, whose write cost does not grow with its size.

TinyDB's stock ``JSONStorage`` re-reads and rewrites the whole file on every operation (about
180 ms per write at 10k documents), is not thread-safe and is not crash-atomic. This store keeps
TinyDB's file format (a snapshot is a TinyDB JSON file, which TinyDB opens with
:class:`RecordTable`) and makes persistence cheap and safe:

* **Partitions.** Records live in partitions keyed by ``(collection, scope)`` - for Timbrix,
  ``("customers", organizationId)`` - each with its own lock, so tenants never contend and a
  reset touches only one file pair. The store knows nothing about customers or contracts.
  A scope that is a safe file name names its files itself; any other scope id (non-ASCII, a
  space, ``@``, longer than 101 characters, or 64 hex digits) is stored under its sha256, and
  its real id is recorded in ``<sha256>.scope`` (and the snapshot's ``_meta``) *before* the
  first write, so every scope id maps to exactly one partition, before and after a restart.
* **Records at rest as JSON bytes.** A partition holds each record as its compact JSON (the
  bytes its journal line carries), keyed by the record's id, so an insert/update/delete is one
  dict assignment, O(1), instead of TinyDB's O(n) rebuild of the whole table. Bytes, not
  dicts, because the cycle collector never looks at bytes: each stored dict was two more
  objects that every young collection met once and every full one walked again, so the
  collector's pauses grew with the store. Measured (POST, 32 connections, server on one core,
  10 s from 14 customers): 40,000 objects in one young collection, 15-28 ms each, 5-7 of them
  and two full ones of 45-72 ms per 10 s; p99 13.6-16.7 ms, against 5.5 ms with the collector
  off. (CPython 3.11 counts a dict from its free list as no allocation, so the stored ones piled
  up unseen between collections.) A reader parses a record (``orjson``, about 1 us for a
  customer, less than the deep copy a read made before); the last ``PARSED_CACHE`` parsed per
  partition are kept for the readers that do not copy (``peek``, ``peek_all``).
* **Write-ahead journal.** Each write appends one JSON line to ``<scope>.journal`` and fsyncs it
  *before* the change is applied and acknowledged, so an acknowledged write survives ``kill -9``.
  A write whose append fails is cut back out of the journal and reported; once the append is
  durable, the write is acknowledged whatever happens next (a compaction that fails, e.g. on a
  full disk, is logged and retried later).
* **Group commit.** A write is first *staged*, under the partition lock and in memory only: its
  change runs on the latest record (staged writes included, so concurrent writes to a record
  never lose each other), its journal line is serialised, and it joins the partition's next
  *batch*. A writer thread (``WRITER_THREADS``; one partition's batches in order, others in
  parallel) appends the whole batch in one ``write`` and one fsync, then applies it and
  acknowledges its writes together. So concurrent writers share one fsync, and no lock is held
  across one. The guarantees are those of one write at a time:

  - a write is acknowledged only after its batch is durable;
  - no reader (``get``, ``list``, ``peek``, ``peek_all``, ``count``) ever sees a staged write:
    readers see only the applied, durable records, so nothing a crash could undo is shown;
  - an answer that was *read* from a staged write (an update that changes nothing, a 404 for a
    staged delete) also waits for that write's batch;
  - if a batch's append fails, its writes fail, and so does every write staged on top of them
    meanwhile (built on a state that never became durable); none is applied or replayed.

  ``insert``/``update``/``delete`` block until acknowledged (from any thread); the engine uses
  ``insert_async``/``update_async``/``delete_async``, which stage on the event loop and await
  the batch, with no thread hop per write. ``Store(journal_sync=...)`` replaces the fsync of
  the journal (tests hold a batch there to watch what readers see).
* **Atomic snapshots.** ``<scope>.json`` is a TinyDB JSON file (string document ids, so open
  it with :class:`RecordTable` as the table class), rewritten only via temp file + fsync +
  ``os.replace``: a crash leaves the old or the new snapshot, never a mix. It records its
  generation and how many journal bytes it absorbed. Compaction runs on load and on close (if
  the journal holds writes) and once the journal outgrows the partition
  (``max(COMPACT_MIN_LINES, records)`` lines), which keeps its cost amortised O(1) per write.
  A reset writes the new snapshot first and serves it only once it is durable; a full reset
  prepares every partition's snapshot before renaming any into place (all or nothing). Writes
  staged before a reset are made durable first, then replaced by it.

Integrity at startup (``open_all``) - everything durable is recovered, or the store refuses:

* Recovered: the snapshot plus the journal lines written on top of it; a final journal segment
  without its newline (a torn append, never acknowledged) is dropped; journal lines older than
  the snapshot, making up exactly the bytes it absorbed (a crash between writing a snapshot and
  emptying the journal), are skipped; a lost ``.scope`` file is rebuilt from the snapshot.
* Refused with :class:`DamagedStore` (naming the file, changing nothing): a snapshot that is
  empty or unreadable, or missing while the journal holds writes made on top of one; a journal
  holding writes newer than its snapshot, or older ones the snapshot did not absorb; a
  newline-terminated journal line that is not a valid entry; a hashed partition whose scope id
  cannot be recovered. The journal is never emptied unless its writes are in a durable snapshot.
* The way out: ``Store(data_dir, discard_damaged=True)`` (``reset --discard-damaged``) moves a
  damaged partition's files to ``DIR/damaged-<UTC timestamp>/`` - nothing is deleted - and
  opens it empty.

With ``data_dir=None`` everything stays in memory (tests, throwaway sandboxes).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import hashlib
import itertools
import json
import logging
import os
import queue
import re
import tempfile
import threading
import typing as t
from pathlib import Path

import anyio
import orjson
from tinydb.table import Table

from timbrix_sandbox.contract.records import json_bytes

logger = logging.getLogger("timbrix_sandbox.store")

COMPACT_MIN_LINES = 1000
TABLE_NAME = "records"
META_TABLE = "_meta"
PARSED_CACHE = 10_000
"""Parsed records kept per partition for ``peek``/``peek_all``. Kept, so that a record read
again is the same dict and the engine's projection of it (``StoredViews``, keyed by the
record) is reused; bounded, because they are dicts the cycle collector walks."""
SEEDED_MARKER = ".seeded"
SEEDING_MARKER = ".seeding"
CONTRACT_MARKER = ".contract"
SCOPE_SUFFIX = ".scope"
_SAFE_SCOPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$")
_HASHED = re.compile(r"[0-9a-f]{64}")
WRITER_THREADS = 4
"""Threads that append and fsync journals: one partition's batches go one at a time (in
order), different partitions' in parallel."""

_DSYNC = getattr(os, "O_DSYNC", 0)
"""Journal appends durable on ``write`` (0 where the platform has none: ``fsync`` after it)."""

STAGE_WAIT = 0.005
"""The longest a write waits on the event loop for its partition's lock (seconds) before it
waits in a worker thread instead (see ``Store._staged_async``)."""

Record = dict[str, t.Any]


def _file_name(scope: str) -> str:
    """The file stem of a scope's partition: the scope itself when that is a safe file name,
    otherwise its sha256. A scope that itself looks like a sha256 is hashed too, so a 64-hex
    stem always means "the real id is in the ``.scope`` file"."""
    if _SAFE_SCOPE.match(scope) and not _HASHED.fullmatch(scope):
        return scope
    return hashlib.sha256(scope.encode("utf-8", "surrogatepass")).hexdigest()


class RecordTable(Table):
    """A TinyDB table keyed by the records' own string ids, updated in place: the table class
    to open a snapshot with (``TinyDB(path, ...)`` with ``table_class = RecordTable``), whose
    document ids are the records' ids.

    TinyDB's ``Table._update_table`` copies the whole table twice per write (to convert ids to
    ``int`` and back); with string ids there is nothing to convert, so the updater can run on
    the stored dict directly. Relies on TinyDB 4.9 internals (pinned).
    """

    document_id_class = str

    def _update_table(self, updater: t.Callable[[dict], None]) -> None:
        tables = self._storage.read()
        updater(tables.setdefault(self.name, {}))
        self.clear_cache()


class DamagedStore(RuntimeError):
    """A partition's files do not hold a state the store can vouch for; the store refuses to
    start rather than serve (and later compact away) less than was acknowledged."""

    def __init__(self, where: str | os.PathLike[str], problem: str, data_dir: str | os.PathLike[str]) -> None:
        self.where = os.fspath(where)
        self.problem = problem
        super().__init__(
            f"{self.where}: {problem}. The data was left as it is. To start over from the fixtures run "
            f"`timbrix-sandbox reset --data-dir {data_dir} --discard-damaged` "
            f"(the damaged files are moved aside to {data_dir}/damaged-<UTC timestamp>/)"
        )


class CorruptJournal(DamagedStore):
    """A complete (newline-terminated) journal line is not a valid entry."""


class _Prepared(t.NamedTuple):
    """A fsynced temp file holding a partition's next snapshot, not yet renamed into place."""

    temp: Path | None
    generation: int
    records: dict[str, bytes]


class StoreClosed(RuntimeError):
    """A write reached a store that was closed or abandoned before it was durable."""


class RecordExists(KeyError):
    """An insert of an id the partition already holds (or has staged). A ``KeyError`` for
    callers that predate it; the engine answers it as a conflict, never a 500."""


class _Batch:
    """Writes that share one journal append and one fsync, and are acknowledged together,
    only once that fsync returned and they were applied (or all failed together).

    Each writer on an event loop awaits a future of its own, and the batch wakes each loop
    once, resolving all of that loop's futures in one callback. (One shared future per loop
    needed an ``asyncio.shield`` per writer, so that a cancelled request would not cancel the
    others' wait: 5 µs of Python per write against 0.3 for a future of its own.) A thread
    waiting synchronously (the sync API: seeding, tools) gets a ``threading.Event``, made only
    then: an Event is a Condition and two locks, built in Python, and a batch is made every
    few writes."""

    __slots__ = ("_done", "_error", "_lock", "_futures", "_event")

    def __init__(self) -> None:
        self._done = False
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._futures: dict[asyncio.AbstractEventLoop, list[asyncio.Future]] = {}
        """The futures the batch's writers await, by their event loop."""
        self._event: threading.Event | None = None

    def settle(self, error: BaseException | None = None) -> None:
        with self._lock:
            self._error = error
            self._done = True
            futures, self._futures = self._futures, {}
            event = self._event
        if event is not None:
            event.set()
        for loop, waiting in futures.items():  # one wake-up per event loop, not per write
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody is waiting
                loop.call_soon_threadsafe(_resolve, waiting)

    def wait(self) -> None:
        if not self._done:
            with self._lock:
                if not self._done and self._event is None:
                    self._event = threading.Event()
                event = None if self._done else self._event
            if event is not None:
                event.wait()
        if self._error is not None:
            raise self._error

    async def wait_async(self) -> None:
        if not self._done:
            loop = asyncio.get_running_loop()
            future = loop.create_future()  # this writer's own: cancelling it cancels no other wait
            with self._lock:
                waiting = not self._done
                if waiting:
                    self._futures.setdefault(loop, []).append(future)
            if waiting:
                await future
        if self._error is not None:
            raise self._error


def _resolve(futures: list[asyncio.Future]) -> None:
    for future in futures:
        if not future.done():  # a cancelled writer's
            future.set_result(None)


_SETTLED = _Batch()
_SETTLED.settle()


class _Staged(t.NamedTuple):
    """A write accepted but not yet durable: seen by later writers, by no reader."""

    key: str
    data: bytes | None
    """The new record's JSON (see :func:`_encode`), or ``None`` for a delete."""
    line: bytes
    """Its journal entry without the generation (added when the batch is written)."""


class _Outcome(t.NamedTuple):
    """What a write answers, and the batch it may answer only after (its own, or the one
    holding the staged writes its answer was read from)."""

    batch: _Batch
    value: t.Any = None
    refusal: BaseException | None = None

    def result(self) -> t.Any:
        self.batch.wait()
        if self.refusal is not None:
            raise self.refusal
        return self.value

    async def result_async(self) -> t.Any:
        await self.batch.wait_async()
        if self.refusal is not None:
            raise self.refusal
        return self.value


class _Writers:
    """The threads that write staged batches: the event loop stages a write and awaits its
    batch, with no thread hop of its own; concurrent writes to a partition share an fsync."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[_Partition | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, partition: _Partition) -> None:
        if len(self._threads) < WRITER_THREADS:
            with self._lock:
                while len(self._threads) < WRITER_THREADS:
                    thread = threading.Thread(target=self._run, name="timbrix-store-writer", daemon=True)
                    thread.start()
                    self._threads.append(thread)
        self._queue.put(partition)

    def _run(self) -> None:
        """Flush a partition's batches one after another while it has one (a batch staged
        during an append waits for no other thread: no hand-off, no second thread woken to
        wait on ``io_lock``), but take turns with the partitions queued behind it, so more hot
        partitions than threads all progress."""
        while (partition := self._queue.get()) is not None:
            while True:
                try:
                    with partition.io_lock:
                        partition.flush()
                except BaseException:  # flush settles its batch with the error; keep writing others
                    logger.exception("store writer: unexpected failure flushing %s", partition.journal_path)
                with partition.lock:
                    if partition.batch is None:
                        partition.flushing = False
                        break
                if not self._queue.empty():
                    self._queue.put(partition)  # still flushing: its turn comes round again
                    break

    def stop(self) -> None:
        with self._lock:
            threads, self._threads = self._threads, []
            for _ in threads:
                self._queue.put(None)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout=10)


class _Partition:
    def __init__(
        self,
        directory: Path | None,
        scope: str,
        writers: _Writers | None = None,
        journal_sync: t.Callable[[int], None] | None = None,
    ) -> None:
        """``directory``: the collection's directory in the data directory (``None``: in memory).
        ``writers`` write its staged batches; ``journal_sync`` makes appended journal bytes
        durable (``None``: ``os.fsync``)."""
        self.lock = threading.RLock()
        """Guards the staged writes; held only for in-memory steps (a writer's change, taking
        a batch, applying one), except by a reset, which holds it throughout."""
        self.io_lock = threading.RLock()
        """Held by whoever writes the partition's files or changes its served records (a
        batch's flush, a compaction, a reset). Taken before ``lock``, never after it."""
        self.staged: dict[str, _Staged] = {}
        """key -> the latest staged write of that record (what a writer reads first)."""
        self.queue: list[_Staged] = []
        """Staged writes not yet taken by a flush, in order."""
        self.batch: _Batch | None = None
        """The batch ``queue`` will be written in (``None``: nothing queued)."""
        self.tail: _Batch = _SETTLED
        """The latest batch made: once it settles, every write staged so far has."""
        self.flushing = False
        """A writer thread has this partition, or is about to be given it: it flushes every
        batch staged before it lets go (``_Writers._run``), so a new batch needs no hand-off."""
        self._handing: asyncio.AbstractEventLoop | None = None
        """The event loop due to hand this partition to a writer (``_hand_over``)."""
        self._writers = writers
        self._journal_sync = journal_sync
        self._abandoned = False
        self.scope = scope
        self.records: dict[str, bytes] = {}
        """id -> the durable record's JSON (:func:`_encode`), in insertion order; swapped, never
        changed in place, so lock-free readers see the old bytes or the new."""
        self._parsed: dict[str, tuple[bytes, Record]] = {}
        """id -> (the bytes it was parsed from, the record): at most ``PARSED_CACHE``, valid
        while ``records`` still holds those very bytes."""
        self.journal_lines = 0
        """Journal lines of the current generation, i.e. not yet in the snapshot."""
        self.generation = 0
        self._journal_fd: int | None = None
        self._journal_end: int | None = None
        """The journal's size as this process left it (``None``: not known, ask the file).
        The one writer of the file (the directory lock), so no ``fstat`` per append."""
        self._repair_journal_to: int | None = None
        """Cut the journal back to this size before the next append: a torn tail, a failed
        rollback, or a truncation that failed after its snapshot was durable."""
        self._compact_at: int | None = None
        """After a failed compaction: the journal length at which to try again."""
        self._named = True
        self.snapshot_path: Path | None = None
        self.journal_path: Path | None = None
        self.name_path: Path | None = None
        if directory is not None:
            name = _file_name(scope)
            self.snapshot_path = directory / f"{name}.json"
            self.journal_path = directory / f"{name}.journal"
            if name != scope:
                self.name_path = directory / f"{name}{SCOPE_SUFFIX}"
                self._named = False
            self._load()

    def _damaged(
        self, where: str | os.PathLike[str], problem: str, kind: type[DamagedStore] = DamagedStore
    ) -> DamagedStore:
        assert self.snapshot_path is not None
        return kind(where, problem, self.snapshot_path.parent.parent)

    # -- loading -----------------------------------------------------------------------------
    def _load(self) -> None:
        """Snapshot + the journal entries written on top of *that* snapshot, or DamagedStore.

        Entries carry the generation of the snapshot they follow, and a snapshot records how
        many journal bytes it absorbed. Older entries are therefore legitimate only as the
        journal's first ``journal_bytes`` bytes: left by a crash between writing the snapshot
        and emptying the journal, and already in the snapshot (compaction) or superseded by it
        (reset). Whatever else does not fit would lose acknowledged writes: refuse, and touch
        nothing, so the files can still be examined or moved aside.
        """
        assert self.snapshot_path is not None and self.journal_path is not None
        snapshot_bytes = _read_if_exists(self.snapshot_path)
        journal_bytes = _read_if_exists(self.journal_path) or b""
        self._check_name()
        if snapshot_bytes is None and not journal_bytes:
            return  # never written to (or only a failed first append)
        records, absorbed = self._read_snapshot(snapshot_bytes)
        entries, complete_size = self._read_journal(journal_bytes)
        if snapshot_bytes is None and any(entry.get("g", 0) >= 1 for _n, _end, entry in entries):
            raise self._damaged(
                self.snapshot_path, f"is missing, but {self.journal_path} holds {len(entries)} writes made on top of it"
            )
        current: list[dict] = []
        stale_end = 0
        for number, end, entry in entries:
            generation = entry.get("g", 0)
            if generation > self.generation:
                raise self._damaged(
                    self.snapshot_path,
                    f"is generation {self.generation}, older than the writes in {self.journal_path} "
                    f"(line {number} follows generation {generation})",
                )
            if generation == self.generation:
                current.append(entry)
            elif current:
                raise self._damaged(
                    f"{self.journal_path}:{number}",
                    f"is of generation {generation}, after writes of generation {self.generation}",
                    CorruptJournal,
                )
            else:
                stale_end = end
        if stale_end and absorbed is not None and stale_end != absorbed:
            raise self._damaged(
                self.snapshot_path,
                f"(generation {self.generation}) absorbed {absorbed} journal bytes, but the first {stale_end} bytes "
                f"of {self.journal_path} are older writes: they are in no snapshot",
            )
        for entry in current:
            if entry["op"] == "put":
                records[entry["doc"]["id"]] = entry["doc"]
            else:
                records.pop(entry["id"], None)
        self.records = {key: _encode(doc) for key, doc in records.items()}
        self._parsed = {}
        self.journal_lines = len(current)
        if complete_size < len(journal_bytes):
            logger.warning("dropping a torn journal tail in %s (never acknowledged)", self.journal_path)
            self._repair_journal_to = complete_size
        if stale_end and not current:
            self._repair_journal_to = 0  # the snapshot already holds this state: only empty the journal
        if self._repair_journal_to is not None:
            with contextlib.suppress(OSError):  # logged; retried before the next append
                self._repair_journal()
        if current:
            self._try_compact()
        if not self._named:
            with contextlib.suppress(OSError):  # retried before the next write
                self._ensure_named()

    def _check_name(self) -> None:
        """A hashed partition's ``.scope`` file must not name another scope; a lost or
        unreadable one is written again (the scope is known: it hashes to these files)."""
        if self.name_path is None or not self.name_path.exists():
            return
        recorded = _read_scope_file(self.name_path)
        if recorded is not None and recorded != self.scope:
            raise self._damaged(self.name_path, f"names the scope {recorded!r}, but its files belong to {self.scope!r}")
        self._named = recorded is not None

    def _read_snapshot(self, raw: bytes | None) -> tuple[dict[str, t.Any], int | None]:
        """The snapshot's records (and sets the generation), and how many journal bytes it
        absorbed (``None`` for snapshots written before that was recorded)."""
        if raw is None:
            return {}, None
        try:
            data = json.loads(raw)
            records = data.get(TABLE_NAME, {})
            meta = data.get(META_TABLE, {}).get("1", {})
            generation = meta.get("generation", 0)
            absorbed = meta.get("journal_bytes")
            valid = (
                isinstance(records, dict)
                and all(isinstance(doc, dict) for doc in records.values())
                and type(generation) is int
                and (absorbed is None or type(absorbed) is int)
            )
        except (ValueError, AttributeError):
            valid = False
        if not valid:
            problem = "is empty" if not raw.strip() else "is not a valid snapshot (truncated, or not this store's JSON)"
            raise self._damaged(self.snapshot_path, problem)
        self.generation = generation
        return dict(records), absorbed

    def _read_journal(self, raw: bytes) -> tuple[list[tuple[int, int, dict]], int]:
        """``(line number, end offset, entry)`` of each complete line, and their total size.

        Only the segment after the last newline may be unreadable: that append was torn by a
        crash before its fsync returned, so it was never acknowledged. A newline-terminated
        line was written whole; if it does not parse now, it is damage, not a torn append.
        """
        entries = []
        end = 0
        *complete, _tail = raw.split(b"\n")
        for number, line in enumerate(complete, start=1):
            end += len(line) + 1
            if not line.strip():
                continue
            entry = _journal_entry(line)
            if entry is None:
                raise self._damaged(f"{self.journal_path}:{number}", "is not a valid journal entry", CorruptJournal)
            entries.append((number, end, entry))
        return entries, end

    # -- persistence -------------------------------------------------------------------------
    def _ensure_named(self) -> None:
        """Record a hashed partition's real scope id before anything of it is written: its
        files must never exist without a way back to the scope they belong to."""
        if not self._named and self.name_path is not None:
            _atomic_write_json(self.name_path, {"scope": self.scope})
            self._named = True

    def _open_journal(self) -> int:
        """The journal's descriptor. Without a ``journal_sync`` it is opened ``O_DSYNC``: each
        append is durable when its ``write`` returns (as with ``fdatasync``, which makes the
        grown size durable too), one system call per batch instead of two. Each call the
        writer thread makes releases the GIL and must win it back from a busy event loop
        (up to a switch interval), and every such wait is added to the batch's latency."""
        if self._journal_fd is None:
            assert self.journal_path is not None
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
            if self._journal_sync is None:
                flags |= _DSYNC
            self._journal_fd = os.open(self.journal_path, flags, 0o644)
            self._journal_end = None
        return self._journal_fd

    def _journal_size(self) -> int:
        if self._journal_end is None:
            self._journal_end = os.fstat(self._open_journal()).st_size
        return self._journal_end

    def _repair_journal(self) -> None:
        """Cut the journal back to ``_repair_journal_to`` bytes; raises (and stays pending) if it cannot."""
        size = self._repair_journal_to
        if size is None:
            return
        try:
            fd = self._open_journal()
            self._journal_end = None
            os.ftruncate(fd, size)
            os.fsync(fd)
        except OSError as exc:
            logger.warning("could not cut %s back to %d bytes: %s", self.journal_path, size, exc)
            raise
        self._repair_journal_to = None
        self._journal_end = size

    def _append(self, data: bytes, entries: int) -> None:
        """Durably append ``entries`` journal lines (``data``), or raise having written nothing.

        A raw fd, not a buffered file: after a failed write or fsync (disk full, I/O error) a
        buffer would keep the partial entry and flush it with the *next* write, resurrecting
        a write the client was told had failed. Here the file is cut back to where it was (and
        if even that fails, before the next append, which fails too until it succeeds).
        """
        if self.journal_path is None:
            return
        if not self._named:
            self._ensure_named()
        if self._repair_journal_to is not None:
            self._repair_journal()
        fd = self._open_journal()
        offset = self._journal_size()
        try:
            self._journal_end = None  # until this append is known to be whole and durable
            written = os.write(fd, data)  # durable on return unless a journal_sync is given
            if written != len(data):
                raise OSError(f"short write to {self.journal_path}")
            if self._journal_sync is not None:
                self._journal_sync(fd)
            elif not _DSYNC:
                os.fsync(fd)
        except BaseException:
            self._repair_journal_to = offset
            with contextlib.suppress(OSError):
                self._repair_journal()
            raise
        self._journal_end = offset + written
        self.journal_lines += entries

    # -- group commit --------------------------------------------------------------------------
    def latest(self, key: str) -> tuple[bytes | None, bool]:
        """The record's JSON as the staged writes leave it, and whether a staged (not yet
        durable) write decided that. Call with ``lock`` held."""
        staged = self.staged.get(key)
        if staged is not None:
            return staged.data, True
        return self.records.get(key), False

    def stage(self, key: str, record: Record | None) -> _Batch:
        """Accept a put of a copy of ``record`` or a delete (``None``) of ``key``: later writers
        see it at once, readers only once its batch is durable. Returns that batch. Call with
        ``lock``.

        The record is serialised here, so a record that cannot be written fails alone; its
        bytes are what is stored and what the journal line carries."""
        if self._abandoned:
            raise StoreClosed(f"{self.journal_path or self.scope}: the store was closed")
        data = None if record is None else _encode(record)
        if self.journal_path is None:  # in memory: nothing to make durable
            self._apply([_Staged(key, data, b"")])
            return _SETTLED
        if data is None:
            staged = _Staged(key, None, json_bytes({"op": "del", "id": key}))
        else:
            staged = _Staged(key, data, b'{"op":"put","doc":' + data + b"}")
        self.staged[key] = staged
        self.queue.append(staged)
        if self.batch is None:
            self.batch = self.tail = _Batch()
            if not self.flushing:
                self._hand_over()
        if self._handing is not None and self._handing.is_closed():
            # The loop that was to hand a batch over closed first: hand it over from here.
            self._handing = None
            self._submit()
        return self.batch

    def _hand_over(self) -> None:
        """Give the partition to a writer thread; staged on an event loop, once that loop has
        run the callbacks already due. Those are mostly the other requests whose bytes arrived
        with this one: they join the batch instead of waiting for the next append. Measured
        over HTTP (POST, 32 connections, server on one core, 8 s per figure, 2 pairs): 11-14
        writes per append against 6.5, a third less system CPU per write, p99 7.6-8.2 against
        11-13 ms. Call with ``lock``."""
        self.flushing = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a thread of its own (``insert``, a reset's worker): at once
            self._submit()
        else:
            self._handing = loop
            loop.call_soon(self._handed, loop)

    def _handed(self, loop: asyncio.AbstractEventLoop) -> None:
        with self.lock:
            if self._handing is not loop:
                return  # handed over meanwhile (its loop had closed)
            self._handing = None
        self._submit()

    def _submit(self) -> None:
        assert self._writers is not None
        self._writers.submit(self)

    def flush(self) -> None:
        """Write every queued write in one append and one fsync, apply them, acknowledge them.
        Call with ``io_lock`` held (the writer threads, a reset, close).

        If the append fails, the batch fails, and so does every write staged meanwhile: it may
        have been built on one that never became durable. Nothing of them is applied."""
        with self.lock:
            batch, pending = self.batch, self.queue
            self.batch, self.queue = None, []
        if batch is None:
            return
        try:
            if self._abandoned:
                raise StoreClosed(f"{self.journal_path}: the store was closed before this write was durable")
            prefix = b'{"g": %d, ' % self.generation
            self._append(b"".join(prefix + staged.line[1:] + b"\n" for staged in pending), len(pending))
        except BaseException as exc:
            with self.lock:
                later, self.batch, self.queue = self.batch, None, []
                self.staged.clear()
            batch.settle(exc)
            if later is not None:
                later.settle(exc)
            if not isinstance(exc, Exception):
                raise
            return
        with self.lock:
            self._apply(pending)
        self._maybe_compact()  # before the acknowledgement: the journal stays bounded
        batch.settle()

    def _apply(self, writes: t.Iterable[_Staged]) -> None:
        """Serve durable writes: each stored record's bytes are swapped for new ones, so
        lock-free readers see the old record or the new one."""
        records = self.records
        for staged in writes:
            if staged.data is None:
                records.pop(staged.key, None)
                self._parsed.pop(staged.key, None)
            else:
                records[staged.key] = staged.data
            if self.staged.get(staged.key) is staged:
                del self.staged[staged.key]

    def _maybe_compact(self) -> None:
        """Called only after a journaled change is applied in memory, so the snapshot that
        replaces the journal contains it. Never raises: the write that got here is durable."""
        limit = max(COMPACT_MIN_LINES, len(self.records))
        if self.journal_lines > limit and (self._compact_at is None or self.journal_lines >= self._compact_at):
            self._try_compact()

    def _try_compact(self) -> None:
        """Compact, or log why not and try again a tenth of the threshold later (not on every
        write: on a nearly full disk each attempt would serialise the whole partition)."""
        try:
            self.compact()
        except Exception as exc:
            limit = max(COMPACT_MIN_LINES, len(self.records))
            self._compact_at = self.journal_lines + max(1, limit // 10)
            logger.warning(
                "could not compact %s (%s); the journal keeps every write, retrying in %d writes",
                self.journal_path,
                exc,
                self._compact_at - self.journal_lines,
            )
        else:
            self._compact_at = None

    def compact(self) -> None:
        """Write the next-generation snapshot atomically, then empty the journal. Raises, having
        changed nothing, if the snapshot cannot be written."""
        if self.snapshot_path is None:
            return
        with self.io_lock:
            self._commit(self._prepare(self.records))

    def _prepare(self, records: dict[str, bytes]) -> _Prepared:
        """The next snapshot as a fsynced temp file beside the current one; raises (leaving no
        temp file) if it cannot be written. Call with the partition lock held through
        :meth:`_commit`, so the journal size it records is the one the rename will absorb."""
        generation = self.generation + 1
        if self.snapshot_path is None or self.journal_path is None:
            return _Prepared(None, generation, records)
        self._ensure_named()
        if self._journal_fd is not None:
            absorbed = self._journal_size()
        else:
            absorbed = self.journal_path.stat().st_size if self.journal_path.exists() else 0
        meta: dict[str, t.Any] = {"generation": generation, "journal_bytes": absorbed}
        if self.name_path is not None:
            meta["scope"] = self.scope
        temp = _write_temp(self.snapshot_path.parent, _snapshot_json(records, meta))
        return _Prepared(temp, generation, records)

    def _commit(self, prepared: _Prepared) -> None:
        """Rename a prepared snapshot into place, serve its records, then empty the journal.

        Memory follows the file: the records are swapped in only once the rename happened. The
        journal is emptied only after the directory fsync made the rename durable; until then,
        or if emptying fails, its old lines stay and are skipped on load as absorbed."""
        if prepared.temp is not None:
            assert self.snapshot_path is not None
            try:
                os.replace(prepared.temp, self.snapshot_path)
            except BaseException:
                prepared.temp.unlink(missing_ok=True)
                raise
        self.generation = prepared.generation
        if prepared.records is not self.records:
            self.records = prepared.records
            self._parsed = {}
        self.journal_lines = 0
        self._compact_at = None
        if prepared.temp is None:
            return
        assert self.snapshot_path is not None
        _fsync_dir(self.snapshot_path.parent)
        self._repair_journal_to = 0
        with contextlib.suppress(OSError):  # logged; retried before the next append
            self._repair_journal()

    def _close_journal(self) -> None:
        if self._journal_fd is not None:
            os.close(self._journal_fd)
            self._journal_fd = None
            self._journal_end = None

    def close(self) -> None:
        """Compact what the journal holds (fast restart); a failure is logged, not raised: the
        journal still holds every write."""
        if self.journal_lines or self._repair_journal_to is not None:
            self._try_compact()
        self._close_journal()

    # -- records -----------------------------------------------------------------------------
    # Reads take no lock: stored bytes are immutable and swapped whole, and dict.get, list()
    # of a dict's items and len are atomic under the GIL. A GET therefore never waits for a
    # writer's fsync or a compaction, and never blocks the event loop.
    def get(self, record_id: str) -> Record | None:
        """A fresh record (the caller's to change)."""
        data = self.records.get(record_id)
        return _decode(data) if data is not None else None

    def values(self) -> list[Record]:
        """Fresh records, in insertion order."""
        return [_decode(data) for data in list(self.records.values())]

    def peek(self, record_id: str) -> Record | None:
        """The record parsed once and shared by readers (never mutate it)."""
        data = self.records.get(record_id)
        return None if data is None else self._shared(record_id, data)

    def peek_all(self) -> list[Record]:
        """Every record as :meth:`peek` gives it, in insertion order. A partition larger than
        the cache is parsed without it: a listing would only evict what other reads keep."""
        items = list(self.records.items())
        if len(items) > PARSED_CACHE:
            return [_decode(data) for _key, data in items]
        return [self._shared(key, data) for key, data in items]

    def count(self) -> int:
        return len(self.records)

    def _shared(self, key: str, data: bytes) -> Record:
        parsed = self._parsed.get(key)
        if parsed is not None and parsed[0] is data:
            return parsed[1]
        record = _decode(data)
        if len(self._parsed) >= PARSED_CACHE:  # drop the oldest (another reader may have)
            with contextlib.suppress(StopIteration, RuntimeError):
                self._parsed.pop(next(iter(self._parsed)), None)
        self._parsed[key] = (data, record)
        return record

    def replace_all(self, records: t.Iterable[Record]) -> None:
        """Durable first, served second: a reset that cannot be written changes nothing."""
        self._commit(self._prepare({r["id"]: _encode(r) for r in records}))


class _WideJSON(bytes):
    """A record's JSON that orjson cannot read back exactly (an integer beyond 64 bits, which
    orjson refuses to write and would read as a float): parsed with ``json``. Not a container,
    so the cycle collector ignores it as it does ``bytes``."""

    __slots__ = ()


def _encode(record: Record) -> bytes:
    """A record as the compact JSON the store keeps and journals."""
    try:
        return orjson.dumps(record)
    except TypeError:  # what orjson refuses and JSON allows (integers beyond 64 bits)
        return _WideJSON(json_bytes(record))


def _decode(data: bytes) -> Record:
    """A new record parsed from :func:`_encode`'s bytes."""
    return orjson.loads(data) if type(data) is bytes else json.loads(data)


def _journal_entry(line: bytes) -> dict | None:
    """The entry a journal line holds, or ``None`` if it is not one this store wrote."""
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    if not isinstance(entry, dict) or type(entry.get("g", 0)) is not int:
        return None
    if entry.get("op") == "put" and isinstance(entry.get("doc"), dict) and isinstance(entry["doc"].get("id"), str):
        return entry
    if entry.get("op") == "del" and isinstance(entry.get("id"), str):
        return entry
    return None


def _read_if_exists(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _read_scope_file(path: Path) -> str | None:
    """The scope id a ``.scope`` file records, or ``None`` if it cannot be read."""
    try:
        scope = json.loads(path.read_bytes()).get("scope")
    except (OSError, ValueError, AttributeError):
        return None
    return scope if isinstance(scope, str) else None


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


SNAPSHOT_CHUNK = 1000
"""Records serialised at a time into a snapshot. orjson holds the GIL while it runs, and a
whole partition in one call froze the event loop, reads included, for as long as that took
(75-100 ms at 100,000 customers); the file write between two chunks releases it."""


def _snapshot_json(records: dict[str, bytes], meta: dict[str, t.Any]) -> t.Iterator[bytes]:
    """``{"records": {id: record, ...}, "_meta": {"1": meta}}`` as compact JSON (a TinyDB
    file), ``SNAPSHOT_CHUNK`` records at a time, from the records' stored bytes. ``records``
    must not change meanwhile: the partition's ``io_lock`` is held, and only its holder
    applies writes."""
    yield b"{" + json_bytes(TABLE_NAME) + b":"
    items = iter(records.items())
    separator = b"{"
    while chunk := list(itertools.islice(items, SNAPSHOT_CHUNK)):
        yield separator + b",".join(orjson.dumps(key) + b":" + data for key, data in chunk)
        separator = b","
    yield (b"{}," if separator == b"{" else b"},") + json_bytes({META_TABLE: {"1": meta}})[1:]


def _write_temp_json(directory: Path, data: t.Any) -> Path:
    """``data`` in a fsynced temp file in ``directory`` (removed again if that fails)."""
    return _write_temp(directory, (json_bytes(data),))


def _write_temp(directory: Path, chunks: t.Iterable[bytes]) -> Path:
    """``chunks`` in a fsynced temp file in ``directory`` (removed again if that fails)."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would make the data unreadable to other users
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return Path(tmp)


def _atomic_write_json(path: Path, data: t.Any) -> None:
    tmp = _write_temp_json(path.parent, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Store:
    """Records partitioned by ``(collection, scope)``; see the module docstring.

    ``discard_damaged``: instead of refusing to open a damaged partition (:class:`DamagedStore`),
    move its files to ``data_dir/damaged-<UTC timestamp>/<collection>/`` and open it empty -
    the way out the refusal names (``timbrix-sandbox reset --discard-damaged``).

    ``journal_sync``: the call that makes appended journal bytes durable (default
    ``os.fsync``). Tests pass one that holds a batch just before it is durable, to watch what
    readers see meanwhile.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        discard_damaged: bool = False,
        journal_sync: t.Callable[[int], None] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.discard_damaged = discard_damaged
        self._journal_sync = journal_sync
        self._writers = _Writers()
        self._partitions: dict[tuple[str, str], _Partition] = {}
        self._lock = threading.Lock()
        self._dir_lock: int | None = None
        self._names: dict[Path, str] = {}
        """hashed file stem (as a path without suffix) -> the scope id it stores, once read."""
        self._damaged_dir: Path | None = None
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._dir_lock = _lock_directory(self.data_dir)
            for leftover in [*self.data_dir.glob(".tmp-*"), *self.data_dir.glob("*/.tmp-*")]:
                leftover.unlink(missing_ok=True)

    def open_all(self, collection: str) -> None:
        """Load every persisted partition now, at startup, not on a first request: damage is
        found here (:class:`DamagedStore`, after letting go of the directory so that
        ``reset --discard-damaged`` can run), never in the middle of serving."""
        try:
            scopes, orphans = self._persisted(collection)
            for path in orphans:
                assert self.data_dir is not None
                damage = DamagedStore(
                    path,
                    "belongs to a scope whose id is lost (no readable .scope file, no scope in the snapshot)",
                    self.data_dir,
                )
                if not self.discard_damaged:
                    raise damage
                self._discard(collection, path.stem, damage)
            for scope in scopes:
                self._partition(collection, scope)
        except DamagedStore:
            self.abandon()
            raise

    def claim(self, contract: str, unmarked_owner: str | None = None, layout: int = 1) -> int:
        """Tie the data directory to one contract: records shaped for BeeL must never be
        served as Timbrix customers. A seeded directory without a marker (written before
        markers existed) belongs to ``unmarked_owner``.

        Returns the record layout the directory was written with (``layout`` for a new or an
        in-memory store; 1 for a directory whose marker predates layouts), so the engine can
        upgrade records written by an earlier version; see :meth:`set_layout`."""
        if self.data_dir is None:
            return layout
        marker = self.data_dir / CONTRACT_MARKER
        written = json.loads(marker.read_text()) if marker.exists() else None
        owner = written["contract"] if written else None
        if owner is None and self.is_seeded():
            owner = unmarked_owner
        if owner is not None and owner != contract:
            self._release_dir_lock()
            raise WrongContract(f"{self.data_dir} holds data of {owner!r}, not {contract!r}: pass another --data-dir")
        if owner is None:
            _atomic_write_json(marker, {"contract": contract, "layout": layout})
            return layout
        return int((written or {}).get("layout", 1))

    def set_layout(self, contract: str, layout: int) -> None:
        """Record that every record now has ``layout`` (after an upgrade)."""
        if self.data_dir is not None:
            _atomic_write_json(self.data_dir / CONTRACT_MARKER, {"contract": contract, "layout": layout})

    def begin_seeding(self) -> None:
        """Record the intent to seed before the first seeding writes anything, so that a seed
        cut short by a crash is redone, while a directory with data but no markers is not."""
        if self.data_dir is not None:
            _atomic_write_json(self.data_dir / SEEDING_MARKER, {"seeding": True})

    def seeding_interrupted(self) -> bool:
        """A seeding began and never finished (see :meth:`begin_seeding`)."""
        return self.data_dir is not None and (self.data_dir / SEEDING_MARKER).exists()

    def mark_seeded(self) -> None:
        """Record that the first seeding finished (a seed cut short by a crash is redone)."""
        if self.data_dir is not None:
            _atomic_write_json(self.data_dir / SEEDED_MARKER, {"seeded": True})
            (self.data_dir / SEEDING_MARKER).unlink(missing_ok=True)
        self._seeded_in_memory = True

    def abandon(self) -> None:
        """Let go of the data directory as a crash would: nothing compacted or flushed. For
        tests that reopen a directory in-process to check what a crash leaves behind, and for
        a refused start."""
        for partition in self._partitions.values():
            partition._abandoned = True
        self._writers.stop()
        for partition in self._partitions.values():
            with partition.io_lock:
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
                    try:
                        partition = _Partition(directory, scope, self._writers, self._journal_sync)
                    except DamagedStore as damage:
                        if not self.discard_damaged:
                            raise
                        self._discard(collection, _file_name(scope), damage)
                        partition = _Partition(directory, scope, self._writers, self._journal_sync)
                    self._partitions[key] = partition
        return partition

    def _discard(self, collection: str, stem: str, damage: DamagedStore) -> None:
        """Move a damaged partition's files aside (never delete them) so it can open empty."""
        assert self.data_dir is not None
        if self._damaged_dir is None:
            stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
            candidate, n = self.data_dir / f"damaged-{stamp}", 1
            while candidate.exists():
                n += 1
                candidate = self.data_dir / f"damaged-{stamp}-{n}"
            self._damaged_dir = candidate
        target = self._damaged_dir / collection
        target.mkdir(parents=True, exist_ok=True)
        source = self.data_dir / collection
        for suffix in (".json", ".journal", SCOPE_SUFFIX):
            path = source / f"{stem}{suffix}"
            if path.exists():
                os.replace(path, target / path.name)
        self._names.pop(source / stem, None)
        _fsync_dir(target)
        _fsync_dir(source)
        logger.warning("moved damaged files of %s/%s to %s (%s)", collection, stem, target, damage.problem)

    def _persisted(self, collection: str) -> tuple[list[str], list[Path]]:
        """The scopes with files in ``collection``, and the files of hashed partitions whose
        scope id cannot be recovered. Files that no partition could have written are ignored."""
        directory = self.data_dir / collection if self.data_dir is not None else None
        if directory is None or not directory.is_dir():
            return [], []
        scopes, orphans, seen = [], [], set()
        for path in sorted(directory.iterdir()):
            if path.suffix not in (".json", ".journal") or path.name.startswith(".") or path.stem in seen:
                continue
            seen.add(path.stem)
            if not _HASHED.fullmatch(path.stem):
                if _file_name(path.stem) == path.stem:
                    scopes.append(path.stem)
                continue
            scope = self._hashed_scope(directory / path.stem)
            if scope is None:
                orphans.append(path)
            else:
                scopes.append(scope)
        return scopes, orphans

    def _hashed_scope(self, stem: Path) -> str | None:
        """The scope a hashed stem stores: from its ``.scope`` file, else the snapshot's
        ``_meta`` (then the partition writes the ``.scope`` file again when it opens)."""
        scope = self._names.get(stem)
        if scope is None:
            candidates: list[t.Any] = [_read_scope_file(stem.with_name(stem.name + SCOPE_SUFFIX))]
            if candidates[0] is None or _file_name(candidates[0]) != stem.name:
                with contextlib.suppress(OSError, ValueError, TypeError, KeyError, AttributeError):
                    snapshot = json.loads(stem.with_name(stem.name + ".json").read_bytes())
                    candidates.append(snapshot[META_TABLE]["1"]["scope"])
            scope = next((c for c in candidates if isinstance(c, str) and _file_name(c) == stem.name), None)
            if scope is None:
                return None
            self._names[stem] = scope
        return scope

    def scopes(self, collection: str) -> list[str]:
        """Scopes with data (their real ids), including ones persisted by an earlier run but
        not yet opened."""
        with self._lock:
            found = {scope for (c, scope) in self._partitions if c == collection}
        found.update(self._persisted(collection)[0])
        return sorted(found)

    def is_seeded(self) -> bool:
        if self.data_dir is None:
            return getattr(self, "_seeded_in_memory", False)
        return (self.data_dir / SEEDED_MARKER).exists()

    # Reads take no lock (see _Partition): they never wait for a writer's fsync, and they see
    # only durable records: a staged write is served once its batch's fsync returned.
    def get(self, collection: str, scope: str, record_id: str) -> Record | None:
        return self._partition(collection, scope).get(record_id)

    def peek(self, collection: str, scope: str, record_id: str) -> Record | None:
        """The record parsed once and shared, not a copy: for readers that only build a new
        value from it (the engine's projection). The same dict until a write replaces the
        record (or it leaves the ``PARSED_CACHE`` bound); never mutate it."""
        return self._partition(collection, scope).peek(record_id)

    def peek_all(self, collection: str, scope: str) -> list[Record]:
        """Every record as :meth:`peek` gives it, in insertion order. ``list`` of the stored
        items runs in C without releasing the GIL: a snapshot, as ``dict.copy`` was."""
        return self._partition(collection, scope).peek_all()

    def list(self, collection: str, scope: str) -> list[Record]:
        """All records of a partition in insertion order (copies)."""
        return self._partition(collection, scope).values()

    def count(self, collection: str, scope: str) -> int:
        return self._partition(collection, scope).count()

    # Writes are staged under the partition lock (in memory, no I/O), then acknowledged once
    # their batch is durable: ``insert``/``update``/``delete`` block until then; the ``_async``
    # forms run the same steps on the event loop and await the batch, with no thread hop.
    def insert(self, collection: str, scope: str, record: Record) -> Record:
        """Store a new record (``KeyError`` if its id exists); returns it once durable."""
        return self._staged(collection, scope, functools.partial(_insert, record)).result()

    def update(
        self,
        collection: str,
        scope: str,
        record_id: str,
        change: t.Callable[[Record], Record | None],
    ) -> Record | None:
        """Read-modify-write under the partition lock.

        ``change`` gets a copy of the latest record (staged writes included: writes to one
        record never lose each other) and returns the new record, or ``None`` to leave it
        untouched; if it raises, nothing is written. Returns the stored record once it is
        durable, or ``None`` if ``record_id`` does not exist.
        """
        return self._staged(collection, scope, functools.partial(_update, record_id, change)).result()

    def delete(self, collection: str, scope: str, record_id: str) -> bool:
        """Delete a record; whether it existed (answered once the delete is durable)."""
        return self._staged(collection, scope, functools.partial(_delete, record_id)).result()

    async def insert_async(self, collection: str, scope: str, record: Record) -> Record:
        """:meth:`insert`, awaited on the event loop."""
        return await (await self._staged_async(collection, scope, functools.partial(_insert, record))).result_async()

    async def update_async(
        self, collection: str, scope: str, record_id: str, change: t.Callable[[Record], Record | None]
    ) -> Record | None:
        """:meth:`update`, awaited on the event loop (``change`` runs on it, under the lock)."""
        staged = await self._staged_async(collection, scope, functools.partial(_update, record_id, change))
        return await staged.result_async()

    async def delete_async(self, collection: str, scope: str, record_id: str) -> bool:
        """:meth:`delete`, awaited on the event loop."""
        return await (await self._staged_async(collection, scope, functools.partial(_delete, record_id))).result_async()

    def _staged(self, collection: str, scope: str, write: t.Callable[[_Partition], _Outcome]) -> _Outcome:
        partition = self._partition(collection, scope)
        with partition.lock:
            return write(partition)

    async def _staged_async(
        self, collection: str, scope: str, write: t.Callable[[_Partition], _Outcome]
    ) -> _Outcome:
        """Stage on the event loop. The partition lock is held only for in-memory steps, but a
        writer thread holding it may be waiting for the GIL, which the loop holds: a short
        wait for it releases the GIL and the writer finishes in microseconds. (Giving up at
        once and hopping to a worker thread did that for 2-11% of the writes under load, each
        hop a few more GIL hand-offs.) A reset holds the lock for its fsyncs: after
        ``STAGE_WAIT`` the write waits for it in a worker thread instead of blocking the loop."""
        partition = self._partition(collection, scope)
        if partition.lock.acquire(timeout=STAGE_WAIT):
            try:
                return write(partition)
            finally:
                partition.lock.release()
        return await anyio.to_thread.run_sync(self._staged, collection, scope, write)

    def replace_all(self, collection: str, scope: str, records: t.Iterable[Record]) -> None:
        """Swap a partition's whole content (used by reset-to-fixtures). The new snapshot is
        durable before it is served: if it cannot be written, nothing changes."""
        partition = self._partition(collection, scope)
        with partition.io_lock, partition.lock:
            partition.flush()  # writes staged before the reset are durable first, then replaced
            partition.replace_all(records)

    def replace_partitions(self, contents: t.Mapping[tuple[str, str], t.Iterable[Record]]) -> None:
        """Swap several partitions' content, all or nothing (a full reset).

        Every new snapshot is first written and fsynced as a temp file, with all the
        partitions' locks held (in key order, so two resets cannot deadlock); only when all of
        them are, they are renamed into place and served. If one cannot be written (a full
        disk), the temp files are deleted and nothing changes, in memory or on disk.
        """
        keys = sorted(contents)
        new = {key: {r["id"]: _encode(r) for r in contents[key]} for key in keys}
        partitions = [self._partition(*key) for key in keys]
        with contextlib.ExitStack() as locks:
            for partition in partitions:
                locks.enter_context(partition.io_lock)
                locks.enter_context(partition.lock)
                partition.flush()  # writes staged before the reset are durable first, then replaced
            prepared: list[_Prepared] = []
            try:
                for key, partition in zip(keys, partitions, strict=True):
                    prepared.append(partition._prepare(new[key]))
            except BaseException:
                _discard_temps(prepared)
                raise
            for index, (partition, ready) in enumerate(zip(partitions, prepared, strict=True)):
                try:
                    partition._commit(ready)
                except BaseException:
                    _discard_temps(prepared[index + 1 :])
                    raise

    def close(self) -> None:
        """Compact every partition (fast restart, short journals) and release the directory.
        A compaction that fails (a full disk) is logged: the journals still hold every write."""
        try:
            with self._lock:
                for partition in self._partitions.values():
                    with partition.io_lock, partition.lock:
                        partition.flush()
                        partition.close()
                        partition._abandoned = True  # a write after close fails (StoreClosed)
        finally:
            self._writers.stop()
            self._release_dir_lock()


def _insert(record: Record, partition: _Partition) -> _Outcome:
    current, staged = partition.latest(record["id"])
    if current is not None:
        exists = RecordExists(f"record {record['id']} already exists")
        return _Outcome(partition.tail if staged else _SETTLED, refusal=exists)
    return _Outcome(partition.stage(record["id"], record), record)


def _update(record_id: str, change: t.Callable[[Record], Record | None], partition: _Partition) -> _Outcome:
    current, staged = partition.latest(record_id)
    # An answer read from a staged write waits for that write to be durable.
    seen = partition.tail if staged else _SETTLED
    if current is None:
        return _Outcome(seen, None)
    updated = change(_decode(current))
    if updated is None:
        return _Outcome(seen, _decode(current))
    if updated.get("id") != record_id:
        raise ValueError("an update must not change the record id")
    return _Outcome(partition.stage(record_id, updated), updated)


def _delete(record_id: str, partition: _Partition) -> _Outcome:
    current, staged = partition.latest(record_id)
    if current is None:
        return _Outcome(partition.tail if staged else _SETTLED, False)
    return _Outcome(partition.stage(record_id, None), True)


def _discard_temps(prepared: t.Iterable[_Prepared]) -> None:
    for ready in prepared:
        if ready.temp is not None:
            ready.temp.unlink(missing_ok=True)
