"""operationId -> handler function, by naming convention.

The contract keeps the vendor's NestJS-style operationIds (``CustomersController_update``):
clients and code generators already use them. ``<Name>Controller_<action>`` resolves to
``handlers.<name>.<action>`` in snake_case, e.g. ``CustomersController_findAll`` ->
``handlers.customers.find_all``, so the contract needs no ``x-openapi-router-controller``.
"""

from __future__ import annotations

import importlib
import re
import typing as t

from connexion.resolver import Resolution, Resolver


def snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def handler_path(operation_id: str, package: str = "handlers") -> tuple[str, str]:
    controller, _, action = operation_id.partition("_")
    if not action or not controller.endswith("Controller"):
        raise ValueError(f"operationId {operation_id!r} is not <Name>Controller_<action>")
    return f"{package}.{snake_case(controller[: -len('Controller')])}", snake_case(action)


def resolve_handler(operation_id: str, package: str = "handlers") -> t.Callable:
    module_name, function_name = handler_path(operation_id, package)
    return getattr(importlib.import_module(module_name), function_name)


class ControllerResolver(Resolver):
    def __init__(self, package: str = "handlers") -> None:
        super().__init__()
        self.package = package

    def resolve(self, operation) -> Resolution:
        operation_id = self.resolve_operation_id(operation)
        return Resolution(resolve_handler(operation_id, self.package), operation_id)


class FunctionResolver(Resolver):
    """Resolves through a function ``operationId -> handler`` (see ``app.Handlers``)."""

    def __init__(self, resolve: t.Callable[[str], t.Callable]) -> None:
        super().__init__()
        self._resolve = resolve

    def resolve(self, operation) -> Resolution:
        operation_id = self.resolve_operation_id(operation)
        return Resolution(self._resolve(operation_id), operation_id)
