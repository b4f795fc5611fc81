"""The TinyDB-backed store on real files: durability, atomicity, recovery and thread safety."""

from __future__ import annotations

import json
import threading

import pytest
from tinydb import TinyDB

from timbrix_sandbox.contract.records import json_bytes
from timbrix_sandbox.engine import store as store_module
from timbrix_sandbox.engine.store import COMPACT_MIN_LINES, CorruptJournal, RecordTable, Store, StoreInUse


def reopen(store: Store, path) -> Store:
    """What the next process sees after this one died: the directory, nothing flushed."""
    store.abandon()
    return Store(path)


def rec(i: int | str, **extra) -> dict:
    return {"id": f"{i:024x}" if isinstance(i, int) else i, "n": 0, **extra}


def test_writes_survive_reopen_without_close(tmp_path):
    """No close() = a crash: the journal alone must carry every acknowledged write."""
    store = Store(tmp_path)
    store.insert("c", "org", rec(1))
    store.insert("c", "org", rec(2))
    store.update("c", "org", rec(1)["id"], lambda r: {**r, "n": 5})
    store.delete("c", "org", rec(2)["id"])
    reopened = reopen(store, tmp_path)
    assert reopened.list("c", "org") == [rec(1, n=5)]


def test_snapshot_is_a_tinydb_file(tmp_path):
    store = Store(tmp_path)
    store.insert("c", "org", rec(1))
    store.close()
    db = TinyDB(tmp_path / "c" / "org.json")
    db.table_class = RecordTable
    assert db.table("records").get(doc_id=rec(1)["id"]) == rec(1)


def test_torn_journal_tail_is_ignored(tmp_path):
    store = Store(tmp_path)
    store.insert("c", "org", rec(1))
    with open(tmp_path / "c" / "org.journal", "ab") as journal:
        journal.write(b'{"op": "put", "doc": {"id": "00000000000000000000000')  # crash mid-append
    assert reopen(store, tmp_path).list("c", "org") == [rec(1)]


def test_corruption_in_the_middle_of_the_journal_is_reported(tmp_path):
    store = Store(tmp_path)
    store.insert("c", "org", rec(1))
    path = tmp_path / "c" / "org.journal"
    path.write_bytes(b"garbage\n" + path.read_bytes())
    with pytest.raises(CorruptJournal):
        reopen(store, tmp_path).list("c", "org")


def test_compaction_keeps_journal_bounded_and_data_intact(tmp_path):
    """The journal never exceeds max(COMPACT_MIN_LINES, records) lines, and compaction never
    drops the write that triggered it."""
    store = Store(tmp_path)
    for i in range(10):
        store.insert("c", "org", rec(i))
    for n in range(1, COMPACT_MIN_LINES + 500):
        store.update("c", "org", rec(n % 10)["id"], lambda r, n=n: {**r, "n": n})
        lines = (tmp_path / "c" / "org.journal").read_bytes().count(b"\n")
        assert lines <= COMPACT_MIN_LINES
    reopened = reopen(store, tmp_path).list("c", "org")
    assert reopened == store.list("c", "org")
    assert max(r["n"] for r in reopened) == COMPACT_MIN_LINES + 499


@pytest.mark.parametrize("count", [0, 1, 2, 3, 4, 7])
def test_a_snapshot_written_a_few_records_at_a_time_is_the_whole_partition(tmp_path, monkeypatch, count):
    """A snapshot is serialised SNAPSHOT_CHUNK records at a time, so that compacting a large
    partition does not hold the interpreter (and the event loop's reads) for all of it: at
    every chunk boundary the file is the one serialisation of the partition, and reads back."""
    monkeypatch.setattr(store_module, "SNAPSHOT_CHUNK", 3)
    store = Store(tmp_path)
    records = [rec(i, n=i) for i in range(count)]
    store.replace_all("c", "org", records)
    written = (tmp_path / "c" / "org.json").read_bytes()
    meta = json.loads(written)["_meta"]
    assert written == json_bytes({"records": {r["id"]: r for r in records}, "_meta": meta})
    assert reopen(store, tmp_path).list("c", "org") == records


def test_a_snapshot_chunk_orjson_refuses_is_written_by_json(tmp_path, monkeypatch):
    """An integer beyond 64 bits in one chunk: that chunk falls back to json, the others stay
    orjson's, and the file still reads back exactly."""
    monkeypatch.setattr(store_module, "SNAPSHOT_CHUNK", 2)
    store = Store(tmp_path)
    records = [rec(i, n=2**70 if i == 3 else i) for i in range(6)]
    store.replace_all("c", "org", records)
    assert reopen(store, tmp_path).list("c", "org") == records


