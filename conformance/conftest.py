"""pytest entry point of the conformance suite, for any contract:

    pytest conformance --base-url http://127.0.0.1:3001/api --token sk_test_michael \\
        --organization-id 550e8400-e29b-41d4-a716-446655440000 [--outsider-token ...] [--seed N]
    pytest conformance --contract beel --base-url http://127.0.0.1:3001/api \\
        --token beel_sk_test_madrid --outsider-token beel_sk_test_sevilla

Runs the same single suite as ``timbrix-sandbox conformance`` once per session and reports each
layer (contract, domain, behaviour) as a test, so ``--junitxml`` and pytest's usual tooling
apply. The domain layer is skipped for a contract that selects no domain plug-in.
"""

from __future__ import annotations

import pytest

from conformance.model import Options, UsageProblem, parse_headers
from conformance.runner import run
from timbrix_sandbox.profiles import DEFAULT_CONTRACT, contract_path


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance")
    group.addoption("--contract", help="the OpenAPI file, or a shipped contract by name (default: timbrix)")
    group.addoption("--base-url", help="API root of the implementation under test")
    group.addoption("--token", help="a token of the tenant the run works in")
    group.addoption("--header", action="append", default=[], help="'NAME: VALUE' for --token's requests")
    group.addoption("--organization-id", default="", help="the tenant, where the contract's paths name one")
    group.addoption("--outsider-token", help="a valid token of another tenant")
    group.addoption("--outsider-header", action="append", default=[], help="'NAME: VALUE' for the outsider")
    group.addoption("--outsider-organization-id")
    group.addoption("--seed", type=int)
    group.addoption("--max-examples", type=int, default=20)
    group.addoption("--strict-rfc", action="store_true", help="timbrix plug-in: the target enforces the check digit")


@pytest.fixture(scope="session")
def conformance_result(request: pytest.FixtureRequest):
    option = request.config.getoption
    if not (option("--base-url") and option("--token")):
        pytest.fail("pass --base-url and --token (see conformance/conftest.py)", pytrace=False)
    try:
        return run(
            Options(
                base_url=option("--base-url"),
                token=option("--token"),
                organization_id=option("--organization-id"),
                outsider_token=option("--outsider-token"),
                outsider_organization_id=option("--outsider-organization-id"),
                seed=option("--seed"),
                max_examples=option("--max-examples"),
                strict_rfc=option("--strict-rfc"),
                contract=contract_path(option("--contract")) if option("--contract") else DEFAULT_CONTRACT,
                headers=parse_headers(option("--header")),
                outsider_headers=parse_headers(option("--outsider-header")),
            )
        )
    except UsageProblem as exc:
        pytest.fail(f"conformance: {exc}", pytrace=False)
