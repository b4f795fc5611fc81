"""Where a contract's paths are served: the path part of its first server URL.

A client generated from the contract (FacturAPI's SDK calls ``https://www.facturapi.io/v2``)
prefixes every path with its server URL, so the sandbox serves the paths under that URL's path
(``/v2``): pointing the client's host at the sandbox is all it takes. Stoplight Prism ignores
base paths by design (it always serves at ``/``); a contract without ``servers`` is served at
``/`` here too, which is also OpenAPI's default server (``url: /``).
"""

from __future__ import annotations

import re
import typing as t
from urllib.parse import urlsplit

_VARIABLE = re.compile(r"\{([^{}]+)\}")


def base_path(spec: t.Mapping[str, t.Any]) -> str:
    """``/v2`` for a first server ``https://api.example.com/v2/``; server variables take
    their defaults; a relative URL (``/v1``, ``v1``, ``./v1``) is the path itself; no servers,
    or a URL without a path: ``/``."""
    servers = spec.get("servers")
    if not isinstance(servers, list) or not servers or not isinstance(servers[0], dict):
        return "/"
    server = servers[0]
    variables = server.get("variables") or {}

    def default(match: re.Match[str]) -> str:
        variable = variables.get(match[1])
        return str(variable.get("default", "")) if isinstance(variable, dict) else ""

    url = _VARIABLE.sub(default, str(server.get("url") or "/"))
    split = urlsplit(url)
    path = split.path if (split.scheme or split.netloc) else url.split("?", 1)[0].split("#", 1)[0]
    return normalise(path)


def normalise(path: str) -> str:
    """One spelling of a base path: a leading slash, no trailing one, no ``.`` segments
    (``v2/`` -> ``/v2``, ``./`` -> ``/``)."""
    segments = [s for s in path.split("/") if s and s != "."]
    return "/" + "/".join(segments)


def mount_prefix(base: str) -> str:
    """What to prepend to a contract path (``/notes``) to route it: ``""`` for ``/``."""
    return "" if base == "/" else base
