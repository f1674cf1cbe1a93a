"""sidecar: a lightweight service proxy that runs beside an application.

Plugin authors import from here: ``hookimpl`` to implement hooks, the nouns (``Exchange``,
``Response``, ``Headers``, ``StashKey``), the registries' base ``Adapter`` and ``RouteContext``,
and the typed errors. Test helpers are in :mod:`sidecar.testing`.
"""

from __future__ import annotations

from .chain import Filter, Handler, compose
from .errors import SidecarError
from .exchange import Exchange, Headers, Response, StashKey, read_body
from .hookspecs import hookimpl
from .registry import (
    ORDER_ACCESS_LOG,
    ORDER_DEFAULT,
    ORDER_METRICS,
    ORDER_RESCUE,
    ORDER_TIMEOUT,
    Adapter,
    RouteContext,
)

__version__ = "0.1.0"

__all__ = [
    "ORDER_ACCESS_LOG",
    "ORDER_DEFAULT",
    "ORDER_METRICS",
    "ORDER_RESCUE",
    "ORDER_TIMEOUT",
    "Adapter",
    "Exchange",
    "Filter",
    "Handler",
    "Headers",
    "Response",
    "RouteContext",
    "SidecarError",
    "StashKey",
    "__version__",
    "compose",
    "hookimpl",
    "read_body",
]