def test_failed_update_writes_nothing(tmp_path):
    store = Store(tmp_path)
    store.insert("c", "org", rec(1))

    def reject(record):
        raise ValueError("rule failed")

    with pytest.raises(ValueError):
        store.update("c", "org", rec(1)["id"], reject)
    assert reopen(store, tmp_path).list("c", "org") == [rec(1)]


def test_update_replaces_instead_of_merging_keys(tmp_path):
    store = Store(tmp_path)
    store.insert("c", "org", rec(1, gone=True))
    store.update("c", "org", rec(1)["id"], lambda r: {"id": r["id"], "n": 1})
    assert store.get("c", "org", rec(1)["id"]) == {"id": rec(1)["id"], "n": 1}
    assert reopen(store, tmp_path).get("c", "org", rec(1)["id"]) == {"id": rec(1)["id"], "n": 1}


def test_returned_records_are_copies(tmp_path):
    store = Store(None)
    store.insert("c", "org", rec(1, nested={"a": 1}))
    got = store.get("c", "org", rec(1)["id"])
    got["nested"]["a"] = 99
    assert store.get("c", "org", rec(1)["id"])["nested"]["a"] == 1


def test_partitions_are_separate_files(tmp_path):
    store = Store(tmp_path)
    store.insert("c", "a", rec(1))
    store.insert("c", "b", rec(2))
    store.close()
    assert sorted(p.name for p in (tmp_path / "c").glob("*.json")) == ["a.json", "b.json"]
    assert store.scopes("c") == ["a", "b"]


def test_unsafe_scope_names_cannot_escape_the_data_dir(tmp_path):
    store = Store(tmp_path / "data")
    store.insert("c", "../../etc/passwd", rec(1))
    store.close()
    assert not (tmp_path / "etc").exists()
    assert len(list((tmp_path / "data" / "c").glob("*.json"))) == 1


