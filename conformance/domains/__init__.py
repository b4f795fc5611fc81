"""Domain plug-ins: what only one contract's domain knows (Timbrix's CFDI rules), on top of the
contract and behaviour layers every contract gets.

A contract selects its plug-in itself, at its top level: ``x-sandbox: {plugin: timbrix}``.
:func:`plugin_name` is the one rule that decides it; a contract without the key is judged by
the contract and behaviour layers alone (the base :class:`Domain`, which is also where a plug-in
gets the generic answers to "what is a valid body", "what must a write store").
"""

from __future__ import annotations

import functools
import importlib
import typing as t

import jsonschema_rs
import schemathesis

from timbrix_sandbox.contract.records import apply_body, complete, conform
from timbrix_sandbox.contract.shapes import flatten, instance

from .. import checks
from ..model import Options, UsageProblem

if t.TYPE_CHECKING:
    from ..probe import Probe
    from ..target import Target

PLUGINS = {"timbrix": "conformance.domains.timbrix"}
"""name -> module whose ``DOMAIN`` is the plug-in."""
TIMESTAMP = "2026-01-01T00:00:00.000Z"


def plugin_name(spec: dict) -> str | None:
    """The domain plug-in the contract asks for (``x-sandbox.plugin``), or ``None``."""
    extension = spec.get("x-sandbox") if isinstance(spec, dict) else None
    return extension.get("plugin") if isinstance(extension, dict) else None


def for_contract(spec: dict) -> Domain:
    name = plugin_name(spec)
    if name is None:
        return GENERIC
    if name not in PLUGINS:
        raise UsageProblem(f"the contract asks for the conformance plug-in {name!r}; known: {', '.join(PLUGINS)}")
    return importlib.import_module(PLUGINS[name]).DOMAIN


class Domain:
    """The plug-in interface, and the null plug-in (every contract's generic answers)."""

    name: str | None = None
    takes: frozenset[str] = frozenset()
    """:class:`Options` fields that only this plug-in uses (``strict_rfc``)."""
    replaces: tuple[str, ...] = ()
    """schemathesis built-in checks that one of the plug-in's checks stands in for."""
    owners: t.ClassVar[dict[str, str]] = {}
    """check name -> plug-in, for every plug-in check registered in this process."""

    def __init__(self) -> None:
        self.check_names: set[str] = set()
        self.scenarios: list[t.Callable[[Probe], None]] = []

    # -- registration ----------------------------------------------------------------------

    def check(self, func: t.Callable) -> t.Callable:
        """Register a schemathesis check of this plug-in: it judges only runs of its contract."""

        @functools.wraps(func)
        def guarded(ctx, response, case):
            run = checks.current()
            return func(ctx, response, case) if run is not None and run.domain is self else None

        Domain.owners[func.__name__] = t.cast(str, self.name)
        self.check_names.add(func.__name__)
        return schemathesis.check(guarded)

    def scenario(self, func: t.Callable[[Probe], None]) -> t.Callable[[Probe], None]:
        self.scenarios.append(func)
        return func

    def disabled_checks(self) -> set[str]:
        """What a run of this plug-in's contract switches off: the built-ins it replaces and
        every other plug-in's checks."""
        return set(self.replaces) | {name for name, owner in Domain.owners.items() if owner != self.name}

    # -- options -----------------------------------------------------------------------------

    def validate(self, options: Options, target: Target) -> None:
        if options.strict_rfc and "strict_rfc" not in self.takes:
            raise UsageProblem("--strict-rfc applies to a contract with the timbrix plug-in only")
        if target.scope and not options.organization_id:
            named = ", ".join("{" + p + "}" for p in target.scope)
            raise UsageProblem(f"--organization-id is required: the contract names the tenant in its paths ({named})")

    # -- what the behaviour layer sends and expects ----------------------------------------------

    def create_body(self, target: Target, run: str, **overrides: t.Any) -> dict:
        """A valid create body: the schema's example if it validates, else one built from it."""
        schema = target.body_schema("create") or {"type": "object"}
        validator = jsonschema_rs.validator_for(schema, validate_formats=True)
        candidates = (schema.get("example"), *(schema.get("examples") or []), complete({}, schema, TIMESTAMP))
        for candidate in (*candidates, instance(schema)):
            if isinstance(candidate, dict) and validator.is_valid(candidate):
                return {**candidate, **overrides}
        raise UsageProblem("cannot build a valid create body from the contract: give the create schema an example")

    def update_body(self, target: Target, create_body: dict, current: dict, run: str) -> dict | None:
        """A partial update that changes one free-text field (plus what the schema requires)."""
        schema = flatten(target.body_schema("update"))  # composed (allOf) schemas too
        body = self.update_required(target, create_body)
        record_props = target.resource.schema.get("properties", {})
        for name, sub in schema.get("properties", {}).items():
            kinds = sub.get("type") if isinstance(sub.get("type"), list) else [sub.get("type")]
            stored_as = sub.get("x-sandbox-stored-as", name)
            if name in body or "string" not in kinds or stored_as not in record_props:
                continue
            if stored_as == target.resource.id_field:  # the record's id is not a field to change
                continue
            if sub.get("pattern") or sub.get("format") or sub.get("enum") or int(sub.get("maxLength", 64)) < 16:
                continue
            value = f"Conformance {run}"[: int(sub.get("maxLength", 64))]
            if current.get(sub.get("x-sandbox-stored-as", name)) != value:
                return {**body, name: value}
        return None

    def update_required(self, target: Target, create_body: dict) -> dict:
        """What the update schema requires: as created, or, for a field the create does not take
        (DigitalOcean's ``PUT /v2/projects/{id}`` requires ``description``), a valid value of its own."""
        schema = flatten(target.body_schema("update"))
        properties = schema.get("properties", {})
        return {
            name: create_body[name] if name in create_body else instance(properties.get(name, {}))
            for name in schema.get("required", [])
            if name in create_body or name in properties
        }

    def apply_write(self, target: Target, action: str, stored: dict, body: dict) -> dict:
        """The record a create (``stored`` empty) or a partial update must leave, as far as the
        request says (fields the server fills itself are not predicted)."""
        record_props = target.resource.schema.get("properties", {})
        sent = apply_body({}, body, target.body_schema(action))
        # As a conforming server must store it: a reference sent as an id is the compact
        # record the response declares (Asana's ``assignee: "123"`` is ``{gid: "123"}``).
        sent = conform(sent, list(sent), target.resource.schema, TIMESTAMP, before=stored)
        return {**stored, **{k: v for k, v in sent.items() if k in record_props}}


GENERIC = Domain()
