"""The ``timbrix`` domain plug-in: the CFDI 4.0 layer of the Timbrix contract, with the ``cfdi``
package as the oracle (``cfdi_oracle.py``) for the rules JSON Schema cannot express.

* schemathesis checks: ``fiscal_rules`` (accepted writes satisfy the rules; schema-valid writes
  that break them are 400 with the documented message), ``sat_catalogs`` (the catalog
  endpoints list exactly SAT's codes) and ``fiscal_positive_data_acceptance`` (stands in for
  the built-in ``positive_data_acceptance``, which would call a correct CFDI 400 "valid data
  rejected");
* a scenario, ``fiscal_rules_targeted``: every rule kind on create and on update against the
  merged record, rejected updates change nothing, valid combinations stored as sent;
* what the behaviour layer sends and expects for Timbrix: a customer body, a partial update,
  and the record a write must leave (flat ``address*`` fields become the nested address).

Selected by the contract itself: ``x-sandbox: {plugin: timbrix}``.
"""

from __future__ import annotations

import random
import typing as t

from schemathesis.specs.openapi.checks import positive_data_acceptance

import cfdi

from .. import checks
from ..model import Options, UsageProblem
from . import Domain
from . import cfdi_oracle as oracle

if t.TYPE_CHECKING:
    from ..probe import Probe
    from ..target import Target

MORAL_RFC = "ABC101010111"
FISICA_RFC = "GODE561231GR8"
# Rules whose message the vendor documents word for word: an implementation must match them.
# Other rules' texts are the sandbox's own wording, so only the status and format are checked.
DOCUMENTED_MESSAGE_RULES = {"regimen_persona", "uso_persona", "uso_regimen"}
# One schema-valid body per CFDI rule kind (rfc_format is a schema matter).
INVALID_CASES: list[tuple[str, dict[str, str]]] = [
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
        "addressInterior": "2B",  # an optional field: an update that replaces would clear it
        "addressNeighborhood": "Centro",
        "addressCity": "Monterrey",
        "addressMunicipality": "Monterrey",
        "addressZip": "64000",
        "addressState": "Nuevo León",
    }
    body.update(overrides)
    return body


class Timbrix(Domain):
    name = "timbrix"
    takes = frozenset({"strict_rfc"})
    replaces = ("positive_data_acceptance",)

    def validate(self, options: Options, target: Target) -> None:
        if not options.organization_id:
            raise UsageProblem("--organization-id is required for the Timbrix contract")
        super().validate(options, target)

    def create_body(self, target: Target, run: str, **overrides: t.Any) -> dict:
        return customer_body(run, **overrides)

    def update_body(self, target: Target, create_body: dict, current: dict, run: str) -> dict | None:
        return {"addressCity": "San Pedro Garza García", "phone": None}

    def apply_write(self, target: Target, action: str, stored: dict, body: dict) -> dict:
        return oracle.apply_update(stored, body)


DOMAIN = Timbrix()


def _strict() -> bool:
    run = checks.current()
    return bool(run and run.options.strict_rfc)


# -- schemathesis checks -----------------------------------------------------------------------

INCONCLUSIVE = object()


def _expected(case, response) -> tuple[bool, t.Any]:
    """(applicable, expected violation) for a customer write whose body is a JSON object.

    The violation is ``INCONCLUSIVE`` when an update's record vanished before it could be
    read back (e.g. a concurrent worker deleted it): no verdict is better than a wrong one.
    """
    op = checks.operation_id(case)
    if op not in (oracle.CREATE, oracle.UPDATE) or not isinstance(case.body, dict):
        return False, None
    stored = None
    if op == oracle.UPDATE:
        if not any(f in case.body for f in oracle.FISCAL_FIELDS):
            return True, None
        if 200 <= response.status_code < 300:
            stored = checks.json_body(response)
        else:
            reply = checks.follow_up(response)  # the customer as stored, read-only
            stored = checks.json_body(reply) if reply.status_code == 200 else None
        if not isinstance(stored, dict):
            return True, INCONCLUSIVE
    return True, oracle.expected_violation(op, case.body, stored, strict=_strict())


@DOMAIN.check
def fiscal_rules(ctx, response, case) -> bool | None:
    """CFDI 4.0 rules: accepted writes satisfy them; schema-valid writes that break them are
    400 in the vendor format, with the documented message where the vendor documents one."""
    if response.status_code not in (200, 201, 400):
        return None
    applicable, expected = _expected(case, response)
    if not applicable or expected is INCONCLUSIVE:
        return None
    if response.status_code in (200, 201):
        if expected is not None:
            raise AssertionError(
                f"CFDI rule not enforced ({expected.rule}): the server accepted data SAT rejects: {expected.message}"
            )
        return None
    if not checks.is_positive(case):
        return None  # a schema-invalid body: a 400 is right whatever the reason
    body = checks.json_body(response)
    if expected is None:
        raise AssertionError(
            "Valid fiscal data rejected: the CFDI oracle accepts this body, the server answered 400: "
            + str((body if isinstance(body, dict) else {}).get("message"))
        )
    if not isinstance(body, dict) or body.get("error") != "BAD_REQUEST" or body.get("statusCode") != 400:
        raise AssertionError(f"CFDI rejection not in the vendor error format: {response.content[:200]!r}")
    if expected.rule in DOCUMENTED_MESSAGE_RULES and body.get("message") != expected.message:
        raise AssertionError(
            f"Wrong CFDI message for {expected.rule}: expected {expected.message!r}, got {body.get('message')!r}"
        )
    return None


