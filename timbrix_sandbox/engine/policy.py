"""Who the caller is and what they may reach: the one access policy of the engine.

Both request pipelines (the compiled fast path and the Connexion stack) ask this module, so a
credential, a scope or a membership is judged the same way whichever path serves the request:

* :meth:`AccessPolicy.authenticate` reads the credentials each of the operation's security
  requirements names (``contract/security.py``: a bearer token, Basic user and password, an API
  key in a header, query parameter or cookie), through a reader each pipeline supplies;
  none presented, or an unknown one -> 401; a credential sent the way no requirement of the
  operation names (a Bearer token to a Basic-only operation) is not presented at all;
* a caller without a scope the satisfied requirement lists -> 403;
* an open operation (no security, ``security: []``, or ``{}`` among the alternatives and no
  credentials) has no caller: it acts in the tenant the request names, else the default one;
* the tenant the request acts in, named by a path parameter (Timbrix's ``organizationId``),
  a header (the bookkeeping API's ``organization-id``) or implied by the key (BeeL), must be
  one of the caller's organizations -> else 403. A record of another tenant is never looked
  up, so it is indistinguishable from a missing one (404).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import typing as t

from timbrix_sandbox.contract.model import Operation, Profile
from timbrix_sandbox.contract.records import record_key
from timbrix_sandbox.contract.security import ContractSecurity, Requirement, Scheme
from timbrix_sandbox.engine.faults import Behaviours
from timbrix_sandbox.engine.fixtures import Fixtures, User

# The wording each way of naming a tenant has always answered with (kept byte for byte).
NOT_A_MEMBER_PATH = "User is not a member of this organization"
NOT_A_MEMBER = "Not a member of this organization"
NO_CREDENTIALS = "No authorization token provided"
MALFORMED_AUTHORIZATION = "Invalid authorization header"
NOT_VALID = {"basic": "Provided authorization is not valid", "apiKey": "Provided apikey is not valid"}
TOKEN_NOT_VALID = "Provided token is not valid"

CredentialReader = t.Callable[[str, str], "str | None"]
"""``(location, name) -> value``: how a pipeline reads one credential of a request (location
``header`` - case-insensitive -, ``query`` or ``cookie``); ``None`` when absent."""


class Refusal(Exception):
    """A request the engine will not carry out: the HTTP layer renders it in the contract's
    error format (``kind`` and ``details`` feed formats that distinguish them)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str | None = None,
        details: t.Any = None,
        challenge: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.details = details
        self.challenge = challenge
        """A 401's auth-scheme to name in ``WWW-Authenticate`` (``Basic``; ``None``: Bearer)."""


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


@dataclasses.dataclass(frozen=True)
class Credential:
    """How one user authenticates with one of the contract's schemes (``GET
    /__sandbox/credentials``, the ``serve`` banner)."""

    scheme: str
    type: str
    location: str
    name: str
    value: str
    """What the scheme carries: the token after ``Bearer`` (http bearer, oauth2,
    openIdConnect), ``user:password`` for http basic (base64 it after ``Basic``), the key
    itself for an API key."""
    tenant: str | None
    user: str
    tenants: tuple[str, ...]

    def as_json(self) -> dict[str, t.Any]:
        return {
            "scheme": self.scheme,
            "type": self.type,
            "in": self.location,
            "name": self.name,
            "value": self.value,
            "tenant": self.tenant,
            "user": self.user,
            "tenants": list(self.tenants),
        }


_ABSENT = object()


class _Invalid(t.NamedTuple):
    message: str


class _Alternative(t.NamedTuple):
    """One security requirement, compiled once per operation: its schemes (``None``: it names
    one the contract does not declare usably, so it is never met) and the scopes it lists."""

    schemes: tuple[Scheme, ...] | None
    scopes: tuple[str, ...]
    needed: frozenset[str]


