"""Assembling a sandbox for a contract: its model, fixtures, store, plug-in and faults.

This is where a contract meets the plug-ins that ship (``plugins.py``); the HTTP layer, the
CLI and tests all build sandboxes here, so each is put together the same way.
"""

from __future__ import annotations

import functools
import os
import typing as t
from pathlib import Path

from timbrix_sandbox.contract.examples import resource_examples
from timbrix_sandbox.contract.loading import load_contract
from timbrix_sandbox.contract.model import Profile, load_profile, scope_params
from timbrix_sandbox.contract.security import read_security
from timbrix_sandbox.engine.faults import Behaviours
from timbrix_sandbox.engine.fixtures import Fixtures, development_fixtures, load_fixtures
from timbrix_sandbox.engine.sandbox import RECORD_LAYOUT, Sandbox
from timbrix_sandbox.engine.store import Store
from timbrix_sandbox.profiles import DEFAULT_CONTRACT, contract_path, default_fixtures
from timbrix_sandbox.profiles.plugins import plugin_for


def make_sandbox(
    *,
    contract: str | os.PathLike[str] = DEFAULT_CONTRACT,
    data_dir: str | os.PathLike[str] | None = None,
    fixtures_path: str | os.PathLike[str] | None = None,
    reset: bool = False,
    strict_rfc: bool = False,
    faults: t.Iterable[str] = (),
    discard_damaged: bool = False,
) -> Sandbox:
    """A sandbox for ``contract`` (a path or a shipped name) over ``data_dir`` (``None``: in
    memory), seeded from fixtures when empty. A damaged data directory raises
    ``DamagedStore`` unless ``discard_damaged`` (then its damaged files are moved aside).

    Fixtures: ``fixtures_path`` (which must exist), else the contract's own fixtures file
    (``NAME.fixtures.yaml`` beside it; the shipped profiles have theirs), else, for a contract
    that has none, generated development fixtures: one default tenant and one user whose
    credentials work for every security scheme the contract declares."""
    contract = contract_path(contract)
    spec = load_contract(contract)
    profile = load_profile(spec)
    plugin = plugin_for(profile.plugin)
    fixtures = _fixtures(spec, profile, contract, fixtures_path)
    options = frozenset({"strict-rfc"} if strict_rfc else ())
    sandbox = Sandbox(
        contract,
        profile,
        fixtures,
        Store(data_dir, discard_damaged=discard_damaged),
        plugin,
        Behaviours(faults, profile),
        options & plugin.options,
        read_security(spec),
    )
    layout = sandbox.store.claim(profile.title, unmarked_owner=_timbrix_title(), layout=RECORD_LAYOUT)
    if reset:
        sandbox.reset()
        sandbox.store.mark_seeded()
    else:
        sandbox.seed_if_empty()
    sandbox.upgrade(layout)
    for collection in sandbox.collections:
        sandbox.store.open_all(collection)
    return sandbox


def _fixtures(spec: dict, profile: Profile, contract: Path, explicit: str | os.PathLike[str] | None) -> Fixtures:
    beside = default_fixtures(contract)
    ids = {name: (r.id_field, r.id_kind) for name, r in profile.resources.items()}
    if explicit is None and not beside.exists():
        return development_fixtures(profile.title, resource_examples(spec, profile), ids)
    return load_fixtures(
        explicit or beside,
        ids=ids,
        scope_field={
            name: param
            for name, r in profile.resources.items()
            for param in scope_params(r)[:1]
            if param in r.schema.get("properties", {})
        },
    )


@functools.lru_cache(maxsize=1)
def _timbrix_title() -> str:
    """Whose data a seeded directory without a contract marker holds (written before markers)."""
    return load_profile(load_contract(DEFAULT_CONTRACT)).title
