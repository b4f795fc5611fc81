"""The sandbox: fixtures + store + settings, and the operations on it that are not HTTP."""

from __future__ import annotations

import dataclasses
import time
import typing as t

from .fixtures import Fixtures
from .store import Store

if t.TYPE_CHECKING:
    from .profile import Profile

CUSTOMERS = "customers"

Prepare = t.Callable[[str, dict], dict]
"""``(collection, fixture record) -> stored document`` (the generic layer wraps and completes
records; Timbrix stores its fixtures as they are)."""


@dataclasses.dataclass
class Sandbox:
    fixtures: Fixtures
    store: Store
    strict_rfc: bool = False
    """Also enforce the RFC check digit (off by default: the vendor's own example fails it)."""
    faults: frozenset[str] = frozenset()
    """Injected bugs (see ``faults.py``); empty for a sandbox that behaves."""
    profile: Profile | None = None
    """What the contract says about resources, tenants, envelopes and errors."""
    collections: tuple[str, ...] = (CUSTOMERS,)
    """The store collections the contract's resources live in."""
    prepare: Prepare | None = None

    fast_path_served: int = 0
    """Requests answered by the compiled fast path (see ``fastpath.py``), for health/tests."""

    def has_fault(self, name: str) -> bool:
        return name in self.faults

    def seed_if_empty(self) -> bool:
        """Load fixtures into a store that was never completely seeded. Returns whether it did.

        The marker is written last, so a first start killed half-way through seeding seeds
        again instead of coming up with some organizations missing their fixtures."""
        if self.store.is_seeded():
            return False
        self.reset()
        self.store.mark_seeded()
        return True

    def scopes(self) -> list[str]:
        """Organizations with data in any collection."""
        return sorted({scope for collection in self.collections for scope in self.store.scopes(collection)})

    def reset(self, organization: str | None = None) -> dict:
        """Put one organization (or all) back to its fixtures; other organizations keep their
        data. Organizations created at run time that are not in the fixtures are emptied on a
        full reset."""
        started = time.perf_counter()
        if organization is not None:
            targets = [organization]
        else:
            targets = sorted(set(self.fixtures.organizations) | set(self.scopes()))
        total = 0
        for collection in self.collections:
            fixtures = self.fixtures.records.get(collection, {})
            for org in targets:
                records = fixtures.get(org, [])
                if self.prepare is not None:
                    records = [self.prepare(collection, record) for record in records]
                self.store.replace_all(collection, org, records)
                total += len(records)
        return {
            "organizations": targets,
            "customers": total,
            "tookMs": round((time.perf_counter() - started) * 1000, 3),
        }
