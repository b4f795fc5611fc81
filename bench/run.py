#!/usr/bin/env python3
"""Benchmarks for timbrix-sandbox, side by side in one run. Prints tables with ratios and writes
JSON to bench/results/<date>.json so runs can be compared over time.

    python3 dev.py bench                        # everything (about 20 minutes)
    python3 dev.py bench --only store           # durable write cost at 100 / 10k / 100k customers
    python3 dev.py bench --only http            # sandbox vs Prism vs raw Starlette, 32 connections
    python3 dev.py bench --only http --rounds 5 # more alternating sandbox/Prism rounds per endpoint
    python3 dev.py bench --only scale           # PUT over HTTP with 100 / 10k / 100k customers
    python3 dev.py bench --only conformance     # a default conformance run against the sandbox
    python3 dev.py bench --only peer            # the BeeL contract (generic layer) vs Prism and vs Timbrix
    python3 dev.py bench --only http,peer       # several sections in one run (issue 14's figures)
    python3 dev.py bench --only store-pg        # TinyDB vs PostgreSQL, 1 vs 2 workers (a throwaway PG server)
    python3 dev.py bench --only long-fuzz       # opt-in: >= 20,000 schemathesis cases across seeds

Servers run pinned to CPU 0 and wrk to CPU 1 (taskset), as in the issue's reference figures.
Needs wrk (Debian: apt-get install wrk); Prism is installed from the npm registry into
bench/.prism on first use. The machines here are small and noisy: compare the ratios within a
run, not absolute numbers across runs. Every wrk figure also records the disk's stalls in
the same seconds (``disk_probe.py``): a durable write's p99 is partly the disk's. Nothing here
asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from disk_probe import DiskProbe  # noqa: E402  (bench/, this script's directory)

from timbrix_sandbox.engine.fixtures import load_fixtures  # noqa: E402
from timbrix_sandbox.engine.store import Store  # noqa: E402
from timbrix_sandbox.profiles import CONTRACTS, TIMBRIX_FIXTURES  # noqa: E402
from timbrix_sandbox.testing import PostgresServer, stop_process  # noqa: E402

ORG = "550e8400-e29b-41d4-a716-446655440000"
DOCS_CUSTOMER = "590ce6c56d04f840aa8438af"
PRISM_VERSION = "5.14.2"
PRISM_DIR = ROOT / "bench" / ".prism"
SERVER_CPU, LOAD_CPU = "0", "1"
AUTH = "Authorization: Bearer sk_test_michael"
DISK_PROBE: DiskProbe | None = None
"""Set by ``main`` for the HTTP sections: each wrk figure then carries the disk's stalls."""


