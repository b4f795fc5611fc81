"""``serve --workers N``: N processes serving one listening socket, over one shared store.

The ``serve`` process binds the socket and starts listening, then forks N workers. Each worker
builds its own sandbox (its own connections to the store) and runs the same uvicorn server as a
single process does (``server.run``) on the inherited socket; the kernel hands each new
connection to one of the workers that is waiting in ``accept``. The ``serve`` process stays as
a supervisor that serves nothing:

* a worker that dies (a crash, ``kill -9``) is replaced; its in-flight requests are lost with
  it (never acknowledged), the other workers keep serving meanwhile;
* SIGTERM or SIGINT to the supervisor is passed to every worker (each drains as a single
  process does) and the supervisor exits once they all have;
* a worker that cannot start (the database is down) is retried, and after
  :data:`MAX_QUICK_EXITS` exits in a row within :data:`QUICK_EXIT` seconds of starting, the
  supervisor stops the rest and exits with status 1.

Why fork and not uvicorn's own ``workers=N``: uvicorn's multiprocess mode spawns fresh
interpreters that import the app by a dotted name, and this app is built from the command
line's options (contract, store, faults, security). Forked workers also inherit everything
imported, so one starts in about the time building the sandbox takes.

Only a store that several processes may share can have workers (``RecordStore.shared``): the
CLI refuses ``--workers`` above 1 for TinyDB, whose data directory is locked to one process.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
import traceback
import typing as t

from timbrix_sandbox.http.control import ServingProcesses
from timbrix_sandbox.http.server import BACKLOG, run

logger = logging.getLogger("timbrix_sandbox.workers")

QUICK_EXIT = 10.0
"""A worker that exits this many seconds after it started did not really start."""
MAX_QUICK_EXITS = 3


def serve_workers(
    build_app: t.Callable[[ServingProcesses], t.Any],
    *,
    workers: int,
    host: str,
    port: int,
    log_level: str,
    sock: socket.socket,
) -> int:
    """Fork ``workers`` processes, each serving ``build_app(...)`` on ``sock``, and supervise
    them until SIGTERM/SIGINT (see the module docstring). Returns the exit status."""
    sock.listen(BACKLOG)  # connections queue while workers start or restart
    serving = ServingProcesses(server_pid=os.getpid(), workers=workers)
    children: dict[int, float] = {}
    stopping = False

    def spawn() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker
            os._exit(_worker(build_app, serving, host=host, port=port, log_level=log_level, sock=sock))
        children[pid] = time.monotonic()

    def stop(signum: int, _frame: t.Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            _signal(pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    status, quick_exits = 0, 0
    try:
        for _ in range(workers):
            spawn()
        while children:
            try:
                pid, wait_status = os.wait()
            except ChildProcessError:
                break
            started = children.pop(pid, None)
            if started is None or stopping:
                continue
            code = os.waitstatus_to_exitcode(wait_status)
            quick_exits = quick_exits + 1 if time.monotonic() - started < QUICK_EXIT else 0
            if quick_exits >= MAX_QUICK_EXITS:
                logger.error("worker %d exited with %s, %d times in a row at startup: stopping", pid, code, quick_exits)
                status = 1
                stop(signal.SIGTERM, None)
                continue
            logger.warning("worker %d exited with %s; starting another", pid, code)
            spawn()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


def _worker(
    build_app: t.Callable[[ServingProcesses], t.Any],
    serving: ServingProcesses,
    *,
    host: str,
    port: int,
    log_level: str,
    sock: socket.socket,
) -> int:
    """One worker's life, in the forked child; returns its exit status (never raises)."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)  # uvicorn installs its own while serving
    try:
        run(build_app(serving), host=host, port=port, log_level=log_level, sock=sock)
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)  # only ever a worker this process forked
    except ProcessLookupError:
        pass
