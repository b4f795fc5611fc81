"""The store interface (``engine/stores.py``) as the engine relies on it, on both stores: TinyDB
on real files and PostgreSQL on a real server (``postgres_server`` in conftest). TinyDB's own
crash and file-integrity rules are in ``test_store.py`` and ``test_store_integrity.py``; what
only a shared store can do (several processes) is at the end."""

from __future__ import annotations

import asyncio
import threading
import typing as t

import pytest

from timbrix_sandbox.engine.store import RecordExists, WrongContract
from timbrix_sandbox.engine.stores import RecordStore, StoreUnavailable, TinyDBStore, open_store


class Opened:
    """A store under test and how to open it again as the next process would."""

    def __init__(self, kind: str, location: str) -> None:
        self.kind = kind
        self.location = location
        self.store = open_store(location)
        self.others: list[RecordStore] = []

    def reopen(self) -> RecordStore:
        """The next process's view. TinyDB: let go of the directory as a crash would (nothing
        flushed) and open it again; PostgreSQL: a second store on the same database, while
        this one stays open (as another worker)."""
        if isinstance(self.store, TinyDBStore):
            self.store.abandon()
            self.store = open_store(self.location)
            return self.store
        other = open_store(self.location)
        self.others.append(other)
        return other

    def close(self) -> None:
        for store in [self.store, *self.others]:
            store.close()


@pytest.fixture(params=["tinydb", "postgresql"])
def opened(request: pytest.FixtureRequest, tmp_path) -> t.Iterator[Opened]:
    location = str(tmp_path / "data") if request.param == "tinydb" else request.getfixturevalue("postgres_url")
    subject = Opened(request.param, location)
    yield subject
    subject.close()


@pytest.fixture
def store(opened: Opened) -> RecordStore:
    return opened.store


def rec(i: int | str, **extra: t.Any) -> dict:
    return {"id": f"{i:024x}" if isinstance(i, int) else i, "n": 0, **extra}


def test_both_implement_the_interface(store):
    assert isinstance(store, RecordStore)
    assert store.storage in ("file", "postgresql")


def test_insert_get_list_in_insertion_order(store):
    for i in (3, 1, 2):
        store.insert("c", "org", rec(i))
    assert [r["id"] for r in store.list("c", "org")] == [rec(i)["id"] for i in (3, 1, 2)]
    assert store.peek_all("c", "org") == store.list("c", "org")
    assert store.get("c", "org", rec(1)["id"]) == rec(1)
    assert store.peek("c", "org", rec(1)["id"]) == rec(1)
    assert store.count("c", "org") == 3
    assert store.get("c", "other", rec(1)["id"]) is None, "scopes are separate"
    assert store.count("c", "other") == 0


def test_an_update_keeps_the_records_position(store):
    for i in (1, 2, 3):
        store.insert("c", "org", rec(i))
    store.update("c", "org", rec(1)["id"], lambda r: {**r, "n": 7})
    assert [(r["id"], r["n"]) for r in store.list("c", "org")] == [(rec(1)["id"], 7), (rec(2)["id"], 0),
                                                                    (rec(3)["id"], 0)]  # fmt: skip


def test_inserting_an_existing_id_is_refused_and_keeps_the_record(store):
    store.insert("c", "org", rec(1, n=1))
    with pytest.raises(RecordExists):
        store.insert("c", "org", rec(1, n=2))
    assert store.list("c", "org") == [rec(1, n=1)]


def test_two_awaited_inserts_of_one_id_store_one_and_refuse_the_other(store):
    """Two creates racing for one id (the engine's 409, not a 500): exactly one is stored,
    the other is refused as ``RecordExists`` and changes nothing."""

    async def race() -> list[t.Any]:
        first = store.insert_async("c", "org", rec(1, n=1))
        second = store.insert_async("c", "org", rec(1, n=2))
        return await asyncio.gather(first, second, return_exceptions=True)

    outcomes = asyncio.run(race())
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(refused) == 1 and isinstance(refused[0], RecordExists), outcomes
    stored = store.list("c", "org")
    assert len(stored) == 1 and stored[0] in (rec(1, n=1), rec(1, n=2))


