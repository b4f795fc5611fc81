"""Shared fixtures: an in-process app over a real (in-memory or on-disk) TinyDB store, and real
servers started on free loopback ports and stopped by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import typing as t
from pathlib import Path

import httpx
import pytest

from timbrix_sandbox.http.app import create_app
from timbrix_sandbox.profiles.sandboxes import make_sandbox
from timbrix_sandbox.testing import PostgresServer, free_port, stop_process, wait_until_healthy

ROOT = Path(__file__).resolve().parent.parent
DUNDER = "550e8400-e29b-41d4-a716-446655440000"
PRINCE = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
DOCS_CUSTOMER = "590ce6c56d04f840aa8438af"
PRINCE_CUSTOMER = "66b2a1d3f5c0b2c3d4e5f601"
MICHAEL = {"Authorization": "Bearer sk_test_michael"}
PRINCE_TOKEN = {"Authorization": "Bearer sk_test_prince"}
TOBY = {"Authorization": "Bearer sk_test_toby"}
LOCAL = "http://localhost"
"""In-process clients' base URL: the app answers loopback Host names only (DNS-rebinding guard)."""

VALID_CREATE = {
    "legalName": "Bluth Company",
    "taxId": "BCO0311024R2",
    "taxSystem": "601",
    "email": "cfdi@bluth.mx",
    "phone": "5551234567",
    "defaultInvoiceUse": "G03",
    "addressStreet": "Av. Balboa",
    "addressExterior": "1",
    "addressNeighborhood": "Centro",
    "addressCity": "Monterrey",
    "addressMunicipality": "Monterrey",
    "addressZip": "64000",
    "addressState": "Nuevo León",
}


def customers_url(org: str = DUNDER) -> str:
    return f"/api/organizations/{org}/customers"


def customer_url(customer: str = DOCS_CUSTOMER, org: str = DUNDER) -> str:
    return f"/api/organizations/{org}/customers/{customer}"


@pytest.fixture
def app():
    return create_app(make_sandbox(data_dir=None))


@pytest.fixture
def client(app):
    with app.test_client(base_url=LOCAL) as test_client:
        yield test_client


@pytest.fixture
def disk_app(tmp_path):
    return create_app(make_sandbox(data_dir=tmp_path / "data"))


class PortTaken(Exception):
    """The port answered, but not for the process we started."""


class LiveServer:
    """``timbrix-sandbox serve`` in a subprocess; only ever signals its own PID."""

    def __init__(self, data_dir: Path | None, extra: t.Sequence[str] = (), store: str | None = None) -> None:
        self.data_dir = data_dir
        self.store = store
        self.extra = list(extra)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    @property
    def control_headers(self) -> dict[str, str]:
        """The control token the server was started with, if any (``--control-token``)."""
        if "--control-token" in self.extra:
            return {"X-Sandbox-Control-Token": self.extra[self.extra.index("--control-token") + 1]}
        return {}

    def start(self, timeout: float = 30, attempts: int = 3) -> LiveServer:
        for _attempt in range(attempts):
            try:
                return self._start(timeout)
            except PortTaken:
                self.port = free_port()
                self.url = f"http://127.0.0.1:{self.port}"
        raise RuntimeError(f"no free port after {attempts} attempts")

    def _start(self, timeout: float) -> LiveServer:
        args = [
            sys.executable,
            "-m",
            "timbrix_sandbox",
            "serve",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
        ]
        if self.store:
            args += ["--store", self.store]
        else:
            args += ["--data-dir", str(self.data_dir)] if self.data_dir else ["--in-memory"]
        self.process = subprocess.Popen(
            args + self.extra, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        state = wait_until_healthy(self.url, self.process, headers=self.control_headers, timeout=timeout)
        if state == "exited":
            output = self.process.stdout.read()
            if "in use" in output.lower():
                raise PortTaken(self.port)
            raise RuntimeError(f"server exited early:\n{output}")
        if state == "ready":
            return self
        self.stop()
        if state == "other":
            raise PortTaken(self.port)
        raise RuntimeError("server did not become healthy in time")

    def stop(self) -> None:
        stop_process(self.process)

    def kill9(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)


@pytest.fixture
def live_server_factory(tmp_path):
    started: list[LiveServer] = []

    def start(
        data_dir: Path | None = tmp_path / "data", extra: t.Sequence[str] = (), store: str | None = None
    ) -> LiveServer:
        server = LiveServer(data_dir, extra, store).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def live_server(live_server_factory) -> LiveServer:
    return live_server_factory()


def timbrix_options(server: LiveServer, **overrides: t.Any):
    """Conformance options for a Timbrix sandbox: Michael in Dunder Mifflin, Prince outside."""
    from conformance.model import Options

    values: dict[str, t.Any] = dict(
        base_url=server.url + "/api",
        token="sk_test_michael",
        organization_id=DUNDER,
        outsider_token="sk_test_prince",
        outsider_organization_id=PRINCE,
    )
    return Options(**{**values, **overrides})


def assert_violation(violation: t.Any, rule: str, message: str, field: str) -> None:
    """A CFDI rule broken, named, worded and placed as the vendor does."""
    assert violation is not None
    assert (violation.rule, violation.message, violation.field) == (rule, message, field)


@pytest.fixture(scope="session")
def postgres_server() -> t.Iterator[PostgresServer]:
    """One PostgreSQL server for the session (Debian's package: ``.ci/run`` installs it), in a
    temporary directory, run as an unprivileged user when the tests run as root, stopped by its
    PID at the end. Each test gets its own schema (:func:`postgres_url`)."""
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> str:
    """A URL whose ``search_path`` is a new, empty schema: a store of its own for one test."""
    import psycopg

    schema = "t_" + os.urandom(6).hex()
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return postgres_server.url(schema=schema)


@pytest.fixture(params=["tinydb", "postgresql"])
def any_store(request: pytest.FixtureRequest) -> str | None:
    """For tests that must hold on both stores: ``None`` (TinyDB, in memory) or the URL of an
    empty PostgreSQL schema; pass it as ``make_sandbox(store=...)``."""
    return None if request.param == "tinydb" else request.getfixturevalue("postgres_url")
