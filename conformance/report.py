"""How a conformance run is shown: live progress, summary tables, JUnit XML, JSON, a Markdown
summary (for ``$GITHUB_STEP_SUMMARY``) and a self-contained HTML page with the coverage map."""

from __future__ import annotations

import html
import json
import os
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
        out += ["", f"{causes_line(result)} ({len(result.findings)} in all)"]
        number = 0
        for title, group in _grouped(unique):
            out += ["", title]
            for finding in group:
                number += 1
                out.append(f"\n{number}. [{finding.layer}] {finding.operation} - {finding.check}")
                if finding.why:
                    out.append(f"   contract gap: {finding.why}")
                out += [f"   {line}" for line in finding.message.strip().splitlines()[:12]]
                if finding.curl:
                    out.append(f"   reproduce: {finding.curl}")
        out.append(f"\n(curl lines read the token from ${TOKEN_PLACEHOLDER[1:]}; export it first)")
    if result.suite_errors:
        out += ["", f"Tooling errors, retried ({len(result.suite_errors)}):"]
        out += [f"  - {e[:300]}" for e in result.suite_errors[:10]]
    if result.incomplete:
        out += ["", f"NOT TESTED even after retrying ({len(result.incomplete)}):"]
        out += [f"  - {e}" for e in result.incomplete]
    if result.coverage is not None:
        out += ["", coverage_text(result)]
    if result.not_removed:
        out += ["", f"Created but not removed ({len(result.not_removed)}):"]
        out += [f"  - {e}" for e in result.not_removed]
    out += ["", headline(result)]
    return "\n".join(out)


def causes_line(result: Result) -> str:
    """``N violations: X implementation, Y contract gaps`` (unique violations)."""
    counts = result.by_cause()
    total = counts["implementation"] + counts["contract"]
    return f"{total} violations: {counts['implementation']} implementation, {counts['contract']} contract gaps"


def _grouped(unique: list) -> list[tuple[str, list]]:
    """The implementation's violations, then the contract's gaps (still violations: they fail
    the run, since no implementation can meet that contract there)."""
    mine = [f for f in unique if f.cause != "contract"]
    gaps = [f for f in unique if f.cause == "contract"]
    groups = []
    if mine:
        groups.append((f"Implementation violations ({len(mine)})", mine))
    if gaps:
        groups.append((f"Contract gaps ({len(gaps)}): the contract leaves no conformant answer", gaps))
    return groups


def headline(result: Result) -> str:
    covered = f", coverage {result.coverage.percent:.1f}%" if result.coverage is not None else ""
    minimum = f" (minimum {result.options.min_coverage:g}%)" if result.options.min_coverage is not None else ""
    untested = f", {len(result.incomplete)} parts not tested" if result.incomplete else ""
    return (
        f"{result.verdict}: {result.cases} generated cases + targeted scenarios, {causes_line(result)}"
        f"{untested}{covered}{minimum}, seed {result.seed}, {result.duration:.1f}s; created "
        f"{result.created} records, deleted {result.cleaned}, {len(result.not_removed)} left behind."
    )


def coverage_text(result: Result) -> str:
    cov = result.coverage
    rows = []
    for operation, cells in cov.by_operation().items():
        shown = " ".join(f"{c.status}{'' if c.covered else '(-)'}" for c in cells)
        rows.append([operation, f"{sum(c.covered for c in cells)}/{len(cells)}", shown])
    lines = [
        f"Coverage: {cov.covered}/{len(cov.cells)} declared responses answered ({cov.percent:.1f}%), "
        f"{cov.operations_exercised()}/{len(cov.operations)} operations exercised; (-) = never answered",
        _table(rows, ["operation", "responses", "declared statuses"]),
    ]
    if cov.undeclared:
        lines.append("Answered but not declared: " + ", ".join(f"{o} {s} x{n}" for (o, s), n in cov.undeclared.items()))
    return "\n".join(lines)


def to_json(result: Result) -> dict[str, t.Any]:
    return {
        "verdict": result.verdict,
        "exitCode": result.exit_code(),
        "conformant": result.conformant,
        "baseUrl": result.options.api,
        "organizationId": result.options.organization_id,
        "seed": result.seed,
        "domain": result.domain,
        "maxExamples": result.options.max_examples,
        "workers": result.options.workers,
        "durationSeconds": round(result.duration, 3),
        "cases": result.cases,
        "createdCustomers": result.created,  # records of the contract's resource (the name predates other contracts)
        "createdRecords": result.created,
        "deletedRecords": result.cleaned,
        "notRemoved": result.not_removed,
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
                "cause": f.cause,
                "rule": f.rule,
                "why": f.why,
            }
            for f in result.unique_findings()
        ],
        "violationsByCause": result.by_cause(),
        "suiteErrors": result.suite_errors,
        "incomplete": result.incomplete,
        "minCoverage": result.options.min_coverage,
        "coverage": result.coverage.to_json() if result.coverage is not None else None,
    }


