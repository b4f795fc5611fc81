"""Behaviour and targeted domain scenarios: explicit request sequences with known outcomes.

Fuzzing finds cross-field faults only by chance (a planted "CFDI rule not enforced" can hide
for several seeds), so the rules and the resource semantics are also exercised here on
purpose. Expectations come from the request and the ``cfdi`` oracle. Everything created is
tracked and deleted at the end; nothing that existed before is written to.
"""

from __future__ import annotations

import random
import time
import typing as t
import uuid

import httpx

import cfdi

from . import oracle
from .model import Finding, Options, Result, StopRun, curl_line

MORAL_RFC = "ABC101010111"
FISICA_RFC = "GODE561231GR8"
COLLECTION = "/organizations/{org}/customers"
ITEM = "/organizations/{org}/customers/{id}"
LABELS = {
    ("GET", COLLECTION): "GET /organizations/{organizationId}/customers",
    ("POST", COLLECTION): "POST /organizations/{organizationId}/customers",
    ("GET", ITEM): "GET /organizations/{organizationId}/customers/{customerId}",
    ("PUT", ITEM): "PUT /organizations/{organizationId}/customers/{customerId}",
    ("DELETE", ITEM): "DELETE /organizations/{organizationId}/customers/{customerId}",
}


def customer_body(run: str, **overrides: t.Any) -> dict[str, t.Any]:
    body = {
        "legalName": f"Conformance {run}",
        "taxId": MORAL_RFC,
        "taxSystem": "601",
        "email": "conformance@example.com",
        "phone": "5550000000",
        "defaultInvoiceUse": "G03",
        "addressStreet": "Calle Prueba",
        "addressExterior": "1",
        "addressNeighborhood": "Centro",
        "addressCity": "Monterrey",
        "addressMunicipality": "Monterrey",
        "addressZip": "64000",
        "addressState": "Nuevo León",
    }
    body.update(overrides)
    return body


