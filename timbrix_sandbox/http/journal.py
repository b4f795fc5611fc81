"""The request journal: what clients sent and what they got, for ``GET /__sandbox/requests``.

A bounded ring (newest first when read) of every request outside the control API and Swagger
UI's files - both pipelines and every refusal (401, 404, 413, 421, 422 ...), since the
middleware sits outside all of them. Credentials never enter it: ``Authorization``, cookies,
the control token and every API key the contract declares (header, query or cookie) are
replaced by ``[redacted]`` before an entry is stored.

It is on the hot path, so recording is cheap: the raw bytes (bodies cut at
:data:`BODY_LIMIT`) are kept as they are and only decoded when someone reads the journal.
``serve --journal-size 0`` turns it off.
"""

from __future__ import annotations

import collections
import dataclasses
import time
import typing as t
from urllib.parse import parse_qsl, urlencode

from connexion.exceptions import BadRequestProblem
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from timbrix_sandbox.http.oas31 import parse_json_body

DEFAULT_SIZE = 1000
BODY_LIMIT = 16 * 1024
"""Bytes of each body kept; longer ones are cut (``requestBodyTruncated``)."""
REDACTED = "[redacted]"
CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-sandbox-control-token"}
)


@dataclasses.dataclass(frozen=True)
class Credentials:
    """Where a request may carry a secret: headers, query parameters and cookies by name."""

    headers: frozenset[str] = CREDENTIAL_HEADERS
    query: frozenset[str] = frozenset()

    @classmethod
    def of(cls, contract: t.Mapping[str, t.Any]) -> Credentials:
        """Also every ``apiKey`` scheme the contract declares."""
        headers, query = set(CREDENTIAL_HEADERS), set()
        for scheme in contract.get("components", {}).get("securitySchemes", {}).values():
            if isinstance(scheme, dict) and scheme.get("type") == "apiKey":
                where, name = scheme.get("in"), str(scheme.get("name", "")).lower()
                (headers if where == "header" else query if where == "query" else set()).add(name)
        return cls(frozenset(headers), frozenset(query))


@dataclasses.dataclass(slots=True)
class Entry:
    """One request as recorded: the bytes that went through (immutable, so kept by reference),
    cut and decoded only when the journal is read. One object the collector tracks per entry
    (no lists): a thousand entries cost a full collection little."""

    id: int
    started: float
    method: str
    path: str
    query: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    began: float
    """``time.perf_counter()`` at arrival; ``ended`` when the last byte was sent."""
    ended: float | None = None
    request_body: bytes = b""
    status: int | None = None
    response_type: bytes = b""
    response_body: bytes = b""


def _appended(kept: bytes, chunk: bytes) -> bytes:
    """The body so far with ``chunk``: the chunk itself (no copy) for a one-chunk body under the
    limit; never more than one byte past :data:`BODY_LIMIT` (that byte tells it was cut: a
    1 MiB body must not sit in the journal)."""
    if not kept and len(chunk) <= BODY_LIMIT:
        return chunk
    room = BODY_LIMIT + 1 - len(kept)
    return kept + chunk[:room] if room > 0 else kept


def _kept(body: bytes) -> tuple[bytes, bool]:
    """The body cut at :data:`BODY_LIMIT`, and whether it was cut."""
    return body[:BODY_LIMIT], len(body) > BODY_LIMIT


