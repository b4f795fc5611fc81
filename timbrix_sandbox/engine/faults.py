"""Injectable faults: realistic bugs an implementation could ship, as named, typed behaviours.

``timbrix-sandbox serve --fault NAME`` turns one on (repeatable); ``timbrix-sandbox faults``
lists them. They exist to measure the conformance suite: every fault must make
``timbrix-sandbox conformance`` exit 1 (the kill score, ``tests/test_kill_score.py``).

Each fault is one class here, overriding the hook of :class:`Behaviour` where its bug lives;
every hook's default is the correct behaviour. The engine, the access policy, the domain
plug-ins and the HTTP layer ask the active :class:`Behaviours` at those points - never a
fault by name - so adding a fault is adding a class to this module (and to :data:`FAULTS`),
and a misspelt hook is an ``AttributeError``, not a bug that silently never fires.

Faults that corrupt responses (:meth:`Behaviour.corrupt_record`, :meth:`Behaviour.rewrite`)
are applied by the HTTP layer *after* the sandbox's own response validation, so the broken
body reaches the client exactly as a buggy production build would send it.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import dataclasses
import random
import time
import typing as t

from timbrix_sandbox.contract.model import Profile, scope_params

Record = dict[str, t.Any]


@dataclasses.dataclass(frozen=True)
class ResponseParts:
    """A finished response as the response faults see it (``payload`` is parsed JSON or ``None``)."""

    method: str
    status: int
    content_type: str
    payload: t.Any


@dataclasses.dataclass(frozen=True)
class RecordShape:
    """How the response faults recognise a record in a body, and which field they drop."""

    id_field: str = "id"
    marker_fields: frozenset[str] = frozenset({"taxId", "address"})
    missing_field: str = "taxSystem"

    @classmethod
    def of(cls, profile: Profile) -> RecordShape:
        if profile.plugin == "timbrix" or not profile.resources:
            return cls()
        resource = next(iter(profile.resources.values()))
        required = [f for f in resource.schema.get("required", []) if f != resource.id_field]
        return cls(resource.id_field, frozenset(required[:1]), required[0] if required else resource.id_field)

    def matches(self, value: t.Any) -> bool:
        return isinstance(value, dict) and self.id_field in value and self.marker_fields <= value.keys()


class Behaviour:
    """The correct behaviour at every point a fault can change. A fault overrides one hook."""

    name: t.ClassVar[str] = ""
    category: t.ClassVar[str] = ""
    description: t.ClassVar[str] = ""
    needs: t.ClassVar[frozenset[str]] = frozenset()
    """What a contract must have for the fault to mean anything: ``"timbrix"`` (its fields and
    CFDI rules), ``"named-tenant"`` (a tenant named in the request, not implied by the key)."""

    # -- access (engine/policy.py, http/access.py) ---------------------------------------------
    def ignores_membership(self) -> bool:
        return False

    def accepts_unknown_tokens(self) -> bool:
        return False

    # -- reads (engine/crud.py) ----------------------------------------------------------------
    def reads_across_tenants(self) -> bool:
        return False

    def lists_across_tenants(self) -> bool:
        return False

    # -- writes (engine/crud.py) ---------------------------------------------------------------
    def persists(self, action: str) -> bool:
        return True

    def upsert_field(self) -> str | None:
        """A field whose value, if already stored, makes a create answer the stored record."""
        return None

    def update_base(self, current: Record, fresh: Record) -> Record:
        """What an update's changes are merged into (correct: the stored record)."""
        return current

    def stamps_updates(self) -> bool:
        return True

    def moves_created(self) -> bool:
        return False

    def check_body(self, body: t.Mapping[str, t.Any]) -> None:
        """Called with a write's request body before it is applied; may raise (a 500)."""

    # -- domain rules (profiles) ---------------------------------------------------------------
    def skips_rule(self, rule: str) -> bool:
        return False

    def revalidates_update(self, sent: t.AbstractSet[str]) -> bool:
        """Whether an update that sent domain fields re-validates the merged record."""
        return True

    # -- responses (http/fault_responses.py) ---------------------------------------------------
    def corrupt_record(self, record: Record) -> Record:
        return record

    def rewrite(self, response: ResponseParts) -> ResponseParts:
        return response

    # -- requests on their way in (http/fault_responses.py FaultyRequestMiddleware, http/app.py) --
    def max_body_bytes(self, declared: int) -> int:
        """The request body limit the server enforces (correct: the one it declares)."""
        return declared

    def request_path(self, path: str) -> str:
        """The path routing sees (correct: the one sent)."""
        return path

    def request_body(self, body: t.Any) -> t.Any:
        """The JSON request body validation sees (correct: the one sent)."""
        return body

    def refuses_head(self) -> bool:
        """Whether HEAD is refused where GET is served (correct: HEAD is GET without a body)."""
        return False

    # -- the transport and the answer, at run time (http/operations.py) ------------------------
    def delay(self) -> float:
        """Seconds to wait before answering."""
        return 0.0

    def drops_connection(self) -> bool:
        return False

    def preferred(self) -> Preference | None:
        """An answer chosen instead of the operation's own (``Prefer: code=404``)."""
        return None

    @classmethod
    def acts_on_access(cls) -> bool:
        """Whether this behaviour acts while the caller is identified - before the operation
        and tenant a run-time rule is matched on are known (so it can only be set at startup)."""
        return (
            cls.ignores_membership is not Behaviour.ignores_membership
            or cls.accepts_unknown_tokens is not Behaviour.accepts_unknown_tokens
        )

    @classmethod
    def from_parameters(cls, parameters: t.Mapping[str, t.Any]) -> Behaviour:
        """The behaviour with a rule's parameters (``/__sandbox/behaviours``); most take none."""
        if parameters:
            raise InvalidBehaviour(f"{cls.name} takes no parameters (got {', '.join(sorted(parameters))})")
        return cls()


