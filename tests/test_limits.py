"""Limits every public-facing HTTP server needs, over real sockets: request heads capped at
16 KiB (431 in the contract's error format), header and body timeouts for stalled clients,
enough file descriptors for many idle connections, and a bounded drain on SIGTERM.

Each test is bounded in time (socket timeouts, bounded loops); none asserts a tight wall clock.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import signal
import socket
import subprocess
import threading
import time
import typing as t
from pathlib import Path

import httpx
import pytest
from conftest import DOCS_CUSTOMER, MICHAEL, LiveServer, customer_url, customers_url

HEAD_CAP = 16 * 1024
HEALTH = "/__sandbox/health"
MIB = 1024 * 1024


# -- helpers ------------------------------------------------------------------------------------
@pytest.fixture
def short_timeouts(monkeypatch) -> None:
    """Servers started from here on close stalled clients after 1 s (LiveServer's Popen inherits
    the environment)."""
    monkeypatch.setenv("TIMBRIX_SANDBOX_HEADER_TIMEOUT", "1")
    monkeypatch.setenv("TIMBRIX_SANDBOX_BODY_TIMEOUT", "1")


@contextlib.contextmanager
def child_open_files(soft: int) -> t.Iterator[None]:
    """Children spawned inside get ``soft`` as RLIMIT_NOFILE (the usual distribution default is
    1024); ours is restored afterwards."""
    old_soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (old_soft, hard))


def connect(server: LiveServer, timeout: float = 10) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=timeout)


def read_until_closed(sock: socket.socket, limit: int = MIB) -> bytes:
    """Everything the server sends until it closes (a reset after the reply counts as a close)."""
    reply = b""
    with contextlib.suppress(ConnectionResetError):
        while len(reply) < limit and (chunk := sock.recv(65536)):
            reply += chunk
    return reply


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response (Content-Length framed) from a keep-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, headers = parse_head(head)
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, "closed mid-body"
        body += chunk
    return status, headers, body


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers


def parse_reply(reply: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), reply[:300]
    status, headers = parse_head(head)
    return status, headers, body


def head_of(server: LiveServer, size: int, path: str = HEALTH) -> bytes:
    """A GET whose request line + headers (through the blank line) are exactly ``size`` bytes."""
    prefix = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nConnection: close\r\nX-Pad: ".encode()
    suffix = b"\r\n\r\n"
    pad = size - len(prefix) - len(suffix)
    assert pad > 0
    return prefix + b"a" * pad + suffix


def exchange(server: LiveServer, payload: bytes) -> bytes:
    with connect(server) as sock:
        sock.sendall(payload)
        return read_until_closed(sock)


def closed_by_server(sock: socket.socket, within: float) -> float | None:
    """Seconds until the server closed ``sock`` (EOF or reset), or None if it is still open."""
    start = time.monotonic()
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - start


# -- 1. request heads over 16 KiB ---------------------------------------------------------------
def test_a_head_over_16_kib_is_431_in_timbrix_format(live_server_factory):
    server = live_server_factory(data_dir=None)
    status, headers, body = parse_reply(exchange(server, head_of(server, 32 * 1024)))
    assert status == 431
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    assert json.loads(body) == {
        "statusCode": 431,
        "message": "Request line and headers are larger than 16 KiB",
        "error": "REQUEST_HEADER_FIELDS_TOO_LARGE",
    }


def test_the_cap_is_on_the_whole_head_and_exact(live_server_factory):
    server = live_server_factory(data_dir=None)
    assert parse_reply(exchange(server, head_of(server, HEAD_CAP)))[0] == 200
    assert parse_reply(exchange(server, head_of(server, HEAD_CAP + 1)))[0] == 431
    # Many small headers add up; so does a long URL.
    many = b"GET /__sandbox/health HTTP/1.1\r\nHost: x\r\n" + b"X-Small: 0123456789abcdef\r\n" * 800 + b"\r\n"
    assert parse_reply(exchange(server, many))[0] == 431
    long_url = f"GET /__sandbox/health?q={'a' * 20_000} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    assert parse_reply(exchange(server, long_url))[0] == 431


def test_the_cap_is_per_request_not_per_connection(live_server_factory):
    server = live_server_factory(data_dir=None)
    with server.client() as client:  # one keep-alive connection, ~60 KiB of heads in all
        for _ in range(40):
            assert client.get(HEALTH, headers={"X-Pad": "a" * 1500}).status_code == 200
    # Pipelined in one write too: 30 heads of ~1 KiB arrive together.
    one = f"GET {HEALTH} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nX-Pad: {'a' * 1000}\r\n\r\n".encode()
    with connect(server) as sock:
        sock.sendall(one * 29 + one.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        assert read_until_closed(sock, limit=10 * MIB).count(b"HTTP/1.1 200 OK") == 30


def test_a_body_is_not_counted_as_head(live_server_factory):
    server = live_server_factory(data_dir=None)
    body = json.dumps({"legalName": "x" * 40_000}).encode()
    head = (
        f"POST {customers_url()} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAuthorization: {MICHAEL['Authorization']}"
        f"\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    status, _, reply = parse_reply(exchange(server, head + body))
    assert status == 400, reply  # validation (legalName too long), not 431


def test_a_head_over_16_kib_is_431_in_beel_format(live_server_factory):
    server = live_server_factory(data_dir=None, extra=["--contract", "beel"])
    status, headers, body = parse_reply(exchange(server, head_of(server, 64 * 1024)))
    assert status == 431
    assert headers["content-type"] == "application/json"
    payload = json.loads(body)
    assert set(payload) == {"success", "error", "meta"} and payload["success"] is False
    assert payload["error"]["code"] == "REQUEST_HEADER_FIELDS_TOO_LARGE"
    assert payload["error"]["message"]
    assert payload["meta"]["timestamp"].endswith("Z") and len(payload["meta"]["request_id"]) == 32


def peak_rss(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


def test_a_64_mib_header_neither_blocks_other_clients_nor_is_buffered(live_server_factory):
    server = live_server_factory(data_dir=None)
    peak_before = peak_rss(server.process.pid)
    progress = {"sent": 0, "done": None, "reply": b"", "error": None}

    def huge_sender() -> None:
        try:
            with connect(server, timeout=60) as sock:
                sock.sendall(f"GET {HEALTH} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nX-Huge: ".encode())
                chunk = b"a" * MIB
                for _ in range(64):
                    sock.sendall(chunk)
                    progress["sent"] += len(chunk)
                sock.sendall(b"\r\n\r\n")
                progress["reply"] = read_until_closed(sock)
        except OSError as exc:  # the server may reset the connection once it has answered 431
            progress["error"] = exc
        finally:
            progress["done"] = time.monotonic()

    sender = threading.Thread(target=huge_sender, daemon=True)
    latencies: list[float] = []
    statuses = set()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert client.get(HEALTH).status_code == 200  # connected before the flood starts
        sender.start()
        deadline = time.monotonic() + 10
        while progress["sent"] < MIB and progress["done"] is None and time.monotonic() < deadline:
            time.sleep(0.001)
        deadline = time.monotonic() + 120
        while (progress["done"] is None or not latencies) and time.monotonic() < deadline:
            started = time.monotonic()
            statuses.add(client.get(HEALTH).status_code)
            latencies.append(time.monotonic() - started)
            time.sleep(0.02)
    sender.join(timeout=60)
    assert progress["done"] is not None
    print(f"huge sender: sent {progress['sent'] // MIB} MiB, {progress['error']!r}, reply {progress['reply'][:12]!r}")
    worst = max(latencies, default=0.0)
    peak_after = peak_rss(server.process.pid)
    grown = (peak_after - peak_before) / MIB if peak_before is not None and peak_after is not None else None
    print(f"{len(latencies)} health checks during a 64 MiB header: worst {worst:.3f} s, peak RSS +{grown or 0:.0f} MiB")
    if grown is not None:
        assert grown < 32, f"the server's peak RSS grew by {grown:.0f} MiB: the header was buffered"
    if progress["reply"]:
        assert progress["reply"].startswith(b"HTTP/1.1 431 "), progress["reply"][:200]
    assert statuses <= {200}
    assert worst < 2.0, f"a health check took {worst:.1f} s behind a 64 MiB header"


# -- 2. idle and stalled connections ------------------------------------------------------------
def test_many_idle_connections_do_not_starve_new_clients(live_server_factory):
    wanted = 1100
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted + 200:
        pytest.skip(f"the hard RLIMIT_NOFILE ({hard}) is too low to open {wanted} sockets")
    if soft != resource.RLIM_INFINITY and soft < wanted + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096) if hard != resource.RLIM_INFINITY else 4096, hard))
    with child_open_files(1024):  # the server starts with the common default soft limit
        server = live_server_factory(data_dir=None)
    idle: list[socket.socket] = []
    try:
        for _ in range(wanted):
            idle.append(connect(server, timeout=5))
        started = time.monotonic()
        health = httpx.get(server.url + HEALTH, timeout=5)
        print(f"health check with {wanted} idle connections: {time.monotonic() - started:.3f} s")
        assert health.status_code == 200
    finally:
        for sock in idle:
            sock.close()


def test_a_silent_connection_is_closed_after_the_header_timeout(short_timeouts, live_server_factory):
    server = live_server_factory(data_dir=None)
    with connect(server) as sock:
        after = closed_by_server(sock, within=10)
    assert after is not None, "a connection that sent nothing was still open after 10 s"
    assert 0.5 < after < 5, after


def test_half_sent_headers_are_closed_after_the_header_timeout(short_timeouts, live_server_factory):
    server = live_server_factory(data_dir=None)
    with connect(server) as sock:
        sock.sendall(f"GET {HEALTH} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n".encode())
        after = closed_by_server(sock, within=10)
    assert after is not None and after < 5, after


def test_headers_dribbled_byte_by_byte_are_closed_after_the_header_timeout(short_timeouts, live_server_factory):
    """Slowloris: every byte resets an idle timer, so the timeout runs until the head is complete."""
    server = live_server_factory(data_dir=None)
    head = f"GET {HEALTH} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nX-Slow: {'a' * 100}\r\n\r\n".encode()
    with connect(server) as sock:
        start = time.monotonic()
        closed_at = None
        for byte in head[:40]:  # 40 bytes, 0.15 s apart: 6 s if never closed
            readable, _, _ = select.select([sock], [], [], 0.15)
            if readable:
                with contextlib.suppress(ConnectionResetError):
                    assert sock.recv(65536) == b""
                closed_at = time.monotonic() - start
                break
            try:
                sock.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed_at = time.monotonic() - start
                break
    assert closed_at is not None and closed_at < 4, closed_at


def test_after_a_response_half_sent_headers_are_closed_too(short_timeouts, live_server_factory):
    server = live_server_factory(data_dir=None)
    with connect(server) as sock:
        sock.sendall(f"GET {HEALTH} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
        assert read_response(sock)[0] == 200
        sock.sendall(f"GET {HEALTH} HTTP/1.1\r\nHost: 127.0".encode())  # any byte cancels keep-alive
        after = closed_by_server(sock, within=10)
    assert after is not None and after < 5, after


def post_head(server: LiveServer, length: int) -> bytes:
    return (
        f"POST {customers_url()} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAuthorization: {MICHAEL['Authorization']}"
        f"\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def test_a_half_sent_body_is_closed_after_the_body_timeout(short_timeouts, live_server_factory):
    server = live_server_factory(data_dir=None)
    with connect(server) as sock:
        sock.sendall(post_head(server, 1000) + b'{"legalName": "' + b"a" * 485)
        after = closed_by_server(sock, within=10)
    assert after is not None and after < 5, after


def test_a_slow_but_steady_body_is_not_cut_off(short_timeouts, live_server_factory):
    """The body timeout is for silence, not for the whole body: 0.3 s gaps over 3 s are fine."""
    server = live_server_factory(data_dir=None)
    body = json.dumps({"legalName": "Slow Body"}).encode()
    with connect(server) as sock:
        sock.sendall(post_head(server, len(body)))
        pieces = [body[i : i + 3] for i in range(0, len(body), 3)][:10]
        rest = body[sum(len(p) for p in pieces) :]
        for piece in pieces:
            time.sleep(0.3)
            sock.sendall(piece)
        sock.sendall(rest)
        status, _, reply = read_response(sock)
    assert status == 400, reply  # an incomplete customer: answered, not cut off
    assert json.loads(reply)["statusCode"] == 400


# -- 3. SIGTERM with a stalled upload -----------------------------------------------------------
def test_sigterm_with_a_half_sent_body_exits_promptly_and_cleanly(tmp_path, live_server_factory):
    data_dir = tmp_path / "data"
    server = live_server_factory(data_dir=data_dir)
    with connect(server) as sock:
        sock.sendall(post_head(server, 1000) + b'{"legalName": "' + b"a" * 485)
        time.sleep(0.5)  # the request is in the app, waiting for the rest of the body
        started = time.monotonic()
        os.kill(server.process.pid, signal.SIGTERM)
        try:
            code = server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail("the server was still draining 15 s after SIGTERM")
        print(f"exit after SIGTERM with a half-sent body: {time.monotonic() - started:.2f} s")
    output = server.process.stdout.read()
    assert code == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]  # the upload was cut off, not its task cancelled
    restarted = live_server_factory(data_dir=data_dir)
    with restarted.client() as client:
        response = client.get(customer_url(DOCS_CUSTOMER), headers=MICHAEL)
    assert response.status_code == 200, response.text


def test_sigterm_still_lets_an_upload_in_progress_finish(live_server_factory):
    server = live_server_factory(data_dir=None)
    body = json.dumps({"legalName": "Almost There"}).encode()
    with connect(server) as sock:
        sock.sendall(post_head(server, len(body)) + body[:10])
        time.sleep(0.3)
        os.kill(server.process.pid, signal.SIGTERM)
        time.sleep(0.5)
        sock.sendall(body[10:])
        status, headers, reply = read_response(sock)
    assert status == 400 and json.loads(reply)["statusCode"] == 400  # answered (an incomplete customer)
    assert headers["connection"] == "close"
    assert server.process.wait(timeout=15) == 0


def test_sigterm_on_an_idle_server_exits_0(live_server_factory):
    server = live_server_factory(data_dir=None)
    os.kill(server.process.pid, signal.SIGTERM)
    assert server.process.wait(timeout=15) == 0
