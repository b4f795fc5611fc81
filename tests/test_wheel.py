"""The wheel, built from a clean copy of the sources and installed into a fresh venv with the
pinned versions, serves Timbrix and the shipped peer contracts from an unrelated directory.

Dependencies come from a wheel cache (``.venv/wheelhouse``, or ``$TIMBRIX_SANDBOX_WHEELHOUSE``):
the install runs offline from it, and only when that fails (first run, changed pins) are the
missing wheels fetched into it with ``pip download``. About 25 s with a warm cache on 2 cores
(venv and install ~16 s, build ~4 s, two servers ~2 s; the build still asks PyPI for its
build backend, which pip caches), about 35 s cold."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import httpx
import pytest
from conftest import DOCS_CUSTOMER, DUNDER, MICHAEL, PortTaken, free_port

import timbrix_sandbox
from timbrix_sandbox.profiles import CONTRACTS, TIMBRIX_FIXTURES, default_fixtures
from timbrix_sandbox.testing import stop_process

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("timbrix_sandbox", "cfdi", "conformance")
WHEELHOUSE = Path(os.environ.get("TIMBRIX_SANDBOX_WHEELHOUSE", ROOT / ".venv" / "wheelhouse"))
CONSTRAINTS = ROOT / "constraints.txt"
BUILD_INPUTS = ("pyproject.toml", "README.md", *PACKAGES)


def _run(args: list, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        command = " ".join(map(str, args))
        raise AssertionError(f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def _clean_env() -> dict[str, str]:
    """The environment without anything that would let the worktree or the dev venv leak in."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def source_files() -> list[str]:
    """Every file of the packages, as a wheel names it."""
    return sorted(
        path.relative_to(ROOT).as_posix()
        for top in PACKAGES
        for path in (ROOT / top).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a copy holding only what the build reads (a stale ``build/`` in the worktree
    could otherwise slip removed files into the wheel)."""
    source = tmp_path_factory.mktemp("source")
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", out, source], env=_clean_env())
    (built,) = out.glob("timbrix_sandbox-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel and the pinned dependencies; returns its bin directory."""
    root = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", root], env=_clean_env())
    python = root / "bin" / "python"
    install = [python, "-m", "pip", "install", "--quiet", "-c", CONSTRAINTS, "--no-index", "--find-links", WHEELHOUSE]
    wanted = [wheel, "pytest"]  # what a user's project installs: the wheel and pytest, nothing else
    try:
        _run([*install, *wanted], env=_clean_env())
    except AssertionError:
        WHEELHOUSE.mkdir(parents=True, exist_ok=True)
        download = [python, "-m", "pip", "download", "--quiet", "-c", CONSTRAINTS, "-d", WHEELHOUSE, *wanted]
        _run(download, env=_clean_env())
        for copied in WHEELHOUSE.glob("timbrix_sandbox-*"):  # only the dependencies are cached
            copied.unlink()
        _run([*install, *wanted], env=_clean_env())
    _run([python, "-m", "pip", "check"], env=_clean_env())
    return root / "bin"


def test_wheel_holds_every_source_and_data_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in source_files() if name not in names]
    assert not missing, f"not in {wheel.name}: {missing}"
    shipped = [*CONTRACTS.values(), *(default_fixtures(name) for name in CONTRACTS), TIMBRIX_FIXTURES]
    shipped += [ROOT / "timbrix_sandbox/http/control.yaml", *(ROOT / "cfdi/data").iterdir()]
    for path in shipped:
        assert path.resolve().relative_to(ROOT).as_posix() in names, path
    assert "timbrix_sandbox/profiles/timbrix/plugin.py" in names
    tops = {name.split("/")[0] for name in names}
    assert tops == {*PACKAGES, f"timbrix_sandbox-{timbrix_sandbox.__version__}.dist-info"}, tops


