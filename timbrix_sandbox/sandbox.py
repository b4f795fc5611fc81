"""The sandbox: fixtures + store + settings, and the operations on it that are not HTTP."""

from __future__ import annotations

import dataclasses
import time

from .fixtures import Fixtures
from .store import Store

CUSTOMERS = "customers"


@dataclasses.dataclass
class Sandbox:
    fixtures: Fixtures
    store: Store
    strict_rfc: bool = False
    """Also enforce the RFC check digit (off by default: the vendor's own example fails it)."""
    faults: frozenset[str] = frozenset()
    """Injected bugs (see ``faults.py``); empty for a sandbox that behaves."""

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

    def reset(self, organization: str | None = None) -> dict:
        """Put one organization (or all) back to its fixtures; other organizations keep their
        data. Organizations created at run time that are not in the fixtures are emptied on a
        full reset."""
        started = time.perf_counter()
        fixtures = self.fixtures.records.get(CUSTOMERS, {})
        if organization is not None:
            targets = [organization]
        else:
            targets = sorted(set(self.fixtures.organizations) | set(self.store.scopes(CUSTOMERS)))
        total = 0
        for org in targets:
            records = fixtures.get(org, [])
            self.store.replace_all(CUSTOMERS, org, records)
            total += len(records)
        return {
            "organizations": targets,
            "customers": total,
            "tookMs": round((time.perf_counter() - started) * 1000, 3),
        }