class Probe:
    """An HTTP client that records findings and remembers what it created."""

    def __init__(
        self, options: Options, result: Result, created: set[tuple[str, str]], existing: set[str] = frozenset()
    ) -> None:
        self.options = options
        self.result = result
        self.created = created  # (organizationId, customerId), shared with the fuzz tracker
        self.existing = existing  # ids that predate the run: never tracked, never deleted
        self.http = httpx.Client(base_url=options.api, timeout=30)
        self.run = uuid.uuid4().hex[:8]

    def headers(self, token: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"} if token is not None else {}

    def request(self, method: str, template: str, *, token: str | None, org: str, id: str = "", body=None):
        path = template.format(org=org, id=id)
        response = self.http.request(method, path, headers=self.headers(token), json=body)
        if method == "POST" and response.status_code == 201:
            try:
                customer_id = response.json()["id"]
            except (ValueError, KeyError, TypeError):
                customer_id = None
            if isinstance(customer_id, str) and customer_id not in self.existing:
                self.created.add((org, customer_id))
            elif customer_id in self.existing:
                self.expect(
                    "behaviour",
                    "create_then_read",
                    "POST",
                    COLLECTION,
                    False,
                    f"POST answered 201 with the id of a customer that existed before the run: {customer_id}",
                    org=org,
                    body=body,
                )
        return response

    def expect(
        self,
        layer: str,
        check: str,
        method: str,
        template: str,
        ok: bool,
        message: str,
        *,
        org: str,
        id: str = "",
        body=None,
        token: bool = True,
    ) -> bool:
        label = LABELS[(method, template)]
        self.result.tally(label, check, ok)
        if not ok:
            url = self.options.api + template.format(org=org, id=id)
            self.result.findings.append(Finding(layer, label, check, message, curl_line(method, url, body, token)))
            if self.options.fail_fast:
                raise StopRun()
        return ok

    def create(self, body: dict, *, token: str | None = None, org: str | None = None) -> httpx.Response:
        return self.request(
            "POST",
            COLLECTION,
            token=token or self.options.token,
            org=org or self.options.organization_id,
            body=body,
        )


def _vendor_error(response: httpx.Response, status: int) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return (
        response.status_code == status
        and isinstance(body, dict)
        and body.get("statusCode") == status
        and isinstance(body.get("message"), str)
        and isinstance(body.get("error"), str)
    )


def _describe(response: httpx.Response) -> str:
    return f"{response.status_code} {response.text[:200]}"


def auth_required(probe: Probe) -> None:
    """No token or an unknown token: 401 on every operation, in the vendor format."""
    org = probe.options.organization_id
    victim = _new_customer(probe)
    for token, what in ((None, "without a token"), (f"invalid-{probe.run}", "with an unknown token")):
        for method, template in LABELS:
            body = customer_body(probe.run) if method == "POST" else ({"legalName": "x"} if method == "PUT" else None)
            response = probe.request(method, template, token=token, org=org, id=victim or "0" * 24, body=body)
            probe.expect(
                "behaviour",
                "auth_required",
                method,
                template,
                _vendor_error(response, 401),
                f"{what}: expected 401 in the vendor format, got {_describe(response)}",
                org=org,
                id=victim or "",
                body=body,
                token=token is not None,
            )


def outsider_forbidden(probe: Probe) -> None:
    """A valid token that is not a member of the organization: 403 on every operation."""
    options = probe.options
    if not options.outsider_token:
        return
    org = options.organization_id
    victim = _new_customer(probe)
    for method, template in LABELS:
        body = customer_body(probe.run) if method == "POST" else ({"legalName": "x"} if method == "PUT" else None)
        response = probe.request(
            method, template, token=options.outsider_token, org=org, id=victim or "0" * 24, body=body
        )
        probe.expect(
            "behaviour",
            "tenant_isolation",
            method,
            template,
            _vendor_error(response, 403),
            f"outsider token: expected 403, got {_describe(response)}",
            org=org,
            id=victim or "",
            body=body,
        )


def foreign_customer_not_found(probe: Probe) -> None:
    """Another organization's customer id, asked for under our organization: 404, never leaked."""
    options = probe.options
    if not (options.outsider_token and options.outsider_organization_id):
        return
    created = probe.create(customer_body(probe.run), token=options.outsider_token, org=options.outsider_organization_id)
    if created.status_code != 201:
        return
    foreign = created.json()["id"]
    org = options.organization_id
    listed = probe.request("GET", COLLECTION, token=options.token, org=org)
    leaked = listed.status_code == 200 and any(
        isinstance(c, dict) and c.get("id") == foreign for c in (listed.json() if listed.status_code == 200 else [])
    )
    probe.expect(
        "behaviour",
        "tenant_isolation",
        "GET",
        COLLECTION,
        not leaked,
        "another organization's customer appears in this organization's list",
        org=org,
    )
    for method, template in (("GET", ITEM), ("PUT", ITEM), ("DELETE", ITEM)):
        body = {"legalName": "Hijacked"} if method == "PUT" else None
        response = probe.request(method, template, token=options.token, org=org, id=foreign, body=body)
        probe.expect(
            "behaviour",
            "tenant_isolation",
            method,
            template,
            _vendor_error(response, 404),
            f"another organization's customer: expected 404, got {_describe(response)}",
            org=org,
            id=foreign,
            body=body,
        )


def _new_customer(probe: Probe, **overrides: t.Any) -> str | None:
    response = probe.create(customer_body(probe.run, **overrides))
    return response.json().get("id") if response.status_code == 201 else None


def create_read_update_delete(probe: Probe) -> None:
    """Create then read back; partial update semantics; delete then 404 everywhere."""
    options, org = probe.options, probe.options.organization_id
    body = customer_body(probe.run, addressInterior="2B")
    response = probe.create(body)
    if not probe.expect(
        "behaviour",
        "create_then_read",
        "POST",
        COLLECTION,
        response.status_code == 201,
        f"valid create: expected 201, got {_describe(response)}",
        org=org,
        body=body,
    ):
        return
    created = response.json()
    cid = created["id"]
    expected_fields = oracle.apply_update({"address": {}}, body)
    mismatched = [k for k, v in expected_fields.items() if k != "address" and created.get(k) != v]
    mismatched += [
        f"address.{k}" for k, v in expected_fields["address"].items() if created.get("address", {}).get(k) != v
    ]
    probe.expect(
        "behaviour",
        "create_then_read",
        "POST",
        COLLECTION,
        not mismatched,
        f"created record does not carry the sent fields: {mismatched}",
        org=org,
        body=body,
    )
    read = probe.request("GET", ITEM, token=options.token, org=org, id=cid)
    probe.expect(
        "behaviour",
        "create_then_read",
        "GET",
        ITEM,
        read.status_code == 200 and read.json() == created,
        f"GET after create differs: {_describe(read)}",
        org=org,
        id=cid,
    )
    listed = probe.request("GET", COLLECTION, token=options.token, org=org)
    probe.expect(
        "behaviour",
        "create_then_read",
        "GET",
        COLLECTION,
        listed.status_code == 200 and any(c.get("id") == cid for c in listed.json()),
        "created customer missing from the list",
        org=org,
    )

    time.sleep(1.05)  # so a server with whole-second timestamps can still show updatedAt moving
    change = {"addressCity": "San Pedro Garza García", "phone": None}
    updated = probe.request("PUT", ITEM, token=options.token, org=org, id=cid, body=change)
    if probe.expect(
        "behaviour",
        "partial_update",
        "PUT",
        ITEM,
        updated.status_code == 200,
        f"partial update: expected 200, got {_describe(updated)}",
        org=org,
        id=cid,
        body=change,
    ):
        after = updated.json()
        want = oracle.apply_update(created, change)
        diffs = sorted(
            {k for k in want if k not in ("updatedAt", "address") and after.get(k) != want[k]}
            | {f"address.{k}" for k in want["address"] if after.get("address", {}).get(k) != want["address"][k]}
        )
        probe.expect(
            "behaviour",
            "partial_update",
            "PUT",
            ITEM,
            not diffs,
            f"fields other than the sent ones changed, or sent ones did not: {diffs}",
            org=org,
            id=cid,
            body=change,
        )
        probe.expect(
            "behaviour",
            "partial_update",
            "PUT",
            ITEM,
            after.get("createdAt") == created["createdAt"],
            f"createdAt changed: {created['createdAt']} -> {after.get('createdAt')}",
            org=org,
            id=cid,
            body=change,
        )
        probe.expect(
            "behaviour",
            "partial_update",
            "PUT",
            ITEM,
            str(after.get("updatedAt")) > created["updatedAt"],
            f"updatedAt did not move: {created['updatedAt']} -> {after.get('updatedAt')}",
            org=org,
            id=cid,
            body=change,
        )
        again = probe.request("GET", ITEM, token=options.token, org=org, id=cid)
        probe.expect(
            "behaviour",
            "partial_update",
            "GET",
            ITEM,
            again.status_code == 200 and again.json() == after,
            f"GET after update differs from the update's response: {_describe(again)}",
            org=org,
            id=cid,
        )

    deleted = probe.request("DELETE", ITEM, token=options.token, org=org, id=cid)
    probe.expect(
        "behaviour",
        "delete_then_404",
        "DELETE",
        ITEM,
        deleted.status_code == 204 and not deleted.content,
        f"delete: expected 204 with no body, got {_describe(deleted)}",
        org=org,
        id=cid,
    )
    for method in ("GET", "PUT", "DELETE"):
        body = {"legalName": "x"} if method == "PUT" else None
        gone = probe.request(method, ITEM, token=options.token, org=org, id=cid, body=body)
        probe.expect(
            "behaviour",
            "delete_then_404",
            method,
            ITEM,
            _vendor_error(gone, 404),
            f"after delete: expected 404, got {_describe(gone)}",
            org=org,
            id=cid,
            body=body,
        )


def _invalid_cases() -> list[tuple[str, dict[str, str]]]:
    """One schema-valid body per CFDI rule kind (rfc_format is a schema matter)."""
    return [
        ("rfc_date", {"taxId": "ABC990231AB1"}),
        ("regimen_not_in_catalog", {"taxSystem": "609"}),
        ("regimen_persona", {"taxSystem": "621"}),
        ("regimen_persona", {"taxId": FISICA_RFC}),
        ("generic_rfc_regimen", {"taxId": "XAXX010101000", "taxSystem": "612"}),
        ("uso_not_in_catalog", {"defaultInvoiceUse": "P01"}),
        ("uso_persona", {"defaultInvoiceUse": "D01"}),
        ("uso_regimen", {"taxId": FISICA_RFC, "taxSystem": "605", "defaultInvoiceUse": "G01"}),
        ("uso_regimen", {"taxId": FISICA_RFC, "taxSystem": "616", "defaultInvoiceUse": "G03"}),
        ("zip_not_in_catalog", {"addressZip": "00000"}),
        ("zip_not_in_catalog", {"addressZip": "17000"}),
    ]


def _valid_combinations(rng: random.Random, count: int, strict: bool = False) -> list[dict[str, str]]:
    combos = []
    for rfc in (MORAL_RFC, FISICA_RFC, "XAXX010101000"):
        for regimen in cfdi.REGIMENES:
            for uso in cfdi.USOS:
                overrides = {"taxId": rfc, "taxSystem": regimen, "defaultInvoiceUse": uso}
                if oracle.expected_violation(oracle.CREATE, customer_body("x", **overrides), strict=strict) is None:
                    combos.append(overrides)
    must = [
        c
        for c in combos
        if (c["taxSystem"], c["defaultInvoiceUse"]) in {("616", "G02"), ("605", "CN01"), ("610", "S01")}
    ]
    return must + rng.sample(combos, min(count, len(combos)))


def fiscal_rules_targeted(probe: Probe, rng: random.Random) -> None:
    """Every CFDI rule kind rejected on create and on update (merged record), with the
    documented message where there is one; valid combinations accepted and read back."""
    options, org = probe.options, probe.options.organization_id
    for rule, overrides in _invalid_cases():
        body = customer_body(probe.run, **overrides)
        expected = oracle.expected_violation(oracle.CREATE, body, strict=options.strict_rfc)
        assert expected is not None and expected.rule == rule, (rule, overrides)
        response = probe.create(body)
        ok = _vendor_error(response, 400) and (
            rule not in ("regimen_persona", "uso_persona", "uso_regimen")
            or response.json()["message"] == expected.message
        )
        probe.expect(
            "domain",
            "fiscal_rules",
            "POST",
            COLLECTION,
            ok,
            f"{rule}: expected 400 {expected.message!r}, got {_describe(response)}",
            org=org,
            body=body,
        )

    anchor = _new_customer(probe)
    if anchor:
        before = probe.request("GET", ITEM, token=options.token, org=org, id=anchor).json()
        for _rule, overrides in _invalid_cases():
            expected = oracle.expected_violation(oracle.UPDATE, overrides, before, strict=options.strict_rfc)
            if expected is None:
                continue
            response = probe.request("PUT", ITEM, token=options.token, org=org, id=anchor, body=overrides)
            probe.expect(
                "domain",
                "fiscal_rules",
                "PUT",
                ITEM,
                _vendor_error(response, 400),
                f"{expected.rule} on the merged record: expected 400, got {_describe(response)}",
                org=org,
                id=anchor,
                body=overrides,
            )
            after = probe.request("GET", ITEM, token=options.token, org=org, id=anchor)
            probe.expect(
                "domain",
                "rejected_update_changes_nothing",
                "PUT",
                ITEM,
                after.status_code == 200 and after.json() == before,
                f"a rejected update changed the record: {_describe(after)}",
                org=org,
                id=anchor,
                body=overrides,
            )

    for overrides in _valid_combinations(rng, 8, options.strict_rfc):
        body = customer_body(probe.run, **overrides)
        response = probe.create(body)
        ok = response.status_code == 201
        if ok:
            got = response.json()
            ok = all(got.get(k) == v for k, v in overrides.items())
            read = probe.request("GET", ITEM, token=options.token, org=org, id=got.get("id", ""))
            ok = ok and read.status_code == 200 and all(read.json().get(k) == v for k, v in overrides.items())
        probe.expect(
            "domain",
            "fiscal_rules",
            "POST",
            COLLECTION,
            ok,
            f"valid combination {overrides} not accepted and stored as sent: {_describe(response)}",
            org=org,
            body=body,
        )


def _resolve(contract: dict, schema: dict) -> dict:
    """Flatten ``$ref`` and ``allOf`` into one dict of keywords (enough for string limits)."""
    if "$ref" in schema:
        target = contract
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        schema = {**_resolve(contract, target), **{k: v for k, v in schema.items() if k != "$ref"}}
    merged: dict = {}
    for part in schema.get("allOf", []):
        merged.update(_resolve(contract, part))
    merged.update({k: v for k, v in schema.items() if k != "allOf"})
    return merged


def longest_text_fields(contract_path) -> dict[str, str]:
    """Every free-text create field (no pattern of its own) at its contract ``maxLength``."""
    import yaml

    with open(contract_path, encoding="utf-8") as handle:
        contract = yaml.safe_load(handle)
    schemas = contract["components"]["schemas"]
    text_pattern = _resolve(contract, schemas["Text"]).get("pattern")
    longest = {}
    for name, prop in _resolve(contract, schemas["CreateCustomer"]).get("properties", {}).items():
        prop = _resolve(contract, prop)
        if prop.get("type") == "string" and prop.get("maxLength") and prop.get("pattern") in (None, text_pattern):
            longest[name] = "Ñ" * prop["maxLength"]
    return longest


def boundary_lengths(probe: Probe) -> None:
    """Every free-text field at the maximum length the contract allows is accepted on create
    and on update, and echoed intact. Fuzzing reaches these boundaries only by chance: a
    planted crash above 100 characters survived some seeds."""
    longest = longest_text_fields(probe.options.contract)
    if not longest:
        return
    options, org = probe.options, probe.options.organization_id
    body = customer_body(probe.run, **longest)
    response = probe.create(body)
    probe.expect(
        "behaviour",
        "boundary_lengths",
        "POST",
        COLLECTION,
        response.status_code == 201,
        f"maximum-length fields {sorted(longest)}: expected 201, got {_describe(response)}",
        org=org,
        body=body,
    )
    target = _new_customer(probe)
    if target:
        response = probe.request("PUT", ITEM, token=options.token, org=org, id=target, body=longest)
        echoed = oracle.apply_update({"address": {}}, longest)
        ok = response.status_code == 200
        if ok:
            got = response.json()
            ok = all(got.get(k) == v for k, v in echoed.items() if k != "address") and all(
                got.get("address", {}).get(k) == v for k, v in echoed["address"].items()
            )
        probe.expect(
            "behaviour",
            "boundary_lengths",
            "PUT",
            ITEM,
            ok,
            f"maximum-length fields on update: expected 200 echoing them, got {_describe(response)}",
            org=org,
            id=target,
            body=longest,
        )


def run_scenarios(
    options: Options,
    result: Result,
    created: set[tuple[str, str]],
    rng: random.Random,
    existing: set[str] = frozenset(),
) -> None:
    probe = Probe(options, result, created, existing)
    scenarios: list[t.Callable[[Probe], None]] = [
        auth_required,
        outsider_forbidden,
        foreign_customer_not_found,
        create_read_update_delete,
        boundary_lengths,
        lambda p: fiscal_rules_targeted(p, rng),
    ]
    try:
        for scenario in scenarios:
            try:
                scenario(probe)
            except StopRun:
                raise
            except Exception as exc:  # a reply no conformant server would send (non-JSON 201, ...)
                name = getattr(scenario, "__name__", "fiscal_rules_targeted")
                result.findings.append(
                    Finding(
                        "behaviour", "-", "scenario_error", f"{name} could not complete: {type(exc).__name__}: {exc}"
                    )
                )
                if options.fail_fast:
                    raise StopRun() from None
    finally:
        probe.http.close()
