"""Helpers for code that starts sandboxes in other processes: the test suite, the benchmark,
and (next) users' own tests. Standard library only; a process is only ever signalled by the
PID this code started."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

STOP_TIMEOUT = 15.0
"""Seconds a SIGTERM gets (the server drains for at most 5) before SIGKILL."""


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago (bind to it soon)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen, timeout: float = STOP_TIMEOUT) -> int | None:
    """SIGTERM the process we started, then SIGKILL if it outlives ``timeout``; its exit status."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


def wait_until_healthy(
    url: str, process: subprocess.Popen, *, headers: dict[str, str] | None = None, timeout: float = 30.0
) -> str:
    """Poll ``url/__sandbox/health`` until the sandbox ``process`` answers it.

    Returns ``"ready"``; ``"exited"`` if the process ended first; ``"other"`` if another
    process answers on that port (it took the port between ``free_port()`` and the bind);
    ``"timeout"``."""
    request = urllib.request.Request(url + "/__sandbox/health", headers=headers or {})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return "exited"
        try:
            with urllib.request.urlopen(request, timeout=1) as response:
                pid = json.loads(response.read()).get("pid")
            return "ready" if pid == process.pid else "other"
        except (OSError, ValueError):
            time.sleep(0.05)
    return "timeout"