@dataclasses.dataclass(frozen=True)
class Preference:
    """Prism's ``Prefer`` convention: answer ``status`` (else the first declared success), with
    the named example (else the contract's first), or one generated from the schema."""

    status: int | None = None
    example: str | None = None
    dynamic: bool = False
    origin: str = "Prefer"
    """Who asked, for error messages: the ``Prefer`` header or a rule's ``status`` behaviour."""

    @classmethod
    def parse(cls, header: str) -> Preference | None:
        """``code=404, example=missing, dynamic=true`` (``;`` or ``,`` between them); ``None``
        without any of the three. Raises ``InvalidBehaviour`` on a malformed value."""
        values: dict[str, str] = {}
        for part in header.replace(";", ",").split(","):
            key, _, value = part.strip().partition("=")
            if key.strip().lower() in ("code", "example", "dynamic"):
                values[key.strip().lower()] = value.strip().strip('"')
        if not values:
            return None
        code = values.get("code")
        if code is not None and not (code.isdigit() and 100 <= int(code) <= 599):
            raise InvalidBehaviour(f"Prefer: code={code} is not an HTTP status")
        dynamic = values.get("dynamic", "false").lower()
        if dynamic not in ("true", "false"):
            raise InvalidBehaviour(f"Prefer: dynamic={dynamic} is neither true nor false")
        return cls(int(code) if code else None, values.get("example") or None, dynamic == "true")


# -- schema drift ---------------------------------------------------------------------------------
class ResponseExtraField(Behaviour):
    name, category = "response-extra-field", "schema drift"
    description = "record bodies carry an undocumented 'internalNotes' field"

    def corrupt_record(self, record: Record) -> Record:
        return {**record, "internalNotes": "migrated from legacy CRM"}


class ResponseMissingField(Behaviour):
    name, category = "response-missing-field", "schema drift"
    description = "record bodies lack a required field ('taxSystem' for Timbrix, else the first required non-id field)"

    def __init__(self, missing_field: str = "taxSystem") -> None:
        self.missing = missing_field

    def corrupt_record(self, record: Record) -> Record:
        return {k: v for k, v in record.items() if k != self.missing}


