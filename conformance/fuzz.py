"""The contract layer: schemathesis with every check (the built-ins, ``checks.py``'s and the
domain plug-in's) and every phase: examples, coverage and fuzzing against the run's own
records, then stateful through the contract's links from its own creates."""

from __future__ import annotations

import typing as t

import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema

from . import checks
from .model import TOKEN_PLACEHOLDER, Finding, Result, StopRun, UsageProblem

UNIT_PHASES = ("examples", "coverage", "fuzzing")
SERVER_ERROR_KINDS = {"connection_ssl", "connection_other", "network_other", "server_unavailable"}
Progress = t.Callable[[str, t.Any], None]


def config(run: checks.Run, seed: int, phases: t.Sequence[str]) -> SchemathesisConfig:
    """Unit phases write only to the run's own records: updates and reads to the anchor, deletes
    to a sacrificial one, so a delete cannot pull the anchor from under a concurrent update.
    The stateful phase follows the contract's links from its own creates."""
    options, target = run.options, run.target
    parameters: dict[str, t.Any] = {f"path.{name}": options.organization_id for name in target.scope}
    data: dict[str, t.Any] = {
        "seed": seed,
        "base-url": options.api,
        "headers": {**options.headers, "Authorization": f"Bearer {options.token}"},
        "continue-on-failure": not options.fail_fast,
        **({"max-failures": 1} if options.fail_fast else {}),
        "workers": options.workers,
        "generation": {"max-examples": options.max_examples},
        "phases": {
            **{phase: {"enabled": phase in phases} for phase in UNIT_PHASES},
            # Only the contract's own links: inferred links could chain a listed (pre-existing)
            # record into an update or delete, and the suite must not write what it did not create.
            "stateful": {"enabled": "stateful" in phases, "inference": {"algorithms": []}},
        },
        "checks": {name: {"enabled": False} for name in sorted(run.domain.disabled_checks())},
        "parameters": parameters,
    }
    name = target.resource.id_param
    if "stateful" not in phases and name:
        parameters[f"path.{name}"] = target.typed_id(run.anchor)
        delete = target.op("delete")
        if delete is not None:
            victim = {f"path.{name}": target.typed_id(run.victim)}
            data["operations"] = [{"include-operation-id": delete.operation_id, "parameters": victim}]
    return SchemathesisConfig.from_dict(data)


def fuzz(run: checks.Run, result: Result, progress: Progress) -> None:
    unit = [p for p in run.options.phases if p in UNIT_PHASES]
    if unit:
        execute(run, result, config(run, result.seed, unit), progress)
    if run.options.fail_fast and result.findings:
        raise StopRun()
    if "stateful" in run.options.phases:
        execute(run, result, config(run, result.seed, ["stateful"]), progress)


def layer_of(run: checks.Run, check: str) -> str:
    if check in run.domain.check_names:
        return "domain"
    return "behaviour" if check in checks.BEHAVIOUR_CHECKS else "contract"


def _curl(info) -> str | None:
    sample = getattr(info, "code_sample", None)
    if not sample:
        return None
    return sample.replace("[Filtered]", f"Bearer {TOKEN_PLACEHOLDER}")


def execute(run: checks.Run, result: Result, config: SchemathesisConfig, progress: Progress) -> None:
    schema = schemathesis.openapi.from_path(run.options.contract, config=config)
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
                        layer = layer_of(run, check.name)
                        result.findings.append(Finding(layer, label, check.name, message, _curl(check.failure_info)))
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
