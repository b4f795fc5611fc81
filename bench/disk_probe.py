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

Run on its own, it asks whether a journal laid out otherwise would escape the stalls:

    python3 bench/disk_probe.py --seconds 60

Three writers, side by side, each making one small ``O_DSYNC`` write every 20 ms: one appending
(the file grows, as the store's journal does), one overwriting a file written out beforehand
(no block allocated, no size changed: what databases that recycle their log files do), one
writing into blocks reserved with ``posix_fallocate``. It prints each one's latency and stalls
and how many of the appender's stalls the other two had at the same time. (Measured
2026-12-02 04:05 UTC, 60 s: 31 stalls each, 3.7 s stalled each, all 31 shared, the worst 685
ms in all three: the device stalls, not the file system's bookkeeping of a growing file, so no
journal layout avoids them. Whether compactions add stalls - a thread renaming snapshots and
truncating journals five times a second beside the probe, alternating with the probe alone -
two such runs did not agree: 58 stalls against 17 in 90 s each way, then 13 against 24 in 60 s
each, within this disk's noise either way.)
"""

from __future__ import annotations

import argparse
import os
import tempfile
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


LAYOUTS = ("append", "overwrite", "preallocated")


def _layout_writer(layout: str, path: Path, seconds: float, start: threading.Barrier, out: dict) -> None:
    """One ``O_DSYNC`` write of a journal-sized line every ``INTERVAL``, laid out as ``layout``."""
    line = b'{"g": 1, "op": "put", "doc": {"id": "x"}}\n'
    size = len(line) * (int(seconds / INTERVAL) + 100)
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_DSYNC", 0)
    if layout == "overwrite":
        path.write_bytes(b"\0" * size)
    fd = os.open(path, flags | (os.O_APPEND if layout == "append" else 0), 0o600)
    try:
        if layout == "preallocated":
            os.posix_fallocate(fd, 0, size)
        os.fsync(fd)
        start.wait()
        samples: list[tuple[float, float]] = []
        offset, began = 0, time.monotonic()
        while time.monotonic() - began < seconds:
            at = time.monotonic()
            if layout == "append":
                os.write(fd, line)
            else:
                os.pwrite(fd, line, offset)
                offset += len(line)
            samples.append((at - began, 1000 * (time.monotonic() - at)))
            time.sleep(max(0.0, INTERVAL - (time.monotonic() - at)))
        out[layout] = samples
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)


def compare_layouts(directory: Path, seconds: float) -> dict[str, list[tuple[float, float]]]:
    """Each layout's ``(seconds since start, milliseconds)`` per write, all three side by side."""
    out: dict[str, list[tuple[float, float]]] = {}
    start = threading.Barrier(len(LAYOUTS))
    threads = [
        threading.Thread(target=_layout_writer, args=(layout, directory / f".layout-{layout}", seconds, start, out))
        for layout in LAYOUTS
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description="Do the disk's stalls depend on how a journal is laid out?")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--dir", type=Path, default=Path(__file__).resolve().parent, help="a directory on the disk")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        results = compare_layouts(Path(directory), args.seconds)
    stalls = {layout: [(at, ms) for at, ms in samples if ms > STALL_MS] for layout, samples in results.items()}
    every = f"{INTERVAL * 1000:.0f} ms"
    print(f"one O_DSYNC write every {every} per layout, {args.seconds:.0f} s, side by side in {args.dir}")
    print(f"{'layout':<13} {'writes':>7} {'p50 ms':>7} {'p99 ms':>7} {'stalls':>7} {'stalled ms':>11} {'worst ms':>9}")
    for layout, samples in results.items():
        times = sorted(ms for _, ms in samples)
        print(
            f"{layout:<13} {len(times):>7} {times[len(times) // 2]:>7.2f} {times[int(len(times) * 0.99)]:>7.2f}"
            f" {len(stalls[layout]):>7} {sum(ms for _, ms in stalls[layout]):>11.0f} {times[-1]:>9.1f}"
        )
    # An appender's stall is shared when each other layout had a stall overlapping it in time.
    shared = sum(
        all(
            any(other_at < at + ms / 1000 and at < other_at + other_ms / 1000 for other_at, other_ms in stalls[other])
            for other in LAYOUTS[1:]
        )
        for at, ms in stalls["append"]
    )
    print(f"stalls of the appender that both other layouts had at the same time: {shared} of {len(stalls['append'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