class PhoneAsObject(Behaviour):
    name, category = "phone-as-object", "schema drift"
    description = "'phone' is sent as {\"number\": ...}, as the vendor spec once said"
    needs = frozenset({"timbrix"})

    def corrupt_record(self, record: Record) -> Record:
        if record.get("phone") is None:
            return record
        return {**record, "phone": {"number": record["phone"]}}


# -- status codes, content type, error format ---------------------------------------------------
class CreateReturns200(Behaviour):
    name, category = "create-returns-200", "status code"
    description = "POST answers 200 instead of 201"

    def rewrite(self, response: ResponseParts) -> ResponseParts:
        if response.method == "POST" and response.status == 201:
            return dataclasses.replace(response, status=200)
        return response


class DeleteReturns200(Behaviour):
    name, category = "delete-returns-200", "status code"
    description = "DELETE answers 200 with a JSON body instead of 204"

    def rewrite(self, response: ResponseParts) -> ResponseParts:
        if response.method == "DELETE" and response.status == 204:
            return dataclasses.replace(response, status=200, payload={"deleted": True}, content_type="application/json")
        return response


class Validation422(Behaviour):
    name, category = "validation-422", "status code"
    description = "request validation errors answer 422 instead of 400"

    def rewrite(self, response: ResponseParts) -> ResponseParts:
        if response.status != 400:
            return response
        payload = response.payload
        if isinstance(payload, dict):
            payload = {**payload, "statusCode": 422, "error": "UNPROCESSABLE_ENTITY"}
        return dataclasses.replace(response, status=422, payload=payload)


class ProblemJsonErrors(Behaviour):
    name, category = "problem-json-errors", "error format"
    description = "errors are application/problem+json, not {statusCode,message,error}"

    def rewrite(self, response: ResponseParts) -> ResponseParts:
        if response.status < 400 or not isinstance(response.payload, dict):
            return response
        payload = response.payload
        problem = {"type": "about:blank", "title": payload.get("error"), "status": response.status}
        problem["detail"] = payload.get("message")
        return dataclasses.replace(response, payload=problem, content_type="application/problem+json")


class TextContentType(Behaviour):
    name, category = "text-content-type", "content type"
    description = "JSON responses are labelled text/plain"

    def rewrite(self, response: ResponseParts) -> ResponseParts:
        if response.content_type.startswith("application/json"):
            return dataclasses.replace(response, content_type="text/plain; charset=utf-8")
        return response


# -- auth and tenant isolation --------------------------------------------------------------------
class AuthIgnored(Behaviour):
    name, category = "auth-ignored", "auth"
    description = "a missing or unknown token is treated as a member of the organization"

    def accepts_unknown_tokens(self) -> bool:
        return True


class MembershipIgnored(Behaviour):
    name, category = "membership-ignored", "auth"
    description = "a valid token reaches organizations it is not a member of"
    needs = frozenset({"named-tenant"})

    def ignores_membership(self) -> bool:
        return True


class CrossTenantRead(Behaviour):
    name, category = "cross-tenant-read", "tenant isolation"
    description = "GET by id finds customers of any organization"

    def reads_across_tenants(self) -> bool:
        return True


class ListAllTenants(Behaviour):
    name, category = "list-all-tenants", "tenant isolation"
    description = "the list returns every organization's customers"

    def lists_across_tenants(self) -> bool:
        return True


# -- persistence and update semantics -------------------------------------------------------------
class CreateUpserts(Behaviour):
    name, category = "create-upserts", "persistence"
    description = "POST with a taxId that exists answers 201 with the existing customer"
    needs = frozenset({"timbrix"})

    def upsert_field(self) -> str | None:
        return "taxId"


class NotPersisted(Behaviour):
    action: t.ClassVar[str] = ""

    def persists(self, action: str) -> bool:
        return action != self.action


