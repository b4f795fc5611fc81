"""OpenAPI path templates as regular expressions (one conversion for every router here)."""

from __future__ import annotations

import re


def template_pattern(template: str, *, named: bool = False) -> re.Pattern:
    """``/a/{id}`` -> a pattern for ``/a/<one segment>``; use it with ``fullmatch`` (``match``
    with ``$`` would also accept a trailing newline). ``named`` captures each parameter."""
    escaped = re.escape(template)
    segment = r"(?P<\1>[^/]+)" if named else "[^/]+"
    return re.compile(re.sub(r"\\\{([A-Za-z_][A-Za-z0-9_]*)\\\}", segment, escaped))
