"""pytest entry point of the conformance suite, for people who prefer pytest:

    pytest conformance --base-url http://127.0.0.1:3001/api --token sk_test_michael \\
        --organization-id 550e8400-e29b-41d4-a716-446655440000 [--outsider-token ...] [--seed N]

Runs the same suite as ``timbrix-sandbox conformance`` once per session and reports each layer
(contract, domain, behaviour) as a test, so ``--junitxml`` and pytest's usual tooling apply.
"""

from __future__ import annotations

import pytest

from conformance.model import Options
from conformance.runner import run


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("timbrix-conformance")
    group.addoption("--base-url", help="API root of the implementation under test")
    group.addoption("--token", help="a token that is a member of --organization-id")
    group.addoption("--organization-id")
    group.addoption("--outsider-token")
    group.addoption("--outsider-organization-id")
    group.addoption("--seed", type=int)
    group.addoption("--max-examples", type=int, default=20)


@pytest.fixture(scope="session")
def conformance_result(request: pytest.FixtureRequest):
    option = request.config.getoption
    if not (option("--base-url") and option("--token") and option("--organization-id")):
        pytest.fail("pass --base-url, --token and --organization-id", pytrace=False)
    return run(
        Options(
            base_url=option("--base-url"),
            token=option("--token"),
            organization_id=option("--organization-id"),
            outsider_token=option("--outsider-token"),
            outsider_organization_id=option("--outsider-organization-id"),
            seed=option("--seed"),
            max_examples=option("--max-examples"),
        )
    )
