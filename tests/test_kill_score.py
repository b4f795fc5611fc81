"""The kill score: the sandbox started with each injected fault must make the conformance
suite fail. A suite that cannot tell a broken implementation from a good one is worthless."""

from __future__ import annotations

import pytest
from conftest import timbrix_options

from conformance.runner import run
from timbrix_sandbox.engine.faults import FAULTS

CAUGHT_BY = {
    "list-newest-first": "list_order",
    "rfc-case-insensitive": "refused_variants",
    "body-limit-10mib": "body_limit",
    "head-refused": "head_like_get",
    "organization-id-lenient": "malformed_path_parameters",
}
"""The faults that survived the suite before its blind spots were closed (issue 13), and the
check that now catches each: the scenario written for it, not a lucky side effect."""


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_suite_kills_fault(live_server_factory, tmp_path, fault):
    server = live_server_factory(None, extra=["--fault", fault])
    # The blind-spot faults are judged by every scenario (no fail-fast, which could stop at
    # another check first) and without the schemathesis phases, which never reached them.
    extra = {"phases": (), "fail_fast": False} if fault in CAUGHT_BY else {"fail_fast": True}
    options = timbrix_options(server, seed=1, **extra)
    result = run(options)
    assert not result.conformant, f"fault {fault!r} survived the conformance suite"
    if fault in CAUGHT_BY:
        assert CAUGHT_BY[fault] in {f.check for f in result.findings}, [f.check for f in result.findings]
