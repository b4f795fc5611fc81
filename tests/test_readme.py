"""The README's promises: its quick-tour commands run as written against a real sandbox, and
.ci/run uses the README's test command."""

from __future__ import annotations

import json
import re
import subprocess

from conftest import ROOT

from timbrix_sandbox.profiles import CONTRACTS

README = (ROOT / "README.md").read_text(encoding="utf-8")


def spaced(out: str) -> str:
    """curl's output with each JSON body written the way the README quotes it (``"key": value``):
    bodies are compact on the wire, and JSON's whitespace means nothing."""
    decoder, parts, at = json.JSONDecoder(), [], 0
    while at < len(out):
        try:
            value, end = decoder.raw_decode(out, at)
        except ValueError:
            parts.append(out[at])
            at += 1
            continue
        parts.append(json.dumps(value, ensure_ascii=False))
        at = end
    return "".join(parts)


def quick_tour() -> str:
    section = README.split("## Quick tour", 1)[1]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


def test_quick_tour_runs_as_written(live_server):
    script = quick_tour().replace("http://localhost:3001", live_server.url)
    assert live_server.url in script
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = spaced(done.stdout)
    assert '"taxId": "DUM901231AB3"' in out
    assert '"email": "new-billing@dundermifflin.com"' in out
    assert '"legalName": "Vance Refrigeration Norte"' in out
    assert 'El uso de CFDI \\"D01\\" no aplica para persona moral (RFC de 12 caracteres)' in out
    assert '"statusCode": 401' in out and '"statusCode": 403' in out
    assert '"codigo": "G01"' in out and '"codigo": "626"' in out
    assert '"status": "ok"' in out


def test_beel_tour_runs_as_written(live_server_factory):
    server = live_server_factory(None, extra=["--contract", str(CONTRACTS["beel"])])
    section = README.split("A quick tour of BeeL", 1)[1]
    script = re.search(r"```sh\n(.*?)```", section, re.S).group(1).replace("http://localhost:3001", server.url)
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = spaced(done.stdout)
    assert '"legal_name": "Ferretería Norte SL"' in out or '"legal_name": "Ferreter\\u00eda Norte SL"' in out
    assert '"general_discount": 5' in out
    assert '"code": "VALIDATION_ERROR"' in out and '"phone": "\\"12\\" is shorter than 9 characters"' in out
    assert '"code": "FORBIDDEN"' in out


def test_ci_runs_the_readme_test_command():
    commands = re.search(r"## The two commands.*?```sh\n(.*?)```", README, re.S).group(1)
    test_command = next(line.split("#")[0].strip() for line in commands.splitlines() if "test" in line)
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_any_language_tour_runs_as_written(live_server):
    section = README.split("### Any other language", 1)[1]
    script = re.search(r"```sh\n(.*?)```", section, re.S).group(1).replace("http://localhost:3001", live_server.url)
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert '"tookMs"' in out  # the reset
    # (bodies are compact or spaced JSON depending on who renders them: compare tokens)
    assert re.search(r'\{"statusCode":\s?404,\s?"message":\s?"Customer not found",\s?"error":\s?"NOT_FOUND"\}', out)
    assert re.search(r'"behaviour":\s?"latency"', out) and re.search(r'"remaining":\s?2\b', out)
    assert re.search(r"^200 in (0\.[2-9]|[1-9])", out, re.M), out  # the latency acted
    journal = json.loads(out.strip().splitlines()[-1])
    assert [e["status"] for e in journal["requests"]] == [404]
    assert journal["requests"][0]["requestHeaders"]["authorization"] == "Bearer [redacted]"
