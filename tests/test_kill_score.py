"""The kill score: the sandbox started with each injected fault must make the conformance
suite fail. A suite that cannot tell a broken implementation from a good one is worthless."""

from __future__ import annotations

import pytest
from conftest import timbrix_options

from conformance.runner import run
from timbrix_sandbox.engine.faults import FAULTS


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_suite_kills_fault(live_server_factory, tmp_path, fault):
    server = live_server_factory(None, extra=["--fault", fault])
    options = timbrix_options(server, seed=1, fail_fast=True)
    result = run(options)
    assert not result.conformant, f"fault {fault!r} survived the conformance suite"
