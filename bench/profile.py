#!/usr/bin/env python3
"""Where a request's time goes: py-spy on the sandbox while wrk loads one endpoint.

    python3 bench/profile.py put            # or: post | get | list | beel-get | beel-put | beel-post
    python3 bench/profile.py put --seconds 8 --top 30 --out /tmp/put.txt

The sandbox runs as the bench runs it (file store, validation on, CPU 0), wrk with 32
connections on CPU 1, and py-spy (``pip install py-spy``, a dev tool) samples the server
process, its threads included, from CPU 1. Prints the functions by their own time
("self") and by time spent in them and below ("total"), as % of the samples, and the
collapsed stacks are written to ``--out`` for a flame graph (``flamegraph.pl``, speedscope).

    python3 bench/profile.py post --cpu --rounds 3            # CPU per request, no py-spy
    python3 bench/profile.py post --cpu --root /work/main     # the same, serving another checkout

``--cpu`` measures instead the server's own CPU time (user + system, all its threads, from
/proc) per request answered while wrk loads it: on a shared, noisy machine that is far
steadier than req/s, so a change shows as fewer CPU milliseconds per request. ``--root`` serves
another checkout of the repository (its code, with this script's load), to compare before and
after in one run, under the same conditions.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import run  # noqa: E402

TARGETS = {
    # name: (contract or None for Timbrix, endpoint table, endpoint, auth)
    "get": (None, run.ENDPOINTS, "GET customer by id", run.AUTH),
    "list": (None, run.ENDPOINTS, "GET list", run.AUTH),
    "put": (None, run.ENDPOINTS, "PUT update", run.AUTH),
    "post": (None, run.ENDPOINTS, "POST create", run.AUTH),
    "beel-get": (run.BEEL, run.BEEL_ENDPOINTS, "GET customer by id", run.BEEL_AUTH),
    "beel-put": (run.BEEL, run.BEEL_ENDPOINTS, "PUT update", run.BEEL_AUTH),
    "beel-post": (run.BEEL, run.BEEL_ENDPOINTS, "POST create", run.BEEL_AUTH),
}


def summarise(collapsed: str, top: int) -> str:
    """Top functions by self and by total share of the samples in py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    lines = [f"{samples} samples"]
    for title, counter in (("self", own), ("total", total)):
        lines.append(f"\n{title:>6} %  function")
        lines += [f"{100 * n / samples:>8.1f}  {name}" for name, n in counter.most_common(top)]
    return "\n".join(lines)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds ``pid`` (every thread of it) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_per_request(target: str, seconds: int, rounds: int, extra: tuple[str, ...] = ()) -> list[dict]:
    """CPU ms the server spends per request under wrk, one figure per round, each on a fresh
    server and data directory (POST grows its partition: every round starts from the fixtures)."""
    contract, endpoints, endpoint, auth = TARGETS[target]
    path, script = endpoints[endpoint]
    figures = []
    for _ in range(rounds):
        data_dir = tempfile.mkdtemp(dir=ROOT / "bench")
        server, api = run.sandbox(data_dir, contract=contract, extra=extra)
        try:
            run.wrk(api + path, 2, script, auth=auth)  # warm-up
            before = _cpu_seconds(server.process.pid)
            result = run.wrk(api + path, seconds, script, auth=auth)
            used = _cpu_seconds(server.process.pid) - before
        finally:
            server.stop()
            shutil.rmtree(data_dir, ignore_errors=True)
        result["cpu_ms_per_request"] = round(1000 * used / max(1, result["requests"]), 3)
        result["load"] = round(os.getloadavg()[0], 2)
        figures.append(result)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", choices=sorted(TARGETS))
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, default=None, help="write the collapsed stacks here")
    parser.add_argument("--gil", action="store_true", help="sample only the thread holding the GIL (CPU, not waits)")
    parser.add_argument("--cpu", action="store_true", help="CPU ms per request instead of a profile")
    parser.add_argument("--rounds", type=int, default=3, help="with --cpu: fresh servers to measure")
    parser.add_argument("--serve-args", default="", help="with --cpu: more serve options, e.g. '--journal-size 0'")
    parser.add_argument("--root", type=Path, default=None, help="serve this checkout's code instead")
    args = parser.parse_args()
    if args.root is not None:
        run.ROOT = args.root.resolve()  # the server's working directory: its package wins
    if args.cpu:
        for figure in cpu_per_request(args.target, args.seconds, args.rounds, tuple(args.serve_args.split())):
            print(
                f"{args.target} ({run.ROOT}): {figure['cpu_ms_per_request']:.3f} CPU ms/request, "
                f"{figure['req_per_s']} req/s, p50 {figure['p50_ms']} ms, p99 {figure['p99_ms']} ms, "
                f"load {figure['load']} {args.serve_args}"
            )
        return 0
    contract, endpoints, endpoint, auth = TARGETS[args.target]
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    data_dir = tempfile.mkdtemp(dir=ROOT / "bench")
    server, api = run.sandbox(data_dir, contract=contract)
    try:
        path, script = endpoints[endpoint]
        run.wrk(api + path, 2, script, auth=auth)  # warm-up
        result: dict = {}
        load = threading.Thread(target=lambda: result.update(run.wrk(api + path, args.seconds + 2, script, auth=auth)))
        load.start()
        with tempfile.NamedTemporaryFile("r", suffix=".txt") as out:
            subprocess.run(
                run._pinned(
                    [py_spy, "record", "--pid", str(server.process.pid), "--threads", "--nonblocking",
                     "--format", "raw", "--rate", "250", "--duration", str(args.seconds), "--output", out.name,
                     *(["--gil"] if args.gil else [])],
                    run.LOAD_CPU,
                ),
                check=True,
                capture_output=True,
            )
            collapsed = Path(out.name).read_text()
        load.join()
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    if args.out:
        args.out.write_text(collapsed)
    rate, p50, p99 = (result.get(k) for k in ("req_per_s", "p50_ms", "p99_ms"))
    print(f"{args.target}: {rate} req/s, p50 {p50} ms, p99 {p99} ms (under py-spy)")
    print(summarise(collapsed, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
