"""Every resource the behaviour scenarios test, each with a probe of its own, and the parent
records their paths need.

A nested resource lives under its parents' ids (Twilio's ``/v2/Services/{ServiceSid}/Roles``,
Conduit's ``/articles/{slug}/comments``): before its scenarios run, the run creates one record
of each parent resource (itself under its own parents, recursively) and fills the parameter
with it; only where the parent cannot be created is an existing one taken from the parent's
list (read-only). Probes are built parents first, so cleaning them up in reverse removes
children before the parents they live under. A resource whose parents cannot be filled is
reported as not tested; it never stops the others.
"""

from __future__ import annotations

import random
import typing as t

import httpx

from timbrix_sandbox.contract.records import record_key

from .probe import Probe, identities
from .target import Target

if t.TYPE_CHECKING:
    from .domains import Domain
    from .model import Result


class Unfilled(Exception):
    """A parent path parameter the run could fill neither from a created nor an existing record."""


class Subjects:
    """The probes of the run, by resource, in the order they were built (parents first)."""

    def __init__(self, target: Target, domain: Domain, result: Result, rng: random.Random) -> None:
        self.primary = target
        self.views = {view.resource.name: view for view in target.subjects()}
        self.domain, self.result, self.rng = domain, result, rng
        self.probes: dict[str, Probe] = {}
        self.parent_keys: dict[str, str] = {}
        """Parent resource -> the record the run created to hold its children."""
        self.unfilled: dict[str, str] = {}
        """Resource -> why its parents could not be filled."""

    def probe(self, name: str) -> Probe:
        """The probe of resource ``name``, its parents filled (raises :class:`Unfilled`)."""
        if name in self.probes:
            return self.probes[name]
        if name in self.unfilled:
            raise Unfilled(self.unfilled[name])
        view = self.views.get(name) or self.primary.focused(self.primary.profile.resources[name])
        try:
            for param in view.parents:
                view.parent_values[param] = self._parent_value(view, param)
        except Unfilled as exc:
            self.unfilled[name] = str(exc)
            raise
        probe = Probe(view, self.domain, self.result, set(), self.rng)
        if view is not self.primary:  # the primary's existing records come from the preflight
            probe.existing |= set(_existing_keys(probe))
        self.probes[name] = probe
        return probe

    def _parent_value(self, view: Target, param: str) -> str:
        parent = view.parent_resource(param)
        if parent is not None and parent.name in self.parent_keys:
            return self.parent_keys[parent.name]
        why = f"no resource of the contract has the collection before {{{param}}}"
        if parent is not None and view._op(parent, "create") is not None:
            holder = self.probe(parent.name)
            key = holder.create()
            if key is not None:
                self.parent_keys[parent.name] = key
                return key
            why = f"the create of its parent ({parent.collection_path}) was refused"
        existing = _existing_parent(view, param)
        if existing is None:
            raise Unfilled(f"cannot fill {{{param}}}: {why}, and no existing parent is listed")
        return existing

    def close(self) -> None:
        for probe in self.probes.values():
            probe.close()

    def cleanup(self) -> tuple[int, int, list[str]]:
        """Delete what every probe created, children first: (created, deleted, left behind)."""
        created = deleted = 0
        left: list[str] = []
        for probe in reversed(list(self.probes.values())):
            created += len(probe.created)
            done, kept = probe.cleanup()
            deleted += done
            left += kept
        return created, deleted, left


def _existing_keys(probe: Probe) -> list[str]:
    """The records of the resource before the scenarios touch it (best effort, read-only)."""
    try:
        return probe.listed() or []
    except (httpx.HTTPError, ValueError):
        return []


def _existing_parent(view: Target, param: str) -> str | None:
    """The id of an existing parent record, from the parent's own list (read-only)."""
    listing = view.parent_listing(param)
    if listing is None:
        return None
    member = identities(view.options, view)["member"]
    url = view.options.api + view.url(listing, None, member.tenant)
    try:
        response = httpx.get(url, headers=member.send(), params=member.query(), timeout=15)
        body = view.profile.unwrap(response.json())
    except (httpx.HTTPError, ValueError):
        return None
    items = body
    for key in listing.listing.items_path if listing.listing else ():
        items = items.get(key) if isinstance(items, dict) else None
    parent = view.profile.resources[listing.resource]
    found = [record_key(r[parent.id_field]) for r in items or [] if isinstance(r, dict) and parent.id_field in r]
    if response.status_code != 200 or not found:
        return None
    return found[0]
