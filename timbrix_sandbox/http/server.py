"""Serving the app: uvicorn with uvloop + httptools, hardened the way a production API in front
of it would be, with every protocol-level error answered in the served contract's format.

uvicorn alone leaves a public-facing server open to a few cheap attacks, all fixed here:

* **Unbounded request heads.** httptools accumulates a header value by ``bytes +=`` on every
  read, so a 64 MiB header costs quadratic time (10 s of parsing that stalls every other
  client for up to seconds at a time) and twice its size in memory. Heads are capped at :data:`MAX_HEAD_BYTES`
  and answered 431.
* **Stalled clients.** Nothing times out a connection that never finishes its headers or its
  body (slowloris): idle sockets pile up until accept() fails. :data:`HEADER_TIMEOUT` and
  :data:`BODY_TIMEOUT` close them; the open-file limit is raised so many idle sockets do not
  starve new clients in the meantime.
* **Unbounded drain.** On SIGTERM uvicorn waits for every connection forever; a half-sent
  upload held the process for good. The drain is bounded by :data:`GRACEFUL_SHUTDOWN_TIMEOUT`.
* **Malformed HTTP** (a bad header byte, a non-numeric Content-Length) never reaches the app:
  uvicorn's parser answers a ``text/plain`` 400; here it is a JSON 400 in the vendor format.

This subclasses uvicorn's ``HttpToolsProtocol`` and relies on its internals (``data_received``
feeding ``self.parser``, the ``on_*`` parser callbacks, ``self.cycle`` and ``self.flow``,
``Server.handle_exit``, the re-raise of the captured signal after shutdown, and a response
cycle's ``transport``, which :class:`_HeadWithBody` replaces): they are pinned
by ``uvicorn==0.54.0`` in constraints.txt; re-check this module when upgrading.
"""

from __future__ import annotations

import asyncio
import errno
import http
import json
import logging
import os
import resource
import signal
import socket
import threading
import typing as t

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from timbrix_sandbox.contract.model import ErrorFormat
from timbrix_sandbox.engine.clock import new_request_id, utc_now

logger = logging.getLogger("timbrix_sandbox")

MESSAGE = "Invalid HTTP request received"

MAX_HEAD_BYTES = 16 * 1024
"""Request line + headers, through the blank line. Node.js's default ``--max-http-header-size``:
NestJS-style production APIs (Timbrix's own stack) answer 431 above it, so a client that works
against the sandbox does not break against them, and nothing legitimate needs more."""

HEADER_TIMEOUT = 10.0
"""Seconds from connection open, or from a later request's first byte, until its headers are
complete; then the connection is closed, like nginx's ``client_header_timeout``. Not reset by
data: a client dribbling a byte at a time (slowloris) is closed too. Silence after a response
is the keep-alive timeout's (any byte cancels that one), so a head must be complete within
KEEP_ALIVE_TIMEOUT + HEADER_TIMEOUT of the previous response."""
BODY_TIMEOUT = 10.0
"""Seconds without a body byte while a body is expected, like nginx's ``client_body_timeout``.
A slow but steady upload is fine; a stalled one is closed."""
KEEP_ALIVE_TIMEOUT = 5
"""uvicorn's default: idle seconds between requests on a keep-alive connection."""
GRACEFUL_SHUTDOWN_TIMEOUT = 5
"""Seconds SIGTERM waits for in-flight requests before cancelling them (uvicorn's default is
forever, so one stalled upload kept the process alive)."""
DRAIN_MARGIN = 0.5
"""An upload still incomplete this long before the drain ends is cut off (see ``shutdown``)."""
LINGER_TIMEOUT = 2.0
"""After a 431, seconds to keep reading (and discarding) what the client still sends before
closing: closing a socket with unread data makes the kernel send a reset, which can destroy the
431 before the client reads it."""
BACKLOG = 2048
"""uvicorn's default listen backlog (the kernel caps it at ``net.core.somaxconn``)."""
OPEN_FILES = 65536
"""The soft ``RLIMIT_NOFILE`` wanted at startup (bounded by the hard limit): at the common
default of 1024, about a thousand idle sockets made accept() fail for everyone else."""

HEADER_TIMEOUT_ENV = "TIMBRIX_SANDBOX_HEADER_TIMEOUT"
BODY_TIMEOUT_ENV = "TIMBRIX_SANDBOX_BODY_TIMEOUT"

