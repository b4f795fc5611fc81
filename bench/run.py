#!/usr/bin/env python3
"""Benchmarks for timbrix-sandbox. Prints tables with ratios and writes JSON to bench/results/.

    python3 dev.py bench                 # everything below
    python3 dev.py bench --only store    # store write cost at 100 / 10k / 100k customers
    python3 dev.py bench --only http     # req/s and latency, GET by id and PUT, 32 connections (wrk)

Figures are measured side by side in one run on this machine; compare ratios, not absolute
numbers (the machines here are small and noisy). Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from timbrix_sandbox.store import Store  # noqa: E402

ORG = "550e8400-e29b-41d4-a716-446655440000"
DOCS_CUSTOMER = "590ce6c56d04f840aa8438af"


def _record(i: int) -> dict:
    return {
        "id": f"{i:024x}",
        "organizationId": ORG,
        "legalName": f"Customer {i}",
        "taxId": "ABC101010111",
        "taxSystem": "601",
        "email": f"c{i}@example.com",
        "phone": "5555555555",
        "defaultInvoiceUse": "G03",
        "address": {
            "street": "Calle",
            "exterior": "1",
            "interior": None,
            "neighborhood": "Centro",
            "city": "Monterrey",
            "municipality": "Monterrey",
            "zip": "64000",
            "state": "Nuevo León",
            "country": "MEX",
        },
        "createdAt": "2025-01-01T00:00:00Z",
        "updatedAt": "2025-01-01T00:00:00Z",
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_store(sizes: tuple[int, ...], writes: int) -> dict:
    """Median and p99 of one durable update (journal append + fsync) as the sandbox grows,
    with all customers in the written organization (worst case for partitioning)."""
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
            load_started = time.perf_counter()
            store.close()
            Store(tmp).count("customers", ORG)
            reopen = (time.perf_counter() - load_started) * 1000
        results[size] = {
            "median_ms": round(statistics.median(timings), 3),
            "p99_ms": round(_percentile(timings, 0.99), 3),
            "close_and_reopen_ms": round(reopen, 1),
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
                target = f"{(n * 7919) % size:024x}"
                started = time.perf_counter()
                db.update({"legalName": f"Renamed {n}"}, Query().id == target)
                timings.append((time.perf_counter() - started) * 1000)
            db.close()
        results[size] = {"median_ms": round(statistics.median(timings), 3)}
    return results


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_sandbox(data_dir: str, cpu: str | None) -> tuple[subprocess.Popen, str, float]:
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "timbrix_sandbox",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        data_dir,
        "--log-level",
        "warning",
    ]
    if cpu and shutil.which("taskset"):
        command = ["taskset", "-c", cpu, *command]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    import urllib.request

    while True:
        try:
            with urllib.request.urlopen(url + "/__sandbox/health", timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            if process.poll() is not None:
                raise RuntimeError("sandbox exited") from None
            time.sleep(0.01)
    return process, url, time.perf_counter() - started


def _wrk(url: str, seconds: int, script: str | None, cpu: str | None) -> dict:
    command = ["wrk", "-t1", "-c32", f"-d{seconds}s", "--latency", "-H", "Authorization: Bearer sk_test_michael"]
    if script:
        command += ["-s", script]
    command.append(url)
    if cpu and shutil.which("taskset"):
        command = ["taskset", "-c", cpu, *command]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout

    def latency(label: str) -> float:
        match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "req_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": latency("50%"),
        "p99_ms": latency("99%"),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
    }


def bench_http(seconds: int) -> dict:
    if not shutil.which("wrk"):
        return {"skipped": "wrk not installed (apt-get install wrk)"}
    put_script = ROOT / "bench" / "put.lua"
    with tempfile.TemporaryDirectory(dir=ROOT / "bench") as tmp:
        process, url, startup = _start_sandbox(tmp, cpu="0")
        try:
            item = f"{url}/api/organizations/{ORG}/customers/{DOCS_CUSTOMER}"
            _wrk(item, 2, None, cpu="1")  # warm-up
            results = {
                "startup_to_first_200_s": round(startup, 3),
                "GET customer by id": _wrk(item, seconds, None, cpu="1"),
                "GET list": _wrk(f"{url}/api/organizations/{ORG}/customers", seconds, None, cpu="1"),
                "PUT update": _wrk(item, seconds, str(put_script), cpu="1"),
            }
            import urllib.request

            resets = []
            for _ in range(20):
                request = urllib.request.Request(url + "/__sandbox/reset", method="POST")
                with urllib.request.urlopen(request) as response:
                    resets.append(json.loads(response.read())["tookMs"])
            results["reset_ms_median"] = statistics.median(resets)
        finally:
            os.kill(process.pid, signal.SIGTERM)
            process.wait()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["store", "http"])
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per endpoint")
    parser.add_argument("--writes", type=int, default=300, help="updates measured per store size")
    args = parser.parse_args()

    report: dict = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }
    if args.only in (None, "store"):
        store = bench_store((100, 10_000, 100_000), args.writes)
        stock = bench_stock_tinydb((100, 10_000), 20)
        report["store_update"] = store
        report["stock_tinydb_update"] = stock
        base = store[100]["median_ms"]
        print("\nStore: one durable update (journal append + fsync), all customers in one organization")
        print(
            f"{'customers':>10}  {'median ms':>10}  {'p99 ms':>8}  {'vs 100':>7}  {'close+reopen ms':>15}"
            f"  {'stock TinyDB ms':>15}  {'stock/ours':>10}"
        )
        for size, row in store.items():
            ratio = row["median_ms"] / base
            theirs = stock.get(size, {}).get("median_ms")
            versus = f"{theirs:>15.1f}  {theirs / row['median_ms']:>9.0f}x" if theirs else f"{'-':>15}  {'-':>10}"
            print(
                f"{size:>10}  {row['median_ms']:>10.3f}  {row['p99_ms']:>8.3f}  {ratio:>6.2f}x  "
                f"{row['close_and_reopen_ms']:>15.1f}  {versus}"
            )
    if args.only in (None, "http"):
        http = bench_http(args.seconds)
        report["http"] = http
        if "skipped" in http:
            print(f"\nHTTP: {http['skipped']}")
        else:
            print("\nHTTP: sandbox pinned to CPU0, wrk on CPU1, 32 connections, request+response validation on")
            print(f"{'endpoint':<20}  {'req/s':>8}  {'p50 ms':>7}  {'p99 ms':>7}  {'non-2xx':>7}")
            for name in ("GET customer by id", "GET list", "PUT update"):
                row = http[name]
                print(
                    f"{name:<20}  {row['req_per_s']:>8.0f}  {row['p50_ms']:>7.2f}  {row['p99_ms']:>7.2f}  "
                    f"{row['non_2xx']:>7}"
                )
            print(
                f"startup to first 200: {http['startup_to_first_200_s']} s; reset to fixtures: "
                f"{http['reset_ms_median']} ms (median of 20)"
            )
    out = ROOT / "bench" / "results" / f"{report['date'][:10]}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