class UpdateNotPersisted(NotPersisted):
    name, category, action = "update-not-persisted", "persistence", "update"
    description = "PUT answers the updated record but does not store it"


class CreateNotPersisted(NotPersisted):
    name, category, action = "create-not-persisted", "persistence", "create"
    description = "POST answers 201 but does not store the customer"


class DeleteNotPersisted(NotPersisted):
    name, category, action = "delete-not-persisted", "persistence", "delete"
    description = "DELETE answers 204 but the customer stays"


class PutReplaces(Behaviour):
    name, category = "put-replaces", "update semantics"
    description = "PUT replaces the record: unsent fields fall back to what a new record would have"

    def update_base(self, current: Record, fresh: Record) -> Record:
        return fresh


class CreatedAtMoves(Behaviour):
    name, category = "created-at-moves", "timestamps"
    description = "createdAt is set to the update time on every PUT"

    def moves_created(self) -> bool:
        return True


class UpdatedAtFrozen(Behaviour):
    name, category = "updated-at-frozen", "timestamps"
    description = "updatedAt does not move on update"

    def stamps_updates(self) -> bool:
        return False


# -- CFDI rules (the Timbrix plug-in asks) --------------------------------------------------------
class SkippedRule(Behaviour):
    category = "CFDI rule"
    needs = frozenset({"timbrix"})
    rule: t.ClassVar[str] = ""

    def skips_rule(self, rule: str) -> bool:
        return rule == self.rule


class CfdiRegimenPersona(SkippedRule):
    name, rule = "cfdi-regimen-persona", "regimen_persona"
    description = "a régimen that does not apply to the persona type is accepted"


class CfdiUsoRegimen(SkippedRule):
    name, rule = "cfdi-uso-regimen", "uso_regimen"
    description = "the uso/régimen compatibility matrix is not enforced"


class CfdiZipCatalog(SkippedRule):
    name, rule = "cfdi-zip-catalog", "zip_not_in_catalog"
    description = "ZIPs outside c_CodigoPostal are accepted"


class CfdiGenericRfc(SkippedRule):
    name, rule = "cfdi-generic-rfc", "generic_rfc_regimen"
    description = "generic RFCs (XAXX/XEXX) accept a régimen other than 616"


class CfdiUpdateUnmerged(Behaviour):
    name, category = "cfdi-update-unmerged", "CFDI rule"
    description = "PUT re-validates only when taxId, taxSystem and uso are all sent"
    needs = frozenset({"timbrix"})

    def revalidates_update(self, sent: t.AbstractSet[str]) -> bool:
        return {"taxId", "taxSystem", "defaultInvoiceUse"} <= sent


class ServerErrorLongName(Behaviour):
    name, category = "server-error-long-name", "server error"
    description = "a legalName over 100 characters crashes with 500"
    needs = frozenset({"timbrix"})

    def check_body(self, body: t.Mapping[str, t.Any]) -> None:
        if len(body.get("legalName") or "") > 100:
            raise RuntimeError("injected fault: legalName column is VARCHAR(100)")


FAULTS: dict[str, type[Behaviour]] = {
    fault.name: fault
    for fault in (
        ResponseExtraField,
        ResponseMissingField,
        PhoneAsObject,
        CreateReturns200,
        DeleteReturns200,
        Validation422,
        ProblemJsonErrors,
        TextContentType,
        AuthIgnored,
        MembershipIgnored,
        CrossTenantRead,
        ListAllTenants,
        CreateUpserts,
        UpdateNotPersisted,
        CreateNotPersisted,
        DeleteNotPersisted,
        PutReplaces,
        CreatedAtMoves,
        UpdatedAtFrozen,
        CfdiRegimenPersona,
        CfdiUsoRegimen,
        CfdiZipCatalog,
        CfdiGenericRfc,
        CfdiUpdateUnmerged,
        ServerErrorLongName,
    )
}
"""Every fault by name, in the order responses are rewritten."""


class UnknownFault(ValueError):
    pass


