"""The contract layer: schemathesis with every check (the built-ins, ``checks.py``'s and the
domain plug-in's) and every phase: examples, coverage and fuzzing against the run's own
records, then stateful through the contract's links from its own creates."""

from __future__ import annotations

import ast
import contextlib
import sys
import threading
import typing as t

import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema

from . import checks
from .causes import Exchange, Sent, classify
from .credentials import schemathesis_auth
from .model import TOKEN_PLACEHOLDER, Finding, Result, StopRun, UsageProblem
from .target import read_spec

UNIT_PHASES = ("examples", "coverage", "fuzzing")
AST_RACE = (3, 11) <= sys.version_info[:3] < (3, 11, 8) or (3, 12) <= sys.version_info[:3] < (3, 12, 2)
"""CPython whose ``ast.parse`` shares one recursion counter between threads (gh-106905, fixed
in 3.11.8 and 3.12.2): two threads parsing at once fail one of them with ``SystemError: AST
constructor recursion depth mismatch``."""
SERVER_ERROR_KINDS = {"connection_ssl", "connection_other", "network_other", "server_unavailable"}
Progress = t.Callable[[str, t.Any], None]


def config(run: checks.Run, seed: int, phases: t.Sequence[str]) -> SchemathesisConfig:
    """Unit phases write only to the run's own records: updates and reads to the anchor, deletes
    to a sacrificial one, so a delete cannot pull the anchor from under a concurrent update.
    The stateful phase follows the contract's links from its own creates."""
    options, target = run.options, run.target
    parameters: dict[str, t.Any] = {f"path.{name}": options.organization_id for name in target.scope}
    parameters |= {f"path.{name}": value for name, value in target.parent_values.items()}
    data: dict[str, t.Any] = {
        "seed": seed,
        "base-url": options.api,
        "headers": {**options.headers, **({"Authorization": f"Bearer {options.token}"} if options.token else {})},
        "auth": schemathesis_auth(target.security, options.credentials),
        "continue-on-failure": not options.fail_fast,
        **({"max-failures": 1} if options.fail_fast else {}),
        "workers": options.workers,
        # No example database: a failure replayed from an earlier run would make the same seed
        # test different cases (reproducibility), and judge this target by another's history.
        "generation": {"max-examples": options.max_examples, "database": "none"},
        "phases": {
            **{phase: {"enabled": phase in phases} for phase in UNIT_PHASES},
            # Only the contract's own links: inferred links could chain a listed (pre-existing)
            # record into an update or delete, and the suite must not write what it did not create.
            "stateful": {"enabled": "stateful" in phases, "inference": {"algorithms": []}},
        },
        "checks": {name: {"enabled": False} for name in sorted(run.domain.disabled_checks())},
        "parameters": parameters,
    }
    entries: dict[str, dict[str, t.Any]] = {}

    def entry(operation: t.Any) -> dict[str, t.Any]:
        label = f"{operation.method.upper()} {operation.path}"
        return entries.setdefault(label, {"include-name": label})

    name = target.resource.id_param if target.resource is not None else None
    if "stateful" not in phases and name:
        # Only on the resource's own operations: another resource's {Sid} (Twilio names every
        # id so) has its own pattern, and the anchor's id would make every case there invalid.
        delete = target.op("delete")
        for operation in target.operations():
            if name in target.path_params(operation):
                anchor = run.victim if operation is delete else run.anchor
                entry(operation)["parameters"] = {f"path.{name}": target.typed_id(anchor)}
    for operation in unauthorised_undeclared(target):
        entry(operation)["checks"] = {check: {"enabled": False} for check in AUTH_STATUS_CHECKS}
    if entries:
        data["operations"] = list(entries.values())
    return SchemathesisConfig.from_dict(data)


AUTH_STATUS_CHECKS = ("ignored_auth", "missing_required_header")
"""schemathesis' checks that want 401/403 for a request without credentials."""


def unauthorised_undeclared(target: t.Any) -> list[t.Any]:
    """Secured operations whose contract declares neither 401
    nor 403 (nor a ``4XX`` or ``default`` standing in): no conformant server can answer their
    missing credentials as :data:`AUTH_STATUS_CHECKS` want, so those two checks are off there
    (the behaviour layer still wants one of the declared 4xx)."""
    return [
        operation
        for operation in target.profile.operations.values()
        if operation.secured and not (target.is_declared(operation, 401) or target.is_declared(operation, 403))
    ]


def fuzz(run: checks.Run, result: Result, progress: Progress) -> None:
    unit = [p for p in run.options.phases if p in UNIT_PHASES]
    if unit:
        tested(run, result, unit, progress)
    if run.options.fail_fast and result.findings:
        raise StopRun()
    if "stateful" in run.options.phases:
        tested(run, result, ["stateful"], progress)


def tested(run: checks.Run, result: Result, phases: list[str], progress: Progress) -> None:
    """Run the phases; test again (up to ``options.retries`` times) every operation whose
    testing the tooling cut short, and record in ``result.incomplete`` what still could not be
    tested. A crash of hypothesis or schemathesis must never pass for a clean phase."""
    crashed = execute(run, result, config(run, result.seed, phases), progress)
    for _attempt in range(run.options.retries):
        if not crashed:
            return
        progress("phase", "retrying")
        labels = None if phases == ["stateful"] else sorted({label for _phase, label in crashed})
        crashed = execute(run, result, config(run, result.seed, phases), progress, only=labels)
    result.incomplete += [f"{phase}: {label}: not tested to the end (the tooling failed)" for phase, label in crashed]


