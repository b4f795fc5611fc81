"""What a domain plug-in may add to the engine, and nothing more.

The engine serves every contract's resources the same way (``crud.py``). A contract whose
domain has rules JSON Schema cannot carry - Timbrix's CFDI 4.0 checks of the merged record -
names a plug-in in ``x-sandbox: {plugin: NAME}``; the plug-in is a :class:`DomainPlugin`,
handed to the engine by whoever assembles a sandbox (``profiles/plugins.py`` holds the shipped
ones). No import by name, no patching: a plug-in is data plus small functions.
"""

from __future__ import annotations

import typing as t

from timbrix_sandbox.engine.faults import Behaviours

Record = dict[str, t.Any]


class Reply(t.NamedTuple):
    """An engine answer: the status and the body (``None``: no content), JSON unless
    ``media_type`` names another media type (then the body is its text or bytes)."""

    status: int
    body: t.Any = None
    media_type: str | None = None


class OperationHandler(t.Protocol):
    """A non-CRUD operation a plug-in serves itself (Timbrix's SAT catalogs): parameters and
    body in, a :class:`Reply` out, or a ``Refusal``."""

    def __call__(self, params: t.Mapping[str, t.Any], body: t.Any) -> t.Awaitable[Reply]: ...


class DomainPlugin:
    """A plug-in's hooks, each with the answer of a domain that adds nothing (this class
    itself is the plug-in of a contract without domain rules); a plug-in overrides what its
    domain needs."""

    name: str = ""
    options: frozenset[str] = frozenset()
    """Serve options that only this domain understands (``strict-rfc``)."""

    def not_found(self, collection: str) -> str:
        """The message of a 404 for a record of ``collection`` that is not there."""
        return "Resource not found"

    def initial(self, collection: str) -> Record:
        """Fields a new record starts with before the request's own (Timbrix: ``phone`` and
        ``address.interior`` are ``null``, ``address.country`` is ``MEX``)."""
        return {}

    def check(
        self,
        collection: str,
        record: Record,
        sent: t.AbstractSet[str],
        *,
        creating: bool,
        behaviours: Behaviours,
        options: frozenset[str],
    ) -> None:
        """Judge the record a create or update would store (for an update, the stored record
        merged with the change; ``sent`` names the request fields). Raise ``Refusal`` to
        refuse: nothing is stored."""
        return None

    def operations(self) -> t.Mapping[str, OperationHandler]:
        """operationId -> handler for the contract's non-CRUD operations."""
        return {}
