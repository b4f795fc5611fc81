"""Where a fixed path and a template collide, the fixed path is the one requested (OpenAPI:
concrete paths match before templated ones) - for every method.

Starlette routes one ``(path, method)`` at a time and takes any full match over a partial
one, so ``PATCH /v2/dedicated-inferences/sizes`` (a path serving only GET) would be answered
by ``PATCH /v2/dedicated-inferences/{dedicated_inference_id}``, and so would the fast path.
The contract's paths are handed to both routers in precedence order
(``contract.paths.in_precedence_order``); a method only a less specific template serves is
refused here, before either router, as a 405 that ``errors.py`` renders (with ``Allow``)."""

from __future__ import annotations

import re

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from timbrix_sandbox.contract.paths import ShadowedMethods, template_pattern


class ShadowedMethodMiddleware:
    """405 for a method the requested path does not serve but a colliding less specific
    template does (installed only for contracts with such paths: ``shadowed_methods``)."""

    def __init__(self, app: ASGIApp, base_path: str, shadowed: list[ShadowedMethods]) -> None:
        self.app = app
        self.routes: list[tuple[re.Pattern, ShadowedMethods]] = [
            (template_pattern(base_path + entry.template), entry) for entry in shadowed
        ]
        self.methods = frozenset().union(*(entry.shadowed for entry in shadowed))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in self.methods:
            path = scope["path"]
            for pattern, entry in self.routes:
                if scope["method"] in entry.shadowed and pattern.fullmatch(path):
                    raise HTTPException(status_code=405)
        await self.app(scope, receive, send)
