"""The pytest plugin: a running sandbox for your own tests, with fresh fixtures in every test.

Installed with the package (``pytest11`` entry point ``timbrix_sandbox.pytest_plugin``;
``-p no:timbrix_sandbox.pytest_plugin`` turns it off), it only provides fixtures; it changes
nothing in a test run that does not ask for them.

* ``timbrix_sandbox``: the Timbrix contract served by one server per test session (per
  worker under pytest-xdist), on a free loopback port, in memory, in a process of its own.
  Before each test that uses it, every organization is reset to its fixtures and the
  run-time behaviours and the request journal are cleared (``POST /__sandbox/reset`` and
  two ``DELETE``s; a few milliseconds, see the README).
* ``timbrix_sandbox_factory``: the same for any contract and fixtures file:
  ``timbrix_sandbox_factory(contract="beel")`` or ``(contract=path, fixtures=path)``; one
  server per distinct set of arguments per session, reset on each call.

What a test gets is a :class:`RunningSandbox`: ``base_url`` (the API root), ``control_url``,
``tokens`` (user name -> token), ``credentials`` (the fixture users with their
organizations), ``organizations`` (id -> name), ``reset()``, ``client(token)`` (an
``httpx.Client`` on the API), ``set_behaviour(...)`` and ``requests(...)`` (the journal).

Example: ``examples/test_with_sandbox.py``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import typing as t
import urllib.request
from pathlib import Path

import pytest

import timbrix_sandbox as package
from timbrix_sandbox.testing import free_port, stop_process, wait_until_healthy

START_ATTEMPTS = 3
API_BASE_PATH = "/api"


@dataclasses.dataclass(frozen=True)
class Credential:
    """A fixture user: the token to send, and the organizations it is a member of."""

    name: str
    token: str
    organizations: frozenset[str]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class SandboxStartError(RuntimeError):
    pass


class RunningSandbox:
    """A sandbox served by a process this plugin started (and stops, by its PID)."""

    def __init__(self, contract: str | os.PathLike[str] = "timbrix", fixtures: str | os.PathLike[str] | None = None,
                 args: t.Sequence[str] = ()) -> None:
        self.contract = os.fspath(contract)
        self.fixtures = None if fixtures is None else os.fspath(fixtures)
        self.args = list(args)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"timbrix-sandbox-{_worker()}-"))
        self.process: subprocess.Popen | None = None
        self.url = ""
        self.credentials, self.organizations = _fixture_users(self.contract, self.fixtures)

    # -- what a test uses ---------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """The API root, e.g. ``http://127.0.0.1:PORT/api``."""
        return self.url + self.base_path

    @property
    def control_url(self) -> str:
        return self.url + "/__sandbox"

    @property
    def tokens(self) -> dict[str, str]:
        """User name (as in the fixtures) -> token."""
        return {credential.name: credential.token for credential in self.credentials}

    def reset(self) -> dict[str, t.Any]:
        """Every organization back to its fixtures; run-time behaviours and the journal cleared."""
        answer = self._control("POST", "/reset")
        self._control("DELETE", "/behaviours")
        self._control("DELETE", "/requests")
        return answer

    def client(self, token: str | None = None, **kwargs: t.Any):
        """An ``httpx.Client`` on ``base_url`` (the caller closes it), sending ``token`` if given."""
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers={**headers, **kwargs.pop("headers", {})}, **kwargs)

    def set_behaviour(self, behaviour: str, **rule: t.Any) -> dict[str, t.Any]:
        """``POST /__sandbox/behaviours``, e.g. ``set_behaviour("status", status=503, times=1)``."""
        return self._control("POST", "/behaviours", {"behaviour": behaviour, **rule})

    def requests(self, **filters: t.Any) -> list[dict[str, t.Any]]:
        """The request journal, newest first (filters: method, path, status, limit)."""
        query = "&".join(f"{k}={urllib.request.quote(str(v))}" for k, v in filters.items())
        return self._control("GET", "/requests" + (f"?{query}" if query else ""))["requests"]

    # -- the process ----------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> RunningSandbox:
        for _attempt in range(START_ATTEMPTS):
            port = free_port()
            self.url = f"http://127.0.0.1:{port}"
            command = [sys.executable, "-m", "timbrix_sandbox", "serve", "--in-memory", "--port", str(port),
                       "--log-level", "warning", "--contract", self.contract, *self.args]
            if self.fixtures:
                command += ["--fixtures", self.fixtures]
            log = self.workdir / "server.log"
            with open(log, "w") as out:
                self.process = subprocess.Popen(command, cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT,
                                                env=_same_package_env())
            state = wait_until_healthy(self.url, self.process, timeout=timeout)
            if state == "ready":
                health = self._control("GET", "/health")
                self.base_path = health.get("basePath", API_BASE_PATH)
                return self
            stop_process(self.process)
            output = log.read_text()
            if state == "exited" and "in use" not in output.lower():
                self.stop()
                raise SandboxStartError(f"timbrix-sandbox exited {self.process.returncode}:\n{output}")
            if state == "timeout":
                self.stop()
                raise SandboxStartError(f"timbrix-sandbox did not answer in {timeout} s:\n{output}")
        raise SandboxStartError(f"no free port after {START_ATTEMPTS} attempts")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        shutil.rmtree(self.workdir, ignore_errors=True)

    base_path: str = API_BASE_PATH

    def _control(self, method: str, path: str, body: t.Any = None) -> t.Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        request = urllib.request.Request(self.control_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read()
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: {exc.code} {exc.read().decode()}") from None
        return json.loads(text) if text else None


def _worker() -> str:
    """pytest-xdist's worker id (``gw0``...), or ``main``: each worker runs its own server."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def _same_package_env() -> dict[str, str]:
    """The server runs the very package this plugin was imported from (a worktree or a venv),
    whatever directory it is started in."""
    root = str(Path(package.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    return env


def _fixture_users(contract: str, fixtures: str | None) -> tuple[tuple[Credential, ...], dict[str, str]]:
    from timbrix_sandbox.profiles.sandboxes import profile_fixtures

    loaded = profile_fixtures(contract, fixtures)
    users = tuple(Credential(u.name, u.token, u.organizations) for u in loaded.users)
    return users, dict(loaded.organizations)


class SandboxFactory:
    """One server per distinct (contract, fixtures, args), started on first use."""

    def __init__(self) -> None:
        self.started: dict[tuple, RunningSandbox] = {}

    def __call__(self, contract: str | os.PathLike[str] = "timbrix", fixtures: str | os.PathLike[str] | None = None,
                 args: t.Sequence[str] = ()) -> RunningSandbox:
        key = (os.fspath(contract), None if fixtures is None else os.fspath(fixtures), tuple(args))
        if key not in self.started:
            self.started[key] = RunningSandbox(contract, fixtures, args).start()
        sandbox = self.started[key]
        sandbox.reset()
        return sandbox

    def stop_all(self) -> None:
        for sandbox in self.started.values():
            sandbox.stop()


@pytest.fixture(scope="session")
def _timbrix_sandbox_servers() -> t.Iterator[SandboxFactory]:
    factory = SandboxFactory()
    yield factory
    factory.stop_all()


@pytest.fixture
def timbrix_sandbox_factory(_timbrix_sandbox_servers: SandboxFactory) -> SandboxFactory:
    """``timbrix_sandbox_factory(contract=..., fixtures=..., args=[...])``: a sandbox for any
    contract, reset to its fixtures."""
    return _timbrix_sandbox_servers


@pytest.fixture
def timbrix_sandbox(_timbrix_sandbox_servers: SandboxFactory) -> RunningSandbox:
    """The Timbrix sandbox, reset to its fixtures for this test."""
    return _timbrix_sandbox_servers()
