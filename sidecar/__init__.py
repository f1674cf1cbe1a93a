"""sidecar: a lightweight service proxy that runs beside an application.

This is the import surface for plugin authors: ``hookimpl`` to implement hooks; the nouns a
filter or adapter handles (``Exchange``, ``Response``, ``Headers``, ``StashKey``, ``Filter``,
``Handler``); the registries the registration hooks receive and the ``ORDER_*`` places of the
built-in filters; ``Adapter`` and ``RouteContext``; and the typed errors. Test helpers are in
:mod:`sidecar.testing`; running a sidecar is :class:`sidecar.app.Sidecar` or the ``sidecar`` CLI.
"""

from __future__ import annotations

from .chain import Filter, Handler, compose
from .errors import PluginError, SidecarError
from .exchange import Exchange, Headers, Response, StashKey, read_body
from .hookspecs import hookimpl
from .registry import (
    ORDER_ACCESS_LOG,
    ORDER_DEFAULT,
    ORDER_METRICS,
    ORDER_REQUEST_HEADERS,
    ORDER_RESCUE,
    ORDER_TIMEOUT,
    Adapter,
    AdapterRegistry,
    AdapterServices,
    AdminRouteRegistry,
    ConfigRegistry,
    FilterRegistry,
    LifespanRegistry,
    RouteContext,
)

__version__ = "0.1.0"

__all__ = [
    "ORDER_ACCESS_LOG",
    "ORDER_DEFAULT",
    "ORDER_METRICS",
    "ORDER_REQUEST_HEADERS",
    "ORDER_RESCUE",
    "ORDER_TIMEOUT",
    "Adapter",
    "AdapterRegistry",
    "AdapterServices",
    "AdminRouteRegistry",
    "ConfigRegistry",
    "Exchange",
    "Filter",
    "FilterRegistry",
    "Handler",
    "Headers",
    "LifespanRegistry",
    "PluginError",
    "Response",
    "RouteContext",
    "SidecarError",
    "StashKey",
    "__version__",
    "compose",
    "hookimpl",
    "read_body",
]
