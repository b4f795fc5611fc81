"""Options and results of a conformance run: plain data, shared by the driver, the layers, the
report, the pytest entry point and the CLI."""

from __future__ import annotations

import collections
import dataclasses
import shlex
import typing as t
from pathlib import Path

from timbrix_sandbox.profiles import DEFAULT_CONTRACT

TOKEN_PLACEHOLDER = "$TIMBRIX_TOKEN"


@dataclasses.dataclass
class Options:
    base_url: str
    token: str | None
    """A bearer token (``Authorization: Bearer``); ``None`` when only ``credentials`` are given."""
    organization_id: str = ""
    """The tenant named in the contract's paths (Timbrix's ``organizationId``), if it names one."""
    outsider_token: str | None = None
    outsider_organization_id: str | None = None
    seed: int | None = None
    max_examples: int = 20
    workers: int = 2
    contract: Path = DEFAULT_CONTRACT
    phases: tuple[str, ...] = ("examples", "coverage", "fuzzing", "stateful")
    fail_fast: bool = False
    """Stop at the first violation (a CI gate that only needs the verdict)."""
    strict_rfc: bool = False
    """Judge with the RFC check digit enforced (for a target that enforces it, such as
    ``serve --strict-rfc``). Only the ``timbrix`` domain plug-in takes it."""
    min_coverage: float | None = None
    """Fail the run (exit 4) when fewer than this percentage of the contract's declared
    (operation, status) pairs were exercised."""
    retries: int = 1
    """How many times an operation whose testing the tooling cut short is tested again."""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    """Sent with every request of the member token (a tenant header such as ``organization-id``)."""
    outsider_headers: dict[str, str] = dataclasses.field(default_factory=dict)
    credentials: dict[str, str] = dataclasses.field(default_factory=dict)
    """Security scheme name -> credential (``--credential SCHEME=VALUE``), sent where the
    contract's scheme says (``conformance/credentials.py``)."""

    @property
    def api(self) -> str:
        return self.base_url.rstrip("/")


@dataclasses.dataclass
class Finding:
    """One violation: where, which check, what, and how to reproduce it."""

    layer: str  # "contract", "domain" or "behaviour"
    operation: str
    check: str
    message: str
    curl: str | None = None
    cause: str = "implementation"
    """``"implementation"``, or ``"contract"``: a gap of the contract that no implementation can
    close (``conformance/causes.py`` has the rules); listed and failing the run all the same."""
    why: str = ""
    """One line on why a contract gap is one (empty for the implementation's)."""
    rule: str | None = None

    def key(self) -> tuple[str, str, str]:
        first_line = self.message.strip().splitlines()[0] if self.message.strip() else ""
        return (self.operation, self.check, first_line)


@dataclasses.dataclass
class Tally:
    passed: int = 0
    failed: int = 0


@dataclasses.dataclass
class Result:
    options: Options
    seed: int
    domain: str | None = None
    """The domain plug-in the contract selected (``x-sandbox.plugin``), if any."""
    findings: list[Finding] = dataclasses.field(default_factory=list)
    tallies: dict[tuple[str, str], Tally] = dataclasses.field(default_factory=lambda: collections.defaultdict(Tally))
    cases: int = 0
    duration: float = 0.0
    created: int = 0
    cleaned: int = 0
    suite_errors: list[str] = dataclasses.field(default_factory=list)
    """Failures of the tooling (hypothesis, schemathesis), retried; kept for the report."""
    incomplete: list[str] = dataclasses.field(default_factory=list)
    """What could not be tested even after retrying (``phase: operation: error``): a run with
    any is never CONFORMANT."""
    not_removed: list[str] = dataclasses.field(default_factory=list)
    """Records the run created and could not delete (``key: why``)."""
    exercised: dict[tuple[str, str], dict[str, Tally]] = dataclasses.field(
        default_factory=lambda: collections.defaultdict(lambda: collections.defaultdict(Tally))
    )
    """(operation, answered status) -> check -> tally: what the coverage report is made of."""
    coverage: t.Any = None
    """The :class:`conformance.coverage.Coverage` of the run (set when the run ends)."""

    @property
    def conformant(self) -> bool:
        """No violation and nothing left untested: the only verdict that may say CONFORMANT."""
        return not self.findings and not self.incomplete

    @property
    def verdict(self) -> str:
        if self.findings:
            return "NOT CONFORMANT"
        if self.incomplete:
            return "INCOMPLETE"
        if self.coverage is not None and self.coverage.below_minimum(self.options.min_coverage):
            return "UNDER-COVERED"
        return "CONFORMANT"

    def exit_code(self) -> int:
        """0 conformant, 1 violations, 3 incomplete (the tooling could not test something),
        4 coverage under ``--min-coverage`` (2 is the CLI's usage/connection problem)."""
        return {"CONFORMANT": 0, "NOT CONFORMANT": 1, "INCOMPLETE": 3, "UNDER-COVERED": 4}[self.verdict]

    def record(self, operation: str, status: int | None, check: str, ok: bool) -> None:
        """Tally one check of one answer, by operation and, for coverage, by the status answered."""
        self.tally(operation, check, ok)
        if status is not None:
            entry = self.exercised[(operation, str(status))][check]
            if ok:
                entry.passed += 1
            else:
                entry.failed += 1

    def tally(self, operation: str, check: str, ok: bool) -> None:
        entry = self.tallies[(operation, check)]
        if ok:
            entry.passed += 1
        else:
            entry.failed += 1

    def by_cause(self) -> dict[str, int]:
        """Unique violations per cause: ``{"implementation": X, "contract": Y}``."""
        unique = self.unique_findings()
        contract = sum(f.cause == "contract" for f in unique)
        return {"implementation": len(unique) - contract, "contract": contract}

    def unique_findings(self) -> list[Finding]:
        seen: dict[tuple[str, str, str], Finding] = {}
        for finding in self.findings:
            seen.setdefault(finding.key(), finding)
        return list(seen.values())


class StopRun(Exception):
    """Raised inside a run when ``fail_fast`` has its verdict."""


class UsageProblem(Exception):
    """Bad options or an unusable target (exit 2)."""


def parse_headers(values: t.Iterable[str]) -> dict[str, str]:
    """``['NAME: VALUE', ...]`` (``--header``) as a dict; a malformed one is a usage problem."""
    headers = {}
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise UsageProblem(f"--header expects 'NAME: VALUE', got {value!r}")
        headers[name.strip()] = content.strip()
    return headers


def curl_line(
    method: str,
    url: str,
    body: t.Any = None,
    token: bool = True,
    headers: t.Mapping[str, str] | None = None,
    credentials: t.Mapping[str, str] | None = None,
) -> str:
    """A curl command that reproduces a request; the token is left as ``$TIMBRIX_TOKEN`` so
    reports never carry secrets."""
    import json

    parts = ["curl", "-X", method, shlex.quote(url)]
    if token:
        parts += ["-H", f'"Authorization: Bearer {TOKEN_PLACEHOLDER}"']
    for name, value in (headers or {}).items():
        parts += ["-H", shlex.quote(f"{name}: {value}")]
    for name, value in (credentials or {}).items():  # placeholders: left for the shell to expand
        parts += ["-H", f'"{name}: {value}"']
    if body is not None:
        parts += [
            "-H",
            "'Content-Type: application/json'",
            "-d",
            shlex.quote(json.dumps(body, ensure_ascii=False)),
        ]
    return " ".join(parts)
