"""Fixture sets: organizations, users with tokens, and the records each organization starts with.

Fixtures are data (``fixtures/*.yaml``); this module only loads and checks them, so a broken
fixture file fails at startup with a message naming the problem rather than at first request.
"""

from __future__ import annotations

import dataclasses
import re
import typing as t
from pathlib import Path

import yaml


class FixtureError(ValueError):
    """The fixture file is unusable; the message says where."""


@dataclasses.dataclass(frozen=True)
class User:
    id: str
    name: str
    token: str
    organizations: frozenset[str]
    scopes: frozenset[str] | None = None
    """Granted API scopes (``None``: all), checked against an operation's security scopes."""


@dataclasses.dataclass(frozen=True)
class Fixtures:
    organizations: dict[str, str]  # id -> name
    users: tuple[User, ...]
    records: dict[str, dict[str, list[dict[str, t.Any]]]]  # collection -> scope -> records
    source: Path

    def user_for_token(self, token: str) -> User | None:
        return self._tokens.get(token)

    @property
    def _tokens(self) -> dict[str, User]:
        cache = self.__dict__.get("_token_cache")
        if cache is None:
            cache = {user.token: user for user in self.users}
            object.__setattr__(self, "_token_cache", cache)
        return cache


RESERVED_KEYS = {"organizations", "users"}
ID_PATTERNS = {
    "objectid": re.compile(r"^[0-9a-f]{24}$"),
    "uuid": re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"),
    "integer": re.compile(r"^[0-9]{1,18}$"),
}


def load_fixtures(
    path: str | Path,
    *,
    ids: t.Mapping[str, tuple[str, str]] | None = None,
    scope_field: t.Mapping[str, str] | None = None,
) -> Fixtures:
    """Load a fixture file: ``organizations``, ``users`` and, under any other key, a
    collection's records keyed by organization id.

    ``ids`` maps a collection to ``(id field, id kind)`` (from the contract's profile; default
    Timbrix's customers: ``id``, 24 hex digits). ``scope_field`` names a record field that
    holds its organization (Timbrix's ``organizationId``), filled in from the key.
    """
    path = Path(path)
    ids = {"customers": ("id", "objectid")} if ids is None else ids
    scope_field = {"customers": "organizationId"} if scope_field is None else scope_field
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise FixtureError(f"cannot read fixtures {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise FixtureError(f"{path}: expected a mapping with organizations, users and collections")

    organizations = {str(org["id"]): str(org.get("name", org["id"])) for org in raw.get("organizations", [])}
    users: list[User] = []
    tokens: set[str] = set()
    for entry in raw.get("users", []):
        token = str(entry["token"])
        if token in tokens:
            raise FixtureError(f"{path}: token {token!r} is used twice")
        tokens.add(token)
        member_of = frozenset(str(o) for o in entry.get("organizations", []))
        unknown = member_of - organizations.keys()
        if unknown:
            raise FixtureError(f"{path}: user {entry['id']} belongs to unknown organizations {sorted(unknown)}")
        scopes = entry.get("scopes")
        users.append(
            User(
                str(entry["id"]),
                str(entry.get("name", entry["id"])),
                token,
                member_of,
                None if scopes is None else frozenset(str(s) for s in scopes),
            )
        )

    records: dict[str, dict[str, list[dict[str, t.Any]]]] = {}
    for collection in (k for k in raw if k not in RESERVED_KEYS):
        if collection not in ids:
            raise FixtureError(f"{path}: the contract has no collection {collection!r} (known: {sorted(ids)})")
        records[collection] = _collection(
            path, raw[collection] or {}, collection, ids[collection], organizations, scope_field.get(collection)
        )
    return Fixtures(organizations, tuple(users), records, path)


def _collection(
    path: Path,
    raw: dict,
    collection: str,
    id_spec: tuple[str, str],
    organizations: dict[str, str],
    scope_field: str | None,
) -> dict[str, list[dict[str, t.Any]]]:
    id_field, kind = id_spec
    pattern = ID_PATTERNS.get(kind)
    by_org: dict[str, list[dict[str, t.Any]]] = {}
    seen: set[str] = set()
    for org_id, items in raw.items():
        org_id = str(org_id)
        if org_id not in organizations:
            raise FixtureError(f"{path}: {collection} listed under unknown organization {org_id}")
        rows = []
        for item in items or []:
            record = dict(item)
            record_id = str(record.get(id_field, ""))
            if pattern is not None and not pattern.match(record_id):
                raise FixtureError(f"{path}: {collection} {id_field} {record_id!r} is not a valid {kind} id")
            if record_id in seen:
                raise FixtureError(f"{path}: {collection} {id_field} {record_id} appears twice")
            seen.add(record_id)
            if scope_field:
                record[scope_field] = org_id
            rows.append(record)
        by_org[org_id] = rows
    return by_org
