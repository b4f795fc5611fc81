"""Serving the app: uvicorn with uvloop + httptools, and malformed HTTP answered in the vendor
error format too.

A request that is not valid HTTP (a bad header byte, a non-numeric Content-Length) never reaches
the app: uvicorn's parser answers it with a ``text/plain`` 400 of its own. The protocol below
only changes that answer's format.
"""

from __future__ import annotations

import json

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .errors import error_body

_BODY = json.dumps(error_body(400, "Invalid HTTP request received")).encode()


class VendorErrorHttpToolsProtocol(HttpToolsProtocol):
    def send_400_response(self, msg: str) -> None:
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(_BODY)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
            _BODY,
        ]
        self.transport.write(b"".join(head))
        self.transport.close()


def run(app, *, host: str, port: int, log_level: str) -> None:
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=log_level == "debug",
        loop="uvloop",
        http=VendorErrorHttpToolsProtocol,
    )
