"""Injectable faults: realistic bugs a Timbrix implementation could ship.

``timbrix-sandbox serve --fault NAME`` turns one on (repeatable); ``timbrix-sandbox faults``
lists them. They exist to measure the conformance suite: every fault must make
``timbrix-sandbox conformance`` exit 1 (the kill score, ``tests/test_kill_score.py``).

Faults that corrupt responses act in :class:`FaultyResponseMiddleware`, *after* the
sandbox's own response validation, so the broken body reaches the client exactly as a buggy
production build would send it. The others act where the bug would live (auth, handlers, the
fiscal check).
"""

from __future__ import annotations

import dataclasses
import typing as t

from timbrix_sandbox.contract.model import scope_params

if t.TYPE_CHECKING:
    from timbrix_sandbox.contract.model import Profile


@dataclasses.dataclass(frozen=True)
class Fault:
    name: str
    category: str
    description: str
    timbrix_only: bool = False
    """CFDI and Timbrix-field faults; the rest also work on any contract's generic operations."""


FAULTS: dict[str, Fault] = {
    f.name: f
    for f in [
        Fault("response-extra-field", "schema drift", "record bodies carry an undocumented 'internalNotes' field"),
        Fault(
            "response-missing-field",
            "schema drift",
            "record bodies lack a required field ('taxSystem' for Timbrix, else the first required non-id field)",
        ),
        Fault(
            "phone-as-object",
            "schema drift",
            "'phone' is sent as {\"number\": ...}, as the vendor spec once said",
            timbrix_only=True,
        ),
        Fault("create-returns-200", "status code", "POST answers 200 instead of 201"),
        Fault("delete-returns-200", "status code", "DELETE answers 200 with a JSON body instead of 204"),
        Fault("validation-422", "status code", "request validation errors answer 422 instead of 400"),
        Fault("text-content-type", "content type", "JSON responses are labelled text/plain"),
        Fault(
            "problem-json-errors", "error format", "errors are application/problem+json, not {statusCode,message,error}"
        ),
        Fault("auth-ignored", "auth", "a missing or unknown token is treated as a member of the organization"),
        Fault("membership-ignored", "auth", "a valid token reaches organizations it is not a member of"),
        Fault("cross-tenant-read", "tenant isolation", "GET by id finds customers of any organization"),
        Fault("list-all-tenants", "tenant isolation", "the list returns every organization's customers"),
        Fault(
            "create-upserts",
            "persistence",
            "POST with a taxId that exists answers 201 with the existing customer",
            timbrix_only=True,
        ),
        Fault("update-not-persisted", "persistence", "PUT answers the updated record but does not store it"),
        Fault("create-not-persisted", "persistence", "POST answers 201 but does not store the customer"),
        Fault("delete-not-persisted", "persistence", "DELETE answers 204 but the customer stays"),
        Fault("put-replaces", "update semantics", "PUT replaces the record: unsent optional fields are cleared"),
        Fault("created-at-moves", "timestamps", "createdAt is set to the update time on every PUT"),
        Fault("updated-at-frozen", "timestamps", "updatedAt does not move on update"),
        Fault(
            "cfdi-regimen-persona",
            "CFDI rule",
            "a régimen that does not apply to the persona type is accepted",
            timbrix_only=True,
        ),
        Fault(
            "cfdi-uso-regimen", "CFDI rule", "the uso/régimen compatibility matrix is not enforced", timbrix_only=True
        ),
        Fault("cfdi-zip-catalog", "CFDI rule", "ZIPs outside c_CodigoPostal are accepted", timbrix_only=True),
        Fault(
            "cfdi-generic-rfc",
            "CFDI rule",
            "generic RFCs (XAXX/XEXX) accept a régimen other than 616",
            timbrix_only=True,
        ),
        Fault(
            "cfdi-update-unmerged",
            "CFDI rule",
            "PUT re-validates only when taxId, taxSystem and uso are all sent",
            timbrix_only=True,
        ),
        Fault(
            "server-error-long-name",
            "server error",
            "a legalName over 100 characters crashes with 500",
            timbrix_only=True,
        ),
    ]
}

# Which CFDI rule each CFDI fault stops enforcing.
SKIPPED_RULES = {
    "cfdi-regimen-persona": "regimen_persona",
    "cfdi-uso-regimen": "uso_regimen",
    "cfdi-zip-catalog": "zip_not_in_catalog",
    "cfdi-generic-rfc": "generic_rfc_regimen",
}
RESPONSE_FAULTS = {
    "response-extra-field",
    "response-missing-field",
    "phone-as-object",
    "create-returns-200",
    "delete-returns-200",
    "validation-422",
    "text-content-type",
    "problem-json-errors",
}


class UnknownFault(ValueError):
    pass


def available(profile: Profile | None) -> dict[str, Fault]:
    """The faults a contract can take: all of them for Timbrix (hand-written handlers), the
    generic ones for any other contract."""
    if profile is None or profile.handlers:
        return FAULTS
    tenant_named = bool(profile.tenant) or any(scope_params(r) for r in profile.resources.values())
    return {
        name: fault
        for name, fault in FAULTS.items()
        # Without a tenant named in the request (BeeL: the key is the account) there is no
        # membership to ignore.
        if not fault.timbrix_only and (tenant_named or name != "membership-ignored")
    }


def check_names(names: t.Iterable[str], profile: Profile | None = None) -> frozenset[str]:
    names = frozenset(names)
    unknown = sorted(names - available(profile).keys())
    if unknown:
        raise UnknownFault(f"unknown fault(s) for this contract: {', '.join(unknown)} (see `timbrix-sandbox faults`)")
    return names
