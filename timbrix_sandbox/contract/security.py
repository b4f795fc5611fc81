"""A contract's security, read once: the schemes it declares, where each one's credential
travels, and what every operation requires.

Pure (dicts in, dataclasses out), so the engine's access policy judges every request path from
the same table, and the conformance suite could read it too. OpenAPI's rules, applied here
once:

* an operation's ``security`` replaces the document's; ``security: []`` (or none anywhere)
  means open;
* the list is of alternatives: any one requirement satisfied lets the caller in; ``{}`` among
  them makes credentials optional;
* the schemes of one requirement are AND-ed: all of them must be presented.

Every scheme type has one place its credential travels: ``http`` (``bearer``, ``basic`` or any
other auth-scheme), ``oauth2`` and ``openIdConnect`` in the ``Authorization`` header (the
latter two as a bearer token: the sandbox is its own authorization server); ``apiKey`` in the
header, query parameter or cookie it names.
"""

from __future__ import annotations

import dataclasses
import typing as t

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
AUTHORIZATION = "Authorization"


@dataclasses.dataclass(frozen=True)
class Scheme:
    """One entry of ``components.securitySchemes``."""

    name: str
    type: str
    """``http``, ``apiKey``, ``oauth2`` or ``openIdConnect``."""
    location: str
    """``header``, ``query`` or ``cookie``."""
    field: str
    """The header, query parameter or cookie carrying the credential."""
    auth_scheme: str | None
    """The ``Authorization`` header's auth-scheme, lower case (``bearer``, ``basic``);
    ``None`` for an API key, which is the whole value."""

    @property
    def basic(self) -> bool:
        return self.auth_scheme == "basic"


Requirement = tuple[tuple[str, tuple[str, ...]], ...]
"""One security requirement: ``(scheme name, scopes)`` pairs, all of which must be met."""


@dataclasses.dataclass(frozen=True)
class ContractSecurity:
    schemes: dict[str, Scheme]
    requirements: dict[str, tuple[Requirement, ...]]
    """operationId -> its alternatives; ``()`` for an open operation."""
    default: tuple[Requirement, ...] = ()
    """The document's own ``security``: what an operation this table does not name requires
    (fail closed: an id the router made up is not an open door)."""

    def of(self, operation_id: str | None) -> tuple[Requirement, ...]:
        if operation_id is None:
            return self.default
        return self.requirements.get(operation_id, self.default)

    def query_fields(self, operation_id: str) -> frozenset[str]:
        """Query parameters that carry an operation's API keys (not parameters of the operation)."""
        return frozenset(
            self.schemes[name].field
            for requirement in self.of(operation_id)
            for name, _ in requirement
            if name in self.schemes and self.schemes[name].location == "query"
        )


def read_scheme(name: str, raw: t.Mapping[str, t.Any]) -> Scheme | None:
    """The scheme, or ``None`` for one this table cannot use (an unknown type, a ``$ref``
    left unresolved, ``mutualTLS``): a requirement naming it can never be met."""
    kind = raw.get("type")
    if kind == "apiKey":
        location = raw.get("in")
        if location not in ("header", "query", "cookie") or not raw.get("name"):
            return None
        return Scheme(name, kind, location, str(raw["name"]), None)
    if kind == "http":
        return Scheme(name, kind, "header", AUTHORIZATION, str(raw.get("scheme", "bearer")).lower())
    if kind in ("oauth2", "openIdConnect"):
        return Scheme(name, kind, "header", AUTHORIZATION, "bearer")
    return None


def read_security(spec: t.Mapping[str, t.Any]) -> ContractSecurity:
    """The security table of a parsed contract (``$ref``s to schemes are followed locally).
    Operations are keyed as the contract model keys them: ``operationId``, else
    ``method_path``."""
    declared = (spec.get("components") or {}).get("securitySchemes") or {}
    schemes = {}
    for name, raw in declared.items():
        raw = _local_ref(spec, raw)
        scheme = read_scheme(str(name), raw) if isinstance(raw, dict) else None
        if scheme is not None:
            schemes[str(name)] = scheme
    default = _requirements(spec.get("security"))
    requirements: dict[str, tuple[Requirement, ...]] = {}
    for path, item in (spec.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        for method in HTTP_METHODS:
            operation = item.get(method)
            if not isinstance(operation, dict):
                continue
            operation_id = operation.get("operationId") or f"{method}_{path}"
            own = operation.get("security")
            requirements[operation_id] = default if own is None else _requirements(own)
    return ContractSecurity(schemes, requirements, default)


def _requirements(raw: t.Any) -> tuple[Requirement, ...]:
    if not isinstance(raw, list):
        return ()
    return tuple(
        tuple((str(name), tuple(str(s) for s in (scopes or ()))) for name, scopes in requirement.items())
        for requirement in raw
        if isinstance(requirement, dict)
    )


def _local_ref(spec: t.Mapping[str, t.Any], node: t.Any) -> t.Any:
    for _ in range(10):
        if not (isinstance(node, dict) and isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/")):
            return node
        target: t.Any = spec
        for part in node["$ref"][2:].split("/"):
            target = target.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(target, dict) else {}
        node = target
    return node