@DOMAIN.check
def sat_catalogs(ctx, response, case) -> bool | None:
    """The catalog endpoints list exactly SAT's CFDI 4.0 codes for the query (compared by
    codigo and tipoPersona), and reject an unknown régimen with 400."""
    applicable, expected = oracle.expected_catalog(checks.operation_id(case), dict(case.query or {}))
    if not applicable or not checks.is_positive(case) or response.status_code not in (200, 400):
        return None
    if expected is None:
        if response.status_code != 400:
            raise AssertionError(f"Unknown catalog value accepted: {case.query}")
        return None
    if response.status_code == 400:
        raise AssertionError(f"Valid catalog query rejected: {case.query}")
    body = checks.json_body(response)
    rows = (
        [(r.get("codigo"), r.get("tipoPersona")) for r in body if isinstance(r, dict)]
        if isinstance(body, list)
        else None
    )
    if rows is None or sorted(rows) != sorted(expected):  # the contract promises no order
        raise AssertionError(f"Catalog rows differ from SAT's for {case.query}: expected {expected}, got {rows}")
    return None


def _justified_400(case, response) -> bool:
    applicable, expected = _expected(case, response)
    if applicable:
        return expected is not None
    applicable, rows = oracle.expected_catalog(checks.operation_id(case), dict(case.query or {}))
    return applicable and rows is None


@DOMAIN.check
def fiscal_positive_data_acceptance(ctx, response, case) -> bool | None:
    """schemathesis' ``positive_data_acceptance``, except for a 400 that the ``cfdi`` oracle
    justifies: a request can satisfy the JSON Schema and still break SAT rules the schema
    cannot express (the matrix, real RFC dates, c_CodigoPostal, unknown régimen codes).
    Every other case goes to the built-in check unchanged; ``fiscal_rules`` and
    ``sat_catalogs`` verify those 400s are right."""
    if response.status_code == 400 and checks.is_positive(case) and _justified_400(case, response):
        return None
    return positive_data_acceptance(ctx, response, case)


# -- the targeted scenario -----------------------------------------------------------------------


def valid_combinations(rng: random.Random, count: int, strict: bool = False) -> list[dict[str, str]]:
    """RFC x régimen x uso combinations the oracle accepts: three that the matrix singles out,
    and a seeded sample of the rest."""
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


@DOMAIN.scenario
def fiscal_rules_targeted(probe: Probe) -> None:
    """Every CFDI rule kind rejected on create and on update (merged record), with the
    documented message where there is one; valid combinations accepted and read back."""
    target, strict = probe.target, probe.options.strict_rfc
    create, update = target.op("create"), target.op("update")
    domain = {"check": "fiscal_rules", "layer": "domain"}
    for rule, overrides in INVALID_CASES:
        body = customer_body(probe.run, **overrides)
        expected = oracle.expected_violation(oracle.CREATE, body, strict=strict)
        assert expected is not None and expected.rule == rule, (rule, overrides)
        response = probe.call(create, body=body, want=(400,), what=f"{rule} ({expected.message!r})", **domain)
        if rule in DOCUMENTED_MESSAGE_RULES and response.status_code == 400:
            said = (checks.json_body(response) or {}).get("message")
            message = f"{rule}: expected the documented message {expected.message!r}, got {said!r}"
            probe.expect(create, "fiscal_rules", said == expected.message, message, body=body, layer="domain")

    mine = probe.create(layer="domain")
    before = probe.read(mine) if mine else None
    for _rule, overrides in INVALID_CASES if before else ():
        expected = oracle.expected_violation(oracle.UPDATE, overrides, before, strict=strict)
        if expected is not None:
            probe.call(update, mine, overrides, want=(400,), what=f"{expected.rule} on the merged record", **domain)
            what = "a rejected update changed the record"
            probe.unchanged(update, "rejected_update_changes_nothing", mine, before, what, overrides, layer="domain")

    for overrides in valid_combinations(probe.rng, 8, strict):
        body = customer_body(probe.run, **overrides)
        response = probe.call(create, body=body, want=(201,), what=f"valid combination {overrides}", **domain)
        key = target.key(target.record(response))
        if response.status_code == 201 and key is not None:
            stored = f"valid combination {overrides} not stored as sent"
            probe.matches(create, "fiscal_rules", overrides, target.record(response), stored, body=body, layer="domain")
            probe.matches(create, "fiscal_rules", overrides, probe.read(key), stored, body=body, layer="domain")