# Where a connection is in its current request. Counting head bytes only outside _BODY keeps the
# per-read cost at one addition and one comparison.
_IDLE, _HEAD, _BODY, _DISCARD = 0, 1, 2, 3


class VendorErrorHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head cap, header/body timeouts and vendor-format
    errors. Hot paths (every read, every request) add a counter and a phase flag, no timers:
    a timer is armed only for a head or body that did not arrive in one read."""

    errors: t.ClassVar[ErrorFormat] = ErrorFormat()
    max_head_bytes: t.ClassVar[int] = MAX_HEAD_BYTES
    header_timeout: t.ClassVar[float] = HEADER_TIMEOUT
    body_timeout: t.ClassVar[float] = BODY_TIMEOUT
    drain_timeout: t.ClassVar[float] = GRACEFUL_SHUTDOWN_TIMEOUT

    # Per-connection state, as class defaults so uvicorn's __init__ stays untouched.
    _phase: int = _IDLE
    _head_bytes: int = 0
    """Bytes read towards the current head (exact for the first request on a connection; a head
    that starts in the same read as the end of another request may exceed the cap by that one
    read, which is bounded by the transport's read size)."""
    _header_timer: asyncio.TimerHandle | None = None
    _body_timer: asyncio.TimerHandle | None = None
    _body_seen: float = 0.0
    _drain_timer: asyncio.TimerHandle | None = None

    # -- connection lifecycle ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._phase != _BODY:
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self._receive_over_cap(data)
                return
        HttpToolsProtocol.data_received(self, data)
        self._watch_progress()

    def _watch_progress(self) -> None:
        """After a read: a head or body still incomplete gets its timer (once)."""
        if self._phase == _HEAD:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(self.header_timeout, self._header_timed_out)
        elif self._phase == _BODY:
            self._body_seen = self.loop.time()
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(self.body_timeout, self._body_timed_out)

    def _receive_over_cap(self, data: bytes) -> None:
        """The read takes the current head past the cap: parse only the bytes that fit. If the
        head ends within them, go on with the rest (a body, or further pipelined requests);
        otherwise the head is too large, and nothing more is parsed or kept."""
        while True:
            if self._phase == _DISCARD:
                return
            room = self.max_head_bytes - (self._head_bytes - len(data))
            self._head_bytes = self.max_head_bytes  # on_headers_complete resets it if the head ends
            HttpToolsProtocol.data_received(self, data[:room])
            if self.transport.is_closing():  # a malformed head: already answered 400
                return
            if self._head_bytes == self.max_head_bytes:
                self._reject_head()
                return
            data = data[room:]
            if self._phase != _BODY:
                self._head_bytes += len(data)
                if self._head_bytes > self.max_head_bytes:
                    continue
            HttpToolsProtocol.data_received(self, data)
            self._watch_progress()
            return

    # -- parser callbacks (called by httptools from within data_received) ----------------------
    def on_message_begin(self) -> None:
        self._phase = _HEAD
        HttpToolsProtocol.on_message_begin(self)

    def on_headers_complete(self) -> None:
        self._phase = _BODY
        self._head_bytes = 0
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        # The request's way to drop its connection without an answer (the drop-connection
        # behaviour, http/behaviours.py): uvicorn gives an app no transport of its own.
        self.scope.setdefault("extensions", {})["timbrix.abort"] = self.transport.abort
        previous = self.cycle
        HttpToolsProtocol.on_headers_complete(self)
        if self.cycle is not previous and self.cycle is not None and self.scope["method"] != "HEAD":
            self.cycle.transport = _HeadWithBody(self.transport)  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        self._phase = _IDLE
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        HttpToolsProtocol.on_message_complete(self)

    def shutdown(self) -> None:
        """SIGTERM: uvicorn closes idle connections and lets in-flight requests finish within
        the drain. A request whose body is still arriving may complete it until just before the
        drain ends; then its connection is closed, so the app sees a disconnect (as on a body
        timeout) instead of having its task cancelled into a text/plain 500 and a traceback."""
        super().shutdown()
        if self._phase == _BODY and self.cycle is not None and not self.cycle.response_started:
            self._drain_timer = self.loop.call_later(max(self.drain_timeout - DRAIN_MARGIN, 0), self._drain_expired)

    def _drain_expired(self) -> None:
        self._drain_timer = None
        if self._phase == _BODY and self.cycle is not None and not self.cycle.response_started:
            self.transport.close()

    # -- limits --------------------------------------------------------------------------------
    def _reject_head(self) -> None:
        """431, then read and discard whatever else comes (bounded by LINGER_TIMEOUT)."""
        self._phase = _DISCARD
        self._cancel_timers()
        self.logger.warning("Request head over %d bytes: answered 431.", self.max_head_bytes)
        if self.cycle is not None and not self.cycle.response_complete:
            # An earlier pipelined request is still being answered: let it finish, then close.
            # Writing the 431 now would interleave two responses.
            self.cycle.keep_alive = False
            return
        self._send_error(431, f"Request line and headers are larger than {self.max_head_bytes // 1024} KiB")
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._header_timer = self.loop.call_later(LINGER_TIMEOUT, self.transport.close)

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if self._phase == _BODY or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # Still answering the previous request; the client may reasonably wait for it.
            self._header_timer = self.loop.call_later(self.header_timeout, self._header_timed_out)
            return
        self.logger.debug("Headers not complete after %s s: closing the connection.", self.header_timeout)
        self.transport.close()

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self._phase != _BODY or self.transport.is_closing():
            return
        now = self.loop.time()
        if self.flow.read_paused or (self.cycle is not None and self.cycle.waiting_for_100_continue):
            self._body_seen = now  # the server, not the client, is holding the body back
        idle = now - self._body_seen
        if idle < self.body_timeout:
            self._body_timer = self.loop.call_later(self.body_timeout - idle, self._body_timed_out)
            return
        self.logger.debug("No body bytes for %s s: closing the connection.", self.body_timeout)
        self.transport.close()

    def _cancel_timers(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        if self._drain_timer is not None:
            self._drain_timer.cancel()
            self._drain_timer = None

    # -- error responses -----------------------------------------------------------------------
    def send_400_response(self, msg: str) -> None:
        self._send_error(400, MESSAGE)
        self.transport.close()

    def _send_error(self, status: int, message: str) -> None:
        """A JSON error in the contract's format, rendered now (BeeL's envelope carries a
        timestamp and a request id), with ``connection: close``."""
        body = json.dumps(self.errors.render(status, message, now=utc_now(), request_id=new_request_id())).encode()
        head = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n".encode()]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]
        self.transport.write(b"".join(head))


class _HeadWithBody:
    """One response's transport, which sends the response head together with the body.

    uvicorn writes a response's head and then its body in two ``transport.write`` calls: two
    ``send`` system calls and, with ``TCP_NODELAY``, two segments the client wakes up for. A
    sandbox answer is small and whole, so here the head waits for the first body write and
    goes out with it in one: about 9% less server CPU per GET by id (``bench/profile.py get
    --cpu``, 2 x 2 rounds against the previous commit). Only the response's first write that
    is not a ``100 Continue`` is held, and a ``close`` sends it; a HEAD response, which has no
    body write, is not wrapped. ``tests/test_serving_runtime.py`` fails if uvicorn's writes
    change."""

    __slots__ = ("_transport", "_head", "_waiting")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head: bytes | None = None
        self._waiting = True
        """No write of this response yet, other than a ``100 Continue``."""

    def write(self, data: bytes) -> None:
        if self._head is not None:
            data, self._head = self._head + data, None
        elif self._waiting and not data.startswith(b"HTTP/1.1 100 "):
            self._waiting = False
            self._head = data
            return
        self._transport.write(data)

    def close(self) -> None:
        if self._head is not None:
            self._transport.write(self._head)
            self._head = None
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()


def protocol_for(
    app: t.Any,
    *,
    max_head_bytes: int = MAX_HEAD_BYTES,
    header_timeout: float = HEADER_TIMEOUT,
    body_timeout: float = BODY_TIMEOUT,
    drain_timeout: float = GRACEFUL_SHUTDOWN_TIMEOUT,
) -> type[VendorErrorHttpToolsProtocol]:
    """The protocol answering in the served contract's error format (BeeL's envelope, ...),
    with these limits (uvicorn takes a class, so they are class attributes)."""
    sandbox = getattr(app, "sandbox", None)
    errors = sandbox.profile.errors if sandbox is not None and sandbox.profile is not None else ErrorFormat()
    return type(
        "ContractErrorHttpToolsProtocol",
        (VendorErrorHttpToolsProtocol,),
        {
            "errors": errors,
            "max_head_bytes": max_head_bytes,
            "header_timeout": header_timeout,
            "body_timeout": body_timeout,
            "drain_timeout": drain_timeout,
        },
    )


def _seconds_from_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not seconds > 0 or seconds == float("inf"):
        raise SystemExit(f"timbrix-sandbox: {name} must be a positive number of seconds, not {raw!r}")
    return seconds


def raise_open_file_limit(wanted: int = OPEN_FILES) -> int:
    """Raise the soft ``RLIMIT_NOFILE`` towards ``wanted`` (never above the hard limit, never
    lowering it), so idle sockets cannot exhaust descriptors at ~1000; returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:  # e.g. macOS caps it below an unlimited hard limit
            logger.warning("could not raise the open-file limit from %d to %d: %s", soft, target, exc)
    return soft


class BindError(OSError):
    """The address cannot be listened on; the message says which and why."""


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (not yet listening), so that a taken port or an unknown
    host is reported before the server announces itself, and uvicorn serves on exactly it."""
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise BindError(f"cannot listen on {host}:{port}: the host is unknown ({exc.strerror})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        reason = "the port is in use by another process" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise BindError(f"cannot listen on {host}:{port}: {reason}") from None
    sock.set_inheritable(True)
    return sock


def run(
    app: t.Any,
    *,
    host: str,
    port: int,
    log_level: str,
    sock: socket.socket | None = None,
    header_timeout: float | None = None,
    body_timeout: float | None = None,
    keep_alive_timeout: int = KEEP_ALIVE_TIMEOUT,
    graceful_shutdown_timeout: int = GRACEFUL_SHUTDOWN_TIMEOUT,
) -> None:
    """Serve ``app`` until SIGTERM/SIGINT; a SIGTERM drains for at most
    ``graceful_shutdown_timeout`` seconds and then returns (exit status 0).

    ``header_timeout`` and ``body_timeout`` default to ``$TIMBRIX_SANDBOX_HEADER_TIMEOUT`` and
    ``$TIMBRIX_SANDBOX_BODY_TIMEOUT`` (seconds), else :data:`HEADER_TIMEOUT` and
    :data:`BODY_TIMEOUT`: the environment lets tests (and operators) shorten them without a CLI
    flag each.
    """
    if header_timeout is None:
        header_timeout = _seconds_from_env(HEADER_TIMEOUT_ENV, HEADER_TIMEOUT)
    if body_timeout is None:
        body_timeout = _seconds_from_env(BODY_TIMEOUT_ENV, BODY_TIMEOUT)
    raise_open_file_limit()
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=log_level == "debug",
        loop="uvloop",
        http=protocol_for(
            app, header_timeout=header_timeout, body_timeout=body_timeout, drain_timeout=graceful_shutdown_timeout
        ),
        backlog=BACKLOG,
        # Nothing here reads the client's address or the URL's scheme (routing, the Host
        # allowlist and errors read the path and headers), so uvicorn's X-Forwarded-* rewrite
        # is work for nothing on every request; and the ``server: uvicorn`` header names an
        # implementation detail the contract does not declare.
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=keep_alive_timeout,
        timeout_graceful_shutdown=graceful_shutdown_timeout,
    )
    server = uvicorn.Server(config)
    if threading.current_thread() is threading.main_thread():
        # uvicorn handles SIGTERM itself while serving, then restores the previous handler and
        # re-raises the signal; with the default handler that kills the process (status -15)
        # after a clean shutdown. With uvicorn's own handler in its place, the re-raise is a
        # no-op and a SIGTERM that arrives before serving starts still shuts down cleanly.
        signal.signal(signal.SIGTERM, server.handle_exit)
    try:
        server.run(sockets=[sock] if sock is not None else None)
    except KeyboardInterrupt:  # as uvicorn.run does
        pass
    if not server.started:
        raise SystemExit(STARTUP_FAILURE)  # as uvicorn.run does (e.g. the port is taken)
