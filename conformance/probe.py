"""The one HTTP client of the scenarios: it speaks as an :class:`Identity`, judges every answer
against the contract, records findings, and remembers what it created so that the run can
delete exactly that (and never a record that existed before it)."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import random
import typing as t
import uuid

import httpx

from timbrix_sandbox.contract.model import Operation
from timbrix_sandbox.contract.shapes import flatten, instance

from .causes import Exchange, classify
from .credentials import Placed, check_schemes, forged, masked, place
from .model import Finding, Options, Result, StopRun, curl_line
from .target import Target, describe

if t.TYPE_CHECKING:
    from .domains import Domain

NO_BODY: t.Any = object()
MEMBER, OUTSIDER = "member", "outsider"
MAX_PAGES = 50
"""How many pages of a paginated list the scenarios read looking for a record."""


@dataclasses.dataclass(frozen=True)
class Identity:
    """Who a request speaks as: a token, extra headers, the tenant it names in the path, and
    whose records it creates (so the run can delete them with the right credentials)."""

    what: str  # for messages: "without a token", "another tenant's credentials", ...
    token: str | None
    headers: dict[str, str]
    tenant: str | None
    owner: str = MEMBER
    auth: Placed = dataclasses.field(default_factory=Placed)
    """The ``--credential`` schemes' credentials, placed where their schemes say."""
    valid: bool = True
    """Speaks with credentials the server issued (not the anonymous or the unknown caller)."""

    def send(self) -> dict[str, str]:
        bearer = {"Authorization": f"Bearer {self.token}"} if self.token is not None else {}
        return {**self.headers, **self.auth.headers, **bearer}

    def query(self) -> dict[str, str]:
        return dict(self.auth.query)

    @property
    def presents(self) -> bool:
        """Sends any credential at all (the anonymous caller does not)."""
        return self.token is not None or bool(self.auth.headers or self.auth.query)


def identities(options: Options, target: Target) -> dict[str, Identity | None]:
    """The member, the anonymous and unknown callers, and, with outsider credentials, the
    outsider in its own tenant and the outsider naming *our* tenant (where the contract lets a
    request name one: a tenant path parameter or header)."""
    security = target.security
    check_schemes(security, options.credentials)
    member = Identity(
        "the member's credentials",
        options.token,
        dict(options.headers),
        options.organization_id,
        auth=place(security, options.credentials),
    )
    tenant_header = target.profile.tenant.get("header")
    named = {k: v for k, v in options.headers.items() if tenant_header and k.lower() == tenant_header.lower()}
    outsider = intruder = None
    if options.outsider_token:
        if not target.scope or options.outsider_organization_id:
            outsider = Identity(
                "another tenant's credentials",
                options.outsider_token,
                dict(options.outsider_headers),
                options.outsider_organization_id,
                OUTSIDER,
            )
        if target.scope or named:
            intruder = Identity(
                "another tenant's credentials naming this tenant",
                options.outsider_token,
                {**options.outsider_headers, **named},
                options.organization_id,
            )
    return {
        "member": member,
        "anonymous": dataclasses.replace(member, what="without a token", token=None, auth=Placed(), valid=False),
        "unknown": dataclasses.replace(
            member,
            what="with an unknown token",
            token=f"invalid-{uuid.uuid4().hex[:8]}" if options.token is not None else None,
            auth=place(security, forged(security, options.credentials)),
            valid=False,
        ),
        "outsider": outsider,
        "intruder": intruder,
    }


