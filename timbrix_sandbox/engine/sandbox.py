"""The sandbox: one contract's engine over its fixtures and store, and the operations on it that
are not HTTP (seeding, reset, upgrading records written by earlier versions)."""

from __future__ import annotations

import dataclasses
import logging
import time
import typing as t
from pathlib import Path

from timbrix_sandbox.contract.model import Profile
from timbrix_sandbox.contract.records import complete, stored_doc
from timbrix_sandbox.contract.security import ContractSecurity
from timbrix_sandbox.engine.clock import utc_now
from timbrix_sandbox.engine.crud import Engine, EngineOperation
from timbrix_sandbox.engine.faults import Behaviours
from timbrix_sandbox.engine.fixtures import Fixtures
from timbrix_sandbox.engine.plugins import DomainPlugin
from timbrix_sandbox.engine.policy import AccessPolicy
from timbrix_sandbox.engine.store import Store

logger = logging.getLogger("timbrix_sandbox.sandbox")

RECORD_LAYOUT = 2
"""Every record is stored as ``{"id": key, "data": record}``. Layout 1 (before one engine
served every contract) kept Timbrix's customers bare; :meth:`Sandbox.upgrade` wraps them."""


@dataclasses.dataclass
class Sandbox:
    contract: Path
    profile: Profile
    """What the contract says about resources, tenants, envelopes and errors."""
    fixtures: Fixtures
    store: Store
    plugin: DomainPlugin
    behaviours: Behaviours
    """Injected bugs (see ``faults.py``); empty for a sandbox that behaves."""
    options: frozenset[str] = frozenset()
    """Domain options the plug-in understands (Timbrix: ``strict-rfc``)."""

    security: ContractSecurity = dataclasses.field(default_factory=lambda: ContractSecurity({}, {}))
    """The contract's security schemes and what each operation requires (default: none, open)."""

    fast_path_served: int = 0
    """Requests answered by the compiled fast path (see ``http/fastpath.py``), for health/tests."""

    def __post_init__(self) -> None:
        self.collections: tuple[str, ...] = tuple(sorted(self.profile.resources))
        """The store collections the contract's resources live in."""
        self.engine = Engine(self.profile, self.store, self.plugin, self.behaviours, self.options)
        self.policy = AccessPolicy(self.profile, self.fixtures, self.behaviours, self.security)
        self.operations: dict[str, EngineOperation] = self.engine.operations()

    @property
    def faults(self) -> frozenset[str]:
        return self.behaviours.names

    @property
    def strict_rfc(self) -> bool:
        return "strict-rfc" in self.options

    def seed_record(self, collection: str, record: dict) -> dict:
        """A fixture record as the engine stores it: the plug-in's initial fields under it,
        required fields completed, wrapped with its key."""
        resource = self.profile.resources[collection]
        now = record.get(resource.created_field or "", None) or utc_now()
        return stored_doc(complete(_merged(self.plugin.initial(collection), record), resource.schema, now), resource)

    def upgrade(self, layout: int) -> None:
        """Records written with an older ``layout`` are rewritten in the current one, all or
        nothing (layout 1: bare records, which only Timbrix's customers were; they get the
        plug-in's initial fields under them, as version 0.1 answered with them)."""
        if layout >= RECORD_LAYOUT:
            return
        contents: dict[tuple[str, str], list[dict]] = {}
        for collection in self.collections:
            self.store.open_all(collection)
            for scope in self.store.scopes(collection):
                docs = self.store.list(collection, scope)
                if any(set(doc) != {"id", "data"} for doc in docs):
                    contents[(collection, scope)] = [
                        doc if set(doc) == {"id", "data"} else self.seed_record(collection, doc) for doc in docs
                    ]
        if contents:
            logger.warning("upgrading %d partitions of %s to record layout %d", len(contents), self.store.data_dir,
                           RECORD_LAYOUT)
            self.store.replace_partitions(contents)
        self.store.set_layout(self.profile.title, RECORD_LAYOUT)

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
                contents[(collection, org)] = [self.seed_record(collection, r) for r in fixtures.get(org, [])]
        if organization is None and not self.store.is_seeded():
            self.store.begin_seeding()
        self.store.replace_partitions(contents)
        return {
            "organizations": targets,
            "customers": sum(len(records) for records in contents.values()),
            "tookMs": round((time.perf_counter() - started) * 1000, 3),
        }


def _merged(base: dict, over: t.Mapping[str, t.Any]) -> dict:
    """``over`` on top of ``base``, nested objects merged too (a copy of both)."""
    out = {k: (_merged(v, {}) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out