def test_concurrent_writers_lose_nothing(tmp_path):
    """32 threads incrementing shared and private counters through read-modify-write."""
    store = Store(tmp_path)
    store.insert("c", "org", rec("shared".rjust(24, "0")))
    for t in range(32):
        store.insert("c", "org", rec(t))
    per_thread = 25

    def work(t: int) -> None:
        for _ in range(per_thread):
            store.update("c", "org", "shared".rjust(24, "0"), lambda r: {**r, "n": r["n"] + 1})
            store.update("c", "org", rec(t)["id"], lambda r: {**r, "n": r["n"] + 1})

    threads = [threading.Thread(target=work, args=(t,)) for t in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for check in (store, reopen(store, tmp_path)):
        assert check.get("c", "org", "shared".rjust(24, "0"))["n"] == 32 * per_thread
        assert all(check.get("c", "org", rec(t)["id"])["n"] == per_thread for t in range(32))
    json.loads((tmp_path / "c" / "org.json").read_text())  # valid JSON on disk


def test_a_second_process_cannot_open_the_same_directory(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(StoreInUse, match="in use by another timbrix-sandbox process"):
        Store(tmp_path)
    store.close()
    Store(tmp_path).close()  # released on close (and by the kernel when a process dies)


def test_crash_between_snapshot_and_journal_truncation(tmp_path):
    """Reset writes the new snapshot, then empties the journal; dying in between must leave
    the reset state, not the old journal replayed over it."""
    store = Store(tmp_path)
    store.insert("c", "org", rec(1))
    store.insert("c", "org", rec(3))
    store.update("c", "org", rec(1)["id"], lambda r: {**r, "n": 9})
    journal = tmp_path / "c" / "org.journal"
    stale = journal.read_bytes()
    store.replace_all("c", "org", [rec(1), rec(2)])
    journal.write_bytes(stale)  # the truncation never happened
    assert reopen(store, tmp_path).list("c", "org") == [rec(1), rec(2)]


def test_a_failed_append_is_rolled_back_not_resurrected(tmp_path, monkeypatch):
    """A write reported as failed (here: the durable append's ``write`` raising after its bytes
    reached the file, as a full disk or an I/O error can) must not reappear after a restart
    because a later write flushed its bytes."""
    import os

    store = Store(tmp_path)
    store.insert("c", "org", rec(1))
    real_write = os.write
    calls = {"n": 0}

    def failing_once(fd, data):
        calls["n"] += 1
        written = real_write(fd, data)
        if calls["n"] == 1:
            raise OSError(28, "No space left on device")
        return written

    monkeypatch.setattr(os, "write", failing_once)
    with pytest.raises(OSError):
        store.insert("c", "org", rec(2))
    monkeypatch.setattr(os, "write", real_write)
    store.insert("c", "org", rec(3))
    assert store.list("c", "org") == [rec(1), rec(3)]
    assert reopen(store, tmp_path).list("c", "org") == [rec(1), rec(3)]


def test_reads_do_not_wait_for_a_writer_holding_the_lock(tmp_path):
    store = Store(tmp_path)
    store.insert("c", "org", rec(1))
    partition = store._partition("c", "org")
    with partition.lock:  # as during a writer's fsync or a compaction
        result = []
        reader = threading.Thread(target=lambda: result.append(store.get("c", "org", rec(1)["id"])))
        reader.start()
        reader.join(timeout=5)
        assert result == [rec(1)], "the read blocked on the writer's lock"


def test_a_seed_cut_short_is_redone(tmp_path):
    """The first seeding says so before writing (``.seeding``) and marks the end (``.seeded``);
    a crash in between leaves some organizations seeded and the rest empty: seed again."""
    from timbrix_sandbox.engine.fixtures import load_fixtures
    from timbrix_sandbox.profiles import TIMBRIX_FIXTURES
    from timbrix_sandbox.profiles.sandboxes import make_sandbox

    fixtures = load_fixtures(TIMBRIX_FIXTURES)
    first = Store(tmp_path)
    dunder = "550e8400-e29b-41d4-a716-446655440000"
    first.begin_seeding()
    first.replace_all("customers", dunder, fixtures.records["customers"][dunder])  # then the process died
    first.abandon()
    sandbox = make_sandbox(data_dir=tmp_path)
    counts = {org: sandbox.store.count("customers", org) for org in fixtures.organizations}
    assert counts == {org: len(rows) for org, rows in fixtures.records["customers"].items()}
    sandbox.store.close()


@pytest.mark.parametrize("on_disk", [True, False], ids=["file", "memory"])
def test_readers_that_share_parsed_records_see_every_write(tmp_path, monkeypatch, on_disk):
    """``peek``/``peek_all`` hand out records parsed once and kept (at most ``PARSED_CACHE``
    per partition): after an update, a delete or a reset they show the new state, never the
    parsed copy of the old one, also when the partition outgrows the cache."""
    monkeypatch.setattr(store_module, "PARSED_CACHE", 2)
    store = Store(tmp_path if on_disk else None)
    for i in range(3):
        store.insert("c", "org", rec(i))
    assert store.peek("c", "org", rec(1)["id"]) == rec(1)
    assert store.peek_all("c", "org") == [rec(0), rec(1), rec(2)]  # 3 > the cache: parsed uncached
    store.update("c", "org", rec(1)["id"], lambda r: {**r, "n": 7})
    assert store.peek("c", "org", rec(1)["id"]) == rec(1, n=7)
    store.delete("c", "org", rec(0)["id"])
    assert store.peek("c", "org", rec(0)["id"]) is None
    assert store.peek_all("c", "org") == [rec(1, n=7), rec(2)]  # an update keeps its place
    assert store.peek("c", "org", rec(2)["id"]) is store.peek("c", "org", rec(2)["id"])  # shared
    store.replace_all("c", "org", [rec(2, n=9)])
    assert store.peek_all("c", "org") == [rec(2, n=9)] and store.peek("c", "org", rec(1)["id"]) is None
    assert store.get("c", "org", rec(2)["id"]) is not store.peek("c", "org", rec(2)["id"])  # get: a copy


@pytest.mark.parametrize("on_disk", [True, False], ids=["file", "memory"])
def test_integers_beyond_64_bits_read_back_exactly_from_every_reader(tmp_path, on_disk):
    """orjson refuses to write them and would read them as floats: such a record is kept as
    json's text and parsed by json, by ``get``, ``list``, ``peek`` and ``peek_all`` alike."""
    store = Store(tmp_path if on_disk else None)
    store.insert("c", "org", rec(1, big=2**70, neg=-(2**65)))
    for record in (
        store.get("c", "org", rec(1)["id"]),
        store.peek("c", "org", rec(1)["id"]),
        *store.list("c", "org"),
        *store.peek_all("c", "org"),
    ):
        assert record == rec(1, big=2**70, neg=-(2**65)) and type(record["big"]) is int


def test_stored_records_are_not_walked_by_the_cycle_collector(tmp_path):
    """Each stored record is bytes, not dicts: 2,000 more records add no object the cycle
    collector tracks (only the parsed ones readers share, at most ``PARSED_CACHE`` per
    partition). Two tracked dicts per record made its pauses grow with the store: 15-28 ms
    young collections under a create load (see the module docstring)."""
    import gc

    store = Store(tmp_path)
    nested = {"address": {"street": "Calle", "zip": "64000"}, "tags": ["a", "b"]}
    store.insert("c", "org", rec("warm-up", **nested))
    gc.collect()
    before = len(gc.get_objects())
    for i in range(2000):
        store.insert("c", "org", rec(i, **nested))
    gc.collect()
    assert len(gc.get_objects()) - before < 200
    assert store.count("c", "org") == 2001
    store.close()
