#!/usr/bin/env python3
"""How often the conformance suite's contract layer loses an operation to the tooling: the
CPython 3.11.0-3.11.7 / 3.12.0-3.12.1 parser race (gh-106905, ``SystemError: AST constructor
recursion depth mismatch``) that hypothesis hits when it parses source in schemathesis' worker
threads. Runs the same short contract-layer run N times, each in a fresh process (the race is
at strategy construction, the first time each operation is tested), with the suite's guard
(``conformance.fuzz.one_parser_at_a_time``) and without it, against one in-memory sandbox.

    python bench/conformance_crashes.py --runs 50 --max-examples 1      # guarded and unguarded
    python bench/conformance_crashes.py --runs 50 --parser-only         # the race itself, seconds a run

``--parser-only`` isolates the mechanism: two threads parse hypothesis' largest module 15 times
each while a third makes garbage whose finalizer runs Python code (what lets the collector hand
the GIL over mid-parse, as in a real run); a run counts the ``SystemError``s. Short contract-layer
runs (examples and fuzzing, 1 example) rarely hit the race, which needs the first construction
of many strategies at once: 0 of 18 unguarded short runs did on 2026-12-01.

Prints, per mode: runs, runs with a tooling error, runs with the AST error, cases min-max.
Nothing here asserts anything; the figures go in the README with the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from timbrix_sandbox.testing import free_port, stop_process, wait_until_healthy  # noqa: E402

DUNDER = "550e8400-e29b-41d4-a716-446655440000"
CHILD = """
import json, sys
from conformance import checks, domains, fuzz
from conformance.model import Options, Result
from conformance.target import Target
if sys.argv[2] == "unguarded":
    fuzz.AST_RACE = False
options = Options(base_url=sys.argv[1], token="sk_test_michael", organization_id=sys.argv[5], seed=int(sys.argv[3]),
                  max_examples=int(sys.argv[4]), workers=2, phases=tuple(sys.argv[6].split(",")))
target = Target(options)
domain = domains.for_contract(target.spec)
result = Result(options=options, seed=options.seed, domain=domain.name)
run = checks.Run(options, target, domain, set(), set(), target.absent_id(), target.absent_id())
checks.start(run)
crashed = fuzz.execute(run, result, fuzz.config(run, options.seed, list(options.phases)), lambda kind, value: None)
print(json.dumps({"cases": result.cases, "errors": result.suite_errors, "crashed": sorted(map(list, crashed))}))
"""


PARSER_CHILD = """
import ast, contextlib, inspect, sys, threading, time
from conformance import fuzz
import hypothesis.strategies._internal.core as core
source, errors, stop = inspect.getsource(core), [], []
class Finalised:
    def __init__(self):
        self.me = self  # a cycle: only the collector frees it
    def __del__(self):
        sum(range(50))
def litter():
    while not stop:
        Finalised()
        time.sleep(0)
def parse():
    for _ in range(15):
        try:
            ast.parse(source)
        except SystemError as exc:
            errors.append(exc)
with fuzz.one_parser_at_a_time(2) if sys.argv[1] == "guarded" else contextlib.nullcontext():
    helper, threads = threading.Thread(target=litter), [threading.Thread(target=parse) for _ in range(2)]
    helper.start()
    [t.start() for t in threads]
    [t.join() for t in threads]
    stop.append(True)
    helper.join()
print(len(errors))
"""


def parser_only(runs: int, modes: list[str]) -> int:
    print(f"{sys.version.split()[0]}, load {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores", flush=True)
    for mode in modes:
        failing = errors = 0
        for _run in range(runs):
            done = subprocess.run([sys.executable, "-c", PARSER_CHILD, mode], cwd=ROOT, capture_output=True, text=True)
            count = int(done.stdout.strip() or 0)
            failing, errors = failing + bool(count), errors + count
        print(f"{mode:9} runs {runs}  with a SystemError {failing} ({100 * failing / runs:.0f}%)  errors {errors} "
              f"of {runs * 30} parses", flush=True)  # fmt: skip
    print(f"load {os.getloadavg()[0]:.1f} at the end")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--max-examples", type=int, default=1)
    parser.add_argument("--modes", default="unguarded,guarded")
    parser.add_argument("--phases", default="examples,fuzzing", help="the coverage phase adds ~450 cases a run")
    parser.add_argument("--parser-only", action="store_true", help="only the parser race, no server (see above)")
    args = parser.parse_args()
    if args.parser_only:
        return parser_only(args.runs, args.modes.split(","))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "timbrix_sandbox", "serve", "--port", str(port), "--in-memory",
         "--log-level", "warning"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        if wait_until_healthy(url, server) != "ready":
            print("the sandbox did not start", file=sys.stderr)
            return 2
        print(f"{sys.version.split()[0]}, load {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores", flush=True)
        summary = {}
        for run_number in range(args.runs):
            for mode in args.modes.split(","):
                started = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-c", CHILD, url + "/api", mode, str(run_number + 1), str(args.max_examples),
                     DUNDER, args.phases],
                    cwd=ROOT, capture_output=True, text=True,
                )  # fmt: skip
                try:
                    report = json.loads(done.stdout.strip().splitlines()[-1])
                except (ValueError, IndexError):
                    report = {"cases": 0, "errors": [f"the run died: {done.stderr[-300:]}"], "crashed": []}
                ast_errors = [e for e in report["errors"] if "recursion depth mismatch" in e]
                entry = summary.setdefault(mode, {"runs": 0, "tooling": 0, "ast": 0, "cases": []})
                entry["runs"] += 1
                entry["tooling"] += bool(report["errors"])
                entry["ast"] += bool(ast_errors)
                entry["cases"].append(report["cases"])
                took = time.perf_counter() - started
                first = report["errors"][0][:150] if report["errors"] else ""
                print(f"{run_number + 1:3} {mode:9} cases {report['cases']:4} {took:5.1f}s {first}", flush=True)
        print(f"\nload {os.getloadavg()[0]:.1f} at the end")
        for mode, entry in summary.items():
            cases = entry["cases"]
            print(
                f"{mode:9} runs {entry['runs']:3}  with a tooling error {entry['tooling']:3}  with the AST error "
                f"{entry['ast']:3} ({100 * entry['ast'] / entry['runs']:.0f}%)  cases {min(cases)}-{max(cases)}"
            )
    finally:
        stop_process(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
