"""What the store recovers at startup, what it refuses to start on, and how it behaves on a full
disk. Real TinyDB files in tmp_path; the full disk is a real 2 MB tmpfs mounted in a private mount
namespace (the tests run as root, as in CI), never a mocked ``os.write``."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import traceback
import typing as t
from pathlib import Path

import httpx
import pytest
from conftest import DOCS_CUSTOMER, DUNDER, MICHAEL, PRINCE, ROOT, customer_url, free_port

from timbrix_sandbox.contract.model import load_profile
from timbrix_sandbox.engine.faults import Behaviours
from timbrix_sandbox.engine.fixtures import Fixtures
from timbrix_sandbox.engine.plugins import DomainPlugin
from timbrix_sandbox.engine.sandbox import Sandbox
from timbrix_sandbox.engine.store import DamagedStore, Store
from timbrix_sandbox.testing import stop_process, wait_until_healthy

TESTS = Path(__file__).resolve().parent

UNSAFE_SCOPES = [
    "cuenta-logroño",
    "acme corp",
    "ops@acme",
    "x" * 150,
    hashlib.sha256(b"looks like a hashed file name").hexdigest(),
    "../../etc/passwd",
]


def rec(i: int | str, **extra: t.Any) -> dict:
    return {"id": f"{i:024x}" if isinstance(i, int) else i, "n": 0, **extra}


def opened(path: Path, **options: t.Any) -> Store:
    """A store opened as the server opens it at startup."""
    store = Store(path, **options)
    store.open_all("c")
    return store


def crash_and_reopen(store: Store, path: Path, **options: t.Any) -> Store:
    """The next process after this one died: nothing compacted or flushed."""
    store.abandon()
    return opened(path, **options)


def files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def refused(path: Path) -> DamagedStore:
    """Opening ``path`` must refuse, leave every file as it was, and free the directory."""
    before = files(path)
    with pytest.raises(DamagedStore) as caught:
        opened(path)
    assert files(path) == before, "a refused start changed the data directory"
    message = str(caught.value)
    assert "The data was left as it is" in message
    assert f"timbrix-sandbox reset --data-dir {path} --discard-damaged" in message
    Store(path).close()  # the refusing store let go of the directory lock
    return caught.value


# -- scope ids that are not safe file names ------------------------------------------------------
@pytest.mark.parametrize("scope", UNSAFE_SCOPES)
def test_any_scope_id_keeps_its_writes_across_restarts(tmp_path, scope):
    store = opened(tmp_path)
    store.insert("c", scope, rec(1))
    store.close()
    second = opened(tmp_path)
    assert second.scopes("c") == [scope]
    second.insert("c", scope, rec(2))
    second.update("c", scope, rec(1)["id"], lambda r: {**r, "n": 1})
    third = crash_and_reopen(second, tmp_path)  # the last writes are only in the journal
    assert third.scopes("c") == [scope]
    assert third.list("c", scope) == [rec(1, n=1), rec(2)]
    third.close()
    assert opened(tmp_path).list("c", scope) == [rec(1, n=1), rec(2)]


def test_safe_and_unsafe_scopes_side_by_side(tmp_path):
    store = opened(tmp_path)
    for number, scope in enumerate(["plain", "cuenta-logroño", "with space"]):
        store.insert("c", scope, rec(number))
    store = crash_and_reopen(store, tmp_path)
    assert store.scopes("c") == sorted(["plain", "cuenta-logroño", "with space"])
    assert [store.count("c", s) for s in store.scopes("c")] == [1, 1, 1]
    assert (tmp_path / "c" / "plain.journal").exists(), "safe scopes keep their readable file names"


def test_a_hashed_partition_whose_name_is_lost_is_refused(tmp_path):
    store = opened(tmp_path)
    store.insert("c", "cuenta-logroño", rec(1))
    store.abandon()  # the write is only in the journal
    (sidecar,) = (tmp_path / "c").glob("*.scope")
    sidecar.unlink()
    damage = refused(tmp_path)
    assert str(sidecar.with_suffix(".journal")) in str(damage)


def test_a_lost_name_is_recovered_from_the_snapshot(tmp_path):
    store = opened(tmp_path)
    store.insert("c", "cuenta-logroño", rec(1))
    store.close()
    (sidecar,) = (tmp_path / "c").glob("*.scope")
    sidecar.unlink()
    again = opened(tmp_path)
    assert again.scopes("c") == ["cuenta-logroño"]
    assert again.list("c", "cuenta-logroño") == [rec(1)]
    assert sidecar.exists(), "the recovered name is recorded again"


# -- snapshot and journal damage -----------------------------------------------------------------
def _partition_with_journal(path: Path, writes: int = 64) -> None:
    """A snapshot holding one record, and a journal holding ``writes`` acknowledged writes on top."""
    store = opened(path)
    store.insert("c", "org", rec(0))
    store.close()
    store = opened(path)
    for i in range(1, writes + 1):
        store.insert("c", "org", rec(i))
    store.abandon()
    assert (path / "c" / "org.journal").read_bytes().count(b"\n") == writes


def _set_generation(snapshot: Path, change: t.Callable[[int], int]) -> None:
    raw = json.loads(snapshot.read_text())
    raw["_meta"]["1"]["generation"] = change(raw["_meta"]["1"]["generation"])
    snapshot.write_text(json.dumps(raw))


SNAPSHOT_DAMAGE: dict[str, t.Callable[[Path], None]] = {
    "deleted": lambda snapshot: snapshot.unlink(),
    "emptied": lambda snapshot: snapshot.write_bytes(b""),
    "not JSON": lambda snapshot: snapshot.write_bytes(b'{"records": {'),
    "not a snapshot": lambda snapshot: snapshot.write_text('["records"]'),
    "generation lowered": lambda snapshot: _set_generation(snapshot, lambda g: g - 1),
    "generation raised": lambda snapshot: _set_generation(snapshot, lambda g: g + 1),
    "generation raised by 5": lambda snapshot: _set_generation(snapshot, lambda g: g + 5),
}


@pytest.mark.parametrize("damage", SNAPSHOT_DAMAGE)
def test_a_damaged_snapshot_under_a_journal_is_refused_and_nothing_is_truncated(tmp_path, damage):
    _partition_with_journal(tmp_path)
    snapshot = tmp_path / "c" / "org.json"
    SNAPSHOT_DAMAGE[damage](snapshot)
    assert str(snapshot) in str(refused(tmp_path))


def test_an_empty_snapshot_is_refused_even_without_a_journal(tmp_path):
    store = opened(tmp_path)
    store.insert("c", "org", rec(1))
    store.close()
    (tmp_path / "c" / "org.json").write_bytes(b"")
    assert "org.json" in str(refused(tmp_path))


def test_a_crash_between_compaction_and_journal_truncation_loses_nothing(tmp_path):
    store = opened(tmp_path)
    for i in range(5):
        store.insert("c", "org", rec(i))
    journal = tmp_path / "c" / "org.journal"
    unabsorbed = journal.read_bytes()
    store._partition("c", "org").compact()
    journal.write_bytes(unabsorbed)  # the truncation never happened
    again = crash_and_reopen(store, tmp_path)
    assert again.list("c", "org") == [rec(i) for i in range(5)]
    again.insert("c", "org", rec(5))
    assert crash_and_reopen(again, tmp_path).list("c", "org") == [rec(i) for i in range(6)]


def test_a_corrupted_complete_last_journal_line_is_refused_not_dropped(tmp_path):
    store = opened(tmp_path)
    store.insert("c", "org", rec(1))
    store.insert("c", "org", rec(2))
    store.abandon()
    journal = tmp_path / "c" / "org.journal"
    first, second, tail = journal.read_bytes().split(b"\n")
    assert tail == b""
    journal.write_bytes(first + b"\n" + second[:-7] + b"\n")  # acknowledged (newline-terminated), then damaged
    assert f"{journal}:2" in str(refused(tmp_path))


def test_a_journal_entry_of_the_wrong_shape_is_refused(tmp_path):
    store = opened(tmp_path)
    store.insert("c", "org", rec(1))
    store.abandon()
    journal = tmp_path / "c" / "org.journal"
    journal.write_bytes(journal.read_bytes() + b'{"op": "put", "g": 0}\n')
    assert f"{journal}:2" in str(refused(tmp_path))


def test_a_torn_tail_is_dropped_and_later_writes_are_kept(tmp_path):
    """Only a final segment without its newline is a torn append (never acknowledged), even if
    it happens to parse; the journal is repaired so the next appends are readable."""
    store = opened(tmp_path)
    store.insert("c", "org", rec(1))
    store.abandon()
    journal = tmp_path / "c" / "org.journal"
    torn = json.dumps({"op": "put", "doc": rec(9), "g": 0}).encode()
    journal.write_bytes(journal.read_bytes() + torn)
    again = opened(tmp_path)
    assert again.list("c", "org") == [rec(1)]
    again.insert("c", "org", rec(2))
    assert crash_and_reopen(again, tmp_path).list("c", "org") == [rec(1), rec(2)]


def test_data_directories_written_before_these_rules_still_open(tmp_path):
    """Snapshots without ``_meta`` and journal entries without a generation (the first format),
    and generation-stamped ones without the absorbed journal size (the second)."""
    first, second = tmp_path / "c" / "first.json", tmp_path / "c" / "second.json"
    first.parent.mkdir()
    first.write_text(json.dumps({"records": {rec(1)["id"]: rec(1)}}))
    first.with_suffix(".journal").write_text(json.dumps({"op": "put", "doc": rec(2)}) + "\n")
    second.write_text(json.dumps({"records": {rec(3)["id"]: rec(3)}, "_meta": {"1": {"generation": 4}}}))
    stale = json.dumps({"op": "del", "id": rec(3)["id"], "g": 3})
    current = json.dumps({"op": "put", "doc": rec(4), "g": 4})
    second.with_suffix(".journal").write_text(f"{stale}\n{current}\n")
    store = opened(tmp_path)
    assert store.scopes("c") == ["first", "second"]
    assert store.list("c", "first") == [rec(1), rec(2)]
    assert store.list("c", "second") == [rec(3), rec(4)]


def test_discard_damaged_moves_the_files_aside_and_opens_empty(tmp_path):
    store = opened(tmp_path)
    store.insert("c", "org", rec(1))
    store.insert("c", "other", rec(2))
    store.close()
    (tmp_path / "c" / "org.journal").write_bytes(b"garbage\n")
    refused(tmp_path)
    store = opened(tmp_path, discard_damaged=True)
    assert store.list("c", "org") == [] and store.list("c", "other") == [rec(2)]
    (aside,) = tmp_path.glob("damaged-*")
    assert re.fullmatch(r"damaged-\d{8}T\d{6}Z", aside.name)
    assert (aside / "c" / "org.journal").read_bytes() == b"garbage\n", "moved aside, not deleted"
    assert json.loads((aside / "c" / "org.json").read_text())["records"] == {rec(1)["id"]: rec(1)}
    store.insert("c", "org", rec(3))
    assert crash_and_reopen(store, tmp_path).list("c", "org") == [rec(3)]


def test_discard_damaged_also_clears_a_partition_whose_name_is_lost(tmp_path):
    store = opened(tmp_path)
    store.insert("c", "cuenta-logroño", rec(1))
    store.abandon()
    next((tmp_path / "c").glob("*.scope")).unlink()
    store = opened(tmp_path, discard_damaged=True)
    assert store.scopes("c") == [] and store.list("c", "cuenta-logroño") == []
    assert len(list(tmp_path.glob("damaged-*/c/*.journal"))) == 1


# -- seeding -------------------------------------------------------------------------------------
def test_a_lost_seeded_marker_never_overwrites_data(tmp_path, caplog):
    from timbrix_sandbox.profiles.sandboxes import make_sandbox

    sandbox = make_sandbox(data_dir=tmp_path)
    sandbox.store.update("customers", DUNDER, DOCS_CUSTOMER, lambda r: {**r, "email": "kept@dundermifflin.com"})
    sandbox.store.delete("customers", PRINCE, sandbox.store.list("customers", PRINCE)[0]["id"])
    sandbox.store.close()
    (tmp_path / ".seeded").unlink()
    again = make_sandbox(data_dir=tmp_path)
    assert again.store.get("customers", DUNDER, DOCS_CUSTOMER)["email"] == "kept@dundermifflin.com"
    assert again.store.count("customers", PRINCE) == 2
    assert (tmp_path / ".seeded").exists()
    assert any("seeded" in record.getMessage() for record in caplog.records if record.levelname == "WARNING")
    again.store.close()


# -- a full disk, for real -----------------------------------------------------------------------
def _fill(filler: Path, leave: int = 0) -> None:
    """Write ``filler`` until the file system is full, then give ``leave`` bytes back."""
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        while True:
            try:
                os.write(fd, b"\0" * 65536)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
        if leave:
            os.ftruncate(fd, os.fstat(fd).st_size - leave)
    finally:
        os.close(fd)


def _attempt(action: t.Callable[[], object]) -> str:
    try:
        action()
    except OSError as exc:
        assert exc.errno == errno.ENOSPC or "short write" in str(exc), exc
        return "error"
    return "ok"


def _scenario_compaction_fails_after_a_durable_append(root: str, result: dict) -> None:
    """Like every scenario, runs inside the tmpfs namespace (see run_on_tmpfs)."""
    import timbrix_sandbox.engine.store as store_module

    store_module.COMPACT_MIN_LINES = 5  # compaction due after 5 journal lines
    data, filler = Path(root) / "data", Path(root) / "filler"
    store = opened(data)
    store.insert("c", "org", rec("big", blob="x" * 60_000))  # a snapshot (60 kB) that will not fit
    store.insert("c", "org", rec(1))
    _fill(filler, leave=8192)  # room for journal lines, not for the snapshot
    key = rec(1)["id"]
    result["answers"] = [
        _attempt(lambda n=n: store.update("c", "org", key, lambda r: {**r, "n": n})) for n in range(1, 11)
    ]
    journal = data / "c" / "org.journal"
    result["served"] = store.get("c", "org", key)["n"]
    result["journal_lines_while_full"] = journal.read_bytes().count(b"\n")
    store.abandon()
    store = opened(data)  # a restart on the still-full disk must come up with everything
    result["after_restart_while_full"] = store.get("c", "org", key)["n"]
    filler.unlink()
    for n in range(11, 14):
        store.update("c", "org", key, lambda r, n=n: {**r, "n": n})
    result["journal_lines_after_space_returned"] = journal.read_bytes().count(b"\n")
    result["after_restart"] = crash_and_reopen(store, data).get("c", "org", key)["n"]


def _scenario_writes_on_a_full_disk(root: str, result: dict) -> None:
    data, filler = Path(root) / "data", Path(root) / "filler"
    store = opened(data)
    store.insert("c", "org", rec(1))
    store.insert("c", "org", rec(2))
    _fill(filler)
    result["insert"] = _attempt(lambda: store.insert("c", "org", rec(3, blob="y" * 5000)))
    result["update"] = _attempt(lambda: store.update("c", "org", rec(1)["id"], lambda r: {**r, "blob": "z" * 5000}))
    result["reset"] = _attempt(lambda: store.replace_all("c", "org", [rec(7, blob="w" * 5000)]))
    result["served"] = store.list("c", "org")
    store = crash_and_reopen(store, data)
    result["after_restart_while_full"] = store.list("c", "org")
    filler.unlink()
    store.insert("c", "org", rec(3))
    store.replace_all("c", "org", [rec(7)])
    result["after_space_returned"] = store.list("c", "org")
    result["after_restart"] = crash_and_reopen(store, data).list("c", "org")


def _sandbox_of_c(fixtures: Fixtures, store: Store) -> Sandbox:
    """A sandbox whose contract has one resource, ``c`` (records ``{id, n, blob}``)."""
    record = {"type": "object", "properties": {"id": {"type": "string"}, "n": {"type": "integer"}, "blob": {}}}
    ok = {"200": {"description": "ok", "content": {"application/json": {"schema": record}}}}
    spec = {"openapi": "3.1.0", "paths": {"/c": {"get": {"operationId": "list", "responses": ok}}}}
    profile = load_profile(spec)
    return Sandbox(Path("c.yaml"), profile, fixtures, store, DomainPlugin(), Behaviours((), profile))


def _scenario_a_full_reset_is_all_or_nothing(root: str, result: dict) -> None:
    data, filler = Path(root) / "data", Path(root) / "filler"
    fixtures = Fixtures(
        organizations={"a": "A", "b": "B"},
        users=(),
        records={"c": {"a": [rec(1)], "b": [rec(2, blob="x" * 60_000)]}},  # b's snapshot will not fit
        source=Path("inline"),
    )
    sandbox = _sandbox_of_c(fixtures, opened(data))
    sandbox.store.insert("c", "a", rec(10))
    sandbox.store.insert("c", "b", rec(20))
    sandbox.store.insert("c", "runtime", rec(30))  # not in the fixtures: emptied by a full reset
    before = {scope: sandbox.store.list("c", scope) for scope in ("a", "b", "runtime")}
    _fill(filler, leave=8192)  # room for a's new snapshot, not for b's
    result["before"] = before
    result["reset"] = _attempt(sandbox.reset)
    result["served"] = {scope: sandbox.store.list("c", scope) for scope in before}
    result["temp_files"] = [p.name for p in (data / "c").iterdir() if p.name.startswith(".tmp-")]
    sandbox.store = crash_and_reopen(sandbox.store, data)
    result["after_restart"] = {scope: sandbox.store.list("c", scope) for scope in before}
    filler.unlink()
    sandbox.reset()
    sandbox.store = crash_and_reopen(sandbox.store, data)
    result["after_reset_with_space"] = {scope: sandbox.store.list("c", scope) for scope in before}


def _run_scenario(name: str, root: str) -> None:
    """In the namespace: run a scenario and print what it observed, and how it crashed if it did."""
    result: dict = {}
    try:
        globals()[name](root, result)
    except Exception:
        result["crashed"] = traceback.format_exc()
    print(json.dumps(result))


def run_on_tmpfs(tmp_path: Path, scenario: t.Callable[[str, dict], None]) -> dict:
    """Run ``scenario(mount point, result)`` in a subprocess with a private 2 MB tmpfs mounted
    there; fails (never skips) if the tmpfs cannot be mounted."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    code = (
        f"import sys; sys.path[:0] = [{str(TESTS)!r}]; import test_store_integrity as tests; "
        f"tests._run_scenario({scenario.__name__!r}, sys.argv[1])"
    )
    script = 'mount -t tmpfs -o size=2m tmpfs "$1" && exec "$2" -c "$3" "$1"'
    unshare = ["unshare", "--mount", "--propagation", "private"]
    done = subprocess.run(
        [*unshare, "sh", "-c", script, "sh", str(mount), sys.executable, code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0 or not done.stdout.strip():
        pytest.fail(f"cannot run on a private tmpfs (root, unshare and mount are needed):\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])


def test_a_failed_compaction_after_a_durable_append_is_not_a_failed_write(tmp_path):
    result = run_on_tmpfs(tmp_path, _scenario_compaction_fails_after_a_durable_append)
    assert result["answers"] == ["ok"] * 10, "a write whose journal line is durable was reported as failed"
    assert result["served"] == 10
    assert result["journal_lines_while_full"] > 5, "compaction could not have happened on the full disk"
    assert "crashed" not in result, result.get("crashed")
    assert result["after_restart_while_full"] == 10
    assert result["journal_lines_after_space_returned"] < 5, "the pending compaction never happened"
    assert result["after_restart"] == 13


def test_writes_and_resets_failed_by_a_full_disk_change_nothing(tmp_path):
    result = run_on_tmpfs(tmp_path, _scenario_writes_on_a_full_disk)
    assert (result["insert"], result["update"], result["reset"]) == ("error", "error", "error")
    assert result["served"] == [rec(1), rec(2)], "a write that failed is served"
    assert "crashed" not in result, result.get("crashed")
    assert result["after_restart_while_full"] == [rec(1), rec(2)]
    assert result["after_space_returned"] == result["after_restart"] == [rec(7)]


def test_a_full_reset_that_cannot_be_written_changes_nothing(tmp_path):
    result = run_on_tmpfs(tmp_path, _scenario_a_full_reset_is_all_or_nothing)
    assert result["reset"] == "error"
    assert result["served"] == result["before"], "a reset that failed is (partly) served"
    assert "crashed" not in result, result.get("crashed")
    assert result["after_restart"] == result["before"]
    assert result["temp_files"] == []
    stored = {"a": [rec(1)], "b": [rec(2, blob="x" * 60_000)], "runtime": []}
    assert result["after_reset_with_space"] == {
        scope: [{"id": r["id"], "data": r} for r in records] for scope, records in stored.items()
    }


class TmpfsNamespace:
    """A 2 MB tmpfs in a private mount namespace, kept alive by a holder process (by PID), so
    servers can be restarted on the same files; the test reaches it through /proc/PID/root."""

    def __init__(self, mount: Path) -> None:
        self.mount = mount
        mount.mkdir()
        script = 'mount -t tmpfs -o size=2m tmpfs "$1" && echo mounted && exec sleep 120'
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(mount)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if self.holder.stdout.readline().strip() != "mounted":
            self.holder.wait(timeout=10)
            pytest.fail(f"cannot mount a tmpfs in a private namespace (root needed): {self.holder.stderr.read()}")
        self.view = Path(f"/proc/{self.holder.pid}/root") / mount.relative_to("/")

    def popen(self, argv: list[str], cwd: Path, **kwargs: t.Any) -> subprocess.Popen:
        """``argv`` inside the namespace, in ``cwd`` (entering a mount namespace resets it to /);
        nsenter execs it, so the PID is the program's own."""
        nsenter = ["nsenter", "--target", str(self.holder.pid), "--mount", f"--wd={cwd}", "--"]
        return subprocess.Popen([*nsenter, *argv], **kwargs)

    def close(self) -> None:
        if self.holder.poll() is None:
            os.kill(self.holder.pid, signal.SIGKILL)
        self.holder.wait(timeout=10)


class NamespacedServer:
    """``timbrix-sandbox serve`` on the tmpfs; only ever signals its own PID."""

    def __init__(self, namespace: TmpfsNamespace, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        argv = [sys.executable, "-m", "timbrix_sandbox", "serve", "--port", str(self.port), "--log-level", "warning"]
        argv += ["--data-dir", str(namespace.mount / "data")]
        with open(log, "wb") as output:  # a file, not a pipe: nobody drains it while requests fail
            self.process = namespace.popen(argv, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
        state = wait_until_healthy(self.url, self.process)
        if state == "exited":
            raise RuntimeError(f"server exited early:\n{log.read_text()}")
        if state != "ready":
            self.stop()
            raise RuntimeError(f"server did not become healthy in time ({state})")

    def stop(self) -> None:
        stop_process(self.process)


@pytest.fixture
def tmpfs_namespace(tmp_path):
    namespace = TmpfsNamespace(tmp_path / "tmpfs")
    servers: list[NamespacedServer] = []

    def start_server() -> NamespacedServer:
        servers.append(NamespacedServer(namespace, tmp_path / f"server-{len(servers)}.log"))
        return servers[-1]

    namespace.start_server = start_server  # type: ignore[attr-defined]
    yield namespace
    for server in servers:
        server.stop()
    namespace.close()


def test_a_server_on_a_full_disk_answers_500_only_for_writes_it_did_not_store(tmpfs_namespace):
    """999 PUTs and a DELETE bring the journal to its compaction threshold (1000 lines); the disk
    then fills up, so the next journal lines fit but the compaction's snapshot does not."""
    server = tmpfs_namespace.start_server()
    filler = tmpfs_namespace.view / "filler"
    with httpx.Client(base_url=server.url, headers=MICHAEL, timeout=30) as client:
        for n in range(999):
            assert client.put(customer_url(), json={"email": f"before{n}@dundermifflin.com"}).status_code == 200
        gone = client.delete(customer_url("65a1f0c2e4b0a1b2c3d4e501"))
        assert gone.status_code == 204
        snapshot = tmpfs_namespace.view / "data" / "customers" / f"{DUNDER}.json"
        assert snapshot.stat().st_size > 4096, "the organization's snapshot must not fit in the page left free"
        _fill(filler, leave=4096)
        answers = []
        for n in range(40):
            put = client.put(customer_url(), json={"email": f"full{n}@dundermifflin.com"})
            answers.append((n, put.status_code))
            if put.status_code != 200:
                assert put.status_code == 500 and put.json()["statusCode"] == 500, put.text
        stored = [n for n, status in answers if status == 200]
        expected = f"full{stored[-1]}@dundermifflin.com" if stored else "before998@dundermifflin.com"
        assert client.get(customer_url()).json()["email"] == expected, f"a PUT answered 500 was stored: {answers}"
        assert stored, f"PUTs whose journal line fit were answered 500: {answers}"
        assert stored == list(range(len(stored))) and len(stored) < 40, answers

        reset = client.post("/__sandbox/reset")
        assert reset.status_code == 500 and reset.json()["statusCode"] == 500, reset.text
        assert client.get(customer_url()).json()["email"] == expected, "a failed reset was served"
        assert client.get(customer_url("65a1f0c2e4b0a1b2c3d4e501")).status_code == 404
    server.stop()

    server = tmpfs_namespace.start_server()  # on the still-full disk
    with httpx.Client(base_url=server.url, headers=MICHAEL, timeout=30) as client:
        assert client.get(customer_url()).json()["email"] == expected
        assert client.get(customer_url("65a1f0c2e4b0a1b2c3d4e501")).status_code == 404
        filler.unlink()
        journal = tmpfs_namespace.view / "data" / "customers" / f"{DUNDER}.journal"
        lines = [journal.read_bytes().count(b"\n")]
        for n in range(150):
            assert client.put(customer_url(), json={"email": f"after{n}@dundermifflin.com"}).status_code == 200
            lines.append(journal.read_bytes().count(b"\n"))
        assert min(lines) < 100 < lines[0], f"the pending compaction never happened ({lines[0]} -> {lines[-1]})"
        assert client.post("/__sandbox/reset").status_code == 200
        assert client.get(customer_url("65a1f0c2e4b0a1b2c3d4e501")).status_code == 200
