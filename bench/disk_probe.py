"""How the disk behaved while a figure was taken: a tiny durable append every 20 ms, timed.

Why: a durable write waits for the disk, and this VM's disk stalls. ``O_DSYNC`` appends that
take 0.2-0.5 ms at p50 take 100-1,000 ms several times in ten seconds (measured 2026-12-01:
9 stalls over 20 ms in 10 s at one append per 20 ms, 1.2 s stalled in all), and they stall
every file on the disk at once. With 32 connections, each stall holds every write in flight,
so a write figure's p99 says as much about the disk in those seconds as about the server. The
probe appends 65 bytes with ``O_DSYNC`` to a file on the same filesystem as the sandboxes' data
directories, from its own thread pinned beside wrk, so each figure can carry the stalls it
was taken under. It adds 50 tiny appends a second (the sandbox makes hundreds of batches a
second), and nothing else.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

INTERVAL = 0.02
"""Seconds between appends: short enough that a stall of more than 20 ms overlaps one."""
STALL_MS = 20.0
"""An append slower than this is a stall (p50 is under 1 ms)."""


class DiskProbe:
    """Times one durable append every ``INTERVAL`` seconds until stopped."""

    def __init__(self, directory: Path, cpu: int | None = None) -> None:
        self._path = directory / ".disk-probe.journal"
        self._cpu = cpu
        self._samples: list[tuple[float, float]] = []
        """(monotonic start, milliseconds) of each append."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="disk-probe", daemon=True)

    def __enter__(self) -> DiskProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._path.unlink(missing_ok=True)

    def _run(self) -> None:
        if self._cpu is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {self._cpu})  # this thread only (Linux): beside wrk, not the server
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | getattr(os, "O_DSYNC", 0)
        fd = os.open(self._path, flags, 0o600)
        line = b"x" * 64 + b"\n"
        written = 0
        try:
            while not self._stop.wait(INTERVAL):
                if written > 1 << 20:  # keep the file small: cut it back now and then
                    os.ftruncate(fd, 0)
                    written = 0
                start = time.monotonic()
                os.write(fd, line)
                if not getattr(os, "O_DSYNC", 0):
                    os.fsync(fd)
                self._samples.append((start, 1000 * (time.monotonic() - start)))
                written += len(line)
        finally:
            os.close(fd)

    def window(self, start: float, end: float) -> dict:
        """The appends begun between two ``time.monotonic()`` readings: how many, their p50,
        the stalls (over ``STALL_MS``), the time spent in them and the worst."""
        taken = sorted(ms for at, ms in list(self._samples) if start <= at <= end)
        stalls = [ms for ms in taken if ms > STALL_MS]
        return {
            "appends": len(taken),
            "p50_ms": round(taken[len(taken) // 2], 2) if taken else None,
            "stalls": len(stalls),
            "stalled_ms": round(sum(stalls)),
            "worst_ms": round(taken[-1], 1) if taken else None,
        }
