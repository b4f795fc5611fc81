"""operationId -> handler for Connexion, from a function (no naming convention, no dotted
strings): the handlers are the engine's operations, bound to their sandbox (``operations.py``)."""

from __future__ import annotations

import typing as t

from connexion.resolver import Resolution, Resolver


class FunctionResolver(Resolver):
    """Resolves through a function ``operationId -> handler``."""

    def __init__(self, resolve: t.Callable[[str], t.Callable]) -> None:
        super().__init__()
        self._resolve = resolve

    def resolve(self, operation) -> Resolution:
        # An operation without an operationId is named as the contract model names it.
        operation_id = self.resolve_operation_id(operation) or f"{operation.method}_{operation.path}"
        return Resolution(self._resolve(operation_id), operation_id)
