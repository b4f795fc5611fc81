"""The sandbox: fixtures + store + settings, and the operations on it that are not HTTP."""

from __future__ import annotations

import dataclasses
import logging
import time
import typing as t

from timbrix_sandbox.engine.fixtures import Fixtures
from timbrix_sandbox.engine.store import Store

if t.TYPE_CHECKING:
    from timbrix_sandbox.contract.model import Profile

CUSTOMERS = "customers"

logger = logging.getLogger("timbrix_sandbox.sandbox")

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

        Opens every partition first, so a damaged store refuses here (``DamagedStore``) before
        anything is written. Then, by the markers: ``.seeded`` - nothing to do; ``.seeding`` -
        a first seeding was cut short by a crash, so seed again (its marker is written last);
        neither, but records on disk - the ``.seeded`` marker was lost, and re-seeding would
        overwrite live data, so keep the data and write the marker again; neither and no
        records - a new store: seed it."""
        store = self.store
        if store.is_seeded():
            return False
        for collection in self.collections:
            store.open_all(collection)
        if not store.seeding_interrupted() and self._has_records():
            logger.warning(
                "%s holds data but no seeded marker: keeping the data (not re-seeding) and marking it seeded",
                store.data_dir,
            )
            store.mark_seeded()
            return False
        self.reset()
        store.mark_seeded()
        return True

    def _has_records(self) -> bool:
        return any(self.store.count(c, scope) for c in self.collections for scope in self.store.scopes(c))

    def scopes(self) -> list[str]:
        """Organizations with data in any collection."""
        return sorted({scope for collection in self.collections for scope in self.store.scopes(collection)})

    def reset(self, organization: str | None = None) -> dict:
        """Put one organization (or all) back to its fixtures; other organizations keep their
        data. Organizations created at run time that are not in the fixtures are emptied on a
        full reset.

        All or nothing: every partition's new snapshot is written before any is served (see
        ``Store.replace_partitions``), so a reset that fails (a full disk) leaves the previous
        state served and on disk. A full reset of a store not yet seeded is its first seeding
        and says so first (``Store.begin_seeding``), so a crash in the middle is redone."""
        started = time.perf_counter()
        if organization is not None:
            targets = [organization]
        else:
            targets = sorted(set(self.fixtures.organizations) | set(self.scopes()))
        contents: dict[tuple[str, str], list[dict]] = {}
        for collection in self.collections:
            fixtures = self.fixtures.records.get(collection, {})
            for org in targets:
                records = fixtures.get(org, [])
                if self.prepare is not None:
                    records = [self.prepare(collection, record) for record in records]
                contents[(collection, org)] = records
        if organization is None and not self.store.is_seeded():
            self.store.begin_seeding()
        self.store.replace_partitions(contents)
        return {
            "organizations": targets,
            "customers": sum(len(records) for records in contents.values()),
            "tookMs": round((time.perf_counter() - started) * 1000, 3),
        }
