"""How the served process runs: one socket write per response, and the collector's settings.

Both are speed work a client never sees, so what is checked is that they hold what they must:
every answer arrives whole (HEAD, ``100 Continue``, errors included), and an app served
inside someone else's process gives that process its collector settings back."""

from __future__ import annotations

import asyncio
import gc
import typing as t

import pytest
import uvicorn
from uvicorn.server import ServerState

from timbrix_sandbox.http.app import SERVING_GC_THRESHOLDS, create_app
from timbrix_sandbox.http.server import protocol_for
from timbrix_sandbox.profiles.sandboxes import make_sandbox

TOKEN = b"Authorization: Bearer sk_test_michael\r\n"
CUSTOMER = b"/api/organizations/550e8400-e29b-41d4-a716-446655440000/customers/590ce6c56d04f840aa8438af"


class RecordingTransport(asyncio.Transport):
    """What the protocol writes, write by write (no socket: the writes are the observable)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default=None):
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


def _connected(app) -> tuple[t.Any, RecordingTransport]:
    """The protocol ``serve`` uses for ``app``, connected to a recording transport."""
    config = uvicorn.Config(app, http=protocol_for(app), lifespan="off", log_level="warning")
    config.load()
    protocol = config.http_protocol_class(config=config, server_state=ServerState(), app_state={})
    transport = RecordingTransport()
    protocol.connection_made(transport)
    return protocol, transport


async def _until(done: t.Callable[[], bool], tries: int = 200) -> None:
    for _ in range(tries):
        await asyncio.sleep(0.01)
        if done():
            return


async def _exchange(app, request: bytes, responses: int = 1) -> list[bytes]:
    """Feed ``request`` (one or more pipelined requests) to the served protocol; its writes."""
    protocol, transport = _connected(app)
    protocol.data_received(request)
    await _until(lambda: sum(w.count(b"HTTP/1.1 ") for w in transport.writes) >= responses and not protocol.tasks)
    protocol.connection_lost(None)
    return transport.writes


def _whole(write: bytes) -> bytes:
    """The status line of a response that is all in ``write``: head, and as many body bytes
    as its Content-Length says."""
    head, separator, body = write.partition(b"\r\n\r\n")
    assert separator, write
    length = head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]
    assert len(body) == int(length) > 0, write
    return head.split(b"\r\n", 1)[0]


@pytest.fixture(scope="module")
def app():
    return create_app(make_sandbox())


def test_a_response_goes_out_in_one_write_head_and_body_together(app):
    request = b"GET " + CUSTOMER + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + TOKEN + b"\r\n"
    writes = asyncio.run(_exchange(app, request))
    assert len(writes) == 1, writes
    assert _whole(writes[0]) == b"HTTP/1.1 200 OK" and b'"legalName"' in writes[0]


def test_an_error_and_pipelined_requests_arrive_whole_each_in_one_write(app):
    one = b"GET " + CUSTOMER[:-24] + b"0" * 24 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + TOKEN + b"\r\n"
    two = b"GET /__sandbox/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    writes = asyncio.run(_exchange(app, one + two, responses=2))
    assert [_whole(w) for w in writes] == [b"HTTP/1.1 404 Not Found", b"HTTP/1.1 200 OK"]


def test_a_head_response_has_no_body_write_and_is_still_sent(app):
    request = b"HEAD /__sandbox/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    writes = asyncio.run(_exchange(app, request))
    assert b"".join(writes).startswith(b"HTTP/1.1 ")
    assert b"".join(writes).endswith(b"\r\n\r\n")


def test_100_continue_is_sent_at_once_and_the_answer_after_it(app):
    body = b'{"legalName": "Dunder Mifflin Paper Company"}'
    request = (
        b"PUT " + CUSTOMER + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + TOKEN
        + b"Content-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body)
    )

    async def exchange() -> list[bytes]:
        protocol, transport = _connected(app)
        protocol.data_received(request)
        await _until(lambda: bool(transport.writes), 100)  # the app asks for the body: "send it"
        assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
        protocol.data_received(body)
        await _until(lambda: len(transport.writes) > 1 and not protocol.tasks)
        protocol.connection_lost(None)
        return transport.writes

    writes = asyncio.run(exchange())
    assert len(writes) == 2 and _whole(writes[1]) == b"HTTP/1.1 200 OK"


def test_serving_raises_the_collector_thresholds_and_gives_them_back():
    before = gc.get_threshold()
    assert before != SERVING_GC_THRESHOLDS
    with create_app(make_sandbox()).test_client(base_url="http://127.0.0.1") as client:
        assert gc.get_threshold() == SERVING_GC_THRESHOLDS
        assert client.get("/__sandbox/health").status_code == 200
    assert gc.get_threshold() == before


def test_apps_serving_side_by_side_keep_the_thresholds_until_the_last_one_stops():
    before = gc.get_threshold()
    first = create_app(make_sandbox()).test_client(base_url="http://127.0.0.1")
    second = create_app(make_sandbox()).test_client(base_url="http://127.0.0.1")
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # not in the order they started
    assert gc.get_threshold() == SERVING_GC_THRESHOLDS
    assert second.get("/__sandbox/health").status_code == 200
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before