class Probe:
    """HTTP for the scenarios; records tallies and findings, tracks what it created."""

    def __init__(
        self, target: Target, domain: Domain, result: Result, existing: set[str], rng: random.Random | None = None
    ) -> None:
        self.target = target
        self.domain = domain
        self.options = target.options
        self.result = result
        self.existing = existing  # keys that predate the run: never tracked, never written, never deleted
        self.created: set[tuple[str, str]] = set()  # (owner, key), shared with the fuzz tracker
        self.rng = rng or random.Random(result.seed)
        # From the seed, so that the same seed sends the same bodies (names carry the run id).
        self.run = f"{self.rng.getrandbits(32):08x}"
        self._creates = itertools.count()
        self.who = identities(self.options, target)
        self.member: Identity = self.who["member"]
        self.http = httpx.Client(base_url=self.options.api, timeout=30)
        self.anchor = self.victim = target.absent_id()

    def close(self) -> None:
        self.http.close()

    # -- requests ----------------------------------------------------------------------------

    def call(
        self,
        operation: Operation,
        record_id: t.Any = None,
        body: t.Any = NO_BODY,
        *,
        who: Identity | None = None,
        check: str | None = None,
        want: t.Collection[int] = (),
        same: t.Any = NO_BODY,
        what: str = "",
        layer: str = "behaviour",
        query: t.Mapping[str, t.Any] | None = None,
    ) -> httpx.Response:
        """Send, judge the answer against the contract, track a create; with ``check``, also
        expect a status in ``want`` (an error status: in the contract's error format; 204: no
        body) and, with ``same``, that the answer carries exactly that record."""
        who = who or self.member
        response = self.http.request(
            operation.method,
            self.target.url(operation, record_id, who.tenant),
            params={**who.query(), **(query or {})},
            **encoded(operation, body, who.send()),
        )
        if operation.action == "create":
            # Before any verdict: a create answered with an undeclared 200 (or a fail-fast stop
            # right after) must still be deleted at the end.
            self._track(operation, response, who, body)
        problem = self.target.nonconformance(operation, response)
        status = response.status_code
        self.expect(
            operation, "response_conformance", problem is None, problem or "", record_id, body, who, status=status
        )
        want = self.target.stand_ins(operation, want) if check is not None else want
        if check is not None and want:  # none left: the contract declares no answer to judge by
            shown = self.target.record(response, operation) if same is not NO_BODY else None
            ok = self.answered(operation, response, want) and (same is NO_BODY or self.target.same_record(shown, same))
            wanted = "/".join(map(str, want)) + (" with the record as written" if same is not NO_BODY else "")
            if any(status >= 400 for status in want):
                wanted += " in the contract's error format"
            message = f"{what or who.what}: expected {wanted}, got {describe(response)}"
            self.expect(operation, check, ok, message, record_id, body, who, layer, status=status)
        return response

    def answered(self, operation: Operation, response: httpx.Response, want: t.Collection[int]) -> bool:
        if any(status >= 400 for status in want):
            return self.target.error_ok(operation, response, want)
        return response.status_code in want and (response.status_code != 204 or not response.content)

    def _track(self, operation: Operation, response: httpx.Response, who: Identity, body: t.Any) -> None:
        """Remember a record a create made, whatever status it was answered with."""
        key = self.target.key(self.target.record(response, operation)) if response.status_code < 400 else None
        if key is None:
            return
        if key in self.existing:
            message = f"a create answered with the id of a record that existed before the run: {key}"
            self.expect(operation, "create_then_read", False, message, body=body, who=who)
        else:
            self.created.add((who.owner, key))

    def expect(
        self,
        operation: Operation,
        check: str,
        ok: bool,
        message: str,
        record_id: t.Any = None,
        body: t.Any = NO_BODY,
        who: Identity | None = None,
        layer: str = "behaviour",
        *,
        status: int | None = None,
    ) -> bool:
        label = f"{operation.method} {operation.path}"
        self.result.record(label, status, check, ok)
        if not ok:
            who = who or self.member
            url = self.options.api + self.target.url(operation, record_id, who.tenant)
            sent = None if body is NO_BODY else body
            curl = curl_line(operation.method, url, sent, who.token is not None, who.headers, masked(who.auth))
            finding = Finding(layer, label, check, message, curl)
            exchange = Exchange(check, operation.method, operation.path, status, credentialed=who.valid)
            cause = classify(self.target.spec, exchange)
            finding.cause, finding.rule, finding.why = cause.cause, cause.rule, cause.why
            self.result.findings.append(finding)
            if self.options.fail_fast:
                raise StopRun()
        return ok

    # -- helpers of the scenarios --------------------------------------------------------------

    def create(self, body: dict | None = None, who: Identity | None = None, layer: str = "behaviour") -> str | None:
        """A record of the run's own (``None``, and a finding, if a valid create is refused)."""
        operation = self.target.op("create")
        body = self.create_body() if body is None else body
        response = self.call(operation, body=body, who=who)
        key = self.target.key(self.target.record(response, operation)) if 200 <= response.status_code < 300 else None
        if key in self.existing:
            return None  # flagged when the answer came in
        if key is None:
            message = f"a valid create was refused: {describe(response)}"
            self.expect(operation, "create_then_read", False, message, body=body, who=who, layer=layer)
            return None
        return key

    def read(self, key: str, who: Identity | None = None) -> t.Any:
        """The record as the server shows it now: its read, or, for a resource with no read
        (Conduit's comments), its entry in the list (``None``: not found)."""
        read = self.target.op("read")
        if read is None:
            return next((r for r in self.listed_records(who) or [] if self.target.key(r) == key), None)
        response = self.call(read, key, who=who)
        return self.target.record(response, read) if response.status_code == 200 else None

    def listed(self, who: Identity | None = None) -> list[str] | None:
        """The keys the list shows (``None``: the contract has no list operation)."""
        records = self.listed_records(who)
        return None if records is None else [k for k in map(self.target.key, records) if k is not None]

    def list_query(self) -> dict[str, str] | None:
        """What the list is asked with for the run's records: the query parameters it requires,
        valued as the run's creates send them (``None``: no list operation, or one that requires
        a parameter the creates do not name - Asana's ``GET /webhooks?workspace=`` - so it
        cannot be asked for them, and what it answers says nothing of the run's records)."""
        listing = self.target.op("list")
        if listing is None:
            return None
        sent = self.target.with_list_filters(self.domain.create_body(self.target, self.run))
        filters = self.target.list_filters(listing, sent)
        return filters if set(self.target.required_query(listing)) <= set(filters) else None

    def listed_records(self, who: Identity | None = None) -> list[t.Any] | None:
        """The records the list shows, every page of it (``None``: no list operation, or one
        that cannot be asked for the run's records, :meth:`list_query`)."""
        listing, filters = self.target.op("list"), self.list_query()
        if listing is None or filters is None:
            return None
        paging = listing.listing

        def page(query: dict | None) -> list[t.Any]:
            response = self.call(listing, who=who, query={**filters, **(query or {})})
            records = self.target.record(response, listing) if response.status_code == 200 else None
            return records if isinstance(records, list) else []

        if paging is None or paging.page_param is None:
            return page(None)
        records: list[t.Any] = []
        for number in range(1, MAX_PAGES + 1):  # a paginated list (Museum's page/limit): every page
            found = page({paging.page_param: number})
            records += found
            if not found or (paging.default_limit and len(found) < paging.default_limit):
                break
        return records

    def create_body(self, **overrides: t.Any) -> dict:
        """The domain's valid create body, naming what the list is filtered by, and a record of
        its own where the client chooses the id (a fresh one per create, from the seed: the same
        seed sends the same ids)."""
        body = self.target.with_list_filters(self.domain.create_body(self.target, self.run, **overrides))
        if self.target.resource is None or self.target.resource.id_field in overrides:
            return body
        digest = hashlib.sha256(f"{self.run}:{next(self._creates)}".encode()).hexdigest()
        return self.target.with_fresh_id(body, "c" + digest[:15])

    def delete_body(self, operation: Operation) -> t.Any:
        """What a delete sends: nothing, or a minimal valid body where the delete takes one
        (Discourse's ``DELETE /posts/{id}.json`` wants ``force_destroy``)."""
        return instance(operation.body_schema) if operation.body_schema else NO_BODY

    def payload(self, operation: Operation) -> t.Any:
        """A valid body for any of the resource's operations (for probes of auth and tenancy)."""
        if operation.body_schema is None:
            return NO_BODY
        if operation.action == "delete":
            return self.delete_body(operation)
        create_body = self.create_body()
        if operation.action == "create":
            return create_body
        change = self.domain.update_body(self.target, create_body, {}, self.run)
        if change is not None:
            return change
        return {**create_body, **self.domain.update_required(self.target, create_body)}

    def matches(
        self,
        operation: Operation,
        check: str,
        expected: t.Mapping[str, t.Any],
        actual: t.Any,
        what: str,
        record_id: t.Any = None,
        body: t.Any = NO_BODY,
        layer: str = "behaviour",
    ) -> bool:
        """Every field of ``expected`` (nested objects: every field of theirs) is in ``actual``."""
        differing = differences(expected, actual)
        return self.expect(operation, check, not differing, f"{what}: {differing}", record_id, body, layer=layer)

    def unchanged(
        self, operation: Operation, check: str, key: str, before: t.Any, what: str, body: t.Any = NO_BODY, **kw: t.Any
    ) -> bool:
        """Reads the record back: it must be exactly ``before``."""
        after = self.read(key)
        return self.expect(operation, check, after == before, f"{what}: {after!r:.300}", key, body, **kw)

    def cleanup(self) -> tuple[int, list[str]]:
        """Delete every record the run created, with its owner's credentials; (how many were
        deleted, what could not be removed and why). 404 means already gone (the scenarios
        delete their own)."""
        delete = self.target.op("delete")
        owners = {MEMBER: self.member, OUTSIDER: self.who["outsider"]}
        deleted, left = 0, []
        for owner, key in sorted(self.created):
            who = owners.get(owner)
            if key in self.existing:
                continue
            if delete is None or who is None:
                where = self.target.resource.collection_path if self.target.resource is not None else ""
                why = "the contract has no delete operation" if delete is None else "no credentials"
                left.append(f"{where} {key}: {why}")
                continue
            url = self.target.url(delete, key, who.tenant)
            try:
                sent = self.delete_body(delete)
                request = encoded(delete, sent, who.send())
                response = self.http.request(delete.method, url, params=who.query(), **request)
            except httpx.HTTPError as exc:
                left.append(f"{key}: DELETE {url} failed: {exc}")
                continue
            if 200 <= response.status_code < 300:
                deleted += 1
            elif response.status_code not in (404, *self.target.stand_ins(delete, (404,))):
                left.append(f"{key}: DELETE {url} answered {describe(response)}")
        return deleted, left


FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"


def encoded(operation: Operation, body: t.Any, headers: dict[str, str]) -> dict[str, t.Any]:
    """The request as the operation takes its body: JSON, or a form where the operation takes
    only forms (Twilio's creates and updates). A form with no fields is sent as an empty body
    *with* its Content-Type: without one it would be an omitted body, which an optional
    ``requestBody`` allows (the create without its one required field would be valid)."""
    if body is NO_BODY:
        return {"headers": headers}
    body = wrapped(operation, body)
    media = operation.body_media
    if media and MULTIPART in media and not any("json" in m or m == FORM for m in media) and isinstance(body, dict):
        if not body:  # no parts at all, still multipart (without a Content-Type it is an omitted body)
            empty = {"Content-Type": f"{MULTIPART}; boundary=conformance"}
            return {"headers": {**headers, **empty}, "content": b"--conformance--\r\n"}
        return {"headers": headers, "files": multipart(operation.body_schema or {}, body)}
    if media and FORM in media and not any("json" in m for m in media) and isinstance(body, dict):
        if not body:
            return {"headers": {**headers, "Content-Type": FORM}, "content": b""}
        flat = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in body.items()}
        return {"headers": headers, "data": {k: str(v).lower() if isinstance(v, bool) else v for k, v in flat.items()}}
    return {"headers": headers, "json": body}


