"""Work done once per object: the one cache of the contract model and its readers.

A loaded contract's schemas and templates live as long as the process and are never changed,
so what is derived from one (a projector, a flattened shape, a compiled validator, a filler)
is worked out when the object is first seen and looked up by identity after that: dict
equality would walk the schema on every lookup, and schemas are not hashable. Each entry keeps
its key objects alive, so an id can never be reused by another object while it is cached, and
a cache is emptied when it reaches its limit (something handing it new objects forever cannot
grow it without bound). Never mutate a key object, nor a cached value, after the first use.

``functools.lru_cache`` is no help here: it hashes its arguments, and dicts do not hash.
"""

from __future__ import annotations

import functools
import inspect
import typing as t

V = t.TypeVar("V")
F = t.TypeVar("F", bound=t.Callable[..., t.Any])

DEFAULT_LIMIT = 50_000


def by_identity(limit: int | None = None) -> t.Callable[[F], F]:
    """Decorate a function of one or two objects: its result is computed once per object (or
    pair of objects, by identity) and returned from the cache after that. ``limit``: entries
    before it is emptied (``None``: :data:`DEFAULT_LIMIT`, read when an entry is added)."""

    def full(entries: dict) -> bool:
        return len(entries) >= (DEFAULT_LIMIT if limit is None else limit)

    def decorate(make: F) -> F:
        arity = len(inspect.signature(make).parameters)
        if arity == 1:
            single: dict[int, tuple[t.Any, t.Any]] = {}

            @functools.wraps(make)
            def one(key: t.Any) -> t.Any:
                entry = single.get(id(key))
                if entry is not None and entry[0] is key:
                    return entry[1]
                value = make(key)
                if full(single):
                    single.clear()
                single[id(key)] = (key, value)
                return value

            return t.cast(F, one)
        if arity == 2:
            pairs: dict[tuple[int, int], tuple[t.Any, t.Any, t.Any]] = {}

            @functools.wraps(make)
            def two(first: t.Any, second: t.Any) -> t.Any:
                entry = pairs.get((id(first), id(second)))
                if entry is not None and entry[0] is first and entry[1] is second:
                    return entry[2]
                value = make(first, second)
                if full(pairs):
                    pairs.clear()
                pairs[(id(first), id(second))] = (first, second, value)
                return value

            return t.cast(F, two)
        raise TypeError(f"{make.__qualname__}: by_identity caches functions of one or two objects")

    return decorate
