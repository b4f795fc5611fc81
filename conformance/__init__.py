"""Conformance suite: one driver (``runner.run``) fuzzes and probes any implementation of any
OpenAPI contract. Layers: contract (schemathesis, ``fuzz.py``), behaviour (scenarios derived
from the contract model, ``behaviour.py`` and ``checks.py``), and the domain plug-in the
contract selects with ``x-sandbox: {plugin: NAME}`` (``domains/``; Timbrix's CFDI layer)."""
