"""Group commit: concurrent writes share one fsync, and nothing a crash could undo is ever seen.

A write is staged in memory, then written and fsynced with the others staged meanwhile, and
only then served to readers and acknowledged. These tests hold a batch just before its fsync
(``Store(journal_sync=...)``, the store's own hook for the call that makes the journal
durable) and look at what readers and other writers get meanwhile: readers the durable state
only, writers the staged one (so concurrent updates never lose each other), and nobody an
answer before the write it reflects is durable.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time

import anyio
import pytest

from timbrix_sandbox.engine.crud import Engine
from timbrix_sandbox.engine.store import Store
from timbrix_sandbox.engine.stores import TinyDBStore
from timbrix_sandbox.profiles.sandboxes import make_sandbox

DUNDER = "550e8400-e29b-41d4-a716-446655440000"
DOCS_CUSTOMER = "590ce6c56d04f840aa8438af"


class HeldSync:
    """Makes the journal durable (``os.fsync``), but once ``hold()`` is called, every batch
    waits before its fsync until ``release()``: the moment a crash would undo it."""

    def __init__(self) -> None:
        self.held = threading.Event()
        self._armed = False
        self._released = threading.Event()
        self.batches = 0

    def hold(self) -> None:
        self._armed = True

    def release(self) -> None:
        self._armed = False
        self._released.set()

    def __call__(self, fd: int) -> None:
        if self._armed:
            self.held.set()
            assert self._released.wait(10), "the test never released the batch"
        os.fsync(fd)
        self.batches += 1


def rec(key: int, n: int | None = None) -> dict:
    return {"id": f"r{key}", "n": key if n is None else n}


def test_a_write_is_invisible_to_readers_until_its_batch_is_durable(tmp_path):
    sync = HeldSync()
    store = Store(tmp_path, journal_sync=sync)
    store.insert("c", "org", rec(1))
    sync.hold()
    writer = threading.Thread(target=store.update, args=("c", "org", "r1", lambda r: {**r, "n": 2}))
    writer.start()
    assert sync.held.wait(5), "the write never reached its fsync"
    # held before durable: every read still answers the durable record
    assert store.get("c", "org", "r1") == rec(1)
    assert store.peek("c", "org", "r1") == rec(1)
    assert store.list("c", "org") == [rec(1)] == store.peek_all("c", "org")
    assert writer.is_alive(), "the write was acknowledged before its fsync returned"
    sync.release()
    writer.join(5)
    assert store.get("c", "org", "r1") == rec(1, n=2)
    store.close()
    assert Store(tmp_path).get("c", "org", "r1") == rec(1, n=2)


class Changes:
    """Update functions that count how many writers have staged their change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.made = 0

    def add(self, amount: int):
        def change(record: dict) -> dict:
            with self._lock:
                self.made += 1
            return {**record, "n": record["n"] + amount}

        return change

    def wait_for(self, count: int) -> None:
        for _ in range(500):
            with self._lock:
                if self.made >= count:
                    return
            threading.Event().wait(0.01)
        raise AssertionError(f"only {self.made} of {count} writers staged")


def test_concurrent_writers_build_on_staged_writes_and_share_an_fsync(tmp_path):
    """While one batch waits for its fsync, 20 more increments are staged on top of each
    other (none lost), readers see none of them, and they are written in far fewer fsyncs."""
    sync = HeldSync()
    store = Store(tmp_path, journal_sync=sync)
    store.insert("c", "org", rec(1))
    changes = Changes()
    sync.hold()
    threads = [threading.Thread(target=store.update, args=("c", "org", "r1", changes.add(1))) for _ in range(21)]
    threads[0].start()
    assert sync.held.wait(5)
    for thread in threads[1:]:
        thread.start()
    changes.wait_for(21)
    assert store.get("c", "org", "r1") == rec(1), "a reader saw a write that was not durable"
    assert all(thread.is_alive() for thread in threads), "a write was acknowledged before it was durable"
    fsyncs_before = sync.batches
    sync.release()
    for thread in threads:
        thread.join(5)
    assert store.get("c", "org", "r1")["n"] == 22, "an increment was lost"
    assert sync.batches - fsyncs_before < 21, "every write paid its own fsync"
    store.abandon()
    assert Store(tmp_path).get("c", "org", "r1")["n"] == 22


