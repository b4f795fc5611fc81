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

from timbrix_sandbox.contract.records import record_key

from . import behaviour, checks, coverage, domains
from .fuzz import Progress, fuzz
from .model import Finding, Options, Result, StopRun, UsageProblem
from .probe import Probe
from .target import Target, describe


def preflight(probe: Probe) -> set[str]:
    """Fail fast (exit 2) on an unreachable server or unusable credentials; return the keys of
    the records that exist before the run (read-only: the run never writes or deletes them,
    even if a buggy server hands one back from a create)."""
    target, options = probe.target, probe.options
    _find_parents(probe)
    listing = target.op("list")
    operation = listing or target.op("read")
    url = options.api + target.url(operation, target.absent_id(), probe.member.tenant)
    try:
        response = httpx.get(url, headers=probe.member.send(), params=probe.member.query(), timeout=15)
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
            existing |= set(target.keys(httpx.get(theirs, headers=outsider.send(), timeout=30), listing))
        except (httpx.HTTPError, ValueError):
            pass
    return existing


def _find_parents(probe: Probe) -> None:
    """Fill the resource's parent path parameters (Twilio's ``{ServiceSid}``) with the ids of
    existing parent records, from the parents' own lists (read-only)."""
    target, options = probe.target, probe.options
    for param in target.parents:
        listing = target.parent_listing(param)
        if listing is None:
            raise UsageProblem(f"cannot fill {{{param}}}: no list of its records needs only known parameters")
        url = options.api + target.url(listing, None, probe.member.tenant)
        try:
            response = httpx.get(url, headers=probe.member.send(), params=probe.member.query(), timeout=15)
            body = target.profile.unwrap(response.json())
        except (httpx.HTTPError, ValueError) as exc:
            raise UsageProblem(f"cannot fill {{{param}}}: GET {url} failed: {exc}") from None
        items = body
        for key in listing.listing.items_path if listing.listing else ():
            items = items.get(key) if isinstance(items, dict) else None
        parent = target.profile.resources[listing.resource]
        found = [record_key(r[parent.id_field]) for r in items or [] if isinstance(r, dict) and parent.id_field in r]
        if response.status_code != 200 or not found:
            raise UsageProblem(f"cannot fill {{{param}}}: GET {url} lists no record ({describe(response)})")
        target.parent_values[param] = found[0]


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
    probe = Probe(target, domain, result, set(), random.Random(seed))
    try:
        behaving = target.resource is not None  # else only the contract layer has a subject
        if behaving:
            probe.existing.update(preflight(probe))
        started = time.perf_counter()
        try:
            if behaving:
                probe.anchor, probe.victim = (probe.create() or target.absent_id() for _ in range(2))
            tracking = checks.Run(options, target, domain, probe.created, probe.existing, probe.anchor, probe.victim)
            checks.start(tracking)
            progress("phase", "scenarios")
            for scenario in behaviour.SCENARIOS + domain.scenarios if behaving else ():
                _scenario(probe, scenario)
                progress("scenario", ".")
            fuzz(tracking, result, progress)
        except StopRun:
            pass
        finally:
            checks.stop()
            result.created = len(probe.created)
            result.cleaned, result.not_removed = probe.cleanup()
            result.duration = time.perf_counter() - started
            result.coverage = coverage.compute(target.spec, result)
    finally:
        probe.close()
    return result


def _scenario(probe: Probe, scenario: t.Callable[[Probe], None]) -> None:
    try:
        scenario(probe)
    except StopRun:
        raise
    except Exception as exc:  # a reply no conformant server would send (non-JSON 201, ...)
        message = f"{scenario.__name__} could not complete: {type(exc).__name__}: {exc}"
        probe.result.findings.append(Finding("behaviour", "-", "scenario_error", message))
        if probe.options.fail_fast:
            raise StopRun() from None