class AccessPolicy:
    def __init__(
        self, profile: Profile, fixtures: Fixtures, behaviours: Behaviours, security: ContractSecurity
    ) -> None:
        self.profile = profile
        self.fixtures = fixtures
        self.behaviours = behaviours
        self.security = security
        self.rules = {op_id: self._rule(op) for op_id, op in profile.operations.items()}
        self._alternatives = {op_id: self._compile(reqs) for op_id, reqs in security.requirements.items()}
        self._challenges = {op_id: self._challenge(reqs) for op_id, reqs in security.requirements.items()}
        self._default = (self._compile(security.default), self._challenge(security.default))
        # Fixture users never change while a sandbox runs: one Caller each, not one per request.
        self._callers = {user.token: Caller.of(user) for user in fixtures.users}
        self._basic = {(user.id, user.token): self._callers[user.token] for user in fixtures.users}
        widest = max(fixtures.users, key=lambda user: len(user.organizations), default=None)
        self._stand_in = None if widest is None else self._callers[widest.token]
        """Who a missing or unknown credential becomes under the ``auth-ignored`` fault."""

    def credentials(self) -> list[Credential]:
        """Every fixture user's credential for every scheme the contract declares."""
        out = []
        for user in self.fixtures.users:
            tenants = tuple(sorted(user.organizations))
            for scheme in self.security.schemes.values():
                value = f"{user.id}:{user.token}" if scheme.basic else user.token
                out.append(
                    Credential(
                        scheme.name, scheme.type, scheme.location, scheme.field, value,
                        tenants[0] if tenants else None, user.id, tenants,
                    )
                )
        return out

    def authenticate(self, operation_id: str | None, read: CredentialReader) -> Caller | None:
        """The caller the request's credentials name (``None``: an open operation, or one whose
        alternatives include ``{}``, called without credentials), or a :class:`Refusal`: 401
        (none of the alternatives presented, or presented but unknown) or 403 (a known caller
        without the scopes of any alternative it met). As OpenAPI defines it, the first
        alternative met wins; the schemes of one alternative must all name the same user."""
        alternatives = self._alternatives.get(operation_id) if operation_id is not None else None
        if alternatives is None:  # not in the contract's table: its document-level security
            alternatives = self._default[0]
        if not alternatives:
            return None
        invalid: _Invalid | None = None
        short_of_scopes: Refusal | None = None
        optional = False
        for alternative in alternatives:
            if alternative.schemes == ():
                optional = True
                continue
            met = self._meet(alternative, read)
            if met is _ABSENT:
                continue
            if isinstance(met, _Invalid):
                invalid = invalid or met
                continue
            caller: Caller = met
            if alternative.needed and caller.scopes is not None and not alternative.needed <= caller.scopes:
                short_of_scopes = short_of_scopes or Refusal(
                    403,
                    "Provided token does not have the required scopes. "
                    f"Provided: {sorted(caller.scopes)}; Required: {list(alternative.scopes)}",
                )
                continue
            return caller
        if short_of_scopes is not None:
            raise short_of_scopes
        if optional and invalid is None:
            return None
        if self.behaviours.accepts_unknown_tokens() and self._stand_in is not None:
            return self._stand_in
        message = invalid.message if invalid is not None else NO_CREDENTIALS
        raise Refusal(401, message, challenge=self.challenge(operation_id))

    def challenge(self, operation_id: str | None) -> str | None:
        """The auth-scheme a 401 of the operation names (``Basic``; ``None``: not an http one),
        for the policy's own 401s and for a 401 answered instead (``Prefer: code=401``)."""
        if operation_id in self._challenges:
            return self._challenges[operation_id]
        return self._default[1]  # not in the contract's table: its document-level security

    def _compile(self, requirements: tuple[Requirement, ...]) -> tuple[_Alternative, ...]:
        out = []
        for requirement in requirements:
            schemes = tuple(self.security.schemes.get(name) for name, _ in requirement)
            scopes = tuple(sorted({s for _, wanted in requirement for s in wanted}))
            usable = None if any(scheme is None for scheme in schemes) else t.cast(tuple[Scheme, ...], schemes)
            out.append(_Alternative(usable, scopes, frozenset(scopes)))
        return tuple(out)

    def _challenge(self, requirements: tuple[Requirement, ...]) -> str | None:
        """The auth-scheme of the first scheme the operation asks for, if it is an http one."""
        for requirement in requirements:
            for name, _ in requirement:
                scheme = self.security.schemes.get(name)
                if scheme is not None and scheme.auth_scheme is not None:
                    return scheme.auth_scheme.capitalize()
        return None

    def _meet(self, alternative: _Alternative, read: CredentialReader) -> t.Any:
        """The caller all of the alternative's schemes name, ``_ABSENT`` if one of them is
        not presented, or ``_Invalid``."""
        if alternative.schemes is None:
            return _ABSENT  # a scheme the contract does not declare usably: never met
        first = None
        for scheme in alternative.schemes:
            found = self._identify(scheme, read)
            if found is _ABSENT or isinstance(found, _Invalid):
                return found
            if first is None:
                first = found
            elif found.id != first.id:
                return _Invalid("The credentials name different users")
        return first

    def _identify(self, scheme: Scheme, read: CredentialReader) -> t.Any:
        raw = read(scheme.location, scheme.field)
        if raw is None:
            return _ABSENT
        if scheme.auth_scheme is None:  # an API key: the whole value
            caller = self._callers.get(raw)
            return caller if caller is not None else _Invalid(NOT_VALID["apiKey"])
        parts = raw.split(maxsplit=1)
        if len(parts) != 2:
            return _Invalid(MALFORMED_AUTHORIZATION) if raw.strip() else _ABSENT
        auth_scheme, value = parts
        if auth_scheme.lower() != scheme.auth_scheme:
            return _ABSENT  # sent for another scheme
        if scheme.basic:
            try:
                user, _, password = base64.b64decode(value, validate=True).decode("latin-1").partition(":")
            except (binascii.Error, ValueError):
                return _Invalid(MALFORMED_AUTHORIZATION)
            caller = self._basic.get((user, password))
            return caller if caller is not None else _Invalid(NOT_VALID["basic"])
        caller = self._callers.get(value)
        return caller if caller is not None else _Invalid(TOKEN_NOT_VALID)

    def _rule(self, operation: Operation) -> TenantRule:
        resource = self.profile.resources.get(operation.resource)
        if self.profile.tenant.get("path"):
            return TenantRule(path_param=self.profile.tenant["path"])
        if resource is not None and resource.tenant_param:
            # Only a parameter that names a tenant (``organizationId``); the other collection
            # parameters are parents (``/repos/{owner}/{repo}/issues``), scoping records only.
            return TenantRule(path_param=resource.tenant_param)
        if self.profile.tenant.get("header"):
            return TenantRule(header=self.profile.tenant["header"])
        return TenantRule()

    def caller(self, token: str) -> Caller | None:
        """The caller a fixture token names (``None``: unknown)."""
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
        as a public catalog), or a :class:`Refusal` (400 or 403). ``caller`` is what
        :meth:`authenticate` answered (``None``: an open operation, which acts in the tenant the
        request names, else in the default one)."""
        if operation.resource not in self.profile.resources:
            return None
        rule = self.rules[operation.operation_id]
        if caller is None:
            return self._open_tenant(rule, path_values, headers)
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

    def _open_tenant(
        self, rule: TenantRule, path_values: t.Mapping[str, t.Any], headers: t.Mapping[str, str]
    ) -> str | None:
        if rule.path_param is not None and rule.path_param in path_values:
            return record_key(path_values[rule.path_param])
        if rule.header is not None:
            named = _header(headers, rule.header)
            if named is not None:
                return named
        return self.fixtures.default_organization


def _header(headers: t.Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    return value
