"""Wrong usage of the command line is one line on stderr and exit code 2, never a traceback,
and never a "serving at" banner for a server that is not serving."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from conftest import ROOT, free_port


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "timbrix_sandbox", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def _assert_usage_error(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    assert "serving" not in result.stdout


@pytest.fixture
def contracts(tmp_path):
    (tmp_path / "list.yaml").write_text("- just\n- a list\n", encoding="utf-8")
    (tmp_path / "broken.yaml").write_text("openapi: 3.1.0\npaths: [\n", encoding="utf-8")
    (tmp_path / "notopenapi.yaml").write_text("hello: world\n", encoding="utf-8")
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00garbage")
    return tmp_path


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("missing.yaml", "no such file"),
        ("list.yaml", "not an OpenAPI document"),
        ("broken.yaml", "not valid YAML"),
        ("notopenapi.yaml", "not an OpenAPI document"),
        ("binary.yaml", "cannot be read"),
        (".", "is a directory"),
    ],
)
@pytest.mark.parametrize("command", ["serve", "faults", "reset"])
def test_a_wrong_contract_is_one_line(contracts, name, expected, command):
    extra = ["--in-memory"] if command == "serve" else []
    if command == "reset":
        extra = ["--data-dir", str(contracts / "data")]
    _assert_usage_error(_run(command, "--contract", str(contracts / name), *extra), "contract", expected)


def test_data_dir_that_is_a_file(tmp_path):
    target = tmp_path / "file"
    target.write_text("not a directory")
    _assert_usage_error(_run("serve", "--data-dir", str(target)), "is a file, not a directory")
    _assert_usage_error(_run("reset", "--data-dir", str(target)), "is a file, not a directory")


def test_in_memory_with_a_data_dir_is_refused(tmp_path):
    _assert_usage_error(_run("serve", "--in-memory", "--data-dir", str(tmp_path)), "--in-memory", "--data-dir")


def test_missing_fixtures_file(tmp_path):
    _assert_usage_error(_run("serve", "--in-memory", "--fixtures", str(tmp_path / "nope.yaml")), "nope.yaml")


def test_a_base_path_must_be_a_path():
    _assert_usage_error(_run("serve", "--in-memory", "--base-path", "https://api.example.com/v2"), "--base-path")


def test_unknown_fault():
    _assert_usage_error(_run("serve", "--in-memory", "--fault", "no-such-fault"), "no-such-fault")


def test_a_busy_port_fails_before_the_banner():
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        result = _run("serve", "--in-memory", "--port", str(port))
    _assert_usage_error(result, f"127.0.0.1:{port}", "in use")


def test_an_unknown_host_to_bind():
    _assert_usage_error(_run("serve", "--in-memory", "--host", "no-such-host.invalid", "--port", str(free_port())),
                        "no-such-host.invalid")


def test_a_damaged_data_dir_names_the_file_and_the_way_out(tmp_path):
    data = tmp_path / "data"
    assert _run("reset", "--data-dir", str(data)).returncode == 0
    journal = next((data / "customers").glob("*.journal"))
    snapshot = journal.with_suffix(".json")
    journal.write_text('{"op": "put", "doc": {"id": "x"}, "g": 99}\n', encoding="utf-8")  # newer than its snapshot
    refused = _run("serve", "--data-dir", str(data), "--port", str(free_port()))
    _assert_usage_error(refused, str(journal.with_suffix("")), "--discard-damaged")
    assert snapshot.exists() and journal.read_text(encoding="utf-8").startswith('{"op"')  # left as it was
    repaired = _run("reset", "--data-dir", str(data), "--discard-damaged")
    assert repaired.returncode == 0, repaired.stderr
    assert list(data.glob("damaged-*/customers/*")), "the damaged files are kept aside"
    assert _run("reset", "--data-dir", str(data)).returncode == 0  # opens cleanly now