def test_wheel_metadata(wheel):
    archive = zipfile.ZipFile(wheel)
    info = f"timbrix_sandbox-{timbrix_sandbox.__version__}.dist-info"
    metadata = archive.read(f"{info}/METADATA").decode()
    assert f"\nVersion: {timbrix_sandbox.__version__}\n" in metadata
    with open(ROOT / "pyproject.toml", "rb") as file:
        dependencies = tomllib.load(file)["project"]["dependencies"]
    required = set(re.findall(r"^Requires-Dist: (.+)$", metadata, re.M))
    for dependency in dependencies:
        name, pin = re.match(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?(==\S+)", dependency).groups()
        assert any(line.startswith(name) and pin in line for line in required), (dependency, sorted(required))
    entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert "timbrix-sandbox = timbrix_sandbox.cli:main" in entry_points
    # `pipx run timbrix-sandbox` runs the console script named like the package
    assert re.search(r"^Name: timbrix-sandbox$", metadata, re.M)
    assert "[pytest11]\ntimbrix_sandbox.pytest_plugin = timbrix_sandbox.pytest_plugin" in entry_points


def test_version_scheme_and_changelog():
    """PEP 440 ``X.Y.Z`` or ``X.Y.Z.devN``; a release has its dated CHANGELOG section, a dev
    version an ``[Unreleased]`` one."""
    version = timbrix_sandbox.__version__
    match = re.fullmatch(r"(\d+\.\d+\.\d+)(\.dev\d+)?", version)
    assert match, version
    changelog = (ROOT / "CHANGELOG.md").read_text()
    if match.group(2):
        assert "\n## [Unreleased]\n" in changelog
    else:
        assert re.search(rf"^## \[{re.escape(version)}\] - \d{{4}}-\d\d-\d\d$", changelog, re.M), version


class InstalledServer:
    """``timbrix-sandbox serve --in-memory`` from the venv, in ``cwd``; stopped by its PID."""

    def __init__(self, bin_dir: Path, cwd: Path, *args: str) -> None:
        self.command = [str(bin_dir / "timbrix-sandbox"), "serve", "--in-memory", "--log-level", "warning", *args]
        self.cwd = cwd
        self.log = cwd / "server.log"

    def __enter__(self) -> httpx.Client:
        for _attempt in range(3):
            try:
                return self._start()
            except PortTaken:
                self._stop()
            except BaseException:
                self._stop()
                raise
        raise RuntimeError("no free port after 3 attempts")

    def _start(self) -> httpx.Client:
        port = free_port()
        with open(self.log, "w") as log:
            command = [*self.command, "--port", str(port)]
            self.process = subprocess.Popen(command, cwd=self.cwd, stdout=log, stderr=log, env=_clean_env())
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.log.read_text()
                if "port is in use" in output:
                    raise PortTaken(port)
                raise AssertionError(f"the installed server exited {self.process.returncode}:\n{output}")
            try:
                health = self.client.get("/__sandbox/health")
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            assert health.status_code == 200, health.text
            if health.json().get("pid") != self.process.pid:
                raise PortTaken(port)  # another server took the port between free_port() and our bind
            return self.client
        raise AssertionError(f"the installed server did not answer in 30 s:\n{self.log.read_text()}")

    def __exit__(self, exc_type, *_exc) -> None:
        status = self._stop()
        if exc_type is None:
            assert status == 0, f"SIGTERM should exit 0, not {status}:\n{self.log.read_text()}"

    def _stop(self) -> int:
        self.client.close()
        stop_process(self.process)
        return self.process.returncode


def test_installed_wheel_serves_from_any_directory(venv, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run(
        [venv / "python", "-c", "import importlib.metadata as m, timbrix_sandbox as t; "
         "print(t.__file__, t.__version__, m.version('timbrix-sandbox'))"],
        cwd=elsewhere, env=_clean_env(),
    ).stdout.split()  # fmt: skip
    assert where[0].startswith(str(venv.parent / "lib")), where
    assert where[1:] == [timbrix_sandbox.__version__] * 2, where
    version = _run([venv / "timbrix-sandbox", "--version"], cwd=elsewhere, env=_clean_env()).stdout.strip()
    assert version == f"timbrix-sandbox {timbrix_sandbox.__version__}"

    with InstalledServer(venv, elsewhere) as client:
        customer = client.get(f"/api/organizations/{DUNDER}/customers/{DOCS_CUSTOMER}", headers=MICHAEL)
        assert customer.status_code == 200, customer.text
        assert customer.json()["id"] == DOCS_CUSTOMER
    with InstalledServer(venv, elsewhere, "--contract", "beel") as client:
        customers = client.get("/api/v1/customers", headers={"Authorization": "Bearer beel_sk_test_madrid"})
        assert customers.status_code == 200, customers.text
    assert sorted(p.name for p in elsewhere.iterdir()) == ["server.log"]  # --in-memory: nothing else written


def test_users_own_tests_pass_with_the_installed_plugin(venv, tmp_path):
    """A fresh project with only the wheel and pytest installed: the documented example, found
    by pytest through the plugin's entry point (no ``-p``, no conftest), passes - and each test
    sees fresh fixtures (one creates a customer, the next does not see it)."""
    project = tmp_path / "my-project"
    project.mkdir()
    example = ROOT / "examples" / "test_with_sandbox.py"
    (project / example.name).write_text(example.read_text())
    result = subprocess.run(
        [str(venv / "python"), "-m", "pytest", "-p", "no:cacheprovider", "-v", example.name],
        cwd=project, env=_clean_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "test_the_next_test_sees_fresh_fixtures PASSED" in result.stdout, result.stdout
    assert re.search(r"\b5 passed\b", result.stdout), result.stdout