def test_a_cancelled_write_leaves_the_others_in_its_batch_waiting_and_acknowledged(tmp_path):
    """A client that hangs up cancels its own request, not the batch: the other writers of
    that batch on the same event loop still wait for the fsync and are acknowledged after it
    (and the cancelled write, already staged, is durable too: a crash could not undo it)."""
    sync = HeldSync()
    store = Store(tmp_path, journal_sync=sync)

    async def scenario() -> list:
        sync.hold()
        writes = [asyncio.ensure_future(store.insert_async("c", "org", rec(k))) for k in range(3)]
        while not sync.held.is_set():
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)  # the later two are staged in the next batch, behind the held one
        writes[1].cancel()
        await asyncio.sleep(0.05)
        assert not writes[0].done() and not writes[2].done(), "a write was acknowledged before its fsync"
        sync.release()
        return await asyncio.gather(*writes, return_exceptions=True)

    first, cancelled, last = anyio.run(scenario)
    assert first == rec(0) and last == rec(2)
    assert isinstance(cancelled, asyncio.CancelledError)
    store.abandon()
    assert Store(tmp_path).list("c", "org") == [rec(0), rec(1), rec(2)]


def test_a_failed_batch_fails_every_write_staged_on_it(tmp_path):
    """A write staged on top of one whose fsync then fails was built on a state that never
    became durable: it fails too, and neither is served or replayed after a restart."""
    store = Store(tmp_path, journal_sync=(sync := _FailingOnce()))
    store.insert("c", "org", rec(1))
    changes = Changes()
    sync.fail_next()
    outcomes: list[object] = []

    def write(amount: int) -> None:
        try:
            outcomes.append(store.update("c", "org", "r1", changes.add(amount)))
        except OSError as exc:
            outcomes.append(exc)

    first = threading.Thread(target=write, args=(10,))
    first.start()
    assert sync.held.wait(5)
    second = threading.Thread(target=write, args=(100,))
    second.start()
    changes.wait_for(2)
    sync.release()
    first.join(5)
    second.join(5)
    assert len(outcomes) == 2 and all(isinstance(o, OSError) for o in outcomes), outcomes
    assert store.get("c", "org", "r1") == rec(1)
    assert store.update("c", "org", "r1", lambda r: {**r, "n": 5}) == rec(1, n=5)
    store.abandon()
    assert Store(tmp_path).list("c", "org") == [rec(1, n=5)]


class _FailingOnce(HeldSync):
    def fail_next(self) -> None:
        self.hold()

    def __call__(self, fd: int) -> None:
        if self._armed:
            self.held.set()
            assert self._released.wait(10)
            raise OSError(28, "No space left on device")
        os.fsync(fd)


