"""The conformance suite against the clean sandbox: a schemathesis run with every built-in
check and phase plus the domain and behaviour layers, clean for several seeds; it leaves the
data as it found it; the CLI's exit codes and reports; ``pytest conformance`` for Timbrix and
for BeeL (one suite, any contract); the plug-in rule and the suite's import boundary."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from xml.etree import ElementTree

import pytest
import yaml
from conftest import DUNDER, MICHAEL, ROOT, customers_url, timbrix_options

from conformance import domains
from conformance.model import Options, UsageProblem
from conformance.runner import run
from timbrix_sandbox.profiles import CONTRACTS

SEEDS = [1, 2, 3]


@pytest.fixture(scope="module")
def clean_server(tmp_path_factory):
    from conftest import LiveServer

    server = LiveServer(tmp_path_factory.mktemp("clean") / "data").start()
    yield server
    server.stop()


@pytest.mark.parametrize("seed", SEEDS)
def test_clean_sandbox_is_conformant(clean_server, seed):
    with clean_server.client(headers=MICHAEL) as client:
        before = client.get(customers_url()).json()
    result = run(timbrix_options(clean_server, seed=seed))
    details = "\n".join(f"{f.operation} {f.check}: {f.message[:400]}\n  {f.curl}" for f in result.unique_findings())
    assert result.conformant, details
    assert result.cases > 300, "the schemathesis phases really ran"
    checks = {check for _, check in result.tallies}
    for builtin in (
        "not_a_server_error",
        "response_schema_conformance",
        "status_code_conformance",
        "negative_data_rejection",
        "use_after_free",
        "ignored_auth",
        "unsupported_method",
    ):
        assert builtin in checks
    for layer_check in ("fiscal_rules", "sat_catalogs", "partial_update", "tenant_isolation", "auth_required"):
        assert layer_check in checks
    with clean_server.client(headers=MICHAEL) as client:
        after = client.get(customers_url()).json()
    assert after == before, "the suite deletes what it creates and writes nothing else"


def _cli(*args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    """``timbrix-sandbox conformance ARGS`` in a subprocess."""
    import os

    command = [sys.executable, "-m", "timbrix_sandbox", "conformance", *args]
    environment = {k: v for k, v in os.environ.items() if k != "GITHUB_STEP_SUMMARY"} | (env or {})
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=environment)


MEMBER = ("--token", "sk_test_michael", "--organization-id", DUNDER)


def test_cli_exit_codes_and_reports(clean_server, tmp_path):
    junit, report = tmp_path / "junit.xml", tmp_path / "report.json"
    api = clean_server.url + "/api"
    markdown, page, step_summary = tmp_path / "summary.md", tmp_path / "report.html", tmp_path / "step.md"
    done = _cli(*MEMBER, "--base-url", api, "--seed", "7", "--max-examples", "5", "--junit-xml", str(junit),
                "--json", str(report), "--markdown", str(markdown), "--html", str(page), "--min-coverage", "99",
                env={"GITHUB_STEP_SUMMARY": str(step_summary)})  # fmt: skip
    # No violation, but the default run answers about half of the declared responses: under 99%.
    assert done.returncode == 4, done.stdout[-3000:] + done.stderr[-2000:]
    assert "Per operation" in done.stdout and "Per check" in done.stdout and "UNDER-COVERED" in done.stdout
    assert "Coverage: " in done.stdout and "421(-)" in done.stdout  # never answered, shown as such
    suite = ElementTree.parse(junit).getroot()
    assert suite.tag == "testsuite" and int(suite.get("tests")) > 20 and suite.get("failures") == "0"
    figures = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert figures["verdict"] == "UNDER-COVERED" and 0 < float(figures["coverage.percent"]) < 99
    assert int(suite.get("skipped")) == int(figures["coverage.declared"]) - int(figures["coverage.covered"])
    payload = json.loads(report.read_text())
    assert payload["conformant"] is True and payload["seed"] == 7 and payload["exitCode"] == 4
    coverage = payload["coverage"]
    assert coverage["operations"] == coverage["operationsExercised"] == 7
    cell = next(c for c in coverage["responses"] if c["operation"].startswith("POST") and c["status"] == "201")
    assert cell["covered"] and cell["checks"]["response_schema_conformance"]["passed"] > 0
    assert not next(c for c in coverage["responses"] if c["status"] == "421")["covered"]
    assert payload["notRemoved"] == [] and payload["incomplete"] == []
    summary = markdown.read_text()
    assert summary.startswith("## ") and "UNDER-COVERED" in summary and "~~`421`~~" in summary
    assert step_summary.read_text().strip() == summary.strip(), "the summary goes to $GITHUB_STEP_SUMMARY too"
    html = page.read_text()
    assert "<table>" in html and "class=no" in html and "class=yes" in html
    assert "http://" not in html.replace(api, "") and "<script" not in html and "<link" not in html

    unreachable = _cli(*MEMBER, "--base-url", "http://127.0.0.1:9/api", timeout=60)
    assert unreachable.returncode == 2 and "cannot reach" in unreachable.stderr
    bad_token = _cli("--base-url", api, "--token", "sk_test_nobody", "--organization-id", DUNDER, timeout=60)
    assert bad_token.returncode == 2 and "401" in bad_token.stderr
    assert _cli(timeout=60).returncode == 2


def test_cli_reports_violations_with_exit_1_and_curl(live_server_factory, tmp_path):
    server = live_server_factory(tmp_path / "faulty", extra=["--fault", "cfdi-uso-regimen"])
    report = tmp_path / "report.json"
    done = _cli(*MEMBER, "--base-url", server.url + "/api", "--seed", "1", "--max-examples", "5", "--json", str(report))
    assert done.returncode == 1
    assert "NOT CONFORMANT" in done.stdout and "reproduce: curl -X POST" in done.stdout
    violations = json.loads(report.read_text())["violations"]
    assert any(v["check"] == "fiscal_rules" and "uso_regimen" in v["message"] for v in violations)


def _pytest_conformance(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "conformance", "-q", "-rfEs"]
    command += ["--seed", "4", "--max-examples", "5", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_pytest_entry_point(clean_server, live_server_factory, tmp_path):
    timbrix = ["--token", "sk_test_michael", "--organization-id", DUNDER, "--outsider-token", "sk_test_prince"]
    clean = _pytest_conformance(*timbrix, "--base-url", clean_server.url + "/api")
    assert clean.returncode == 0 and "3 passed" in clean.stdout, clean.stdout[-2000:]
    faulty = live_server_factory(tmp_path / "faulty", extra=["--fault", "put-replaces"])
    broken = _pytest_conformance(*timbrix, "--base-url", faulty.url + "/api")
    assert broken.returncode == 1, broken.stdout[-2000:]
    assert "FAILED conformance/test_layers.py::test_layer[behaviour]" in broken.stdout
    assert "partial_update" in broken.stdout
    missing = _pytest_conformance("--token", "sk_test_michael", "--base-url", clean_server.url + "/api")
    assert missing.returncode == 1 and "--organization-id is required for the Timbrix contract" in missing.stdout


def test_pytest_entry_point_runs_the_same_suite_for_beel(live_server_factory, tmp_path):
    """The same single suite for a contract without a domain plug-in, chosen by name."""
    beel = ["--contract", "beel", "--token", "beel_sk_test_madrid", "--outsider-token", "beel_sk_test_sevilla"]
    server = live_server_factory(None, extra=["--contract", "beel"])
    with server.client(headers={"Authorization": "Bearer beel_sk_test_madrid"}) as client:
        before = client.get("/api/v1/customers").json()["data"]
    clean = _pytest_conformance(*beel, "--base-url", server.url + "/api")
    assert clean.returncode == 0 and "2 passed, 1 skipped" in clean.stdout, clean.stdout[-2000:]
    assert "no domain plug-in" in clean.stdout
    with server.client(headers={"Authorization": "Bearer beel_sk_test_madrid"}) as client:
        assert client.get("/api/v1/customers").json()["data"] == before
    faulty = live_server_factory(None, extra=["--contract", "beel", "--fault", "cross-tenant-read"])
    broken = _pytest_conformance(*beel, "--base-url", faulty.url + "/api")
    assert broken.returncode == 1, broken.stdout[-2000:]
    assert "FAILED conformance/test_layers.py::test_layer[behaviour]" in broken.stdout
    assert "tenant_isolation" in broken.stdout
    # The CLI reaches the same driver.
    cli = _cli(*beel, "--base-url", server.url + "/api", "--seed", "3", "--max-examples", "5")
    assert cli.returncode == 0 and "CONFORMANT" in cli.stdout, cli.stdout[-2000:] + cli.stderr[-2000:]


def test_the_contract_selects_its_domain_plug_in(tmp_path):
    """One rule (``x-sandbox.plugin``) decides the domain layer, and the plug-in validates the
    options only it takes."""
    timbrix = yaml.safe_load(CONTRACTS["timbrix"].read_text(encoding="utf-8"))
    assert domains.plugin_name(timbrix) == "timbrix"
    assert domains.plugin_name(yaml.safe_load(CONTRACTS["beel"].read_text(encoding="utf-8"))) is None
    without = tmp_path / "timbrix-without-plugin.yaml"
    del timbrix["x-sandbox"]["plugin"]
    without.write_text(yaml.safe_dump(timbrix, allow_unicode=True), encoding="utf-8")
    assert domains.plugin_name(yaml.safe_load(without.read_text(encoding="utf-8"))) is None
    unknown = tmp_path / "unknown-plugin.yaml"
    timbrix["x-sandbox"]["plugin"] = "nowhere"
    unknown.write_text(yaml.safe_dump(timbrix, allow_unicode=True), encoding="utf-8")
    for options, message in (
        (Options(base_url="http://127.0.0.1:9", token="t"), "--organization-id is required for the Timbrix"),
        (Options(base_url="http://127.0.0.1:9", token="t", contract=CONTRACTS["beel"], strict_rfc=True), "strict"),
        (Options(base_url="http://127.0.0.1:9", token="t", contract=without), "--organization-id is required"),
        (Options(base_url="http://127.0.0.1:9", token="t", contract=unknown), "'nowhere'"),
    ):
        with pytest.raises(UsageProblem, match=message):
            run(options)  # refused before any request


def test_the_suite_imports_nothing_of_the_server():
    """conformance/ judges implementations, the sandbox included: from timbrix_sandbox it may
    use only the pure contract model and the catalogue of shipped contracts."""
    allowed = ("timbrix_sandbox.contract", "timbrix_sandbox.profiles")
    offending = []
    for path in sorted((ROOT / "conformance").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                if name.split(".")[0] == "timbrix_sandbox" and not name.startswith(allowed):
                    offending.append(f"{path.relative_to(ROOT)}: {name}")
    assert not offending
    script = (
        "import sys, conformance.runner, conformance.report, conformance.domains.timbrix; "
        "print(sorted(m for m in sys.modules if m.startswith('timbrix_sandbox.')))"
    )
    loaded = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert not [m for m in ast.literal_eval(loaded.stdout) if not m.startswith(allowed)], loaded.stdout


def test_a_create_that_returns_an_existing_customer_never_gets_it_deleted(live_server_factory, tmp_path):
    """The suite must not delete what existed before it, even when a buggy create hands an
    existing record back as new."""
    server = live_server_factory(tmp_path / "upsert", extra=["--fault", "create-upserts"])
    with server.client(headers=MICHAEL) as client:
        before = client.get(customers_url()).json()
    result = run(timbrix_options(server, seed=1, max_examples=5))
    assert not result.conformant
    assert any("existed before" in f.message for f in result.findings)
    with server.client(headers=MICHAEL) as client:
        after = {c["id"] for c in client.get(customers_url()).json()}
    assert {c["id"] for c in before} <= after, "a pre-existing customer was deleted"


def test_strict_rfc_target_is_conformant_when_judged_strictly(live_server_factory, tmp_path):
    server = live_server_factory(tmp_path / "strict", extra=["--strict-rfc"])
    result = run(timbrix_options(server, seed=2, max_examples=5, strict_rfc=True))
    assert result.conformant, [f"{f.check}: {f.message[:200]}" for f in result.unique_findings()]


def test_records_a_create_answered_with_200_are_removed_too(live_server_factory):
    """Cleanup deletes what the run created whatever status the create answered (an undeclared
    200 here), and says what it could not remove."""
    server = live_server_factory(None, extra=["--fault", "create-returns-200"])
    with server.client(headers=MICHAEL) as client:
        before = client.get(customers_url()).json()
    result = run(timbrix_options(server, seed=1, phases=()))
    assert not result.conformant and result.created > 10
    assert result.cleaned > 0
    assert result.not_removed == []
    with server.client(headers=MICHAEL) as client:
        assert client.get(customers_url()).json() == before


def test_a_part_the_tooling_cannot_test_makes_the_run_incomplete(clean_server, tmp_path):
    """An operation hypothesis cannot generate for (a contradictory parameter) is retried and
    then reported: INCOMPLETE, exit 3, naming it; never CONFORMANT."""
    spec = yaml.safe_load(CONTRACTS["timbrix"].read_text(encoding="utf-8"))
    broken = {
        "name": "q",
        "in": "query",
        "required": True,
        "schema": {"type": "string", "minLength": 5, "maxLength": 2},
    }
    spec["paths"]["/sat/regimenes-fiscales"]["get"].setdefault("parameters", []).append(broken)
    contract = tmp_path / "contradictory.yaml"
    contract.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    result = run(timbrix_options(clean_server, seed=1, max_examples=1, phases=("fuzzing",), contract=contract))
    assert not result.findings, [f.message for f in result.findings]
    assert result.verdict == "INCOMPLETE" and result.exit_code() == 3 and not result.conformant
    assert result.incomplete == ["fuzzing: GET /sat/regimenes-fiscales: not tested to the end (the tooling failed)"]
    assert len(result.suite_errors) == 2, "tried, then retried once"


def test_the_same_seed_tests_the_same_cases(live_server_factory):
    """Same seed, same starting state, one worker: the same cases, checks and verdicts."""
    tallies = []
    for _attempt in range(2):
        server = live_server_factory(None, extra=["--contract", "beel"])
        options = Options(
            base_url=server.url + "/api", token="beel_sk_test_madrid", contract=CONTRACTS["beel"], seed=5,
            max_examples=3, workers=1, phases=("examples", "fuzzing"),
        )  # fmt: skip
        result = run(options)
        assert result.conformant
        tallies.append((result.cases, {k: (v.passed, v.failed) for k, v in result.tallies.items()}))
        server.stop()
    assert tallies[0] == tallies[1]
    assert tallies[0][0] > 10


def test_a_credential_of_any_scheme_travels_where_the_scheme_says():
    """``--credential SCHEME=VALUE``: an API key in its header, query parameter or cookie,
    Basic base64-encoded, bearer-like schemes in ``Authorization``; a scheme the contract does
    not declare is a usage problem, not a silent unauthenticated run."""
    from conformance.credentials import check_schemes, place, schemathesis_auth
    from timbrix_sandbox.contract.security import read_security

    schemes = {
        "inHeader": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
        "inQuery": {"type": "apiKey", "in": "query", "name": "api_key"},
        "inCookie": {"type": "apiKey", "in": "cookie", "name": "session"},
        "basic": {"type": "http", "scheme": "basic"},
    }
    security = read_security({"components": {"securitySchemes": schemes}, "paths": {}})
    given = {"inHeader": "k1", "inQuery": "k2", "inCookie": "k3", "basic": "ann:secret"}
    placed = place(security, given)
    assert placed.headers == {"X-Api-Key": "k1", "Cookie": "session=k3", "Authorization": "Basic YW5uOnNlY3JldA=="}
    assert placed.query == {"api_key": "k2"}
    assert schemathesis_auth(security, {"basic": "ann:secret"}) == {
        "openapi": {"basic": {"username": "ann", "password": "secret"}}
    }
    with pytest.raises(UsageProblem, match="no such security scheme"):
        check_schemes(security, {"bearerAuth": "t"})
    with pytest.raises(UsageProblem, match="user:password"):
        check_schemes(security, {"basic": "no-colon"})


CORPUS = ROOT.parent / "shared" / "corpus"


@pytest.mark.skipif(
    not (CORPUS / "museum.yaml").exists(), reason=f"the shared corpus is not beside the repo ({CORPUS})"
)
def test_the_suite_runs_on_a_public_contract_with_a_basic_scheme(live_server_factory):
    """Redocly's Museum (HTTP Basic, its own base path, ``eventId`` ids) served by the sandbox:
    the suite authenticates with the listed Basic credential on every request it makes, creates
    and removes its records, and without the credential the preflight refuses to start."""
    import httpx

    museum = CORPUS / "museum.yaml"
    server = live_server_factory(None, extra=["--contract", str(museum)])
    base = server.url + httpx.get(server.url + "/__sandbox/health").json()["basePath"]
    listed = httpx.get(server.url + "/__sandbox/credentials").json()
    credentials = {entry["scheme"]: entry["value"] for entry in listed}
    options = Options(
        base_url=base,
        token=None,
        credentials=credentials,
        contract=museum,
        seed=1,
        max_examples=1,
        phases=("examples",),
    )
    result = run(options)
    assert result.cases > 0 and result.created > 0
    assert result.not_removed == [], "every record the run created is removed (or was by its scenario)"
    member = [
        f for f in result.findings if "member's credentials" in f.message or "valid create was refused" in f.message
    ]
    assert member == [], member
    # Museum declares its errors as application/problem+json: answered so, and judged so.
    media = [f for f in result.findings if f.check in ("response_conformance", "auth_required",
                                                       "content_type_conformance")]
    assert media == [], media
    with pytest.raises(UsageProblem, match="preflight"):
        run(Options(base_url=base, token=None, contract=museum, seed=1, max_examples=1, phases=("examples",)))


@pytest.mark.skipif(
    not (CORPUS / "petstore3.yaml").exists(), reason=f"the shared corpus is not beside the repo ({CORPUS})"
)
def test_an_update_naming_its_record_in_the_body_never_reaches_a_record_the_run_did_not_create(
    live_server_factory,
):
    """Petstore's ``PUT /pet`` names the pet in its body; the contract's example body says
    ``"id": 10``. The guard rewrote only ids in paths, so a run overwrote pet 10, which was
    there before it, dozens of times."""
    import httpx

    petstore = CORPUS / "petstore3.yaml"
    server = live_server_factory(None, extra=["--contract", str(petstore)])
    base = server.url + httpx.get(server.url + "/__sandbox/health").json()["basePath"]
    credentials = {entry["scheme"]: entry["value"] for entry in httpx.get(server.url + "/__sandbox/credentials").json()}
    auth = {"Authorization": f"Bearer {credentials['petstore_auth']}"}
    theirs = [{"id": pet_id, "name": f"owned {pet_id}", "photoUrls": [], "status": "sold"} for pet_id in (1, 10)]
    for pet in theirs:
        assert httpx.post(base + "/pet", json=pet, headers=auth).status_code == 200
    options = Options(base_url=base, token=None, credentials=credentials, contract=petstore, seed=7, workers=1,
                      max_examples=1, phases=("examples",))  # fmt: skip
    result = run(options)
    assert result.cases > 0
    sent = httpx.get(server.url + "/__sandbox/requests", params={"method": "PUT", "path": "/api/v3/pet"}).json()
    assert sent["requests"], "the run sent updates of Petstore's PUT /pet"
    for pet in theirs:
        assert httpx.get(f"{base}/pet/{pet['id']}", headers=auth).json() == pet


MULTI_FILE = {
    "api.yaml": """\
        openapi: 3.0.3
        info: {title: keys, version: "1"}
        servers: [{url: /v2}]
        security: [{bearer_auth: []}]
        paths:
          /keys:
            get: {$ref: 'keys/list.yml'}
            post: {$ref: 'keys/create.yml'}
          /keys/{key_id}:
            get: {$ref: 'keys/get.yml'}
            delete: {$ref: 'keys/delete.yml'}
        components:
          securitySchemes:
            bearer_auth: {type: http, scheme: bearer}
        """,
    "keys/list.yml": """\
        operationId: keys_list
        responses:
          '200':
            description: the keys
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    keys: {type: array, items: {$ref: 'models/key.yml'}}
          '401': {$ref: '../shared/responses.yml#/unauthorized'}
        """,
    "keys/create.yml": """\
        operationId: keys_create
        requestBody:
          required: true
          content:
            application/json:
              schema: {$ref: 'models/key.yml'}
        responses:
          '201': {$ref: 'responses/one.yml'}
          '401': {$ref: '../shared/responses.yml#/unauthorized'}
          default: {$ref: '../shared/responses.yml#/unexpected'}
        """,
    "keys/get.yml": """\
        operationId: keys_get
        parameters: [{$ref: 'parameters/key_id.yml'}]
        responses:
          '200': {$ref: 'responses/one.yml'}
          '401': {$ref: '../shared/responses.yml#/unauthorized'}
          '404': {$ref: '../shared/responses.yml#/not_found'}
        """,
    "keys/delete.yml": """\
        operationId: keys_delete
        parameters: [{$ref: 'parameters/key_id.yml'}]
        responses:
          '204': {description: deleted}
          '401': {$ref: '../shared/responses.yml#/unauthorized'}
          '404': {$ref: '../shared/responses.yml#/not_found'}
        """,
    "keys/parameters/key_id.yml": """\
        name: key_id
        in: path
        required: true
        schema: {type: integer, minimum: 1}
        """,
    "keys/responses/one.yml": """\
        description: one key
        content:
          application/json:
            schema:
              type: object
              properties:
                key: {$ref: '../models/key.yml'}
        """,
    "keys/models/key.yml": """\
        type: object
        required: [name]
        properties:
          id: {type: integer, readOnly: true}
          name: {type: string, minLength: 1, maxLength: 20}
        """,
    "shared/responses.yml": """\
        unauthorized: {$ref: '#/not_found'}
        unexpected: {$ref: '#/not_found'}
        not_found:
          description: an error
          content:
            application/json:
              schema: {$ref: 'error.yml'}
        """,
    "shared/error.yml": """\
        type: object
        required: [id, message]
        properties:
          id: {type: string}
          message: {type: string}
        """,
}


def test_schemathesis_reads_a_multi_file_contract_as_the_server_does(live_server_factory, tmp_path):
    """Operations, path parameters and responses given by ``$ref`` to other files (as
    DigitalOcean's are): the contract layer tests the same bundled document the sandbox serves,
    so every operation is generated for (its path parameter defined) and judged against its
    declared responses, without a tooling error or an "undocumented status"."""
    import textwrap

    import httpx

    for name, text in MULTI_FILE.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text), encoding="utf-8")
    contract = tmp_path / "api.yaml"
    server = live_server_factory(None, extra=["--contract", str(contract)])
    credentials = {entry["scheme"]: entry["value"] for entry in httpx.get(server.url + "/__sandbox/credentials").json()}
    options = Options(
        base_url=server.url + "/v2", token=None, credentials=credentials, contract=contract,
        seed=1, max_examples=2, phases=("examples", "coverage", "fuzzing"),
    )  # fmt: skip
    result = run(options)
    assert result.suite_errors == [], result.suite_errors
    tested = {operation for operation, _check in result.tallies}
    assert {"GET /keys/{key_id}", "DELETE /keys/{key_id}", "POST /keys"} <= tested
    undeclared = [f for f in result.findings if f.check == "status_code_conformance"]
    assert undeclared == [], [f.message for f in undeclared]
