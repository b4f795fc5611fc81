"""Helpers for code that starts sandboxes in other processes: the test suite, the benchmark,
and (next) users' own tests. Standard library only; a process is only ever signalled by the
PID this code started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess

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
