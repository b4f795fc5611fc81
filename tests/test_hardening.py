"""Hardening, over real sockets: SIGKILL under concurrent load loses no acknowledged write and
no value a reader was shown, 32 concurrent writers never lose or mix records, and a corpus of
bad input gets a 4xx in the vendor format on every operation without changing anything.
Bounded in time and loopback only."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from conftest import DOCS_CUSTOMER, DUNDER, MICHAEL, VALID_CREATE, customer_url, customers_url

JSON = {**MICHAEL, "Content-Type": "application/json"}


def test_sigkill_under_concurrent_load_keeps_every_acknowledged_write(live_server_factory, tmp_path):
    data = tmp_path / "data"
    server = live_server_factory(data)
    stop = threading.Event()
    acked_creates: dict[str, dict] = {}
    acked_counter: dict[str, int] = {}
    sent_counter: dict[str, int] = {}
    seen_counter: dict[str, int] = {}
    """The highest update of each customer any reader was shown: it must survive the kill."""
    lock = threading.Lock()

    with server.client(headers=MICHAEL) as client:
        owned = [
            client.post(customers_url(), json={**VALID_CREATE, "legalName": f"Writer {w} 0"}).json()["id"]
            for w in range(6)
        ]

    def writer(w: int) -> None:
        with httpx.Client(base_url=server.url, headers=MICHAEL, timeout=5) as client:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    with lock:
                        sent_counter[owned[w]] = n
                    put = client.put(customer_url(owned[w]), json={"legalName": f"Writer {w} {n}"})
                    if put.status_code == 200:
                        with lock:
                            acked_counter[owned[w]] = n
                    created = client.post(customers_url(), json={**VALID_CREATE, "legalName": f"Created {w} {n}"})
                    if created.status_code == 201:
                        with lock:
                            acked_creates[created.json()["id"]] = created.json()
                except httpx.TransportError:
                    return

    def reader(r: int) -> None:
        with httpx.Client(base_url=server.url, headers=MICHAEL, timeout=5) as client:
            while not stop.is_set():
                try:
                    got = client.get(customer_url(owned[r % len(owned)]))
                except httpx.TransportError:
                    return
                if got.status_code == 200:
                    words = got.json()["legalName"].rsplit(" ", 1)
                    with lock:
                        seen_counter[got.json()["id"]] = max(int(words[1]), seen_counter.get(got.json()["id"], 0))

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
    threads += [threading.Thread(target=reader, args=(r,)) for r in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(2.0)
    server.kill9()  # mid-load
    stop.set()
    for thread in threads:
        thread.join(timeout=10)

    assert len(acked_creates) > 20 and len(acked_counter) == 6, "the load really ran"
    again = live_server_factory(data)
    with again.client(headers=MICHAEL) as client:
        stored = {c["id"]: c for c in client.get(customers_url()).json()}
    missing = [cid for cid in acked_creates if cid not in stored]
    assert not missing, f"{len(missing)} acknowledged creates lost"
    assert all(stored[cid] == body for cid, body in acked_creates.items())
    for cid, acked in acked_counter.items():
        counter = int(stored[cid]["legalName"].rsplit(" ", 1)[1])
        # the last acknowledged update is there, or a later one that was in flight at the kill
        assert acked <= counter <= sent_counter[cid], (cid, acked, counter, sent_counter[cid])
    assert len(seen_counter) >= 3, "the readers really ran"
    for cid, seen in seen_counter.items():
        counter = int(stored[cid]["legalName"].rsplit(" ", 1)[1])
        assert seen <= counter, f"a reader was shown update {seen} of {cid}, but only {counter} survived the kill"


def test_32_concurrent_writers_never_lose_or_mix_records(live_server_factory, tmp_path):
    data = tmp_path / "data"
    server = live_server_factory(data)
    with server.client(headers=MICHAEL) as client:
        private = [client.post(customers_url(), json=VALID_CREATE).json()["id"] for _ in range(16)]
    rounds = 15
    errors: list[str] = []

    def writer(w: int) -> None:
        with httpx.Client(base_url=server.url, headers=MICHAEL, timeout=30) as client:
            for n in range(rounds):
                mark = f"W{w}-{n}"
                # half the writers share the docs customer, half own one each
                target = DOCS_CUSTOMER if w % 2 == 0 else private[w // 2]
                body = {"addressCity": mark, "addressState": mark, "addressStreet": mark}
                response = client.put(customer_url(target), json=body)
                if response.status_code != 200:
                    errors.append(f"{response.status_code} {response.text[:100]}")

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for check in (server, None):
        if check is None:
            server.stop()
            check = live_server_factory(data)
        with check.client(headers=MICHAEL) as client:
            shared = client.get(customer_url(DOCS_CUSTOMER)).json()["address"]
            assert shared["city"] == shared["state"] == shared["street"], "fields of two writers mixed"
            for w in range(1, 32, 2):
                address = client.get(customer_url(private[w // 2])).json()["address"]
                assert address["city"] == address["state"] == f"W{w}-{rounds - 1}", "a private write was lost"
    for partition in (data / "customers").glob("*.json"):
        json.loads(partition.read_text())  # valid JSON on disk


# -- the bad-input corpus -----------------------------------------------------------------------
ITEM = customer_url()
COLLECTION = customers_url()
BODIES = {
    "malformed": b"{legalName: x}",
    "truncated": b'{"legalName": "Dunder',
    "deep nesting": b'{"legalName": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    "huge string": json.dumps({"legalName": "x" * 900_000}).encode(),
    "over the limit": json.dumps({"legalName": "x" * (1024 * 1024 + 1)}).encode(),
    "invalid utf-8": b'{"legalName": "\xc3\x28"}',
    "nul byte": b'{"legalName": "a\\u0000b"}',
    "raw nul": b'{"legalName": "a\x00b"}',
    "lone surrogate": b'{"legalName": "\\ud800"}',
    "wrong type": b'{"legalName": ["a"]}',
    "unknown field": b'{"legalName": "a", "isAdmin": true}',
    "number overflow": b'{"legalName": 1e999999}',
    "duplicate keys": b'{"legalName": "a", "legalName": ""}',
    "empty": b"",
    "array": b"[]",
}
CONTENT_TYPES = [
    "text/plain",
    "application/xml",
    "multipart/form-data; boundary=x",
    "application/x-www-form-urlencoded",
]
BAD_PATHS = [
    "/api/organizations/550e8400-e29b-41d4-a716-446655440000/customers/..%2F..%2F..%2Fetc%2Fpasswd",
    "/api/organizations/550e8400-e29b-41d4-a716-446655440000/customers/%2e%2e",
    "/api/organizations/550e8400-e29b-41d4-a716-446655440000/customers/590ce6c56d04f840aa8438af/extra",
    "/api/organizations/550e8400-e29b-41d4-a716-446655440000/customers/590ce6c56d04f840aa8438a%C3%B1",
    "/api/organizations/550e8400-e29b-41d4-a716-446655440000/customers/%00",
    "/api/organizations/550e8400-e29b-41d4-a716-446655440000/customers/%0Aabc",
    "/api/organizations/..%2F550e8400-e29b-41d4-a716-446655440000/customers",
    "/api/organizations/550e8400-e29b-41d4-a716-446655440000//customers",
    "/api/organizations/%F0%9F%92%A9/customers",
]
QUERIES = [
    "?tipoPersona=moral&tipoPersona=fisica",
    "?regimen=601&regimen=601",
    "?regimen=%00",
    "?regimen=" + "9" * 5000,
]


@pytest.fixture(scope="module")
def corpus_server(tmp_path_factory):
    from conftest import LiveServer

    server = LiveServer(tmp_path_factory.mktemp("corpus") / "data").start()
    yield server
    server.stop()


def _state(server) -> str:
    with server.client(headers=MICHAEL) as client:
        return json.dumps(
            [client.get(customers_url(org)).json() for org in (DUNDER,)] + [client.get(customer_url()).json()],
            sort_keys=True,
        )


def _assert_vendor_4xx(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, f"{response.status_code} {response.text[:200]}"
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"statusCode", "message", "error"} and body["statusCode"] == response.status_code


@pytest.mark.parametrize("kind", sorted(BODIES))
@pytest.mark.parametrize("method,path", [("POST", COLLECTION), ("PUT", ITEM)])
def test_bad_bodies(corpus_server, method, path, kind):
    before = _state(corpus_server)
    with corpus_server.client() as client:
        response = client.request(method, path, headers=JSON, content=BODIES[kind])
    _assert_vendor_4xx(response)
    assert _state(corpus_server) == before


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
@pytest.mark.parametrize("method,path", [("POST", COLLECTION), ("PUT", ITEM)])
def test_wrong_content_types(corpus_server, method, path, content_type):
    before = _state(corpus_server)
    with corpus_server.client() as client:
        body = json.dumps(VALID_CREATE).encode("latin-1", "replace")
        response = client.request(method, path, headers={**MICHAEL, "Content-Type": content_type}, content=body)
    _assert_vendor_4xx(response)
    assert _state(corpus_server) == before


@pytest.mark.parametrize("path", BAD_PATHS)
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "POST"])
def test_bad_paths(corpus_server, method, path):
    before = _state(corpus_server)
    with corpus_server.client() as client:
        response = client.request(
            method, httpx.URL(corpus_server.url + path), headers=JSON, content=b'{"legalName": "x"}'
        )
    _assert_vendor_4xx(response)
    assert _state(corpus_server) == before


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("path", ["/api/sat/usos-cfdi", "/api/sat/regimenes-fiscales", COLLECTION, ITEM])
def test_bad_queries(corpus_server, path, query):
    with corpus_server.client() as client:
        response = client.get(httpx.URL(corpus_server.url + path + query), headers=MICHAEL)
    _assert_vendor_4xx(response)


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer " + "x" * 10_000},
        {"Authorization": "Bearer sk_test_michael\x7f"},
        {"Authorization": "bearer"},
        {"Authorization": "Token sk_test_michael"},
    ],
)
def test_bad_headers(corpus_server, headers):
    with corpus_server.client() as client:
        response = client.get(COLLECTION, headers=headers)
    _assert_vendor_4xx(response)


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /api/sat/usos-cfdi HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET /api/sat/usos-cfdi HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00b\r\n\r\n",
        b"GET /api/sat/usos cfdi HTTP/1.1\r\nHost: x\r\n\r\n",
        b"NOT-HTTP\r\n\r\n",
    ],
)
def test_malformed_http_gets_the_vendor_format_too(corpus_server, raw):
    import socket

    with socket.create_connection(("127.0.0.1", corpus_server.port), timeout=10) as sock:
        sock.sendall(raw)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), reply[:200]
    assert b"content-type: application/json" in head.lower()
    assert json.loads(body) == {"statusCode": 400, "message": "Invalid HTTP request received", "error": "BAD_REQUEST"}