class Journal:
    def __init__(self, size: int = DEFAULT_SIZE, credentials: Credentials | None = None) -> None:
        self.size = size
        self.entries: collections.deque[Entry] = collections.deque(maxlen=max(size, 1))
        self.credentials = credentials or Credentials()
        self._next = 1

    def __bool__(self) -> bool:
        return self.size > 0

    def start(self, scope: Scope) -> Entry:
        entry = Entry(self._next, time.time(), scope["method"], scope["path"], scope.get("query_string", b""),
                      tuple(scope["headers"]), time.perf_counter())
        self._next += 1
        self.entries.append(entry)
        return entry

    def clear(self) -> int:
        count = len(self.entries)
        self.entries.clear()
        return count

    def select(self, method: str | None = None, path: str | None = None, status: str | None = None,
               limit: int = 100) -> list[dict[str, t.Any]]:
        """Newest first. ``path`` is exact, or a prefix when it ends in ``*``; ``status`` is a
        code (``404``) or a class (``4xx``)."""
        out = []
        for entry in reversed(self.entries):
            if method and entry.method != method.upper():
                continue
            if path and not (entry.path.startswith(path[:-1]) if path.endswith("*") else entry.path == path):
                continue
            if status and not _status_matches(entry.status, status):
                continue
            out.append(self.describe(entry))
            if len(out) >= limit:
                break
        return out

    def describe(self, entry: Entry) -> dict[str, t.Any]:
        request_body, request_cut = _kept(entry.request_body)
        response_body, response_cut = _kept(entry.response_body)
        response = _decoded(response_body, entry.response_type)
        return {
            "id": entry.id,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(entry.started))
            + f".{int(entry.started % 1 * 1000):03d}Z",
            "method": entry.method,
            "path": entry.path,
            "query": self._query(entry.query),
            "status": entry.status,
            "durationMs": None if entry.ended is None else round((entry.ended - entry.began) * 1000, 3),
            "requestHeaders": self._headers(entry.headers),
            "requestBody": _decoded(request_body, _header(entry.headers, b"content-type")),
            "requestBodyTruncated": request_cut,
            "responseBody": response,
            "responseBodyTruncated": response_cut,
            "validationErrors": _validation_errors(entry.status, response),
        }

    def _headers(self, headers: t.Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
        out: dict[str, str] = {}
        for raw_name, raw_value in headers:
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            if name in self.credentials.headers:
                scheme, _, rest = value.partition(" ")
                value = f"{scheme} {REDACTED}" if rest and name.endswith("authorization") else REDACTED
            out[name] = f"{out[name]}, {value}" if name in out else value
        return out

    def _query(self, query: bytes) -> str:
        if not query or not self.credentials.query:
            return query.decode("latin-1")
        pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
        return urlencode([(k, REDACTED if k.lower() in self.credentials.query else v) for k, v in pairs])


def _status_matches(status: int | None, wanted: str) -> bool:
    if status is None:
        return wanted.lower() == "dropped"
    text = str(status)
    wanted = wanted.lower()
    return text == wanted or (wanted.endswith("xx") and text[0] == wanted[0])


def _header(headers: t.Iterable[tuple[bytes, bytes]], name: bytes) -> bytes:
    return next((v for k, v in headers if k == name), b"")


def _decoded(body: bytes, content_type: bytes) -> t.Any:
    """A body as JSON where it is JSON the sandbox would accept, else as text. The journal holds
    the bodies the API refused too: read with ``json.loads``, a lone surrogate escape or 5,000
    levels of nesting (each answered 400) made every later read of the journal a 500 - the
    first cannot be written back as UTF-8, the second exhausted the recursion limit."""
    if not body:
        return None
    if b"json" in content_type:
        try:
            return parse_json_body(body)
        except BadRequestProblem:
            pass
    return body.decode("utf-8", "replace")


def _validation_errors(status: int | None, response: t.Any) -> list[t.Any]:
    """What a 400/422 said was wrong (the error body's message and details, whatever the format)."""
    if status not in (400, 422) or not isinstance(response, dict):
        return []
    found = [response[k] for k in ("message", "detail", "details", "errors", "title") if response.get(k)]
    error = response.get("error")
    if isinstance(error, dict):
        found += [error[k] for k in ("message", "details") if error.get(k)]
    return found


class JournalMiddleware:
    """Records every request outside ``skip`` prefixes; outermost, so refusals are in it too."""

    def __init__(self, app: ASGIApp, journal: Journal, skip: tuple[str, ...]) -> None:
        self.app = app
        self.journal = journal
        self.skip = skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.skip):
            await self.app(scope, receive, send)
            return
        entry = self.journal.start(scope)

        async def recording_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                entry.request_body = _appended(entry.request_body, message.get("body", b""))
            return message

        async def recording_send(message: Message) -> None:
            if "status" in message:  # http.response.start
                entry.status = message["status"]
                for name, value in message.get("headers", ()):
                    if name == b"content-type":
                        entry.response_type = value
                        break
            else:
                entry.response_body = _appended(entry.response_body, message.get("body", b""))
                if not message.get("more_body"):
                    entry.ended = time.perf_counter()
            await send(message)

        try:
            await self.app(scope, recording_receive, recording_send)
        finally:
            if entry.ended is None:
                entry.ended = time.perf_counter()
