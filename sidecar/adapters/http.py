"""The plain HTTP/1.1 adapter (``adapter: http``, the default): a built-in plugin.

This module is the plugin, registered by its name (``plugins.disabled: [sidecar.adapters.http]``
turns it off): it adds :class:`~.http_adapter.HttpAdapter`, whose code is in
:mod:`.http_adapter`. The two are apart because that code is compiled in a compiled build and a
hook implementation must stay Python: pluggy marks it with an attribute, which a compiled
function cannot carry.
"""

from __future__ import annotations

__all__ = ["HttpAdapter"]

from ..api import AdapterRegistry, hookimpl
from .http_adapter import HttpAdapter


@hookimpl(trylast=True)
def sidecar_register_adapters(registry: AdapterRegistry) -> None:
    registry.add("http", HttpAdapter)