# -- helpers ------------------------------------------------------------------------------------
def _pinned(command: list[str], cpu: str) -> list[str]:
    return ["taskset", "-c", cpu, *command] if shutil.which("taskset") else command


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Server:
    """A server process pinned to SERVER_CPU; startup is measured to the first 200."""

    def __init__(
        self, command: list[str], probe_url: str, headers: dict[str, str] | None = None, cpu: str | None = SERVER_CPU
    ) -> None:
        self.probe_url = probe_url
        started = time.perf_counter()
        self.process = subprocess.Popen(
            _pinned(command, cpu) if cpu else command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        while True:
            try:
                request = urllib.request.Request(probe_url, headers=headers or {})
                with urllib.request.urlopen(request, timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{command[0]} exited during startup") from None
                time.sleep(0.01)
        self.startup = time.perf_counter() - started

    def stop(self) -> None:
        stop_process(self.process)


def sandbox(
    data_dir: str | None = None,
    fast_path: bool = True,
    contract: Path | None = None,
    store_url: str | None = None,
    workers: int = 1,
    cpu: str | None = SERVER_CPU,
    extra: tuple[str, ...] = (),
) -> tuple[Server, str]:
    port = _free_port()
    store = ["--data-dir", data_dir] if data_dir else ["--in-memory"]
    if store_url:
        store = ["--store", store_url, "--workers", str(workers)]
    command = [sys.executable, "-m", "timbrix_sandbox", "serve", "--port", str(port), "--log-level", "warning", *store]
    command += list(extra)
    if contract is not None:
        command += ["--contract", str(contract)]
    if not fast_path:
        command = ["env", "TIMBRIX_SANDBOX_FASTPATH=0", *command]
    url = f"http://127.0.0.1:{port}"
    return Server(command, url + "/__sandbox/health", cpu=cpu), url + "/api"


def prism(contract: Path = ROOT / "openapi.yaml", probe_path: str | None = None, auth: str = AUTH):
    binary = PRISM_DIR / "node_modules" / ".bin" / "prism"
    if not binary.exists():
        if not shutil.which("npm"):
            return None
        subprocess.run(
            [
                "npm",
                "install",
                "--prefix",
                str(PRISM_DIR),
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                f"@stoplight/prism-cli@{PRISM_VERSION}",
            ],
            check=True,
            capture_output=True,
        )
    port = _free_port()
    command = [str(binary), "mock", str(contract), "-p", str(port), "-h", "127.0.0.1", "-v", "silent"]
    base = f"http://127.0.0.1:{port}"  # Prism serves the paths without the servers' /api prefix
    probe = base + (probe_path or f"/organizations/{ORG}/customers/{DOCS_CUSTOMER}")
    name, _, value = auth.partition(": ")
    return Server(command, probe, {name: value}), base


def ceiling() -> tuple[Server, str]:
    port = _free_port()
    command = [sys.executable, str(ROOT / "bench" / "ceiling.py"), str(port)]
    url = f"http://127.0.0.1:{port}"
    return Server(command, url + "/__sandbox/health"), url + "/api"


def wrk(url: str, seconds: int, script: str | None = None, auth: str = AUTH, connections: int = 32) -> dict:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-H", auth]
    if script:
        command += ["-s", str(ROOT / "bench" / script)]
    started = time.monotonic()
    out = subprocess.run(_pinned([*command, url], LOAD_CPU), capture_output=True, text=True, check=True).stdout
    ended = time.monotonic()

    def latency(label: str) -> float:
        match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(match.group(1)), match.group(2)
        return round(value / 1000 if unit == "us" else value * 1000 if unit == "s" else value, 2)

    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result = {
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "req_per_s": round(float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), 1),
        "p50_ms": latency("50%"),
        "p99_ms": latency("99%"),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
    }
    if DISK_PROBE is not None:
        result["disk"] = DISK_PROBE.window(started, ended)
    return result


@functools.cache
def _docs_customer() -> dict:
    return next(c for c in load_fixtures(TIMBRIX_FIXTURES).records["customers"][ORG] if c["id"] == DOCS_CUSTOMER)


def _record(i: int) -> dict:
    """Customer ``i`` of a large organization: the docs customer under another id and name."""
    return {**_docs_customer(), "id": f"{i:024x}", "legalName": f"Customer {i}", "email": f"c{i}@example.com"}


def _stored(record: dict) -> dict:
    """A record as the engine stores it (record layout 2: ``{"id": key, "data": record}``)."""
    return {"id": record["id"], "data": record}


# -- sections -----------------------------------------------------------------------------------
ENDPOINTS = {
    # name: (path under the API root, wrk script)
    "GET customer by id": (f"/organizations/{ORG}/customers/{DOCS_CUSTOMER}", None),
    "GET list": (f"/organizations/{ORG}/customers", None),
    "PUT update": (f"/organizations/{ORG}/customers/{DOCS_CUSTOMER}", "put.lua"),
    "POST create": (f"/organizations/{ORG}/customers", "post.lua"),
}


FEW_CONNECTIONS = 8
"""The writes are also measured at this many connections: at 32 a CPU-bound server's p50 is
32 / throughput whatever its write path does, so a p99 there mostly measures the queue; at 8
it measures the write path (its fsync, its batch, its thread hand-offs) as a client sees it."""

HTTP_ROWS = {
    # row: (endpoint, connections)
    **{name: (name, 32) for name in ENDPOINTS},
    **{f"{name}, {FEW_CONNECTIONS} conns": (name, FEW_CONNECTIONS) for name in ("PUT update", "POST create")},
}
WRITE_ROWS = tuple(name for name, (endpoint, _) in HTTP_ROWS.items() if endpoint in ("PUT update", "POST create"))

MEMORY_FS = Path("/dev/shm")
"""A tmpfs (Linux): the write rows are also taken from a second sandbox whose data directory is
here. Same code, same journal, every write still appended with ``O_DSYNC`` - which a tmpfs
completes at once - so the difference to the sandbox on the disk is what waiting for the disk
costs, and the tmpfs figure is what the code does when the disk does not stall. A diagnostic:
nothing on a tmpfs survives a reboot, so it is not the figure the issue's target reads."""


def _memory_fs_dir() -> str | None:
    """A fresh directory on :data:`MEMORY_FS`, or ``None`` where there is none."""
    if not (MEMORY_FS.is_dir() and os.access(MEMORY_FS, os.W_OK)):
        return None
    return tempfile.mkdtemp(dir=MEMORY_FS, prefix="timbrix-bench-")


def _reset(api: str) -> float:
    """Reset the sandbox to its fixtures; the milliseconds it reported."""
    request = urllib.request.Request(api.replace("/api", "/__sandbox/reset"), method="POST")
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())["tookMs"]


