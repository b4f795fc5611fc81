#!/usr/bin/env python3
"""CPU per request, in-process: the sandbox's ASGI app called directly, no sockets, no wrk.

    python3 bench/inprocess.py post                 # or: put | get | list | beel-get | beel-put
    python3 bench/inprocess.py post --requests 20000 --concurrency 32 --profile 25
    python3 bench/inprocess.py post --root /work/main     # another checkout's code, same load

The app is built as ``serve`` builds it (file store in a temp data directory, validation on,
the request journal on unless ``--journal-size 0``) and ``--concurrency`` requests are kept in
flight on one event loop, as 32 wrk connections would. It prints the process's CPU time (every
thread: the store's writer threads included, and the event loop's alone) per request and the wall time per request, and
the latency percentiles of the requests. On a shared machine CPU per request is the steady
figure: compare before and after in the same conditions (``git stash``, or two checkouts).
``--profile N`` adds cProfile's top N functions (event-loop thread only) by own time.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import importlib
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE = Path(sys.argv[sys.argv.index("--root") + 1]).resolve() if "--root" in sys.argv else ROOT
"""Whose code is measured: ``--root DIR`` measures another checkout (before vs after, one run)."""
# bench/ goes after the stdlib: bench/profile.py must not stand in for the stdlib's profile.
sys.path[:] = [str(CODE), *(p for p in sys.path if Path(p).resolve() != ROOT / "bench"), str(ROOT / "bench")]

importlib.import_module("timbrix_sandbox")  # from CODE, before bench/run.py puts this checkout first

import run  # noqa: E402

from timbrix_sandbox.http.app import create_app  # noqa: E402
from timbrix_sandbox.profiles.sandboxes import make_sandbox  # noqa: E402

POST_BODY = (ROOT / "bench" / "post.lua").read_text().split("wrk.body = '", 1)[1].split("'\n", 1)[0].encode()



@functools.cache
def _lua_template(script: str) -> tuple[str, tuple[int, ...]]:
    """A bench/*.lua script's body: its fixed ``wrk.body``, or its ``string.format`` template
    and the moduli of its ``n % A`` arguments."""
    text = (ROOT / "bench" / script).read_text()
    if "string.format('" not in text:
        return text.split("wrk.body = '", 1)[1].split("'\n", 1)[0], ()
    template, args = re.search(r"string\.format\('(.*)', (.*)\)\s*$", text, re.M).groups()
    return template, tuple(int(arg.split("%")[1]) for arg in args.split(","))


def _lua_body(script: str, n: int) -> bytes:
    """The body the script sends as request ``n``, as wrk would."""
    template, moduli = _lua_template(script)
    return (template % tuple(n % m for m in moduli) if moduli else template).encode()


def _put_body(n: int) -> bytes:
    return b'{"legalName": "Dunder Mifflin %d", "addressInterior": "%d"}' % (n % 1000, n % 50)


TARGETS = {
    # name: (contract, method, path, auth header value, body maker)
    "get": (None, "GET", "/api" + run.ENDPOINTS["GET customer by id"][0], run.AUTH, None),
    "list": (None, "GET", "/api" + run.ENDPOINTS["GET list"][0], run.AUTH, None),
    "put": (None, "PUT", "/api" + run.ENDPOINTS["PUT update"][0], run.AUTH, _put_body),
    "post": (None, "POST", "/api" + run.ENDPOINTS["POST create"][0], run.AUTH, lambda n: POST_BODY),
    "beel-get": (run.BEEL, "GET", "/api" + run.BEEL_ENDPOINTS["GET customer by id"][0], run.BEEL_AUTH, None),
    "beel-put": (run.BEEL, "PUT", "/api" + run.BEEL_ENDPOINTS["PUT update"][0], run.BEEL_AUTH, lambda n: _lua_body(
        "beel_put.lua", n)),
    "beel-post": (run.BEEL, "POST", "/api" + run.BEEL_ENDPOINTS["POST create"][0], run.BEEL_AUTH, lambda n: _lua_body(
        "beel_post.lua", n)),
}


async def _call(app, method: str, path: str, auth: str, body: bytes | None, latencies: list[float]) -> int:
    name, _, value = auth.partition(": ")
    headers = [(b"host", b"127.0.0.1:8000"), (name.lower().encode(), value.encode()), (b"accept", b"*/*")]
    if body is not None:
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {},
    }
    sent = False
    status = 0

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body or b"", "more_body": False}
        await asyncio.sleep(3600)

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    started = time.perf_counter()
    await app(scope, receive, send)
    latencies.append(time.perf_counter() - started)
    return status


