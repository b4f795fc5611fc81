"""The one error the contract layer raises for a contract it cannot read or serve (its own module
so that loading, references and the model can all raise it without importing each other)."""

from __future__ import annotations


class ContractError(ValueError):
    """The contract cannot be served statefully; the message says where."""
