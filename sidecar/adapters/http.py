"""The plain HTTP/1.1 adapter (``adapter: http``, the default): a built-in plugin.

This module is the plugin, registered by its name (``plugins.disabled: [sidecar.adapters.http]``
turns it off): it adds :class:`~.http_adapter.HttpAdapter`, whose code is in
:mod:`.http_adapter`, and lends it to other adapters as the plugin API's HTTP client
(``RouteContext.http_client``, :mod:`sidecar.api.http_client`). The two modules are apart
because that code is compiled in a compiled build and a hook implementation must stay Python:
pluggy marks it with an attribute, which a compiled function cannot carry.
"""

from __future__ import annotations

__all__ = ["HttpAdapter"]

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ..api import AdapterRegistry, LifespanRegistry, RuntimeView, hookimpl
from ..api.http_client import HTTP_CLIENT
from .http_adapter import HttpAdapter


@hookimpl(trylast=True)
def sidecar_register_adapters(registry: AdapterRegistry) -> None:
    registry.add("http", HttpAdapter)


@hookimpl(trylast=True)
def sidecar_register_lifespans(registry: LifespanRegistry) -> None:
    registry.add("http_client", _lend_client)


@asynccontextmanager
async def _lend_client(runtime: RuntimeView) -> AsyncIterator[None]:
    """Publish the running ``http`` adapter as the plugin API's HTTP client
    (``RouteContext.http_client``): other adapters send through its pools."""
    adapter = runtime.adapter("http")
    if isinstance(adapter, HttpAdapter):
        runtime.resources[HTTP_CLIENT] = adapter
    try:
        yield
    finally:
        runtime.resources.pop(HTTP_CLIENT, None)