@pytest.mark.parametrize("reader", ["read", "list"])
def test_a_get_during_a_held_put_answers_the_durable_customer(tmp_path, reader):
    """The engine's GET (by id and the list) while a PUT of the same customer waits for its
    fsync: the durable customer; the PUT answers, and the GET shows it, only after."""
    shipped = make_sandbox()  # the contract, plug-in and fixtures of the Timbrix profile
    sync = HeldSync()
    store = TinyDBStore(tmp_path, journal_sync=sync)
    fixtures = shipped.fixtures.records["customers"][DUNDER]
    store.replace_all("customers", DUNDER, [shipped.seed_record("customers", r) for r in fixtures])
    operations = Engine(shipped.profile, store, shipped.plugin, shipped.behaviours).operations()
    by_id = {"organizationId": DUNDER, "customerId": DOCS_CUSTOMER}
    get = operations["CustomersController_findOne" if reader == "read" else "CustomersController_findAll"]

    def legal_name(reply) -> str:
        body = reply.body if reader == "read" else next(c for c in reply.body if c["id"] == DOCS_CUSTOMER)
        return body["legalName"]

    async def scenario() -> None:
        before = legal_name(await get(DUNDER, by_id, None))
        sync.hold()
        put = asyncio.ensure_future(operations["CustomersController_update"](DUNDER, by_id, {"legalName": "Held"}))
        assert await anyio.to_thread.run_sync(sync.held.wait, 5), "the PUT never reached its fsync"
        assert legal_name(await get(DUNDER, by_id, None)) == before
        assert not put.done(), "the PUT was answered before its write was durable"
        sync.release()
        assert (await put).body["legalName"] == "Held"
        assert legal_name(await get(DUNDER, by_id, None)) == "Held"

    asyncio.run(scenario())
    store.close()


def test_stored_records_are_exact_copies_whatever_their_numbers(tmp_path):
    """The stored copy of a write is read back from its journal line: integers beyond 64 bits
    (which JSON allows) and floats survive exactly, and the caller's dict is not the stored one."""
    store = Store(tmp_path)
    record = {"id": "r1", "big": 2**70, "neg": -(2**65), "f": 0.1, "nested": {"n": [1, 2.5, "é"]}}
    store.insert("c", "org", record)
    record["nested"]["n"].append("changed after the write")
    expected = {"id": "r1", "big": 2**70, "neg": -(2**65), "f": 0.1, "nested": {"n": [1, 2.5, "é"]}}
    assert store.get("c", "org", "r1") == expected and type(store.get("c", "org", "r1")["big"]) is int
    store.update("c", "org", "r1", lambda r: {**r, "small": 1})
    store.close()
    assert Store(tmp_path).get("c", "org", "r1") == {**expected, "small": 1}


def test_a_write_waits_out_a_reset_without_blocking_the_event_loop(tmp_path):
    """A reset holds the partition lock across its fsyncs: a write arriving meanwhile waits
    for it off the event loop (other requests keep being served), then is stored after it."""
    store = Store(tmp_path)
    store.insert("c", "org", rec(1))
    partition = store._partition("c", "org")
    ticks: list[float] = []

    async def scenario() -> dict:
        locked, release = threading.Event(), threading.Event()

        def reset_holding_the_lock() -> None:
            with partition.lock:
                locked.set()
                release.wait(10)

        holder = threading.Thread(target=reset_holding_the_lock)
        holder.start()
        assert locked.wait(10)
        write = asyncio.ensure_future(store.insert_async("c", "org", rec(2)))
        loop = asyncio.get_running_loop()
        started = loop.time()
        while loop.time() - started < 0.3:  # the loop keeps running other work meanwhile
            ticks.append(loop.time())
            await asyncio.sleep(0.01)
        assert not write.done(), "the write went past a reset holding the lock"
        release.set()
        stored = await write
        holder.join()
        return stored

    assert anyio.run(scenario) == rec(2)
    gaps = [later - earlier for earlier, later in zip(ticks, ticks[1:], strict=False)]
    # Blocked, the loop would tick once: the holder is released from the loop itself.
    assert len(ticks) >= 3 and max(gaps) < 1.0, f"the event loop was blocked: {max(gaps):.3f} s"
    store.abandon()
    assert Store(tmp_path).list("c", "org") == [rec(1), rec(2)]