async def _load(app, target: str, requests: int, concurrency: int, latencies: list[float]) -> dict[int, int]:
    _contract, method, path, auth, body = TARGETS[target]
    statuses: dict[int, int] = {}
    counter = iter(range(requests))

    async def worker() -> None:
        for n in counter:
            status = await _call(app, method, path, auth, body(n) if body else None, latencies)
            statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


class _Collections:
    """The collector's pauses: how many full (generation 2) collections, and the time of all."""

    def __init__(self) -> None:
        self.full = 0
        self.seconds = 0.0
        self._started = 0.0
        self.by_generation = [[0, 0.0], [0, 0.0], [0, 0.0]]
        """Per generation: collections, seconds."""

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            took = time.perf_counter() - self._started
            self.seconds += took
            self.full += info["generation"] == 2
            self.by_generation[info["generation"]][0] += 1
            self.by_generation[info["generation"]][1] += took


async def _lifespan(app, phase: str, queue: asyncio.Queue, done: asyncio.Queue) -> None:
    async def receive():
        return await queue.get()

    async def send(message):
        await done.put(message)

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", choices=sorted(TARGETS))
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--journal-size", type=int, default=1000)
    parser.add_argument("--root", type=Path, default=ROOT, help="measure this checkout's code")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="cProfile's top N functions")
    parser.add_argument("--sort", default="tottime", help="--profile: pstats sort key (tottime, cumulative)")
    parser.add_argument("--dump", type=Path, help="--profile: also write the pstats file here")
    args = parser.parse_args()
    import cProfile
    import pstats

    contract, *_ = TARGETS[args.target]
    data_dir = tempfile.mkdtemp(dir=ROOT / "bench")
    try:
        options = {"contract": contract} if contract else {}
        sandbox = make_sandbox(data_dir=data_dir, **options)
        app = create_app(sandbox, journal_size=args.journal_size)

        async def session() -> dict:
            queue, done = asyncio.Queue(), asyncio.Queue()
            life = asyncio.ensure_future(_lifespan(app, "startup", queue, done))
            await queue.put({"type": "lifespan.startup"})
            await done.get()
            warm: list[float] = []
            await _load(app, args.target, min(2000, args.requests), args.concurrency, warm)
            latencies: list[float] = []
            profiler = cProfile.Profile() if args.profile else None
            gc_before = sum(s["collections"] for s in gc.get_stats())
            pauses = _Collections()
            gc.callbacks.append(pauses)
            cpu, loop_cpu, wall = time.process_time(), time.thread_time(), time.perf_counter()
            if profiler:
                profiler.enable()
            statuses = await _load(app, args.target, args.requests, args.concurrency, latencies)
            if profiler:
                profiler.disable()
            cpu, loop_cpu, wall = time.process_time() - cpu, time.thread_time() - loop_cpu, time.perf_counter() - wall
            collections = sum(s["collections"] for s in gc.get_stats()) - gc_before
            gc.callbacks.remove(pauses)
            await queue.put({"type": "lifespan.shutdown"})
            await done.get()
            await life
            return {"cpu": cpu, "loop_cpu": loop_cpu, "wall": wall, "latencies": latencies, "statuses": statuses,
                    "profiler": profiler, "collections": collections,
                    "pauses": pauses}

        result = asyncio.run(session())
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    n = args.requests
    lat = sorted(result["latencies"])
    print(
        f"{args.target}: {1000 * result['cpu'] / n:.4f} CPU ms/request ({1000 * result['loop_cpu'] / n:.4f} on the "
        f"event loop), {1000 * result['wall'] / n:.4f} wall ms/request "
        f"({n} requests, {args.concurrency} in flight, journal {args.journal_size}); latency p50 "
        f"{1000 * statistics.median(lat):.2f} ms, p99 {1000 * lat[int(0.99 * len(lat))]:.2f} ms, max "
        f"{1000 * lat[-1]:.1f} ms; statuses {result['statuses']}; {result['collections']} gc collections "
        f"({result['pauses'].full} full, {1000 * result['pauses'].seconds:.0f} ms in all); "
        f"load {os.getloadavg()[0]:.2f}; code {CODE}"
    )
    spent = ", ".join(
        f"gen{g} {n} in {1000 * secs:.0f} ms" for g, (n, secs) in enumerate(result["pauses"].by_generation) if n
    )
    print(f"collections: {spent or 'none'}")
    if result["profiler"]:
        stats = pstats.Stats(result["profiler"])
        if args.dump:
            stats.dump_stats(args.dump)
        stats.sort_stats(args.sort).print_stats(args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
