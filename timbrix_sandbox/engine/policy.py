"""Who the caller is and what they may reach: the one access policy of the engine."""

from __future__ import annotations

from timbrix_sandbox.engine.fixtures import User


def token_info(user: User) -> dict:
    return {
        "sub": user.id,
        "name": user.name,
        "organizations": tuple(sorted(user.organizations)),
        "scopes": None if user.scopes is None else tuple(sorted(user.scopes)),
    }
