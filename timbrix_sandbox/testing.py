"""Helpers for code that starts sandboxes in other processes: the test suite, the benchmark,
and (next) users' own tests. Standard library only; a process is only ever signalled by the
PID this code started."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

STOP_TIMEOUT = 15.0
"""Seconds a SIGTERM gets (the server drains for at most 5) before SIGKILL."""


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago (bind to it soon)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(
    process: subprocess.Popen, stop_signal: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT
) -> int | None:
    """``stop_signal`` (SIGTERM) to the process we started, then SIGKILL if it outlives
    ``timeout``; its exit status."""
    if process.poll() is None:
        os.kill(process.pid, stop_signal)
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
                health = json.loads(response.read())
            # with --workers, a worker answers: it names the serve process as serverPid
            return "ready" if process.pid in (health.get("pid"), health.get("serverPid")) else "other"
        except (OSError, ValueError):
            time.sleep(0.05)
    return "timeout"


PG_BIN_ENV = "TIMBRIX_SANDBOX_PG_BIN"
PG_USER = "nobody"
"""PostgreSQL refuses to run as root; a root test run (a container, CI) starts it as this user."""


def postgres_bin_dir() -> Path:
    """Where Debian's ``postgresql`` package put ``initdb`` and ``postgres`` (the newest major
    version), or ``$TIMBRIX_SANDBOX_PG_BIN``."""
    chosen = os.environ.get(PG_BIN_ENV)
    if chosen:
        return Path(chosen)
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not found:
        raise FileNotFoundError(
            "no PostgreSQL server found in /usr/lib/postgresql/*/bin: `apt-get install postgresql` "
            f"(what .ci/run does), or point ${PG_BIN_ENV} at a directory holding initdb and postgres"
        )
    return found[-1].parent


class PostgresServer:
    """A throwaway PostgreSQL server: a new cluster in a temporary directory, listening on a
    free loopback port (and a unix socket in that directory), run as :data:`PG_USER` when this
    process is root, stopped by its PID. Trust authentication: loopback only, for tests and the
    bench."""

    def __init__(self, bin_dir: Path | None = None) -> None:
        self.bin_dir = bin_dir or postgres_bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="timbrix-pg-"))
        self.data = self.root / "data"
        self.port = 0
        self.process: subprocess.Popen | None = None

    def _as_server_user(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        return ["setpriv", f"--reuid={PG_USER}", f"--regid={pwd.getpwnam(PG_USER).pw_gid}", "--clear-groups", *argv]

    def start(self, timeout: float = 30.0) -> PostgresServer:
        if os.geteuid() == 0:
            entry = pwd.getpwnam(PG_USER)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            self._as_server_user(
                [str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                 "--no-sync", "--no-instructions"]
            ),
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.root,
        )  # fmt: skip
        self.port = free_port()
        log = open(self.root / "server.log", "wb")  # noqa: SIM115 (the server writes to it until it stops)
        self.process = subprocess.Popen(
            self._as_server_user(
                [str(self.bin_dir / "postgres"), "-D", str(self.data), "-p", str(self.port),
                 "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.root}",
                 "-c", "max_connections=200"]
            ),
            stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited early: {(self.root / 'server.log').read_text()}")
            ready = subprocess.run(
                [str(self.bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"],
                check=False,
            )
            if ready.returncode == 0:
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("postgres did not accept connections in time")

    def url(self, database: str = "postgres", schema: str | None = None) -> str:
        """A libpq URL for ``database`` (``schema``: as its ``search_path``)."""
        url = f"postgresql://postgres@127.0.0.1:{self.port}/{database}"
        if schema is not None:
            url += f"?options=-csearch_path%3D{schema}"
        return url

    def stop(self) -> None:
        """SIGINT (PostgreSQL's fast shutdown) to the server we started, then remove its files."""
        if self.process is not None:
            stop_process(self.process, signal.SIGINT)
        shutil.rmtree(self.root, ignore_errors=True)