def to_junit(result: Result) -> bytes:
    """One testcase per (operation, check), a failure per unique violation; what could not be
    tested is an error testcase, each declared response never answered a skipped one (so CI
    dashboards show the gaps), and the coverage figures are testsuite properties."""
    suite = ElementTree.Element("testsuite", name="timbrix-conformance", time=f"{result.duration:.3f}")
    properties = ElementTree.SubElement(suite, "properties")
    cov = result.coverage
    figures = {"verdict": result.verdict, "seed": str(result.seed), "cases": str(result.cases)}
    if cov is not None:
        figures |= {"coverage.percent": f"{cov.percent:.1f}", "coverage.covered": str(cov.covered),
                    "coverage.declared": str(len(cov.cells))}  # fmt: skip
    for name, value in figures.items():
        ElementTree.SubElement(properties, "property", name=name, value=value)
    findings: dict[tuple[str, str], list] = {}
    for finding in result.unique_findings():
        findings.setdefault((finding.operation, finding.check), []).append(finding)
    tests = failures = errors = skipped = 0
    for (operation, check), tally in sorted(result.tallies.items()):
        tests += 1
        case = ElementTree.SubElement(suite, "testcase", classname=operation, name=check)
        if tally.failed:
            failures += 1
            failed = findings.get((operation, check), [])
            text = "\n\n".join(f"{f.message}\nreproduce: {f.curl or '-'}" for f in failed)
            failure = ElementTree.SubElement(case, "failure", message=f"{tally.failed} failing case(s)")
            failure.text = text
    for gap in result.incomplete:
        tests, errors = tests + 1, errors + 1
        case = ElementTree.SubElement(suite, "testcase", classname="incomplete", name=gap.split(": ")[1])
        ElementTree.SubElement(case, "error", message=gap)
    for cell in cov.missing() if cov is not None else ():
        tests, skipped = tests + 1, skipped + 1
        case = ElementTree.SubElement(suite, "testcase", classname=f"coverage {cell.operation}", name=cell.status)
        ElementTree.SubElement(case, "skipped", message="declared response never answered")
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skipped))
    return ElementTree.tostring(ElementTree.ElementTree(suite).getroot(), encoding="utf-8", xml_declaration=True)


def to_markdown(result: Result) -> str:
    """The run for a human in CI: verdict, coverage per operation, violations, gaps (GitHub
    renders it from ``$GITHUB_STEP_SUMMARY``)."""
    icon = {"CONFORMANT": "✅", "NOT CONFORMANT": "❌", "INCOMPLETE": "⚠️", "UNDER-COVERED": "⚠️"}[result.verdict]
    out = [f"## {icon} Conformance: {result.verdict}", "", headline(result), ""]
    cov = result.coverage
    if cov is not None:
        out += [
            f"### Coverage: {cov.percent:.1f}% of declared responses ({cov.covered}/{len(cov.cells)}), "
            f"{cov.operations_exercised()}/{len(cov.operations)} operations",
            "",
            "| operation | covered | declared responses (answers) |",
            "|---|---|---|",
        ]
        for operation, cells in cov.by_operation().items():
            shown = " ".join(f"`{c.status}` {c.answered}" if c.covered else f"~~`{c.status}`~~" for c in cells)
            out.append(f"| `{operation}` | {sum(c.covered for c in cells)}/{len(cells)} | {shown} |")
        out += ["", "Struck out: declared but never answered in this run.", ""]
    unique = result.unique_findings()
    if unique:
        out += [f"### {causes_line(result)}", ""]
        for title, group in _grouped(unique):
            out += [f"#### {title}", ""]
            for finding in group[:50]:
                first = finding.message.strip().splitlines()[0] if finding.message.strip() else ""
                gap = f" (contract gap: {finding.why})" if finding.why else ""
                out.append(f"- **[{finding.layer}] `{finding.operation}`** `{finding.check}`: {first[:300]}{gap}")
            out.append("")
    if result.incomplete:
        out += ["### Not tested", "", *[f"- {gap}" for gap in result.incomplete], ""]
    if result.not_removed:
        out += ["### Created but not removed", "", *[f"- {left}" for left in result.not_removed], ""]
    return "\n".join(out)


