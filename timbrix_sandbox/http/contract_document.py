"""The contract at its URL as it was written: ``/api/openapi.json`` and ``/api/openapi.yaml``.

Connexion serves its own working copy there, with every ``$ref`` inlined
(spec-first/connexion#2127): client generators then see anonymous copies of each schema
instead of ``Customer`` and ``Error`` (openapi-python-client made 38 warnings, no error
models and empty ``legalName`` models of it). This answers those two URLs, in front of
Connexion, with the authored document: ``$ref``s, ``components`` and extensions as written.
One thing changes, because it must: ``servers`` names where this sandbox serves the API
(its base path), not where the document's author ran theirs. The YAML keeps the file's text
(comments included) outside the ``servers`` block. Swagger UI (``/api/ui``) reads the same
URL and resolves the ``$ref``s itself.
"""

from __future__ import annotations

import json
import re
import typing as t
from pathlib import Path

import yaml
from starlette.types import ASGIApp, Receive, Scope, Send

from timbrix_sandbox.contract.loading import load_contract

TOP_LEVEL_SERVERS = re.compile(r"^servers:[^\n]*\n(?:(?:[ \t]+[^\n]*|[ \t]*#[^\n]*|[ \t]*)\n)*", re.M)
"""A top-level ``servers:`` block: the key's line and every indented, comment or blank line after it."""


def _external_refs(node: t.Any) -> bool:
    """Whether any ``$ref`` points outside the document (another file or URL)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            return True
        return any(_external_refs(value) for value in node.values())
    if isinstance(node, list):
        return any(_external_refs(value) for value in node)
    return False


def served_documents(contract: Path, base_path: str) -> dict[str, tuple[bytes, bytes]]:
    """``name -> (content type, body)`` for ``openapi.json`` and ``openapi.yaml``; empty for a
    contract with ``$ref``s to other files, which a client could not follow from this URL
    (Connexion's resolved copy is served for it, as before)."""
    document = load_contract(contract)
    if _external_refs(document):
        return {}
    servers = [{"url": base_path or "/", "description": "this sandbox"}]
    document["servers"] = servers
    as_json = json.dumps(document, ensure_ascii=False, indent=2, default=str).encode()
    text = contract.read_text(encoding="utf-8")
    servers_yaml = yaml.safe_dump({"servers": servers}, sort_keys=False, allow_unicode=True)
    if contract.suffix in (".yaml", ".yml") and len(TOP_LEVEL_SERVERS.findall(text)) == 1:
        as_yaml = TOP_LEVEL_SERVERS.sub(lambda _match: servers_yaml, text, count=1)
    else:
        as_yaml = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    return {
        "openapi.json": (b"application/json", as_json),
        "openapi.yaml": (b"application/yaml", as_yaml.encode()),
    }


class AuthoredContractMiddleware:
    """Answers ``GET``/``HEAD`` of ``{base}/openapi.json`` and ``{base}/openapi.yaml``."""

    def __init__(self, app: ASGIApp, contract: Path, base_path: str) -> None:
        self.app = app
        self.documents = {f"{base_path}/{name}": doc for name, doc in served_documents(contract, base_path).items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        document = self.documents.get(scope.get("path", "")) if scope["type"] == "http" else None
        if document is None or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        content_type, body = document
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
