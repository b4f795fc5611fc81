"""The one driver of the conformance suite, for any contract: preflight, the behaviour layer's
scenarios and the domain plug-in's (if the contract selects one), the contract layer
(schemathesis, every check, every phase), cleanup.

It reaches the implementation only through the contract's own operations: no sandbox-only
endpoint, deletes only what it created, never writes to a record that existed before it.
"""

from __future__ import annotations

import random
import time
import typing as t

import httpx

from . import behaviour, checks, coverage, domains
from .fuzz import Progress, fuzz
from .model import Finding, Options, Result, StopRun, UsageProblem
from .probe import Probe
from .subjects import Subjects, Unfilled
from .target import Target, describe


def preflight(probe: Probe) -> set[str]:
    """Fail fast (exit 2) on an unreachable server or unusable credentials; return the keys of
    the records that exist before the run (read-only: the run never writes or deletes them,
    even if a buggy server hands one back from a create)."""
    target, options = probe.target, probe.options
    filters = probe.list_query()
    # A list that cannot be asked for the run's records (a filter the creates do not name)
    # cannot show which exist either: the read of an absent record checks the credentials.
    listing = target.op("list") if filters is not None else None
    operation = listing or target.op("read")
    url = options.api + target.url(operation, target.absent_id(), probe.member.tenant)
    try:
        params = {**probe.member.query(), **(filters or {})}
        response = httpx.get(url, headers=probe.member.send(), params=params, timeout=15)
    except httpx.TransportError as exc:
        raise UsageProblem(f"cannot reach {options.api}: {exc}") from exc
    if response.status_code == 401:
        raise UsageProblem(f"the server rejected {_credentials(options)} (401)")
    if response.status_code == 403:
        where = f"--organization-id {options.organization_id}" if target.scope else "this API"
        raise UsageProblem(f"{_credentials(options)} cannot use {where} (403): {response.text[:200]}")
    if listing is None:
        return set()
    if response.status_code == 404:
        raise UsageProblem(f"{url} answered 404: is --base-url the API root? {_api_root_hint(options.api)}")
    if response.status_code != 200:
        raise UsageProblem(f"preflight GET {url} answered {describe(response)}")
    records = target.record(response, listing)
    if not isinstance(records, list):
        raise UsageProblem(f"preflight GET {url}: the list is not where the contract says")
    existing = set(target.keys(response, listing))
    outsider = probe.who["outsider"]
    if outsider is not None:  # the outsider's records are not ours to write either
        theirs = options.api + target.url(listing, None, outsider.tenant)
        try:
            answer = httpx.get(theirs, headers=outsider.send(), params=filters, timeout=30)
            existing |= set(target.keys(answer, listing))
        except (httpx.HTTPError, ValueError):
            pass
    return existing


def _credentials(options: Options) -> str:
    given = (["--token"] if options.token else []) + [f"--credential {name}" for name in options.credentials]
    return " and ".join(given) or "a request without credentials"


def _api_root_hint(api: str) -> str:
    """Where a timbrix-sandbox at the same origin serves its contract (its health names the
    base path, which follows the contract's servers), else the usual shape of an API root."""
    url = httpx.URL(api)
    origin = f"{url.scheme}://{url.netloc.decode('ascii')}"
    try:
        served = httpx.get(origin + "/__sandbox/health", timeout=5).json().get("basePath")
    except (httpx.HTTPError, ValueError, AttributeError):
        served = None
    if isinstance(served, str):
        return f"the sandbox at {origin} serves its contract at {served}: --base-url {origin}{served.rstrip('/')}"
    return "(e.g. http://127.0.0.1:3001/api)"


def run(options: Options, progress: Progress | None = None) -> Result:
    """The whole suite. Raises :class:`UsageProblem` for exit-2 conditions."""
    progress = progress or (lambda kind, value: None)
    target = Target(options)
    domain = domains.for_contract(target.spec)
    domain.validate(options, target)
    seed = options.seed if options.seed is not None else random.randrange(2**31)
    result = Result(options=options, seed=seed, domain=domain.name)
    subjects = Subjects(target, domain, result, random.Random(seed))
    behaving = target.resource is not None  # else only the contract layer has a subject
    try:
        probe = _primary(subjects) if behaving else Probe(target, domain, result, set(), random.Random(seed))
        started = time.perf_counter()
        try:
            if behaving:
                probe.anchor, probe.victim = (probe.create() or target.absent_id() for _ in range(2))
            tracking = checks.Run(
                options, target, domain, probe.created, probe.existing, probe.anchor, probe.victim, subjects.probes
            )
            checks.start(tracking)
            progress("phase", "scenarios")
            for view in target.subjects():
                _scenarios(subjects, view, domain.scenarios if view is target else [], progress)
            fuzz(tracking, result, progress)
        except StopRun:
            pass
        finally:
            checks.stop()
            result.created, result.cleaned, result.not_removed = subjects.cleanup()
            result.duration = time.perf_counter() - started
            result.coverage = coverage.compute(target.spec, result)
    finally:
        subjects.close()
        if not behaving:
            probe.close()
    return result


def _primary(subjects: Subjects) -> Probe:
    """The primary resource's probe, its parents created (or found) and the preflight passed."""
    target = subjects.primary
    try:
        probe = subjects.probe(target.resource.name)
    except Unfilled as exc:
        raise UsageProblem(str(exc)) from None
    except httpx.TransportError as exc:
        raise UsageProblem(f"cannot reach {target.options.api}: {exc}") from exc
    probe.existing.update(preflight(probe))
    return probe


def _scenarios(subjects: Subjects, view: Target, extra: list, progress: Progress) -> None:
    """Every scenario on one resource; a resource whose parents cannot be filled is reported
    as not tested, and the others go on."""
    try:
        probe = subjects.probe(view.resource.name)
    except Unfilled as exc:
        subjects.result.incomplete.append(f"behaviour: {view.resource.collection_path}: not tested: {exc}")
        return
    except httpx.HTTPError as exc:
        message = f"{view.resource.collection_path}: preparing its records failed: {type(exc).__name__}: {exc}"
        subjects.result.findings.append(Finding("behaviour", view.resource.collection_path, "scenario_error", message))
        return
    for scenario in behaviour.SCENARIOS + extra:
        _scenario(probe, scenario)
        progress("scenario", ".")


def _scenario(probe: Probe, scenario: t.Callable[[Probe], None]) -> None:
    try:
        scenario(probe)
    except StopRun:
        raise
    except Exception as exc:  # a reply no conformant server would send (non-JSON 201, ...)
        where = probe.target.resource.collection_path if probe.target.resource is not None else "-"
        message = f"{scenario.__name__} on {where} could not complete: {type(exc).__name__}: {exc}"
        probe.result.findings.append(Finding("behaviour", where, "scenario_error", message))
        if probe.options.fail_fast:
            raise StopRun() from None
