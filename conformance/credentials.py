"""Credentials for any security scheme the contract declares, sent the way that scheme says.

``--token`` is a bearer token (``Authorization: Bearer``), as it always was; ``--credential
SCHEME=VALUE`` names one of the contract's ``components.securitySchemes`` and the suite sends
VALUE where that scheme carries it: an API key in its header, query parameter or cookie, Basic
as ``user:password`` (base64-encoded here), any other ``http`` auth-scheme, OAuth 2 and OpenID
Connect as ``Authorization: <auth-scheme> VALUE``. Where a credential travels is read from the
pure contract layer (``timbrix_sandbox.contract.security``), the same table the engine's access
policy judges requests by, so the suite and the sandbox cannot disagree on it.
"""

from __future__ import annotations

import base64
import dataclasses
import typing as t
import uuid

from timbrix_sandbox.contract.security import AUTHORIZATION, ContractSecurity, Scheme

from .model import UsageProblem


@dataclasses.dataclass(frozen=True)
class Placed:
    """Where one identity's credentials go on a request."""

    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    query: dict[str, str] = dataclasses.field(default_factory=dict)


def parse_credentials(values: t.Iterable[str]) -> dict[str, str]:
    """``['SCHEME=VALUE', ...]`` (``--credential``) as a dict; a malformed one is a usage problem."""
    credentials = {}
    for value in values:
        name, sep, content = value.partition("=")
        if not sep or not name.strip() or not content:
            raise UsageProblem(f"--credential expects 'SCHEME=VALUE', got {value!r}")
        credentials[name.strip()] = content
    return credentials


def check_schemes(security: ContractSecurity, credentials: t.Mapping[str, str]) -> None:
    """Every named scheme is one the contract declares (else the user mistyped it)."""
    unknown = sorted(set(credentials) - set(security.schemes))
    if unknown:
        declared = ", ".join(sorted(security.schemes)) or "none"
        raise UsageProblem(f"--credential {unknown[0]}: the contract declares no such security scheme ({declared})")
    for name, value in credentials.items():
        if security.schemes[name].basic and ":" not in value:
            raise UsageProblem(f"--credential {name}: a Basic scheme takes 'user:password'")


def authorization(scheme: Scheme, value: str) -> str:
    """The ``Authorization`` header value of an ``http``/``oauth2``/``openIdConnect`` scheme."""
    if scheme.basic:
        return "Basic " + base64.b64encode(value.encode("utf-8")).decode("ascii")
    return f"{(scheme.auth_scheme or 'bearer').capitalize()} {value}"


def place(security: ContractSecurity, credentials: t.Mapping[str, str]) -> Placed:
    """The headers (cookies included) and query parameters that carry ``credentials``."""
    placed = Placed()
    cookies = []
    for name, value in credentials.items():
        scheme = security.schemes[name]
        if scheme.field == AUTHORIZATION and scheme.type != "apiKey":
            placed.headers[AUTHORIZATION] = authorization(scheme, value)
        elif scheme.location == "query":
            placed.query[scheme.field] = value
        elif scheme.location == "cookie":
            cookies.append(f"{scheme.field}={value}")
        else:
            placed.headers[scheme.field] = value
    if cookies:
        placed.headers["Cookie"] = "; ".join(cookies)
    return placed


def forged(security: ContractSecurity, credentials: t.Mapping[str, str]) -> dict[str, str]:
    """Credentials of the same schemes that no server issued (the "unknown caller" probes)."""
    fake = f"invalid-{uuid.uuid4().hex[:8]}"
    return {name: f"{fake}:{fake}" if security.schemes[name].basic else fake for name in credentials}


def schemathesis_auth(security: ContractSecurity, credentials: t.Mapping[str, str]) -> dict[str, t.Any]:
    """The ``auth.openapi`` section of schemathesis' configuration: it then sends each
    credential only on the operations whose security names its scheme, where the scheme says."""
    schemes: dict[str, dict[str, str]] = {}
    for name, value in credentials.items():
        scheme = security.schemes[name]
        if scheme.type == "apiKey":
            schemes[name] = {"api_key": value}
        elif scheme.basic:
            user, _, password = value.partition(":")
            schemes[name] = {"username": user, "password": password}
        else:
            schemes[name] = {"bearer": value}
    return {"openapi": schemes} if schemes else {}


def masked(placed: Placed) -> dict[str, str]:
    """The headers of ``placed`` with their values replaced by ``$CREDENTIAL`` (reports and
    their curl lines never carry secrets)."""
    return {name: "$CREDENTIAL" for name in placed.headers}
