"""The pytest plugin as a user meets it: the documented example file, run by pytest in an
unrelated directory with the plugin loaded, passes - each test seeing fresh fixtures. (The
wheel test runs the same file with the plugin found through its entry point.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "test_with_sandbox.py"


def run_example(where: Path, target: str = EXAMPLE.name) -> subprocess.CompletedProcess:
    (where / EXAMPLE.name).write_text(EXAMPLE.read_text())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "timbrix_sandbox.pytest_plugin",
               target]
    return subprocess.run(command, cwd=where, env=env, capture_output=True, text=True, timeout=180)


def test_example_passes_with_fresh_fixtures_per_test(tmp_path):
    result = run_example(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b5 passed\b", result.stdout), result.stdout
    assert {p.name for p in tmp_path.iterdir()} <= {EXAMPLE.name, "__pycache__"}  # the server wrote nothing here


def test_a_test_that_breaks_isolation_would_fail(tmp_path):
    """The fresh-fixtures test can fail: run alone after the create, without the reset between
    them, it sees the customer (so it is not vacuous)."""
    probe = tmp_path / "test_probe.py"
    probe.write_text(
        "from test_with_sandbox import test_create_a_customer, test_the_next_test_sees_fresh_fixtures\n"
        "def test_both_in_one(timbrix_sandbox):\n"
        "    test_create_a_customer(timbrix_sandbox)\n"
        "    test_the_next_test_sees_fresh_fixtures(timbrix_sandbox)\n"
    )
    result = run_example(tmp_path, "test_probe.py")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED test_probe.py::test_both_in_one" in result.stdout, result.stdout


def test_loading_it_twice_registers_it_once(tmp_path):
    """Installed (entry point) and named with ``-p`` as well: one plugin, not an error (pyproject
    names the entry point by its module for this). Metadata on ``PYTHONPATH`` plays the installed
    package, with the entry points pyproject declares."""
    info = tmp_path / "site" / "timbrix_sandbox_probe-1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: timbrix-sandbox-probe\nVersion: 1\n")
    with open(ROOT / "pyproject.toml", "rb") as file:
        plugins = tomllib.load(file)["project"]["entry-points"]["pytest11"]  # as the wheel declares them
    (info / "entry_points.txt").write_text("[pytest11]\n" + "".join(f"{k} = {v}\n" for k, v in plugins.items()))
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_one.py").write_text("def test_fixture_is_there(timbrix_sandbox_factory):\n    pass\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path / "site")])}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "timbrix_sandbox.pytest_plugin",
               "test_one.py"]
    result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
