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

from .clock import new_request_id, utc_now
from .errors import error_body

MESSAGE = "Invalid HTTP request received"


class VendorErrorHttpToolsProtocol(HttpToolsProtocol):
    body = json.dumps(error_body(400, MESSAGE)).encode()

    def send_400_response(self, msg: str) -> None:
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(self.body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
            self.body,
        ]
        self.transport.write(b"".join(head))
        self.transport.close()


def protocol_for(app) -> type[VendorErrorHttpToolsProtocol]:
    """The protocol answering in the served contract's error format (BeeL's envelope, ...)."""
    sandbox = getattr(app, "sandbox", None)
    if sandbox is None or sandbox.profile is None:
        return VendorErrorHttpToolsProtocol
    body = sandbox.profile.errors.render(400, MESSAGE, now=utc_now(), request_id=new_request_id())
    return type("ContractErrorHttpToolsProtocol", (VendorErrorHttpToolsProtocol,), {"body": json.dumps(body).encode()})


def run(app, *, host: str, port: int, log_level: str) -> None:
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=log_level == "debug",
        loop="uvloop",
        http=protocol_for(app),
    )