def test_appends_land_whole_after_compactions_rollbacks_and_reopens(tmp_path, monkeypatch):
    """The store keeps the journal's size itself (no fstat per append): after a compaction
    empties the journal, a failed append is cut back out, and the store is reopened, every
    acknowledged write is still there and nothing else is."""
    import timbrix_sandbox.engine.store as store_module

    monkeypatch.setattr(store_module, "COMPACT_MIN_LINES", 4)
    store = Store(tmp_path)
    expected = {}
    real_write = os.write
    for n in range(30):
        if n % 7 == 3:  # this append reaches the file, then fails: it must not survive
            failed = {"armed": True}

            def failing(fd, data, failed=failed):
                written = real_write(fd, data)
                if failed.pop("armed", False):
                    raise OSError(5, "Input/output error")
                return written

            monkeypatch.setattr(os, "write", failing)
            with pytest.raises(OSError):
                store.insert("c", "org", rec(100 + n))
            monkeypatch.setattr(os, "write", real_write)
            continue
        key = n % 5
        if key in expected:
            store.update("c", "org", f"r{key}", lambda r, n=n: {**r, "n": n})
        else:
            store.insert("c", "org", rec(key, n))
        expected[key] = rec(key, n)
        if n % 10 == 9:
            store.abandon()  # as a crash: nothing compacted or flushed
            store = Store(tmp_path)
    assert sorted(store.list("c", "org"), key=lambda r: r["id"]) == [expected[k] for k in sorted(expected)]
    store.abandon()
    reopened = Store(tmp_path).list("c", "org")
    assert sorted(reopened, key=lambda r: r["id"]) == [expected[k] for k in sorted(expected)]


def test_writes_during_chunked_compactions_are_all_kept(tmp_path, monkeypatch):
    """A compaction serialises the partition a few records at a time, letting the interpreter
    go between chunks, while writer threads keep staging: every acknowledged write is in the
    store after a crash and a reopen, and no reader ever sees a record missing or going back."""
    import timbrix_sandbox.engine.store as store_module

    monkeypatch.setattr(store_module, "SNAPSHOT_CHUNK", 7)
    store = Store(tmp_path)
    store.replace_all("c", "org", [rec(k) for k in range(120)])
    partition = store._partition("c", "org")
    acknowledged: dict[int, int] = {}
    done = threading.Event()
    seen_wrong: list[str] = []

    def write(first: int) -> None:
        for n in range(1, 30):
            key = first + (n % 5) * 4
            store.update("c", "org", f"r{key}", lambda r, n=n: {**r, "n": 1000 + n})
            acknowledged[key] = 1000 + n

    compactions = []

    def compact() -> None:
        while not done.is_set():
            partition.compact()
            compactions.append(1)

    def read() -> None:
        last: dict[str, int] = {}
        while not done.is_set():
            records = store.list("c", "org")
            if len(records) != 120:
                seen_wrong.append(f"{len(records)} records")
            for record in records:
                if record["n"] < last.get(record["id"], 0):
                    seen_wrong.append(f"{record['id']} went back")
                last[record["id"]] = record["n"]

    writers = [threading.Thread(target=write, args=(first,)) for first in range(4)]
    helpers = [threading.Thread(target=compact), threading.Thread(target=read)]
    for thread in helpers + writers:
        thread.start()
    for thread in writers:
        thread.join(30)
    done.set()
    for thread in helpers:
        thread.join(30)
    assert not seen_wrong, seen_wrong[:5]
    assert len(compactions) > 10  # the writes did overlap compactions
    expected = {f"r{k}": acknowledged.get(k, k) for k in range(120)}
    store.abandon()  # as a crash: whatever the last compaction left, plus the journal
    reopened = {r["id"]: r["n"] for r in Store(tmp_path).list("c", "org")}
    assert reopened == expected


class CountingSync:
    """``os.fsync``, counted: one call per journal append."""

    def __init__(self) -> None:
        self.appends = 0

    def __call__(self, fd: int) -> None:
        os.fsync(fd)
        self.appends += 1