def _median_run(runs: list[dict]) -> dict:
    """The run with the median req/s (its own p50 and p99 with it), and every run's figures."""
    middle = sorted(runs, key=lambda run: run["req_per_s"])[len(runs) // 2]
    median = {**middle, "runs": [run["req_per_s"] for run in runs]}
    if all("disk" in run for run in runs):
        median["runs_disk"] = [run["disk"] for run in runs]
        median["runs_p99_ms"] = [run["p99_ms"] for run in runs]
    return median


def bench_http(seconds: int, rounds: int = 3) -> dict:
    """The sandbox as users run it (durable file store, every write fsynced, validation on)
    against Prism, both started before the first figure and loaded one at a time, alternating
    endpoint by endpoint for ``rounds`` rounds: on this VM the machine's speed drifts by tens
    of percent within minutes, so each ratio compares figures taken seconds apart. Each figure
    is the median round; the sandbox is reset to its fixtures before each (creates pile up)."""
    results: dict = {"sandbox": {}, "prism": {}, "starlette": {}, "connexion_only": {}, "ratios": {}}
    results["rounds"] = rounds
    tmp = tempfile.mkdtemp(dir=ROOT / "bench")
    in_memory_fs = _memory_fs_dir()
    on_tmpfs: Server | None = None
    startups = []
    for _ in range(3):  # the median of three (the first start after an edit also compiles bytecode)
        server, api = sandbox(tmp)
        startups.append(round(server.startup, 3))
        server.stop()
    server, api = sandbox(tmp)
    mock = None
    try:
        results["sandbox"]["startup_s"] = statistics.median(startups)
        results["sandbox"]["startups_s"] = startups
        results["sandbox"]["reset_ms"] = round(statistics.median(_reset(api) for _ in range(20)), 2)
        started = prism()
        if started is None:
            results["prism"] = {"skipped": "npm not available"}
        else:
            mock, base = started
            startups = [round(mock.startup, 3)]
            for _ in range(2):
                mock.stop()
                mock, base = prism()
                startups.append(round(mock.startup, 3))
            results["prism"]["startup_s"] = statistics.median(startups)
            results["prism"]["startups_s"] = startups
            wrk(base + ENDPOINTS["GET customer by id"][0], 2)  # warm-up
        wrk(api + ENDPOINTS["GET customer by id"][0], 2)
        if in_memory_fs is not None:
            on_tmpfs, tmpfs_api = sandbox(in_memory_fs)
            results["sandbox_tmpfs"], results["ratios_tmpfs"] = {}, {}
            wrk(tmpfs_api + ENDPOINTS["GET customer by id"][0], 2)
        for name, (endpoint, connections) in HTTP_ROWS.items():
            path, script = ENDPOINTS[endpoint]
            ours, theirs, tmpfs = [], [], []
            for _ in range(rounds):
                _reset(api)
                ours.append(wrk(api + path, seconds, script, connections=connections))
                if mock is not None:
                    theirs.append(wrk(base + path, seconds, script, connections=connections))
                if on_tmpfs is not None and name in WRITE_ROWS:
                    _reset(tmpfs_api)
                    tmpfs.append(wrk(tmpfs_api + path, seconds, script, connections=connections))
            results["sandbox"][name] = _median_run(ours)
            if theirs:
                results["prism"][name] = _median_run(theirs)
                ratios = [a["req_per_s"] / b["req_per_s"] for a, b in zip(ours, theirs, strict=True)]
                results["ratios"][name] = {"median": round(statistics.median(ratios), 2), "runs": ratios}
            if tmpfs:
                results["sandbox_tmpfs"][name] = _median_run(tmpfs)
                if theirs:
                    ratios = [a["req_per_s"] / b["req_per_s"] for a, b in zip(tmpfs, theirs, strict=True)]
                    results["ratios_tmpfs"][name] = {"median": round(statistics.median(ratios), 2), "runs": ratios}
    finally:
        server.stop()
        if mock is not None:
            mock.stop()
        if on_tmpfs is not None:
            on_tmpfs.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        if in_memory_fs is not None:
            shutil.rmtree(in_memory_fs, ignore_errors=True)
    # The same sandbox without the compiled fast path (every request through Connexion's stack).
    server, api = sandbox(None, fast_path=False)
    try:
        wrk(api + ENDPOINTS["GET customer by id"][0], 2)
        for name in ("GET customer by id", "PUT update"):
            path, script = ENDPOINTS[name]
            results["connexion_only"][name] = wrk(api + path, seconds, script)
    finally:
        server.stop()
    server, api = ceiling()
    try:
        wrk(api + ENDPOINTS["GET customer by id"][0], 2)
        results["starlette"]["GET customer by id"] = wrk(api + ENDPOINTS["GET customer by id"][0], seconds)
    finally:
        server.stop()
    results["journal"] = bench_journal(seconds)
    return results


def _test_reset_ms(control: str, rounds: int = 20) -> float:
    """What the pytest plugin does before each test (reset, clear behaviours, clear the journal),
    client side, the median of ``rounds``."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        for method, path in (("POST", "/reset"), ("DELETE", "/behaviours"), ("DELETE", "/requests")):
            with urllib.request.urlopen(urllib.request.Request(control + path, method=method)) as response:
                response.read()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def bench_journal(seconds: int, rounds: int = 5) -> dict:
    """GET by id with the request journal on (the default) and off (``--journal-size 0``), both in
    memory, measured in turns (on, off, on, off...) so the machine's drift hits both; medians."""
    path = ENDPOINTS["GET customer by id"][0]
    servers = {"on": sandbox(None), "off": sandbox(None, extra=("--journal-size", "0"))}
    runs: dict[str, list[dict]] = {"on": [], "off": []}
    try:
        for _server, api in servers.values():
            wrk(api + path, 2)
        for _ in range(rounds):
            for name, (_server, api) in servers.items():
                runs[name].append(wrk(api + path, seconds))
        test_reset_ms = _test_reset_ms(servers["on"][1].replace("/api", "/__sandbox"))
    finally:
        for server, _api in servers.values():
            server.stop()
    out = {
        name: {key: statistics.median(r[key] for r in taken) for key in ("req_per_s", "p50_ms", "p99_ms")}
        for name, taken in runs.items()
    }
    out["ratio_on_off"] = round(out["on"]["req_per_s"] / out["off"]["req_per_s"], 3)
    out["test_reset_ms"] = test_reset_ms
    return out


def bench_scale(seconds: int, sizes: tuple[int, ...]) -> dict:
    """PUT over HTTP with the organization holding N customers (all in the written partition)."""
    fixtures = load_fixtures(TIMBRIX_FIXTURES)
    results = {}
    for size in sizes:
        with tempfile.TemporaryDirectory(dir=ROOT / "bench") as tmp:
            store = Store(tmp)
            base = fixtures.records["customers"][ORG]
            records = [*base, *(_record(i) for i in range(max(0, size - len(base))))]
            store.replace_all("customers", ORG, [_stored(r) for r in records])
            store.close()
            server, api = sandbox(tmp)
            try:
                url = api + ENDPOINTS["PUT update"][0]
                wrk(url, 2, "put.lua")
                results[size] = wrk(url, seconds, "put.lua")
                results[size]["startup_s"] = round(server.startup, 3)
            finally:
                server.stop()
    return results


def bench_store(sizes: tuple[int, ...], writes: int) -> dict:
    """One durable update (journal append + fsync), in-process, as the partition grows."""
    results = {}
    for size in sizes:
        with tempfile.TemporaryDirectory(dir=ROOT / "bench") as tmp:
            store = Store(tmp)
            store.replace_all("customers", ORG, (_record(i) for i in range(size)))
            timings = []
            for n in range(writes):
                target = f"{(n * 7919) % size:024x}"
                started = time.perf_counter()
                store.update("customers", ORG, target, lambda r, n=n: {**r, "legalName": f"Renamed {n}"})
                timings.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            store.close()
            Store(tmp).count("customers", ORG)
            reopen = (time.perf_counter() - started) * 1000
        results[size] = {
            "median_ms": round(statistics.median(timings), 3),
            "p99_ms": round(_percentile(timings, 0.99), 3),
            "close_and_reopen_ms": round(reopen, 1),
        }
    return results


def bench_compaction_pause(sizes: tuple[int, ...], rounds: int = 3) -> dict:
    """How long a compaction of a partition holds up the event loop: a thread compacts (as a
    store writer thread does) while the loop ticks every 0.5 ms, and the longest gap between
    two ticks is the pause reads would see. Median of ``rounds``."""

    def once(store: Store) -> tuple[float, float]:
        partition = store._partition("customers", ORG)
        timing: list[float] = []

        def compact() -> None:
            started = time.perf_counter()
            partition.compact()
            timing.append((time.perf_counter() - started) * 1000)

        async def watch() -> float:
            worker = threading.Thread(target=compact)
            last, worst = time.perf_counter(), 0.0
            worker.start()
            while worker.is_alive():
                await asyncio.sleep(0.0005)
                now = time.perf_counter()
                worst, last = max(worst, now - last), now
            worker.join()
            return worst * 1000

        pause = asyncio.run(watch())
        return timing[0], pause

    results = {}
    for size in sizes:
        with tempfile.TemporaryDirectory(dir=ROOT / "bench") as tmp:
            store = Store(tmp)
            store.replace_all("customers", ORG, (_stored(_record(i)) for i in range(size)))
            runs = [once(store) for _ in range(rounds)]
            store.close()
        results[size] = {
            "compaction_ms": round(statistics.median(r[0] for r in runs), 1),
            "longest_loop_pause_ms": round(statistics.median(r[1] for r in runs), 1),
            "pauses_ms": [round(r[1], 1) for r in runs],
        }
    return results


def bench_stock_tinydb(sizes: tuple[int, ...], writes: int) -> dict:
    """The same update with TinyDB's default JSONStorage (rewrites the whole file), for the ratio."""
    from tinydb import Query, TinyDB

    results = {}
    for size in sizes:
        with tempfile.TemporaryDirectory(dir=ROOT / "bench") as tmp:
            db = TinyDB(Path(tmp) / "db.json")
            db.insert_multiple(_record(i) for i in range(size))
            timings = []
            for n in range(writes):
                started = time.perf_counter()
                db.update({"legalName": f"Renamed {n}"}, Query().id == f"{(n * 7919) % size:024x}")
                timings.append((time.perf_counter() - started) * 1000)
            db.close()
        results[size] = {"median_ms": round(statistics.median(timings), 3)}
    return results


def long_fuzz(target_cases: int, max_examples: int) -> dict:
    """Opt-in: schemathesis across seeds until ``target_cases`` cases, against one sandbox
    (state accumulates, as in a real long session). Counts server errors and schema violations."""
    from conformance.model import Options
    from conformance.runner import run

    server, api = sandbox(tempfile.mkdtemp(dir=ROOT / "bench"))
    seeds, cases, findings, started = [], 0, [], time.perf_counter()
    try:
        seed = 1000
        while cases < target_cases:
            result = run(
                Options(
                    base_url=api,
                    token="sk_test_michael",
                    organization_id=ORG,
                    outsider_token="sk_test_prince",
                    outsider_organization_id="7c9e6679-7425-40de-944b-e07fc1f90ae7",
                    seed=seed,
                    max_examples=max_examples,
                )
            )
            seeds.append(seed)
            cases += result.cases
            findings += [
                f"{f.operation} {f.check}: {f.message.splitlines()[0] if f.message else ''}"
                for f in result.unique_findings()
            ]
            print(f"  seed {seed}: {result.cases} cases, {len(result.findings)} findings ({cases} total)", flush=True)
            seed += 1
    finally:
        server.stop()
    return {
        "cases": cases,
        "seeds": seeds,
        "max_examples": max_examples,
        "seconds": round(time.perf_counter() - started, 1),
        "server_errors": sum("not_a_server_error" in f for f in findings),
        "schema_violations": sum("response_schema_conformance" in f for f in findings),
        "findings": findings,
    }


def bench_conformance() -> dict:
    server, api = sandbox()
    try:
        started = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "timbrix_sandbox",
                "conformance",
                "--base-url",
                api,
                "--token",
                "sk_test_michael",
                "--organization-id",
                ORG,
                "--outsider-token",
                "sk_test_prince",
                "--outsider-organization-id",
                "7c9e6679-7425-40de-944b-e07fc1f90ae7",
                "--seed",
                "1",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        elapsed = time.perf_counter() - started
    finally:
        server.stop()
    cases = re.search(r"(\d+) generated cases", done.stdout)
    return {"seconds": round(elapsed, 1), "exit_code": done.returncode, "cases": int(cases.group(1)) if cases else None}


BEEL = CONTRACTS["beel"]
BEEL_AUTH = "Authorization: Bearer beel_sk_test_madrid"
BEEL_CUSTOMER = "123e4567-e89b-12d3-a456-426614174000"
BEEL_ENDPOINTS = {
    "GET customer by id": (f"/v1/customers/{BEEL_CUSTOMER}", None),
    "GET list": ("/v1/customers", None),
    "PUT update": (f"/v1/customers/{BEEL_CUSTOMER}", "beel_put.lua"),
    "POST create": ("/v1/customers", "beel_post.lua"),
}


BOOKS = CONTRACTS["bookkeeping"]
BOOKS_AUTH = "Authorization: Bearer bc_test_acme"
BOOKS_GET = "/customers/1"


def bench_peer(seconds: int, rounds: int = 3) -> dict:
    """A peer contract served by the generic layer (BeeL, durable file store, envelope and
    validation on) beside Prism mocking the same contract and beside the Timbrix profile, and
    the bookkeeping API's GET by id (a tenant header parameter, a numeric id) beside Timbrix's.
    All four servers run at once and are loaded one at a time, alternating endpoint by endpoint
    for ``rounds`` rounds (as ``bench_http``): each figure is the median round, each ratio the
    median of the rounds' ratios. Sandboxes are reset to their fixtures before each figure."""
    results: dict = {"beel_sandbox": {}, "beel_prism": {}, "timbrix_sandbox": {}, "books_sandbox": {}, "ratios": {}}
    results["rounds"] = rounds
    dirs = [tempfile.mkdtemp(dir=ROOT / "bench") for _ in range(3)]
    servers: list[Server] = []
    try:
        beel, beel_api = sandbox(dirs[0], contract=BEEL)
        servers.append(beel)
        results["beel_sandbox"]["startup_s"] = round(beel.startup, 3)
        timbrix, api = sandbox(dirs[1])
        servers.append(timbrix)
        books, books_api = sandbox(dirs[2], contract=BOOKS)
        servers.append(books)
        started = prism(BEEL, BEEL_ENDPOINTS["GET customer by id"][0], BEEL_AUTH)
        if started is None:
            results["beel_prism"] = {"skipped": "npm not available"}
        else:
            servers.append(started[0])
            wrk(started[1] + BEEL_ENDPOINTS["GET customer by id"][0], 2, auth=BEEL_AUTH)
        wrk(beel_api + BEEL_ENDPOINTS["GET customer by id"][0], 2, auth=BEEL_AUTH)
        wrk(api + ENDPOINTS["GET customer by id"][0], 2)
        wrk(books_api + BOOKS_GET, 2, auth=BOOKS_AUTH)
        for name, (path, script) in BEEL_ENDPOINTS.items():
            runs: dict[str, list[dict]] = {side: [] for side in ("beel_sandbox", "beel_prism", "timbrix_sandbox")}
            runs["books_sandbox"] = []
            for _ in range(rounds):
                _reset(beel_api)
                runs["beel_sandbox"].append(wrk(beel_api + path, seconds, script, auth=BEEL_AUTH))
                if started is not None:
                    runs["beel_prism"].append(wrk(started[1] + path, seconds, script, auth=BEEL_AUTH))
                _reset(api)
                runs["timbrix_sandbox"].append(wrk(api + ENDPOINTS[name][0], seconds, ENDPOINTS[name][1]))
                if name == "GET customer by id":
                    runs["books_sandbox"].append(wrk(books_api + BOOKS_GET, seconds, auth=BOOKS_AUTH))
            for side, figures in runs.items():
                if figures:
                    results[side][name] = _median_run(figures)
            ratios = results["ratios"][name] = {}
            for label, (top, bottom) in {
                "beel/prism": ("beel_sandbox", "beel_prism"),
                "beel/timbrix": ("beel_sandbox", "timbrix_sandbox"),
                "books/timbrix": ("books_sandbox", "timbrix_sandbox"),
            }.items():
                if runs[top] and runs[bottom]:
                    each = [a["req_per_s"] / b["req_per_s"] for a, b in zip(runs[top], runs[bottom], strict=True)]
                    ratios[label] = {"median": round(statistics.median(each), 2), "runs": each}
    finally:
        for server in servers:
            server.stop()
        for directory in dirs:
            shutil.rmtree(directory, ignore_errors=True)
    return results


STORE_PG_RUNS = {
    # name: (store, workers, sandbox CPUs)
    "TinyDB file, 1 process, CPU0": ("tinydb", 1, SERVER_CPU),
    "PostgreSQL, 1 worker, CPU0": ("postgresql", 1, SERVER_CPU),
    "PostgreSQL, 2 workers, CPU0": ("postgresql", 2, SERVER_CPU),
    "PostgreSQL, 1 worker, unpinned": ("postgresql", 1, None),
    "PostgreSQL, 2 workers, unpinned": ("postgresql", 2, None),
}


def _spread_put_script(directory: str) -> str:
    """A wrk script like put.lua, each request to the next of the organization's fixture
    customers in turn (put.lua updates one record: every write waits for the previous one)."""
    ids = [c["id"] for c in load_fixtures(TIMBRIX_FIXTURES).records["customers"][ORG]]
    paths = ", ".join(f'"/api/organizations/{ORG}/customers/{i}"' for i in ids)
    script = Path(directory) / "put_spread.lua"
    script.write_text(
        f"""wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/json"
local paths = {{{paths}}}
local n = 0
request = function()
  n = n + 1
  wrk.body = string.format('{{"legalName": "Dunder Mifflin %d", "addressInterior": "%d"}}', n % 1000, n % 50)
  return wrk.format(nil, paths[(n % #paths) + 1])
end
"""
    )
    return str(script)


STORE_PG_ENDPOINTS = ("GET customer by id", "PUT update", "PUT 14 records")


def bench_store_pg(seconds: int) -> dict:
    """The same GET and PUT (32 connections, wrk on CPU1) on TinyDB and on PostgreSQL, and with
    1 vs 2 workers on PostgreSQL. The PostgreSQL server is a throwaway cluster (Debian's package,
    fsync and synchronous_commit on, defaults otherwise), unpinned: on 2 cores it shares them
    with the sandbox and wrk. Pinned runs keep every worker on CPU0 (what a second worker adds
    there is overlap of database waits); unpinned runs let the workers use both cores."""
    results: dict = {"load_before": os.getloadavg()}
    pg = PostgresServer().start()
    try:
        for name, (kind, workers, cpu) in STORE_PG_RUNS.items():
            tmp = tempfile.mkdtemp(dir=ROOT / "bench")
            url = None
            if kind == "postgresql":
                url = pg.url(schema=f"run{len(results)}")
                subprocess.run([str(pg.bin_dir / "psql"), "-q", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
                                "-c", f"CREATE SCHEMA run{len(results)}"], check=True)  # fmt: skip
            server, api = sandbox(tmp, store_url=url, workers=workers, cpu=cpu)
            try:
                results[name] = {"startup_s": round(server.startup, 3)}
                wrk(api + ENDPOINTS["GET customer by id"][0], 2)  # warm-up
                for endpoint in STORE_PG_ENDPOINTS:
                    path, script = ENDPOINTS.get(endpoint) or ("", _spread_put_script(tmp))
                    results[name][endpoint] = wrk(api + path, seconds, script)
            finally:
                server.stop()
                shutil.rmtree(tmp, ignore_errors=True)
    finally:
        pg.stop()
    results["load_after"] = os.getloadavg()
    return results


def _print_store_pg(runs: dict) -> None:
    print(
        "\nTinyDB vs PostgreSQL, 1 vs 2 workers: GET by id, PUT of one record, PUT spread over 14 records;"
        f" 32 connections, wrk on CPU1; load average before {runs['load_before'][0]:.1f}, after"
        f" {runs['load_after'][0]:.1f}"
    )
    base = runs["TinyDB file, 1 process, CPU0"]
    one = {True: runs["PostgreSQL, 1 worker, CPU0"], False: runs["PostgreSQL, 1 worker, unpinned"]}
    print(f"{'run':<34}" + "".join(f" {label:>9} {'p99':>6} {'vs TinyDB':>9} {'vs 1w':>6}"
                                   for label in ("GET req/s", "PUT 1 rec", "PUT 14")))  # fmt: skip
    for name in STORE_PG_RUNS:
        row = runs[name]
        single = one["CPU0" in name]
        line = f"{name:<34}"
        for endpoint in STORE_PG_ENDPOINTS:
            figures = row[endpoint]
            line += f" {figures['req_per_s']:>9.0f} {figures['p99_ms']:>6.2f}"
            line += f" {figures['req_per_s'] / base[endpoint]['req_per_s']:>8.2f}x"
            ratio = figures["req_per_s"] / single[endpoint]["req_per_s"]
            line += f" {ratio:>5.2f}x" if "PostgreSQL" in name else f" {'':>6}"
            if figures["non_2xx"]:
                line += f" ({figures['non_2xx']} non-2xx)"
        print(line)


SIDES = {"BeeL": "beel_sandbox", "Timbrix": "timbrix_sandbox"}


def _print_peer(peer: dict) -> None:
    print("\nBeeL contract through the generic layer (file store, validation on), 32 connections")
    print(f"median of {peer['rounds']} rounds, the four servers alternating endpoint by endpoint")
    print(
        f"{'endpoint':<20} {'BeeL req/s':>10} {'p50':>7} {'p99':>7} {'Prism req/s':>12} {'BeeL/Prism':>10}"
        f" {'Timbrix req/s':>13} {'BeeL/Timbrix':>12}  BeeL/Timbrix per round"
    )

    def ratio(name: str, label: str) -> str:
        found = peer["ratios"][name].get(label)
        return f"{found['median']:.2f}x" if found else "-"

    for name in BEEL_ENDPOINTS:
        ours, prism_row, timbrix = (
            peer["beel_sandbox"][name],
            peer["beel_prism"].get(name),
            peer["timbrix_sandbox"][name],
        )
        line = f"{name:<20} {ours['req_per_s']:>10.0f} {ours['p50_ms']:>7.2f} {ours['p99_ms']:>7.2f}"
        if prism_row:
            line += f" {prism_row['req_per_s']:>12.0f} {ratio(name, 'beel/prism'):>10}"
        else:
            line += f" {'-':>12} {'-':>10}"
        line += f" {timbrix['req_per_s']:>13.0f} {ratio(name, 'beel/timbrix'):>12}  "
        line += ", ".join(f"{r:.2f}x" for r in peer["ratios"][name]["beel/timbrix"]["runs"])
        print(line)
    books = peer["books_sandbox"].get("GET customer by id")
    if books:
        print(
            f"bookkeeping GET customer by id (header parameter, numeric id): {books['req_per_s']:.0f} req/s"
            f" (p50 {books['p50_ms']} ms, p99 {books['p99_ms']} ms) = {ratio('GET customer by id', 'books/timbrix')}"
            " Timbrix"
        )
    print(f"BeeL sandbox startup to first 200: {peer['beel_sandbox']['startup_s']} s")
    writes = ("PUT update", "POST create")
    _print_disk({f"{side} {name}": peer[key][name] for side, key in SIDES.items() for name in writes})


# -- report -------------------------------------------------------------------------------------
def _print_http(http: dict) -> None:
    print(
        "\nHTTP, 32 connections unless the row says (server on CPU0, wrk on CPU1); the sandbox validates"
        " requests and responses and fsyncs every write (file store); Prism is a stateless mock"
    )
    print(f"median of {http['rounds']} rounds, sandbox and Prism alternating endpoint by endpoint")
    print(
        f"{'endpoint':<27} {'sandbox req/s':>13} {'p50':>7} {'p99':>7} {'Prism req/s':>12} {'p50':>7} {'p99':>7}"
        f" {'sandbox/Prism':>13}  per round"
    )
    rows = [name for name in HTTP_ROWS if name in http["sandbox"]]  # results from before the 8-conn rows too
    for name in rows:
        ours, theirs = http["sandbox"][name], http["prism"].get(name)
        line = f"{name:<27} {ours['req_per_s']:>13.0f} {ours['p50_ms']:>7.2f} {ours['p99_ms']:>7.2f}"
        if theirs:
            ratio = http["ratios"][name]
            line += (
                f" {theirs['req_per_s']:>12.0f} {theirs['p50_ms']:>7.2f} {theirs['p99_ms']:>7.2f}"
                f" {ratio['median']:>12.2f}x  " + ", ".join(f"{r:.2f}x" for r in ratio["runs"])
            )
        print(line)
    _print_disk({name: http["sandbox"][name] for name in rows})
    _print_tmpfs(http)
    top = http["starlette"]["GET customer by id"]
    ours = http["sandbox"]["GET customer by id"]
    slow_get, slow_put = http["connexion_only"]["GET customer by id"], http["connexion_only"]["PUT update"]
    print(
        f"without the fast path (Connexion stack only, in memory): GET by id {slow_get['req_per_s']:.0f}"
        f" req/s (p99 {slow_get['p99_ms']} ms), PUT {slow_put['req_per_s']:.0f} req/s"
    )
    print(
        f"raw Starlette ceiling, GET by id: {top['req_per_s']:.0f} req/s (sandbox = "
        f"{ours['req_per_s'] / top['req_per_s']:.2f}x of it)"
    )
    print(
        f"startup to first 200: sandbox {http['sandbox']['startup_s']} s, Prism {http['prism'].get('startup_s')} s;"
        f" reset to fixtures: {http['sandbox']['reset_ms']} ms (median of 20)"
    )
    journal = http["journal"]
    print(
        f"before each test (pytest plugin, in memory: reset + clear behaviours + clear journal, client side): "
        f"{journal['test_reset_ms']} ms (median of 20)"
    )
    print(
        f"request journal, GET by id in memory: on {journal['on']['req_per_s']:.0f} req/s (p99 "
        f"{journal['on']['p99_ms']} ms), off {journal['off']['req_per_s']:.0f} req/s (p99 {journal['off']['p99_ms']}"
        f" ms): on/off = {journal['ratio_on_off']:.3f} (medians of 5 alternating runs)"
    )


def _print_tmpfs(http: dict) -> None:
    """The write rows again, from the sandbox whose data directory is on a tmpfs (``MEMORY_FS``)."""
    tmpfs = http.get("sandbox_tmpfs")
    if not tmpfs:
        return
    print(
        f"the same sandbox with its data directory on a tmpfs ({MEMORY_FS}: every write still journaled with"
        " O_DSYNC, which returns at once there; not durable across a reboot), in the same rounds:"
    )
    header = f"{'endpoint':<27} {'tmpfs req/s':>13} {'p50':>7} {'p99':>7} {'tmpfs/disk':>11} {'tmpfs/Prism':>12}"
    print(header + "  per round")
    for name, figure in tmpfs.items():
        on_disk, ratio = http["sandbox"][name], http.get("ratios_tmpfs", {}).get(name)
        line = (
            f"{name:<27} {figure['req_per_s']:>13.0f} {figure['p50_ms']:>7.2f} {figure['p99_ms']:>7.2f}"
            f" {figure['req_per_s'] / on_disk['req_per_s']:>10.2f}x"
        )
        if ratio:
            line += f" {ratio['median']:>11.2f}x  " + ", ".join(f"{r:.2f}x" for r in ratio["runs"])
        print(line)


def _print_disk(figures: dict[str, dict]) -> None:
    """Per round, the sandbox's p99 beside the disk's stalls in the same seconds (``disk_probe``)."""
    if not any("runs_disk" in figure for figure in figures.values()):
        return
    print(
        "the disk meanwhile (a 65-byte O_DSYNC append every 20 ms beside the data directories):"
        " per round, the sandbox's p99 | stalls > 20 ms,"
        " time stalled, worst append"
    )
    for name, figure in figures.items():
        if "runs_disk" in figure:
            rounds = "; ".join(
                f"{p99:.1f} ms | {disk['stalls']}, {disk['stalled_ms']} ms, {disk['worst_ms']} ms"
                for p99, disk in zip(figure["runs_p99_ms"], figure["runs_disk"], strict=True)
            )
            print(f"  {name:<27} {rounds}")


def _print_rows(title: str, header: str, rows: list[str]) -> None:
    print(f"\n{title}")
    print(header)
    print("\n".join(rows))


SECTIONS = ("store", "http", "scale", "conformance", "peer", "store-pg", "long-fuzz")


def _sections(value: str) -> tuple[str, ...]:
    """``--only http,peer``: the sections named, comma-separated, in the order they run."""
    names = tuple(name.strip() for name in value.split(","))
    unknown = [name for name in names if name not in SECTIONS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown section {', '.join(unknown)} (choose from {', '.join(SECTIONS)})")
    return names


def _wanted(args: argparse.Namespace, section: str) -> bool:
    """Every section but ``long-fuzz`` when ``--only`` is not given."""
    return args.only is None or section in args.only


def _run_sections(args: argparse.Namespace, report: dict) -> None:
    if _wanted(args, "store"):
        store = report["store_update"] = bench_store((100, 10_000, 100_000), args.writes)
        stock = report["stock_tinydb_update"] = bench_stock_tinydb((100, 10_000), 20)
        base = store[100]["median_ms"]

        def store_row(size: int, row: dict) -> str:
            theirs = stock.get(size, {}).get("median_ms")
            tail = f"{theirs:>16.1f} {theirs / row['median_ms']:>9.0f}x" if theirs else f"{'-':>16} {'-':>10}"
            return f"{size:>10} {row['median_ms']:>10.3f} {row['p99_ms']:>8.3f} {row['median_ms'] / base:>6.2f}x {tail}"

        _print_rows(
            "Store: one durable update (journal append + fsync), all customers in the written organization",
            f"{'customers':>10} {'median ms':>10} {'p99 ms':>8} {'vs 100':>7} {'stock TinyDB ms':>16}"
            f" {'stock/ours':>10}",
            [store_row(size, row) for size, row in store.items()],
        )
        pauses = report["compaction_pause"] = bench_compaction_pause((10_000, 100_000))
        _print_rows(
            "Compaction (snapshot + journal reset) while an event loop ticks every 0.5 ms, median of 3",
            f"{'customers':>10} {'compaction ms':>14} {'longest loop pause ms':>22}",
            [f"{n:>10} {r['compaction_ms']:>14.1f} {r['longest_loop_pause_ms']:>22.1f}" for n, r in pauses.items()],
        )
    if _wanted(args, "http"):
        report["http"] = bench_http(args.seconds, args.rounds)
        _print_http(report["http"])
    if _wanted(args, "scale"):
        scale = report["put_scale"] = bench_scale(args.seconds, (100, 10_000, 100_000))
        p50 = scale[100]["p50_ms"]
        _print_rows(
            "PUT over HTTP as the organization grows (32 connections)",
            f"{'customers':>10} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'p50 vs 100':>10} {'startup s':>9}",
            [
                f"{n:>10} {r['req_per_s']:>8.0f} {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['p50_ms'] / p50:>9.2f}x"
                f" {r['startup_s']:>9}"
                for n, r in scale.items()
            ],
        )
    if _wanted(args, "conformance"):
        run = report["conformance"] = bench_conformance()
        print(
            f"\nDefault conformance run against the sandbox: {run['seconds']} s, {run['cases']} generated cases, "
            f"exit {run['exit_code']}"
        )
    if _wanted(args, "peer"):
        report["peer"] = bench_peer(args.seconds, args.rounds)
        _print_peer(report["peer"])
    if _wanted(args, "store-pg"):
        report["store_pg"] = bench_store_pg(args.seconds)
        _print_store_pg(report["store_pg"])
    if args.only and "long-fuzz" in args.only:  # opt-in only: minutes, not seconds
        fuzz = report["long_fuzz"] = long_fuzz(args.cases, max_examples=150)
        print(
            f"\nLong fuzz: {fuzz['cases']} cases over seeds {fuzz['seeds'][0]}-{fuzz['seeds'][-1]} in "
            f"{fuzz['seconds']} s: {fuzz['server_errors']} server errors, {fuzz['schema_violations']} schema "
            f"violations, {len(fuzz['findings'])} findings in all"
        )
        for finding in fuzz["findings"][:20]:
            print("  -", finding[:200])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sections = ", ".join(SECTIONS)
    parser.add_argument("--only", type=_sections, help=f"comma-separated, of: {sections} (default: all but long-fuzz)")
    parser.add_argument("--cases", type=int, default=20_000, help="long-fuzz: stop after this many cases")
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="http, peer: alternating rounds per endpoint")
    parser.add_argument("--writes", type=int, default=300, help="updates measured per store size")
    parser.add_argument(
        "--label", default=None, help="write bench/results/<date>-<label>.json instead of the day's file"
    )
    args = parser.parse_args()
    if any(_wanted(args, section) for section in ("http", "scale", "peer", "store-pg")) and not shutil.which("wrk"):
        print("wrk is needed for HTTP figures: apt-get install wrk", file=sys.stderr)
        return 2

    report: dict = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    global DISK_PROBE
    with DiskProbe(ROOT / "bench", cpu=int(LOAD_CPU)) as DISK_PROBE:  # wrk figures carry the disk's stalls
        _run_sections(args, report)
    DISK_PROBE = None
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(f"\nload average at start {report['load_average_at_start']}, at end {report['load_average_at_end']}")
    name = report["date"][:10] + (f"-{args.label}" if args.label else "")
    out = ROOT / "bench" / "results" / f"{name}.json"
    if out.exists() and args.only:
        previous = json.loads(out.read_text())
        previous.update({k: v for k, v in report.items()})
        report = previous
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