class InvalidBehaviour(ValueError):
    """A run-time behaviour or a ``Prefer`` header that cannot be applied (a 400 to the caller)."""


# -- run-time behaviours: what a client must survive, set while the server runs ---------------------
# Not bugs of an implementation (the kill score does not ask the suite to catch a slow answer),
# so they are not in FAULTS; a rule (``/__sandbox/behaviours``) may name any of BEHAVIOURS.
class ForcedStatus(Behaviour):
    name, category = "status", "answer"
    description = "answer this declared status with a contract-valid body (parameters: status, example, dynamic)"

    def __init__(self, preference: Preference) -> None:
        self.preference = preference

    def preferred(self) -> Preference | None:
        return self.preference

    @classmethod
    def from_parameters(cls, parameters: t.Mapping[str, t.Any]) -> Behaviour:
        _only(cls, parameters, {"status", "example", "dynamic"})
        status = parameters.get("status")
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            raise InvalidBehaviour("status needs an HTTP status between 100 and 599 ('status')")
        dynamic = bool(parameters.get("dynamic", False))
        return cls(Preference(status, parameters.get("example"), dynamic, origin="behaviour status"))


class Latency(Behaviour):
    name, category = "latency", "transport"
    description = "wait ms milliseconds before answering, or a random time up to maxMs (parameters: ms, maxMs)"

    def __init__(self, ms: float, max_ms: float | None = None) -> None:
        self.ms, self.max_ms = ms, max_ms

    def delay(self) -> float:
        return (self.ms if self.max_ms is None else random.uniform(self.ms, self.max_ms)) / 1000

    @classmethod
    def from_parameters(cls, parameters: t.Mapping[str, t.Any]) -> Behaviour:
        _only(cls, parameters, {"ms", "maxMs"})
        ms, max_ms = parameters.get("ms", 0), parameters.get("maxMs")
        if not isinstance(ms, int | float) or not 0 <= ms <= 60_000:
            raise InvalidBehaviour("latency needs 'ms' between 0 and 60000")
        if max_ms is not None and (not isinstance(max_ms, int | float) or not ms <= max_ms <= 60_000):
            raise InvalidBehaviour("latency's 'maxMs' must be between 'ms' and 60000")
        return cls(ms, max_ms)


class DroppedConnection(Behaviour):
    name, category = "drop-connection", "transport"
    description = "close the connection without answering (the client sees a reset or an empty reply)"

    def drops_connection(self) -> bool:
        return True


RUNTIME: dict[str, type[Behaviour]] = {b.name: b for b in (ForcedStatus, Latency, DroppedConnection)}
"""The behaviours that only make sense while the server runs (they are no bug to catch)."""

BEHAVIOURS: dict[str, type[Behaviour]] = {**FAULTS, **RUNTIME}
"""Everything a run-time rule can name: every fault, and the run-time behaviours."""


def _only(cls: type[Behaviour], parameters: t.Mapping[str, t.Any], allowed: set[str]) -> None:
    unknown = sorted(set(parameters) - allowed)
    if unknown:
        raise InvalidBehaviour(f"{cls.name} does not take {', '.join(unknown)} (it takes {', '.join(sorted(allowed))})")


@dataclasses.dataclass
class Rule:
    """A behaviour for some requests: one operation (or all), one tenant (or all), for the next
    ``remaining`` calls or until ``until`` (``time.monotonic``), or both, or for good."""

    id: int
    behaviour: Behaviour
    operation: str | None = None
    tenant: str | None = None
    remaining: int | None = None
    until: float | None = None
    startup: bool = False
    """Set by ``serve --fault``: for every operation and tenant, for the server's life."""

    def matches(self, operation: str, tenant: str | None) -> bool:
        return (self.operation is None or self.operation == operation) and (
            self.tenant is None or self.tenant == tenant
        )

    def describe(self, now: float) -> dict[str, t.Any]:
        return {
            "id": self.id,
            "behaviour": self.behaviour.name,
            "category": self.behaviour.category,
            "operation": self.operation,
            "tenant": self.tenant,
            "remaining": self.remaining,
            "secondsLeft": None if self.until is None else round(max(0.0, self.until - now), 3),
            "source": "startup" if self.startup else "runtime",
        }


