"""OpenAPI path templates as regular expressions (one conversion for every router here)."""

from __future__ import annotations

import dataclasses
import functools
import re
import typing as t


def template_pattern(template: str, *, named: bool = False) -> re.Pattern:
    """``/a/{id}`` -> a pattern for ``/a/<one segment>``; use it with ``fullmatch`` (``match``
    with ``$`` would also accept a trailing newline). ``named`` captures each parameter."""
    escaped = re.escape(template)
    segment = r"(?P<\1>[^/]+)" if named else "[^/]+"
    return re.compile(re.sub(r"\\\{([A-Za-z_][A-Za-z0-9_]*)\\\}", segment, escaped))


HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def specificity(template: str) -> tuple[bool, ...]:
    """Per segment, whether it is fixed text. OpenAPI: concrete paths match before templated
    ones; compared left to right, the larger tuple is the more specific path."""
    return tuple("{" not in segment for segment in template.split("/"))


def in_precedence_order(paths: dict[str, t.Any]) -> dict[str, t.Any]:
    """``paths`` reordered so that a path comes before every less specific one it collides
    with (stable: equally specific paths keep the contract's order). Routers that take the
    first match (Starlette's, the fast path's) then pick DigitalOcean's ``/v2/nfs/snapshots``,
    declared after ``/v2/nfs/{nfs_id}``, for ``GET /v2/nfs/snapshots``."""
    return {path: paths[path] for path in sorted(paths, key=lambda path: tuple(not s for s in specificity(path)))}


@dataclasses.dataclass(frozen=True)
class ShadowedMethods:
    """A path whose URLs a less specific template also fits, with methods only that template
    serves: a request with one of them on this path is a 405 (the path does not serve it),
    never the other template's operation (``PATCH /v2/dedicated-inferences/sizes`` is not
    ``PATCH /v2/dedicated-inferences/{dedicated_inference_id}``)."""

    template: str
    served: frozenset[str]
    """Upper-case methods the path (or an equally specific one fitting the same URLs) serves."""
    shadowed: frozenset[str]
    """Upper-case methods of the less specific colliding templates, not in ``served``."""


def shadowed_methods(paths: dict[str, t.Any]) -> list[ShadowedMethods]:
    """Every path with :class:`ShadowedMethods` (none in most contracts: only where a fixed
    segment and a parameter collide). Paths are compared only with paths of as many segments
    (no other can fit the same URL)."""
    by_length: dict[int, list[tuple[str, list[str], tuple[bool, ...], frozenset[str]]]] = {}
    for path, item in paths.items():
        if isinstance(item, dict):
            own = frozenset(m.upper() for m in item if m in HTTP_METHODS and isinstance(item[m], dict))
            segments = path.split("/")
            by_length.setdefault(len(segments), []).append((path, segments, specificity(path), own))
    found = []
    for group in by_length.values():
        for path, segments, rank, own in group:
            served, shadowed = set(own), set()
            for other, other_segments, other_rank, theirs in group:
                if other_rank > rank or other == path or not _collide(segments, other_segments):
                    continue
                (served if other_rank == rank else shadowed).update(theirs)
            if "GET" in served:
                served.add("HEAD")
            if shadowed - served:
                found.append(ShadowedMethods(path, frozenset(served), frozenset(shadowed - served)))
    return found


def _collide(first: list[str], second: list[str]) -> bool:
    """Whether some URL fits both templates (as many segments each): segment by segment, equal
    text or a parameter segment whose pattern takes the other's fixed text (two segments with
    parameters are taken to collide)."""
    for a, b in zip(first, second, strict=True):
        if a == b:
            continue
        a_param, b_param = "{" in a, "{" in b
        if a_param and b_param:
            continue
        if a_param and _segment_pattern(a).fullmatch(b):
            continue
        if b_param and _segment_pattern(b).fullmatch(a):
            continue
        return False
    return True


@functools.lru_cache(maxsize=4096)
def _segment_pattern(segment: str) -> re.Pattern:
    return template_pattern(segment)