def test_update_contract(store):
    store.insert("c", "org", rec(1, gone=True))
    key = rec(1)["id"]
    assert store.update("c", "org", "missing", lambda r: {**r, "n": 1}) is None
    assert store.update("c", "org", key, lambda r: {"id": r["id"], "n": 1}) == {"id": key, "n": 1}
    assert store.get("c", "org", key) == {"id": key, "n": 1}, "an update replaces, it does not merge"

    def mutate_and_decline(record: dict) -> None:
        record["n"] = 99  # on its own copy
        return None

    assert store.update("c", "org", key, mutate_and_decline) == {"id": key, "n": 1}
    assert store.get("c", "org", key) == {"id": key, "n": 1}

    def reject(record: dict) -> dict:
        raise ValueError("rule failed")

    with pytest.raises(ValueError, match="rule failed"):
        store.update("c", "org", key, reject)
    with pytest.raises(ValueError, match="must not change the record id"):
        store.update("c", "org", key, lambda r: {**r, "id": "other"})
    assert store.list("c", "org") == [{"id": key, "n": 1}]


def test_delete(store):
    store.insert("c", "org", rec(1))
    store.insert("c", "org", rec(2))
    assert store.delete("c", "org", rec(1)["id"]) is True
    assert store.delete("c", "org", rec(1)["id"]) is False
    assert store.list("c", "org") == [rec(2)]


def test_returned_records_are_copies(store):
    store.insert("c", "org", rec(1, nested={"a": 1}))
    got = store.get("c", "org", rec(1)["id"])
    got["nested"]["a"] = 99
    store.list("c", "org")[0]["nested"]["a"] = 98
    assert store.get("c", "org", rec(1)["id"])["nested"]["a"] == 1


def test_acknowledged_writes_are_seen_by_the_next_process(opened):
    store = opened.store
    store.insert("c", "org", rec(1))
    store.insert("c", "org", rec(2))
    store.insert("c", "élan vital", rec(4))
    store.update("c", "org", rec(1)["id"], lambda r: {**r, "n": 5})
    store.delete("c", "org", rec(2)["id"])
    later = opened.reopen()
    assert later.list("c", "org") == [rec(1, n=5)]
    assert later.list("c", "élan vital") == [rec(4)]
    assert later.scopes("c") == ["org", "élan vital"]


def test_replace_partitions_swaps_content_and_lists_reset_scopes(store):
    store.insert("c", "a", rec(1, n=5))
    store.insert("c", "a", rec(9))
    store.insert("c", "b", rec(2))
    store.replace_partitions({("c", "a"): [rec(3), rec(1)], ("c", "b"): [], ("c", "new"): [rec(4)]})
    assert store.list("c", "a") == [rec(3), rec(1)], "the new content, in its order; n=5 is gone"
    assert store.list("c", "b") == []
    assert store.list("c", "new") == [rec(4)]
    assert store.scopes("c") == ["a", "b", "new"]
    store.insert("c", "a", rec(5))
    assert [r["id"] for r in store.list("c", "a")] == [rec(3)["id"], rec(1)["id"], rec(5)["id"]]


def test_a_reset_that_cannot_be_written_changes_nothing(store):
    """One partition's new content cannot be stored (not JSON): none of them changes."""
    store.insert("c", "a", rec(1, n=1))
    store.insert("c", "b", rec(2, n=2))
    with pytest.raises(TypeError):
        store.replace_partitions({("c", "a"): [rec(1)], ("c", "b"): [rec(2, bad={1, 2})]})
    assert store.list("c", "a") == [rec(1, n=1)]
    assert store.list("c", "b") == [rec(2, n=2)]


def test_concurrent_writers_lose_nothing(store):
    """16 threads incrementing one shared counter and their own, read-modify-write."""
    shared = "shared".rjust(24, "0")
    store.insert("c", "org", rec(shared))
    threads_n, per_thread = 16, 15
    for i in range(threads_n):
        store.insert("c", "org", rec(i))

    def work(i: int) -> None:
        for _ in range(per_thread):
            store.update("c", "org", shared, lambda r: {**r, "n": r["n"] + 1})
            store.update("c", "org", rec(i)["id"], lambda r: {**r, "n": r["n"] + 1})

    threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.get("c", "org", shared)["n"] == threads_n * per_thread
    assert all(store.get("c", "org", rec(i)["id"])["n"] == per_thread for i in range(threads_n))


def test_integer_ids_start_above_the_stored_ones_and_never_repeat(store):
    store.replace_partitions({("c", "a"): [rec("7"), rec("41")], ("c", "b"): [rec("12"), rec("x9")]})
    got: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(10):
            value = store.next_integer_id("c")
            with lock:
                got.append(value)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(got) == list(range(42, 82))
    assert store.next_integer_id("other") == 1


def test_seeding_markers(store):
    assert not store.is_seeded() and not store.seeding_interrupted()
    store.begin_seeding()
    assert store.seeding_interrupted() and not store.is_seeded()
    store.mark_seeded()
    assert store.is_seeded() and not store.seeding_interrupted()


