"""How a conformance run is shown: live progress, summary tables, JUnit XML and JSON."""

from __future__ import annotations

import json
import sys
import typing as t
from xml.etree import ElementTree

from .model import TOKEN_PLACEHOLDER, Result


class ProgressPrinter:
    """pytest-style progress on stderr: a line per phase, a character per scenario."""

    def __init__(self, stream: t.TextIO = sys.stderr) -> None:
        self.stream = stream
        self.column = 0

    def __call__(self, kind: str, value: str) -> None:
        if kind == "phase":
            if value in ("probing", "schema_analysis", "auth_bootstrap"):
                return
            self.stream.write(f"\n{value:<10} ")
            self.column = 0
        else:
            if self.column >= 60:
                self.stream.write("\n" + " " * 11)
                self.column = 0
            self.stream.write(value)
            self.column += 1
        self.stream.flush()


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def summary(result: Result) -> str:
    by_operation: dict[str, list[int]] = {}
    by_check: dict[str, list[int]] = {}
    for (operation, check), tally in result.tallies.items():
        for bucket, key in ((by_operation, operation), (by_check, check)):
            entry = bucket.setdefault(key, [0, 0])
            entry[0] += tally.passed
            entry[1] += tally.failed

    def rows(bucket: dict[str, list[int]]) -> list[list[str]]:
        return [[k, str(p), str(f), "FAIL" if f else "ok"] for k, (p, f) in sorted(bucket.items())]

    out = ["", "", "Per operation", _table(rows(by_operation), ["operation", "passed", "failed", ""])]
    out += ["", "Per check", _table(rows(by_check), ["check", "passed", "failed", ""])]
    unique = result.unique_findings()
    if unique:
        out += ["", f"Violations ({len(unique)} unique, {len(result.findings)} in all)"]
        for number, finding in enumerate(unique, start=1):
            out.append(f"\n{number}. [{finding.layer}] {finding.operation} - {finding.check}")
            out += [f"   {line}" for line in finding.message.strip().splitlines()[:12]]
            if finding.curl:
                out.append(f"   reproduce: {finding.curl}")
        out.append(f"\n(curl lines read the token from ${TOKEN_PLACEHOLDER[1:]}; export it first)")
    if result.suite_errors:
        out += ["", f"Suite errors, not counted against the implementation ({len(result.suite_errors)}):"]
        out += [f"  - {e[:300]}" for e in result.suite_errors[:10]]
    verdict = "CONFORMANT" if result.conformant else "NOT CONFORMANT"
    out += [
        "",
        f"{verdict}: {result.cases} generated cases + targeted scenarios, {len(result.unique_findings())} unique "
        f"violations, seed {result.seed}, {result.duration:.1f}s; created {result.created} records, "
        f"deleted {result.cleaned} (the rest were already gone).",
    ]
    return "\n".join(out)


def to_json(result: Result) -> dict[str, t.Any]:
    return {
        "conformant": result.conformant,
        "baseUrl": result.options.api,
        "organizationId": result.options.organization_id,
        "seed": result.seed,
        "domain": result.domain,
        "maxExamples": result.options.max_examples,
        "durationSeconds": round(result.duration, 3),
        "cases": result.cases,
        "createdCustomers": result.created,  # records of the contract's resource (the name predates other contracts)
        "checks": [
            {"operation": op, "check": check, "passed": tally.passed, "failed": tally.failed}
            for (op, check), tally in sorted(result.tallies.items())
        ],
        "violations": [
            {
                "layer": f.layer,
                "operation": f.operation,
                "check": f.check,
                "message": f.message,
                "curl": f.curl,
            }
            for f in result.unique_findings()
        ],
        "suiteErrors": result.suite_errors,
    }


def to_junit(result: Result) -> bytes:
    """One testcase per (operation, check); a failure element per unique violation."""
    suite = ElementTree.Element(
        "testsuite",
        name="timbrix-conformance",
        tests=str(len(result.tallies)),
        failures=str(sum(1 for t in result.tallies.values() if t.failed)),
        time=f"{result.duration:.3f}",
    )
    findings: dict[tuple[str, str], list] = {}
    for finding in result.unique_findings():
        findings.setdefault((finding.operation, finding.check), []).append(finding)
    for (operation, check), tally in sorted(result.tallies.items()):
        case = ElementTree.SubElement(suite, "testcase", classname=operation, name=check)
        if tally.failed:
            failed = findings.get((operation, check), [])
            text = "\n\n".join(f"{f.message}\nreproduce: {f.curl or '-'}" for f in failed)
            failure = ElementTree.SubElement(case, "failure", message=f"{tally.failed} failing case(s)")
            failure.text = text
    return ElementTree.tostring(ElementTree.ElementTree(suite).getroot(), encoding="utf-8", xml_declaration=True)


def write_reports(result: Result, junit_path: str | None, json_path: str | None) -> None:
    if junit_path:
        with open(junit_path, "wb") as handle:
            handle.write(to_junit(result))
    if json_path:
        with open(json_path, "w", encoding="utf-8") as handle:
            json.dump(to_json(result), handle, ensure_ascii=False, indent=2)
