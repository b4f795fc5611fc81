"""One test per layer of the conformance suite (see ``conftest.py`` for the options)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("layer", ["contract", "domain", "behaviour"])
def test_layer(conformance_result, layer):
    if layer == "domain" and conformance_result.domain is None:
        pytest.skip("the contract selects no domain plug-in (x-sandbox.plugin)")
    findings = [f for f in conformance_result.unique_findings() if f.layer == layer]
    report = "\n\n".join(
        f"{f.operation} - {f.check}\n{f.message.strip()}\nreproduce: {f.curl or '-'}" for f in findings
    )
    assert not findings, f"{len(findings)} {layer} violation(s) (seed {conformance_result.seed}):\n\n{report}"
