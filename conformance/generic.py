"""A shim for ``timbrix_sandbox/cli.py``, which still asks which suite to run: there is one
(:func:`conformance.runner.run`), for every contract."""

from __future__ import annotations

from . import domains
from .model import Options
from .runner import run
from .target import read_spec

__all__ = ["is_generic_contract", "run"]


def is_generic_contract(options: Options) -> bool:
    """True when the contract selects no domain plug-in (``x-sandbox.plugin``)."""
    return domains.plugin_name(read_spec(options)) is None