def test_writes_staged_together_on_the_event_loop_share_one_append(tmp_path):
    """Twenty creates that reach the store in one turn of the event loop (requests whose bytes
    arrived together) are written in one append: the batch goes to a writer thread only after
    the loop has run what was already due, not with the first write alone - even though each
    request lets go of the GIL on its way (as a socket write does), which would let an idle
    writer thread take a batch of one."""
    sync = CountingSync()
    store = Store(tmp_path, journal_sync=sync)

    async def create(key: int) -> None:
        time.sleep(0.001)  # the GIL released, as by a request's own system calls
        await store.insert_async("c", "org", rec(key))

    async def creates() -> None:
        await asyncio.gather(*(create(key) for key in range(20)))

    asyncio.run(creates())
    assert sync.appends == 1, f"20 writes staged together took {sync.appends} appends"
    assert [store.get("c", "org", f"r{key}") for key in range(20)] == [rec(key) for key in range(20)]
    store.abandon()
    assert len(Store(tmp_path).list("c", "org")) == 20


def test_a_batch_whose_event_loop_closed_before_handing_it_over_is_still_written(tmp_path):
    """A write staged on an event loop that stops and closes in the same turn (a test's loop
    torn down with a write in flight) leaves its batch unhanded: the next write, from anywhere,
    hands it over, and neither waits forever."""
    store = Store(tmp_path)
    loop = asyncio.new_event_loop()

    async def stage_then_stop() -> None:
        loop.stop()  # this turn of the loop is its last: the hand-over it schedules never runs
        await store.insert_async("c", "org", rec(1))

    task = loop.create_task(stage_then_stop())
    loop.run_forever()
    assert not task.done(), "the write was acknowledged before its batch was written"
    loop.close()
    done = threading.Event()

    def second() -> None:
        store.insert("c", "org", rec(2))
        done.set()

    threading.Thread(target=second, daemon=True).start()
    assert done.wait(10), "a write joining the unhanded batch was never written"
    assert store.get("c", "org", "r1") == rec(1) and store.get("c", "org", "r2") == rec(2)
    store.abandon()
    reopened = Store(tmp_path)
    assert reopened.get("c", "org", "r1") == rec(1) and reopened.get("c", "org", "r2") == rec(2)


class KeepBusy:
    """``os.fsync``; and during each of the first ``appends`` appends to partition ``hot``'s
    journal, one more write to ``hot`` is staged: a partition that always has its next batch
    waiting, as under continuous load."""

    def __init__(self, appends: int) -> None:
        self.store: Store | None = None
        self.remaining = appends
        self.done = threading.Event()

    def __call__(self, fd: int) -> None:
        os.fsync(fd)
        if not os.readlink(f"/proc/self/fd/{fd}").endswith("hot.journal") or self.store is None:
            return
        if self.remaining == 0:
            self.done.set()
            return
        self.remaining -= 1
        key = self.remaining
        threading.Thread(target=self.store.insert, args=("c", "hot", rec(key)), daemon=True).start()
        partition = self.store._partition("c", "hot")
        deadline = time.monotonic() + 5
        while partition.batch is None and time.monotonic() < deadline:  # until it is staged
            time.sleep(0.0005)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads journal names from /proc")
def test_a_partition_that_always_has_a_batch_waiting_does_not_keep_the_writer_from_others(
    tmp_path, monkeypatch
):
    """A writer thread flushes its partition's batches one after another, but takes turns with
    the partitions queued behind it: with one writer thread and a partition under continuous
    load, a write to another partition is written while that load lasts, not after it."""
    monkeypatch.setattr("timbrix_sandbox.engine.store.WRITER_THREADS", 1)
    busy = KeepBusy(appends=300)
    store = Store(tmp_path, journal_sync=busy)
    store.insert("c", "other", rec(0))  # (both partitions exist before the load starts)
    busy.store = store
    store.insert("c", "hot", rec(10_000))
    store.insert("c", "other", rec(1))
    assert not busy.done.is_set(), "the other partition's write waited for the busy partition's load to end"
    assert busy.done.wait(30)
    store.abandon()
