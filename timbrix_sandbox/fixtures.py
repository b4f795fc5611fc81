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

DEFAULT_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "timbrix.yaml"
_OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")


class FixtureError(ValueError):
    """The fixture file is unusable; the message says where."""


@dataclasses.dataclass(frozen=True)
class User:
    id: str
    name: str
    token: str
    organizations: frozenset[str]


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


def load_fixtures(path: str | Path = DEFAULT_FIXTURES, *, collection: str = "customers") -> Fixtures:
    """Load a fixture file; records are listed under ``collection`` keyed by organization id."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise FixtureError(f"cannot read fixtures {path}: {exc}") from exc

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
        users.append(User(str(entry["id"]), str(entry.get("name", entry["id"])), token, member_of))

    records: dict[str, list[dict[str, t.Any]]] = {}
    seen: set[str] = set()
    for org_id, items in (raw.get(collection) or {}).items():
        org_id = str(org_id)
        if org_id not in organizations:
            raise FixtureError(f"{path}: {collection} listed under unknown organization {org_id}")
        rows = []
        for item in items or []:
            record = dict(item)
            record_id = str(record.get("id", ""))
            if not _OBJECT_ID.match(record_id):
                raise FixtureError(f"{path}: {collection} id {record_id!r} is not 24 lowercase hex digits")
            if record_id in seen:
                raise FixtureError(f"{path}: {collection} id {record_id} appears twice")
            seen.add(record_id)
            record["organizationId"] = org_id
            rows.append(record)
        records[org_id] = rows
    return Fixtures(organizations, tuple(users), {collection: records}, path)
