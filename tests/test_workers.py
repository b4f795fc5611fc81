"""Several workers, one state: ``serve --workers 2 --store postgresql://...`` as a user runs it
(a real server process, a real PostgreSQL server), hit concurrently over HTTP. (TinyDB refusing
``--workers`` is in ``test_cli_usage.py``.)"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
from conftest import DOCS_CUSTOMER, DUNDER, MICHAEL, ROOT, VALID_CREATE, LiveServer, customer_url, customers_url

from timbrix_sandbox.testing import wait_until_healthy

FIXTURE_CUSTOMERS = 14  # Dunder Mifflin's customers in the fixtures
FIELDS = {  # fields a PUT may set to any text: one per concurrent writer
    "legalName": "Dunder Mifflin {}",
    "email": "billing{}@dundermifflin.com",
    "addressStreet": "Calle {}",
    "addressNeighborhood": "Colonia {}",
    "addressCity": "Scranton {}",
    "addressMunicipality": "Municipio {}",
}
STORED = {"legalName": ("legalName",), "email": ("email",), "addressStreet": ("address", "street"),
          "addressNeighborhood": ("address", "neighborhood"), "addressCity": ("address", "city"),
          "addressMunicipality": ("address", "municipality")}  # fmt: skip


@pytest.fixture
def workers(live_server_factory, postgres_url) -> LiveServer:
    return live_server_factory(None, ["--workers", "2"], store=postgres_url)


def worker_pids(server: LiveServer, attempts: int = 60) -> set[int]:
    """The workers that answer, each request on a new connection (the kernel picks a worker)."""
    pids = set()
    for _ in range(attempts):
        with server.client() as client:
            pids.add(client.get("/__sandbox/health").json()["pid"])
        if len(pids) == 2:
            break
    return pids


def stored(customer: dict, field: str):
    value = customer
    for part in STORED[field]:
        value = value[part]
    return value


def test_two_workers_share_one_state_no_lost_update_no_id_collision(workers):
    health = workers.client().get("/__sandbox/health").json()
    assert (health["storage"], health["workers"], health["serverPid"]) == ("postgresql", 2, workers.process.pid)
    assert len(worker_pids(workers)) == 2, "both workers answer"
    per_writer = 15

    def write_field(field: str) -> None:
        """Concurrent partial updates of ONE record, each writer its own field: a lost update
        would leave some field at an older value than its writer's last acknowledged write."""
        with httpx.Client(base_url=workers.url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) as c:
            for n in range(per_writer):
                body = {field: FIELDS[field].format(n)}
                assert c.put(customer_url(), json=body, headers=MICHAEL).status_code == 200

    created: list[str] = []

    def create_many() -> None:
        with httpx.Client(base_url=workers.url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) as c:
            for _ in range(10):
                response = c.post(customers_url(), json=VALID_CREATE, headers=MICHAEL)
                assert response.status_code == 201
                created.append(response.json()["id"])

    threads = [threading.Thread(target=write_field, args=(f,)) for f in FIELDS]
    threads += [threading.Thread(target=create_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with workers.client() as client:
        customer = client.get(customer_url(), headers=MICHAEL).json()
        assert {f: stored(customer, f) for f in FIELDS} == {f: FIELDS[f].format(per_writer - 1) for f in FIELDS}
        assert len(created) == len(set(created)) == 40, "ids never collide across workers"
        listed = [c["id"] for c in client.get(customers_url(), headers=MICHAEL).json()]
        assert len(listed) == FIXTURE_CUSTOMERS + 40 and set(created) <= set(listed)
        assert client.post("/__sandbox/reset/" + DUNDER).status_code == 200
    for _ in range(10):  # every worker sees the reset (new connection each time)
        with workers.client() as client:
            after = client.get(customers_url(), headers=MICHAEL).json()
            assert len(after) == FIXTURE_CUSTOMERS
            assert stored(next(c for c in after if c["id"] == DOCS_CUSTOMER), "legalName") == "Dunder Mifflin"


def test_killing_a_worker_mid_load_loses_no_acknowledged_write(workers, postgres_url):
    """kill -9 of one worker while clients create and update: every write that was answered
    is there afterwards, the other worker kept serving, and the supervisor replaced the dead one
    (which did not seed again)."""
    victim = next(iter(worker_pids(workers)))
    stop = threading.Event()
    acknowledged: list[str] = []
    last_update: dict[str, int] = {}
    after_kill = {"served": 0, "failed": 0}
    killed = threading.Event()

    def load(writer: int) -> None:
        n = 0
        while not stop.is_set():
            with httpx.Client(base_url=workers.url, timeout=30) as c:
                try:
                    while not stop.is_set():
                        n += 1
                        if n % 2:
                            body = {**VALID_CREATE, "legalName": f"Load {writer}-{n}"}
                            response = c.post(customers_url(), json=body, headers=MICHAEL)
                            assert response.status_code == 201
                            acknowledged.append(response.json()["id"])
                        else:
                            field = list(FIELDS)[writer]
                            response = c.put(customer_url(), json={field: FIELDS[field].format(n)}, headers=MICHAEL)
                            assert response.status_code == 200
                            last_update[field] = n
                        if killed.is_set():
                            after_kill["served"] += 1
                except httpx.TransportError:  # the killed worker's connections: never answered
                    if killed.is_set():
                        after_kill["failed"] += 1

    threads = [threading.Thread(target=load, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    os.kill(victim, signal.SIGKILL)  # a worker of the server this test started
    killed.set()
    time.sleep(2.0)
    stop.set()
    for thread in threads:
        thread.join()
    assert after_kill["served"] > 20, f"the other worker did not keep serving: {after_kill}"
    assert len(acknowledged) > 20
    with workers.client() as client:
        listed = {c["id"]: c for c in client.get(customers_url(), headers=MICHAEL).json()}
        assert set(acknowledged) <= set(listed), "an acknowledged create is missing"
        customer = client.get(customer_url(), headers=MICHAEL).json()
        for field, n in last_update.items():
            # a write sent but never answered (the kill) may be newer than the last acknowledged one
            assert int(re.findall(r"\d+", stored(customer, field))[-1]) >= n
    deadline = time.monotonic() + 30
    while victim in (pids := worker_pids(workers)) or len(pids) < 2:
        assert time.monotonic() < deadline, f"the dead worker was not replaced: {pids}"
        time.sleep(0.2)
    with workers.client() as client:  # the replacement did not seed again over the data
        assert {c["id"] for c in client.get(customers_url(), headers=MICHAEL).json()} >= set(acknowledged)


def test_a_starting_server_waits_for_another_ones_seeding(postgres_url, postgres_server):
    """Seeding once across processes: while one process holds the startup lock (claiming and
    seeding), a starting ``serve`` waits for it instead of seeding too."""
    import psycopg

    from timbrix_sandbox.engine.stores import open_store

    holder = open_store(postgres_url)
    server = LiveServer(None, store=postgres_url)
    try:
        with holder.startup():
            server.process = subprocess.Popen(
                [sys.executable, "-m", "timbrix_sandbox", "serve", "--port", str(server.port), "--store", postgres_url],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            deadline = time.monotonic() + 30
            with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
                while not conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                                       ).fetchone()[0]:  # fmt: skip
                    assert server.process.poll() is None and time.monotonic() < deadline, "serve never waited"
                    time.sleep(0.05)
            with pytest.raises(httpx.TransportError):
                httpx.get(server.url + "/__sandbox/health", timeout=1)
        assert wait_until_healthy(server.url, server.process) == "ready"
        with server.client() as client:
            assert len(client.get(customers_url(), headers=MICHAEL).json()) == FIXTURE_CUSTOMERS
    finally:
        if server.process is not None:
            server.stop()
        holder.close()


def test_offline_reset_of_a_database_that_workers_serve(workers, postgres_url):
    with workers.client() as client:
        assert client.post(customers_url(), json=VALID_CREATE, headers=MICHAEL).status_code == 201
        assert len(client.get(customers_url(), headers=MICHAEL).json()) == FIXTURE_CUSTOMERS + 1
    done = subprocess.run(
        [sys.executable, "-m", "timbrix_sandbox", "reset", "--store", postgres_url, "--organization", DUNDER],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["organizations"] == [DUNDER]
    for _ in range(4):
        with workers.client() as client:
            assert len(client.get(customers_url(), headers=MICHAEL).json()) == FIXTURE_CUSTOMERS
