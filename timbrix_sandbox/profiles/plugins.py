"""The domain plug-ins that ship, by the name a contract gives in ``x-sandbox: {plugin: NAME}``."""

from __future__ import annotations

from timbrix_sandbox.engine.plugins import DomainPlugin
from timbrix_sandbox.profiles.timbrix.plugin import TimbrixPlugin

PLUGINS: dict[str, DomainPlugin] = {"timbrix": TimbrixPlugin()}


class UnknownPlugin(ValueError):
    pass


def plugin_for(name: str | None) -> DomainPlugin:
    if not name:
        return DomainPlugin()
    try:
        return PLUGINS[name]
    except KeyError:
        raise UnknownPlugin(f"the contract names plug-in {name!r}; known: {', '.join(sorted(PLUGINS))}") from None