class Schedule:
    """The run-time rules, matched per request on its operation and tenant. Each match uses one
    of a rule's calls; a rule is gone once its calls or its time run out."""

    def __init__(self, clock: t.Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.rules: list[Rule] = []
        self._next_id = 1

    def __len__(self) -> int:
        return len(self.rules)

    def add(self, behaviour: Behaviour, *, operation: str | None = None, tenant: str | None = None,
            times: int | None = None, seconds: float | None = None) -> Rule:
        until = None if seconds is None else self.clock() + seconds
        rule = Rule(self._next_id, behaviour, operation, tenant, times, until)
        self._next_id += 1
        self.rules.append(rule)
        return rule

    def take(self, operation: str, tenant: str | None) -> tuple[Behaviour, ...]:
        """The behaviours for this request, in the order they were set; uses one call of each."""
        now = self.clock()
        self.rules = [r for r in self.rules if r.until is None or r.until > now]
        taken = []
        for rule in self.rules:
            if rule.matches(operation, tenant):
                taken.append(rule.behaviour)
                if rule.remaining is not None:
                    rule.remaining -= 1
        self.rules = [r for r in self.rules if r.remaining is None or r.remaining > 0]
        return tuple(taken)

    def remove(self, rule_id: int) -> bool:
        kept = [r for r in self.rules if r.id != rule_id]
        found = len(kept) != len(self.rules)
        self.rules = kept
        return found

    def clear(self) -> None:
        self.rules = []

    def describe(self) -> list[dict[str, t.Any]]:
        now = self.clock()
        return [r.describe(now) for r in self.rules if r.until is None or r.until > now]


_REQUEST_FAULTS: contextvars.ContextVar[tuple[Behaviour, ...]] = contextvars.ContextVar(
    "timbrix_request_faults", default=()
)


def _traits(profile: Profile) -> frozenset[str]:
    traits = set()
    if profile.plugin == "timbrix":
        traits.add("timbrix")
    # Without a tenant named in the request (BeeL: the key is the account) there is no
    # membership to ignore.
    if profile.tenant or any(scope_params(r) for r in profile.resources.values()):
        traits.add("named-tenant")
    return frozenset(traits)


def available(profile: Profile) -> dict[str, type[Behaviour]]:
    """The faults a contract can take."""
    traits = _traits(profile)
    return {name: fault for name, fault in FAULTS.items() if fault.needs <= traits}


class Behaviours:
    """The active faults, asked as one: each hook answers as the faults that override it say,
    and as correct behaviour where none does."""

    def __init__(self, names: t.Iterable[str], profile: Profile) -> None:
        names = frozenset(names)
        allowed = available(profile)
        unknown = sorted(names - allowed.keys())
        if unknown:
            raise UnknownFault(
                f"unknown fault(s) for this contract: {', '.join(unknown)} (see `timbrix-sandbox faults`)"
            )
        shape = RecordShape.of(profile)
        self.names = names
        self.shape = shape
        self.profile = profile
        self.permanent: tuple[Behaviour, ...] = tuple(
            ResponseMissingField(shape.missing_field) if fault is ResponseMissingField else fault()
            for name, fault in FAULTS.items()
            if name in names
        )
        self.schedule = Schedule()
        """Rules set while the server runs (``/__sandbox/behaviours``), asked per request."""

    @property
    def active(self) -> tuple[Behaviour, ...]:
        """The startup faults, and those a run-time rule set for the request being answered."""
        extra = _REQUEST_FAULTS.get()
        return self.permanent + extra if extra else self.permanent

    def __bool__(self) -> bool:
        """Whether faults were injected at startup (the stack is assembled for them)."""
        return bool(self.permanent)

    @contextlib.contextmanager
    def acting(self, faults: tuple[Behaviour, ...]) -> t.Iterator[None]:
        """The engine, the policy and the plug-in see ``faults`` too, for one request's work."""
        token = _REQUEST_FAULTS.set(faults)
        try:
            yield
        finally:
            _REQUEST_FAULTS.reset(token)

    def only(self, faults: tuple[Behaviour, ...]) -> Behaviours:
        """These behaviours alone, as one (a rule's response faults, applied on the way out)."""
        view = copy.copy(self)
        view.permanent = faults
        return view

    def make(self, name: str, parameters: t.Mapping[str, t.Any]) -> Behaviour:
        """A rule's behaviour, by name, for this contract (``InvalidBehaviour`` if it cannot be)."""
        cls = BEHAVIOURS.get(name)
        if cls is None or (name in FAULTS and name not in available(self.profile)):
            known = ", ".join([*available(self.profile), *RUNTIME])
            raise InvalidBehaviour(f"unknown behaviour {name!r} for this contract (one of: {known})")
        if cls is ResponseMissingField:
            _only(cls, parameters, set())
            behaviour: Behaviour = ResponseMissingField(self.shape.missing_field)
        else:
            behaviour = cls.from_parameters(parameters)
        if behaviour.acts_on_access():
            raise InvalidBehaviour(
                f"{name} acts while the caller is identified, before a rule's operation and tenant are known: "
                "start the server with --fault " + name
            )
        return behaviour

    def settable(self) -> list[type[Behaviour]]:
        """What a run-time rule may name for this contract."""
        return [b for b in [*available(self.profile).values(), *RUNTIME.values()] if not b.acts_on_access()]

    def startup_rules(self) -> list[dict[str, t.Any]]:
        """``serve --fault`` as rules: every operation and tenant, for the server's life."""
        return [Rule(0, b, startup=True).describe(0.0) for b in self.permanent]

    def _any(self, hook: str, *args: t.Any) -> bool:
        return any(getattr(b, hook)(*args) for b in self.active)

    def ignores_membership(self) -> bool:
        return self._any("ignores_membership")

    def accepts_unknown_tokens(self) -> bool:
        return self._any("accepts_unknown_tokens")

    def reads_across_tenants(self) -> bool:
        return self._any("reads_across_tenants")

    def lists_across_tenants(self) -> bool:
        return self._any("lists_across_tenants")

    def persists(self, action: str) -> bool:
        return all(b.persists(action) for b in self.active)

    def upsert_field(self) -> str | None:
        return next((f for b in self.active if (f := b.upsert_field())), None)

    def update_base(self, current: Record, fresh: Record) -> Record:
        for behaviour in self.active:
            current = behaviour.update_base(current, fresh)
        return current

    def stamps_updates(self) -> bool:
        return all(b.stamps_updates() for b in self.active)

    def moves_created(self) -> bool:
        return self._any("moves_created")

    def check_body(self, body: t.Mapping[str, t.Any]) -> None:
        for behaviour in self.active:
            behaviour.check_body(body)

    def skips_rule(self, rule: str) -> bool:
        return self._any("skips_rule", rule)

    def revalidates_update(self, sent: t.AbstractSet[str]) -> bool:
        return all(b.revalidates_update(sent) for b in self.active)

    def corrupts_responses(self) -> bool:
        return any(
            type(b).corrupt_record is not Behaviour.corrupt_record or type(b).rewrite is not Behaviour.rewrite
            for b in self.active
        )

    def corrupt(self, payload: t.Any, depth: int = 0) -> t.Any:
        """Records anywhere in a body (a list, or inside an envelope such as BeeL's ``data``)."""
        if depth > 4:
            return payload
        if self.shape.matches(payload):
            for behaviour in self.active:
                payload = behaviour.corrupt_record(payload)
            return payload
        if isinstance(payload, list):
            return [self.corrupt(item, depth + 1) for item in payload]
        if isinstance(payload, dict):
            return {key: self.corrupt(value, depth + 1) for key, value in payload.items()}
        return payload

    def rewrite(self, response: ResponseParts) -> ResponseParts:
        if response.payload is not None and response.status < 400:
            response = dataclasses.replace(response, payload=self.corrupt(response.payload))
        for behaviour in self.active:
            response = behaviour.rewrite(response)
        return response

    # -- requests on their way in -------------------------------------------------------------
    def rewrites_requests(self) -> bool:
        hooks = ("request_path", "request_body", "refuses_head")
        return any(getattr(type(b), hook) is not getattr(Behaviour, hook) for b in self.active for hook in hooks)

    def max_body_bytes(self, declared: int) -> int:
        for behaviour in self.active:
            declared = behaviour.max_body_bytes(declared)
        return declared

    def request_path(self, path: str) -> str:
        for behaviour in self.active:
            path = behaviour.request_path(path)
        return path

    def request_body(self, body: t.Any) -> t.Any:
        for behaviour in self.active:
            body = behaviour.request_body(body)
        return body

    def refuses_head(self) -> bool:
        return self._any("refuses_head")


# -- blind spots of the suite before issue 13 (each caught by a behaviour scenario) ---------------
class ListNewestFirst(Behaviour):
    name, category = "list-newest-first", "list order"
    description = "the list is served newest first (the contract states oldest first)"
    needs = frozenset({"timbrix"})  # the contract that states its list order (x-sandbox-list-order)

    def rewrite(self, response: ResponseParts) -> ResponseParts:
        payload = response.payload
        if response.method != "GET" or response.status != 200:
            return response
        if isinstance(payload, list) and len(payload) > 1 and all(map(_looks_like_record, payload)):
            return dataclasses.replace(response, payload=payload[::-1])
        if isinstance(payload, dict):  # an envelope such as BeeL's {"data": [...]}
            flipped = {k: v[::-1] if isinstance(v, list) and v and all(map(_looks_like_record, v)) else v
                       for k, v in payload.items()}  # fmt: skip
            return dataclasses.replace(response, payload=flipped)
        return response


def _looks_like_record(value: t.Any) -> bool:
    return isinstance(value, dict) and any(key in value for key in ("id", "createdAt", "created_at"))


class RfcCaseInsensitive(Behaviour):
    name, category = "rfc-case-insensitive", "input normalisation"
    description = "a lowercase or padded RFC is trimmed and upper-cased, accepted and stored"
    needs = frozenset({"timbrix"})

    def request_body(self, body: t.Any) -> t.Any:
        if isinstance(body, dict) and isinstance(body.get("taxId"), str):
            return {**body, "taxId": body["taxId"].strip().upper()}
        return body


class BodyLimitRaised(Behaviour):
    name, category = "body-limit-10mib", "limits"
    description = "request bodies up to 10 MiB are read (the contract declares 413 over 1 MiB)"
    needs = frozenset({"timbrix"})  # the contract that declares its limit (x-sandbox-max-body-bytes)

    def max_body_bytes(self, declared: int) -> int:
        return 10 * 1024 * 1024


class HeadRefused(Behaviour):
    name, category = "head-refused", "HTTP semantics"
    description = "HEAD answers 405 where GET is served (HTTP requires HEAD wherever GET is)"

    def refuses_head(self) -> bool:
        return True


class LenientOrganizationId(Behaviour):
    name, category = "organization-id-lenient", "path parameters"
    description = "an organizationId in the path is trimmed, lower-cased and cut to 36 characters"
    needs = frozenset({"timbrix"})

    def request_path(self, path: str) -> str:
        head, marker, rest = path.partition("/organizations/")
        if not marker:
            return path
        segment, slash, tail = rest.partition("/")
        return f"{head}{marker}{segment.strip().lower()[:36]}{slash}{tail}"


FAULTS.update(
    {
        fault.name: fault
        for fault in (ListNewestFirst, RfcCaseInsensitive, BodyLimitRaised, HeadRefused, LenientOrganizationId)
    }  # fmt: skip
)
