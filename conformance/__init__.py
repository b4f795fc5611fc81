"""Conformance suite: fuzz any implementation of ``openapi.yaml`` with schemathesis, with the
``cfdi`` package as the oracle for the rules JSON Schema cannot express."""