_CSS = """body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:center}th{background:#f4f4f4}td.op{text-align:left;
font-family:monospace}.yes{background:#b7e4b7}.fail{background:#f4a6a6}.no{background:#eee;color:#999}
.none{background:#fff}h1 span{font-size:70%}"""


def to_html(result: Result) -> str:
    """A self-contained page (no external assets): the verdict and a heat map of operations x
    declared responses (answers per cell: green judged and passed, red a check failed, grey
    never answered), then operations x checks."""
    esc = html.escape
    cov = result.coverage
    parts = [f"<!doctype html><meta charset=utf-8><title>Conformance: {esc(result.verdict)}</title>",
             f"<style>{_CSS}</style><h1>{esc(result.verdict)} <span>{esc(headline(result))}</span></h1>"]  # fmt: skip
    if cov is not None:
        statuses = sorted({c.status for c in cov.cells}, key=lambda s: (not s[0].isdigit(), s))
        parts.append(f"<h2>Declared responses answered: {cov.percent:.1f}% ({cov.covered}/{len(cov.cells)})</h2>")
        parts.append("<table><tr><th>operation</th>" + "".join(f"<th>{esc(s)}</th>" for s in statuses) + "</tr>")
        for operation, cells in cov.by_operation().items():
            by_status = {c.status: c for c in cells}
            row = [f"<tr><td class=op>{esc(operation)}</td>"]
            for status in statuses:
                cell = by_status.get(status)
                if cell is None:
                    row.append("<td class=none></td>")
                    continue
                failed = any(tally.failed for tally in cell.checks.values())
                kind = "no" if not cell.covered else "fail" if failed else "yes"
                title = ", ".join(f"{n}: {tl.passed} ok {tl.failed} failed" for n, tl in sorted(cell.checks.items()))
                row.append(f"<td class={kind} title='{esc(title)}'>{cell.answered if cell.covered else '-'}</td>")
            parts.append("".join(row) + "</tr>")
        parts.append("</table><p>Cells: answers with that status; hover for the checks that judged them.</p>")
        checks = cov.check_names
        parts.append("<h2>Checks per operation</h2><table><tr><th>operation</th>")
        parts.append("".join(f"<th>{esc(c)}</th>" for c in checks) + "</tr>")
        for operation, cells in cov.by_operation().items():
            row = [f"<tr><td class=op>{esc(operation)}</td>"]
            for check in checks:
                tallies = [c.checks[check] for c in cells if check in c.checks]
                passed, failed = sum(x.passed for x in tallies), sum(x.failed for x in tallies)
                kind = "fail" if failed else "yes" if passed else "no"
                row.append(f"<td class={kind}>{passed + failed if tallies else '-'}</td>")
            parts.append("".join(row) + "</tr>")
        parts.append("</table>")
    unique = result.unique_findings()
    if unique:
        parts.append(f"<h2>{esc(causes_line(result))}</h2>")
        for title, group in _grouped(unique):
            parts.append(f"<h3>{esc(title)}</h3><ol>")
            parts += [f"<li><b>[{esc(f.layer)}] {esc(f.operation)}</b> {esc(f.check)}"
                      + (f"<p class=gap>contract gap: {esc(f.why)}</p>" if f.why else "")
                      + f"<pre>{esc(f.message[:2000])}</pre><code>{esc(f.curl or '')}</code></li>"
                      for f in group]  # fmt: skip
            parts.append("</ol>")
    for title, items in (("Not tested", result.incomplete), ("Created but not removed", result.not_removed)):
        if items:
            parts.append(f"<h2>{title}</h2><ul>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>")
    return "\n".join(parts) + "\n"


def write_reports(
    result: Result,
    junit_path: str | None = None,
    json_path: str | None = None,
    markdown_path: str | None = None,
    html_path: str | None = None,
) -> None:
    """Write the reports asked for. The Markdown summary is also appended to
    ``$GITHUB_STEP_SUMMARY`` when that is set (GitHub Actions shows it on the run's page)."""
    if junit_path:
        with open(junit_path, "wb") as handle:
            handle.write(to_junit(result))
    if json_path:
        with open(json_path, "w", encoding="utf-8") as handle:
            json.dump(to_json(result), handle, ensure_ascii=False, indent=2)
    markdown = to_markdown(result)
    if markdown_path:
        with open(markdown_path, "w", encoding="utf-8") as handle:
            handle.write(markdown)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write(markdown + "\n")
    if html_path:
        with open(html_path, "w", encoding="utf-8") as handle:
            handle.write(to_html(result))