def multipart(schema: dict, body: dict) -> list[tuple[str, tuple[str | None, bytes]]]:
    """A body as ``multipart/form-data`` parts (Asana's ``POST /attachments`` takes nothing
    else): a ``format: binary`` field is a file part, any other a plain field, objects and
    arrays as JSON."""
    properties = flatten(schema).get("properties", {})
    parts: list[tuple[str, tuple[str | None, bytes]]] = []
    for name, value in body.items():
        binary = flatten(properties.get(name) or {}).get("format") == "binary"
        parts.append((name, (f"{name}.txt" if binary else None, _form_text(value).encode())))
    return parts


def _form_text(value: t.Any) -> str:
    """A field's value as a form or multipart part carries it."""
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def wrapped(operation: Operation, body: t.Any) -> t.Any:
    """The body as the operation takes it: a record under its request wrapper where the contract
    has one (Conduit's ``{"article": {...}}``); the scenarios build records, not envelopes."""
    return {operation.body_key: body} if operation.body_key and isinstance(body, dict) else body


def differences(expected: t.Mapping[str, t.Any], actual: t.Any, prefix: str = "") -> list[str]:
    """The dotted names of the fields of ``expected`` that ``actual`` does not carry as expected."""
    if not isinstance(actual, dict):
        return [prefix.rstrip(".") or "(not an object)"]
    out = []
    for name, value in expected.items():
        if isinstance(value, dict) and isinstance(actual.get(name), dict):
            out += differences(value, actual[name], f"{prefix}{name}.")
        elif actual.get(name, NO_BODY) != value:
            out.append(f"{prefix}{name}")
    return sorted(out)