@contextlib.contextmanager
def one_parser_at_a_time(workers: int) -> t.Iterator[None]:
    """Serialise ``ast.parse`` while worker threads run on a CPython with gh-106905.

    hypothesis parses source in the worker threads (filter predicates, ``composite`` strategies,
    the local-constants pool, lambda descriptions: about 150 parses in a default run), and on
    those CPython versions a garbage collection inside one parse lets another thread's parse
    corrupt the shared counter; the loser's operation stops mid-phase. One re-entrant lock
    around the parser for the duration of the run removes the race at no measurable cost."""
    if workers <= 1 or not AST_RACE or getattr(ast.parse, "serialised", False):
        yield
        return
    original, lock = ast.parse, threading.RLock()

    def parse(*args: t.Any, **kwargs: t.Any) -> t.Any:
        with lock:
            return original(*args, **kwargs)

    parse.serialised = True  # type: ignore[attr-defined]
    ast.parse = parse
    try:
        yield
    finally:
        ast.parse = original


def layer_of(run: checks.Run, check: str) -> str:
    if check in run.domain.check_names:
        return "domain"
    return "behaviour" if check in checks.BEHAVIOUR_CHECKS else "contract"


def _curl(info) -> str | None:
    sample = getattr(info, "code_sample", None)
    if not sample:
        return None
    return sample.replace("[Filtered]", f"Bearer {TOKEN_PLACEHOLDER}")


def _status(recorder, case_id: str) -> int | None:
    interaction = recorder.interactions.get(case_id)
    response = getattr(interaction, "response", None)
    return getattr(response, "status_code", None)


def execute(
    run: checks.Run,
    result: Result,
    config: SchemathesisConfig,
    progress: Progress,
    only: t.Sequence[str] | None = None,
) -> set[tuple[str, str]]:
    """One schemathesis run (of the operations named ``only``, when retrying); the (phase,
    operation) pairs the tooling failed in. Cases of a failed attempt stay counted: they ran."""
    # The document the sandbox serves from (bundled, normalised, cycles cut), never the raw file:
    # schemathesis cannot follow a multi-file ``$ref`` (DigitalOcean's path parameters and
    # responses live in other files), and must read the contract as the server does.
    schema = schemathesis.openapi.from_dict(read_spec(run.options), config=config)
    if only is not None:
        schema = schema.include(name=list(only))
    crashed: set[tuple[str, str]] = set()
    with one_parser_at_a_time(run.options.workers):
        for event in from_schema(schema).execute():
            if isinstance(event, events.PhaseStarted):
                if event.phase.is_enabled:
                    progress("phase", event.phase.name.value)
            elif isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
                progress("scenario", "F" if _record(run, result, event.recorder) else ".")
            elif isinstance(event, events.NonFatalError):
                kind = str(getattr(event.info, "_kind", ""))
                if kind in SERVER_ERROR_KINDS:
                    # The implementation stopped answering: that is a finding.
                    message = str(event.info)
                    result.findings.append(Finding("contract", event.label or "-", "server_unreachable", message))
                else:
                    # A failure of the tooling (hypothesis, schemathesis) says nothing about the
                    # server, but what it stopped was not tested: retried, else INCOMPLETE.
                    phase = event.phase.value if event.phase is not None else "-"
                    result.suite_errors.append(f"{phase}: {event.label}: {event.info}")
                    crashed.add((phase, event.label or "-"))
                progress("scenario", "E")
            elif isinstance(event, events.FatalError):
                raise UsageProblem(f"schemathesis could not run: {event.exception}")
    return crashed


def _record(run: checks.Run, result: Result, recorder) -> bool:
    """Count a finished scenario's cases and checks; whether any check failed (each failure
    with its cause: the implementation's, or a gap of the contract, ``causes.py``)."""
    failed = False
    for case_id, nodes in recorder.checks.items():
        node = recorder.cases.get(case_id)
        label = node.value.operation.label if node else recorder.label
        status = _status(recorder, case_id)
        result.cases += 1
        for check in nodes:
            ok = check.failure_info is None
            if check.name == "track_created" and ok:
                continue  # bookkeeping; only its findings are reported
            result.record(label, status, check.name, ok)
            if not ok:
                failed = True
                failure = check.failure_info.failure
                message = f"{failure.title}: {failure.message}".strip()
                layer = layer_of(run, check.name)
                finding = Finding(layer, label, check.name, message, _curl(check.failure_info))
                if node is not None:
                    sent = _sent(recorder, case_id)
                    cause = classify(run.target.spec, exchange(run, node.value, check.name, status, sent))
                    finding.cause, finding.rule, finding.why = cause.cause, cause.rule, cause.why
                result.findings.append(finding)
    return failed


def _sent(recorder, case_id: str) -> Sent | None:
    interaction = recorder.interactions.get(case_id)
    request = getattr(interaction, "request", None)
    if request is None:
        return None
    headers = {name: ", ".join(values) for name, values in (request.headers or {}).items()}
    return Sent(request.uri, headers, request.body)


def exchange(run: checks.Run, case, check: str, status: int | None, sent: Sent | None) -> Exchange:
    """What :func:`causes.classify` judges a generated case's failure by."""
    method, path = case.operation.method.upper(), case.operation.path
    return Exchange(
        check=check,
        method=method,
        path=path,
        status=status,
        positive=checks.is_positive(case) if getattr(case, "meta", None) else None,
        credentialed=sent is None or checks.carries_credentials(run, sent),
        record_missing=(lambda: checks.record_missing(run, method, path, sent)) if sent is not None else None,
        record_taken=(lambda: checks.record_taken(run, method, path, sent)) if sent is not None else None,
        request=sent,
    )
