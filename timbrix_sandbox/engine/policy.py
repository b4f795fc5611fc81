"""Who the caller is and what they may reach: the one access policy of the engine.

Both request pipelines (the compiled fast path and the Connexion stack) ask this module, so a
token, a scope or a membership is judged the same way whichever path serves the request:

* no token or an unknown one -> 401 (the HTTP layer's security step, from :meth:`caller`);
* a token without a scope the operation's security requirement lists -> 403;
* the tenant the request acts in, named by a path parameter (Timbrix's ``organizationId``),
  a header (the bookkeeping API's ``organization-id``) or implied by the key (BeeL), must be
  one of the caller's organizations -> else 403. A record of another tenant is never looked
  up, so it is indistinguishable from a missing one (404).
"""

from __future__ import annotations

import dataclasses
import typing as t

from timbrix_sandbox.contract.model import Operation, Profile
from timbrix_sandbox.contract.records import record_key
from timbrix_sandbox.engine.faults import Behaviours
from timbrix_sandbox.engine.fixtures import Fixtures, User

# The wording each way of naming a tenant has always answered with (kept byte for byte).
NOT_A_MEMBER_PATH = "User is not a member of this organization"
NOT_A_MEMBER = "Not a member of this organization"


class Refusal(Exception):
    """A request the engine will not carry out: the HTTP layer renders it in the contract's
    error format (``kind`` and ``details`` feed formats that distinguish them)."""

    def __init__(self, status: int, message: str, *, kind: str | None = None, details: t.Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.details = details


@dataclasses.dataclass(frozen=True)
class Caller:
    """The user behind a request's credentials."""

    id: str
    name: str
    organizations: tuple[str, ...]
    scopes: frozenset[str] | None
    """Granted API scopes (``None``: all)."""

    @classmethod
    def of(cls, user: User) -> Caller:
        return cls(
            user.id,
            user.name,
            tuple(sorted(user.organizations)),
            None if user.scopes is None else frozenset(user.scopes),
        )

    def token_info(self) -> dict[str, t.Any]:
        """The caller as Connexion's security layer carries it (``token_info``)."""
        return {
            "sub": self.id,
            "name": self.name,
            "organizations": self.organizations,
            "scopes": None if self.scopes is None else tuple(sorted(self.scopes)),
        }

    @classmethod
    def from_token_info(cls, info: t.Mapping[str, t.Any]) -> Caller:
        scopes = info.get("scopes")
        return cls(
            str(info.get("sub", "")),
            str(info.get("name", "")),
            tuple(info.get("organizations", ())),
            None if scopes is None else frozenset(scopes),
        )


@dataclasses.dataclass(frozen=True)
class TenantRule:
    """How one operation names its tenant (computed once per operation, not per request)."""

    path_param: str | None = None
    header: str | None = None
    """A header naming the tenant; may be omitted by a caller of exactly one organization."""


class AccessPolicy:
    def __init__(self, profile: Profile, fixtures: Fixtures, behaviours: Behaviours) -> None:
        self.profile = profile
        self.fixtures = fixtures
        self.behaviours = behaviours
        self.rules = {op_id: self._rule(op) for op_id, op in profile.operations.items()}
        # Fixture users never change while a sandbox runs: one Caller each, not one per request.
        self._callers = {user.token: Caller.of(user) for user in fixtures.users}

    def _rule(self, operation: Operation) -> TenantRule:
        resource = self.profile.resources.get(operation.resource)
        if self.profile.tenant.get("path"):
            return TenantRule(path_param=self.profile.tenant["path"])
        if resource is not None and resource.tenant_param:
            return TenantRule(path_param=resource.tenant_param)
        if self.profile.tenant.get("header"):
            return TenantRule(header=self.profile.tenant["header"])
        return TenantRule()

    def caller(self, token: str) -> Caller | None:
        """The caller a bearer token names (``None``: unknown, a 401)."""
        return self._callers.get(token)

    def names_tenant_in_path(self, operation_id: str) -> str | None:
        rule = self.rules.get(operation_id)
        return rule.path_param if rule is not None else None

    def authorize(
        self,
        operation: Operation,
        caller: Caller | None,
        path_values: t.Mapping[str, t.Any],
        headers: t.Mapping[str, str],
    ) -> str | None:
        """The tenant the request acts in (``None`` for an operation outside any tenant, such
        as a public catalog), or a :class:`Refusal` (400 or 403)."""
        if caller is None:
            # An open operation (a secured one never gets here without a caller). Where the
            # key names the tenant, an open read sees the default tenant's records: those a
            # secured create wrote (Conduit's public GET /articles/{slug}).
            rule = self.rules.get(operation.operation_id)
            if rule == TenantRule() and operation.resource in self.profile.resources:
                return next(iter(self.fixtures.organizations), None)
            return None
        if operation.required_scopes and caller.scopes is not None:
            if not set(operation.required_scopes) <= caller.scopes:
                raise Refusal(
                    403,
                    "Provided token does not have the required scopes. "
                    f"Provided: {sorted(caller.scopes)}; Required: {list(operation.required_scopes)}",
                )
        if operation.resource not in self.profile.resources:
            return None
        rule = self.rules[operation.operation_id]
        memberships = caller.organizations
        message = NOT_A_MEMBER
        if rule.path_param is not None:
            if rule.path_param not in path_values:
                return None
            tenant = record_key(path_values[rule.path_param])
            message = NOT_A_MEMBER_PATH
        elif rule.header is not None:
            named = _header(headers, rule.header)
            if named is None:
                if len(memberships) != 1:
                    raise Refusal(400, f"The {rule.header} header is required for a token of several organizations")
                named = memberships[0]
            tenant = named
        else:
            if not memberships:
                raise Refusal(403, "This key belongs to no account")
            tenant = memberships[0]
        if tenant not in memberships and not self.behaviours.ignores_membership():
            raise Refusal(403, message)
        return tenant


def _header(headers: t.Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    return value