def test_the_store_is_claimed_by_one_contract(opened):
    store = opened.store
    assert store.claim("Timbrix", layout=2) == 2
    assert store.claim("Timbrix", layout=3) == 2, "the layout the data was written with"
    store.set_layout("Timbrix", 3)
    assert opened.reopen().claim("Timbrix") == 3
    if opened.kind == "tinydb":
        store = opened.reopen()
    with pytest.raises(WrongContract, match="holds data of 'Timbrix', not 'BeeL'"):
        store.claim("BeeL")


# -- a shared store: several processes on one database ----------------------------------------


@pytest.fixture
def two_workers(postgres_url) -> t.Iterator[tuple[RecordStore, RecordStore]]:
    """Two stores on one database: what two workers (or two hosts) hold."""
    first, second = open_store(postgres_url), open_store(postgres_url)
    yield first, second
    first.close()
    second.close()


def test_two_processes_updating_one_record_lose_nothing(two_workers):
    first, second = two_workers
    first.insert("c", "org", rec(1))

    def work(store: RecordStore) -> None:
        for _ in range(40):
            store.update("c", "org", rec(1)["id"], lambda r: {**r, "n": r["n"] + 1})

    threads = [threading.Thread(target=work, args=(s,)) for s in (first, second) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert first.get("c", "org", rec(1)["id"])["n"] == 8 * 40
    assert second.list("c", "org") == first.list("c", "org")


def test_a_reset_is_seen_by_every_process_and_an_update_waiting_on_it_applies_after_it(two_workers):
    first, second = two_workers
    first.insert("c", "org", rec(1, n=5))
    first.insert("c", "org", rec(2))
    second.replace_partitions({("c", "org"): [rec(1, n=100)]})
    assert first.list("c", "org") == [rec(1, n=100)]
    assert first.update("c", "org", rec(1)["id"], lambda r: {**r, "n": r["n"] + 1}) == rec(1, n=101)
    assert second.get("c", "org", rec(1)["id"]) == rec(1, n=101)
    assert second.update("c", "org", rec(2)["id"], lambda r: {**r, "n": 1}) is None, "reset away"


def test_an_update_after_another_process_wrote_applies_to_what_it_wrote(two_workers):
    """A process remembers what it wrote last (one round trip per update); another process's
    write, a reset or a delete in between must never be overwritten, and a change that would
    refuse the remembered record is judged on the stored one."""
    first, second = two_workers
    first.insert("c", "org", rec(1))
    first.update("c", "org", rec(1)["id"], lambda r: {**r, "n": 1, "by": "first"})
    second.update("c", "org", rec(1)["id"], lambda r: {**r, "n": 2, "by": "second"})

    def only_after_two(record: dict) -> dict:
        if record["n"] != 2:
            raise ValueError(f"judged on n={record['n']}")
        return {**record, "n": 3}

    assert first.update("c", "org", rec(1)["id"], only_after_two) == {**rec(1), "n": 3, "by": "second"}
    second.replace_partitions({("c", "org"): [rec(1, n=10)]})
    assert first.update("c", "org", rec(1)["id"], lambda r: {**r, "n": r["n"] + 1}) == rec(1, n=11)
    second.delete("c", "org", rec(1)["id"])
    assert first.update("c", "org", rec(1)["id"], lambda r: {**r, "n": 99}) is None
    second.replace_partitions({("c", "org"): [rec(1)]})  # the same id again, as a reset brings back a fixture
    assert first.update("c", "org", rec(1)["id"], lambda r: {**r, "n": r["n"] + 1}) == rec(1, n=1)
    assert second.get("c", "org", rec(1)["id"]) == rec(1, n=1)


def test_integer_ids_are_unique_across_processes(two_workers):
    got = [store.next_integer_id("c") for _ in range(5) for store in two_workers]
    assert sorted(got) == list(range(1, 11))


def test_one_process_at_a_time_starts_up(two_workers):
    """While one process claims and seeds (``startup``), another one's startup waits."""
    first, second = two_workers
    entered = threading.Event()
    def start_up() -> None:
        with second.startup():
            entered.set()

    with first.startup():
        waiter = threading.Thread(target=start_up)
        waiter.start()
        assert not entered.wait(0.5), "a second startup ran while the first held the lock"
    assert entered.wait(10), "the second startup never got the lock"
    waiter.join()


def test_an_unreachable_database_is_a_clear_error():
    with pytest.raises(StoreUnavailable, match="cannot use the database postgresql://u:\\*\\*\\*@127.0.0.1:9/"):
        open_store("postgresql://u:secret@127.0.0.1:9/db?connect_timeout=2")
