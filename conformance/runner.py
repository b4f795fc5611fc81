"""Run the conformance suite against any base URL: preflight, schemathesis (contract + domain
checks, every phase), targeted scenarios (behaviour + domain), cleanup."""

from __future__ import annotations

import random
import time
import typing as t

import httpx
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema

from . import behaviour, checks
from .model import TOKEN_PLACEHOLDER, Finding, Options, Result, StopRun, UsageProblem

DOMAIN_CHECK_NAMES = {c.__name__ for c in checks.DOMAIN_CHECKS}
Progress = t.Callable[[str, t.Any], None]


def existing_ids(options: Options) -> set[str]:
    """The customers that exist before the run (read-only): the run never writes or deletes
    them, even if a buggy server hands one back from a create."""
    found: set[str] = set()
    for token, organization in (
        (options.token, options.organization_id),
        (options.outsider_token, options.outsider_organization_id),
    ):
        if not (token and organization):
            continue
        try:
            response = httpx.get(
                f"{options.api}/organizations/{organization}/customers",
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            body = response.json() if response.status_code == 200 else []
        except (httpx.HTTPError, ValueError):
            continue
        found.update(c["id"] for c in body if isinstance(c, dict) and isinstance(c.get("id"), str))
    return found


def preflight(options: Options) -> None:
    """Fail fast (exit 2) on an unreachable server or unusable credentials."""
    url = f"{options.api}/organizations/{options.organization_id}/customers"
    try:
        response = httpx.get(url, headers={"Authorization": f"Bearer {options.token}"}, timeout=15)
    except httpx.TransportError as exc:
        raise UsageProblem(f"cannot reach {options.api}: {exc}") from exc
    if response.status_code == 404:
        raise UsageProblem(f"{url} answered 404: is --base-url the API root (e.g. http://127.0.0.1:3001/api)?")
    if response.status_code == 401:
        raise UsageProblem("the server rejected --token (401)")
    if response.status_code == 403:
        raise UsageProblem("--token is not a member of --organization-id (403)")
    if response.status_code != 200:
        raise UsageProblem(f"preflight GET {url} answered {response.status_code}: {response.text[:200]}")


UNIT_PHASES = ("examples", "coverage", "fuzzing")
SERVER_ERROR_KINDS = {"connection_ssl", "connection_other", "network_other", "server_unavailable"}


def _config(options: Options, seed: int, phases: t.Sequence[str], targets: dict[str, str] | None) -> SchemathesisConfig:
    """Unit phases (``targets`` given) write only to the run's own customers: PUT/GET to the
    anchor, DELETE to a sacrificial one, so a DELETE cannot pull the anchor from under a
    concurrent PUT. The stateful phase follows the contract's links from its own creates."""
    data: dict[str, t.Any] = {
        "seed": seed,
        "base-url": options.api,
        "headers": {"Authorization": f"Bearer {options.token}"},
        "continue-on-failure": not options.fail_fast,
        **({"max-failures": 1} if options.fail_fast else {}),
        "workers": options.workers,
        "generation": {"max-examples": options.max_examples},
        "phases": {
            **{phase: {"enabled": phase in phases} for phase in UNIT_PHASES},
            # Only the contract's own links: inferred links could chain a listed (pre-existing)
            # customer into PUT/DELETE, and the suite must not write what it did not create.
            "stateful": {"enabled": "stateful" in phases, "inference": {"algorithms": []}},
        },
        "checks": {"positive_data_acceptance": {"enabled": False}},  # replaced, see checks.py
        "parameters": {"path.organizationId": options.organization_id},
    }
    if targets:
        data["parameters"]["path.customerId"] = targets["anchor"]
        data["operations"] = [
            {
                "include-operation-id": "CustomersController_remove",
                "parameters": {"path.customerId": targets["victim"]},
            }
        ]
    return SchemathesisConfig.from_dict(data)


def _layer(check: str) -> str:
    return "domain" if check in DOMAIN_CHECK_NAMES else "contract"


def _curl(info) -> str | None:
    sample = getattr(info, "code_sample", None)
    if not sample:
        return None
    return sample.replace("[Filtered]", f"Bearer {TOKEN_PLACEHOLDER}")


def fuzz(
    options: Options, result: Result, targets: dict[str, str], created: set[tuple[str, str]], progress: Progress
) -> None:
    unit = [p for p in options.phases if p in UNIT_PHASES]
    if unit:
        _execute(options, result, _config(options, result.seed, unit, targets), progress)
    if options.fail_fast and result.findings:
        raise StopRun()
    if "stateful" in options.phases:
        _execute(options, result, _config(options, result.seed, ["stateful"], None), progress)


def _execute(options: Options, result: Result, config: SchemathesisConfig, progress: Progress) -> None:
    schema = schemathesis.openapi.from_path(options.contract, config=config)
    for event in from_schema(schema).execute():
        if isinstance(event, events.PhaseStarted):
            if event.phase.is_enabled:
                progress("phase", event.phase.name.value)
        elif isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
            recorder = event.recorder
            failed = False
            for case_id, nodes in recorder.checks.items():
                node = recorder.cases.get(case_id)
                label = node.value.operation.label if node else recorder.label
                result.cases += 1
                for check in nodes:
                    ok = check.failure_info is None
                    if check.name == "track_created" and ok:
                        continue  # bookkeeping; only its findings are reported
                    result.tally(label, check.name, ok)
                    if not ok:
                        failed = True
                        failure = check.failure_info.failure
                        message = f"{failure.title}: {failure.message}".strip()
                        result.findings.append(
                            Finding(_layer(check.name), label, check.name, message, _curl(check.failure_info))
                        )
            progress("scenario", "F" if failed else ".")
        elif isinstance(event, events.NonFatalError):
            kind = str(getattr(event.info, "_kind", ""))
            if kind in SERVER_ERROR_KINDS:
                # The implementation stopped answering: that is a finding.
                result.findings.append(Finding("contract", event.label or "-", "server_unreachable", str(event.info)))
            else:
                # A failure of the tooling (hypothesis, schemathesis) says nothing about the server.
                result.suite_errors.append(f"{event.label}: {event.info}")
            progress("scenario", "E")
        elif isinstance(event, events.FatalError):
            raise UsageProblem(f"schemathesis could not run: {event.exception}")


def _create_target(
    options: Options, result: Result, created: set[tuple[str, str]], name: str, existing: set[str]
) -> str:
    """A customer of the run's own for the unit phases to write to."""
    response = httpx.post(
        f"{options.api}/organizations/{options.organization_id}/customers",
        json=behaviour.customer_body(name),
        headers={"Authorization": f"Bearer {options.token}"},
        timeout=30,
    )
    body = response.json() if response.status_code == 201 else None
    if isinstance(body, dict) and isinstance(body.get("id"), str) and body["id"] not in existing:
        created.add((options.organization_id, body["id"]))
        return body["id"]
    result.findings.append(
        Finding(
            "behaviour",
            "POST /organizations/{organizationId}/customers",
            "create_then_read",
            f"a valid create was refused: {response.status_code} {response.text[:200]}",
        )
    )
    return "0" * 24


def cleanup(options: Options, created: set[tuple[str, str]]) -> int:
    """Delete every customer the run created (404 = already gone)."""
    deleted = 0
    with httpx.Client(base_url=options.api, timeout=30) as http:
        for org, customer in sorted(created):
            token = options.token if org == options.organization_id else options.outsider_token
            if token is None:
                continue
            response = http.delete(
                f"/organizations/{org}/customers/{customer}", headers={"Authorization": f"Bearer {token}"}
            )
            deleted += response.status_code in (200, 204)
    return deleted


def run(options: Options, progress: Progress | None = None) -> Result:
    """The whole suite. Raises :class:`UsageProblem` for exit-2 conditions."""
    progress = progress or (lambda kind, value: None)
    seed = options.seed if options.seed is not None else random.randrange(2**31)
    result = Result(options=options, seed=seed)
    preflight(options)
    started = time.perf_counter()
    created: set[tuple[str, str]] = set()
    existing = existing_ids(options)
    try:
        targets = {name: _create_target(options, result, created, name, existing) for name in ("anchor", "victim")}
        checks.start_tracking(
            created, options.organization_id, targets["victim"], existing=existing, strict=options.strict_rfc
        )
        progress("phase", "scenarios")
        behaviour.run_scenarios(options, result, created, random.Random(seed), existing)
        fuzz(options, result, targets, created, progress)
    except StopRun:
        pass
    finally:
        checks.stop_tracking()
        result.created = len(created)
        result.cleaned = cleanup(options, {(org, c) for org, c in created if c not in existing})
        result.duration = time.perf_counter() - started
    return result
