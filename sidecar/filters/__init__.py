"""The built-in filters: one internal plugin registering them through the public hook.

Chain order, outermost first, and why:

- ``rescue`` (0): turns every error into a response, so it must see everything below it.
- ``access_log`` (100): one line per call including sidecar decisions, so it sits outside
  everything that decides, but inside rescue so a rescued error still gets its line from the
  error itself.
- ``metrics`` (300): counts what the app gets (retries inside it are one call).
- plugin filters (default 500), later resilience and auth filters.
- ``timeout`` (800): the overall deadline covers every attempt below it.
- ``request_headers`` (900): configured headers are set last so no filter above can undo them.
"""

from __future__ import annotations

from ..hookspecs import hookimpl
from ..registry import (
    ORDER_ACCESS_LOG,
    ORDER_METRICS,
    ORDER_REQUEST_HEADERS,
    ORDER_RESCUE,
    ORDER_TIMEOUT,
    FilterRegistry,
)
from . import access_log, metrics, request_headers, rescue, timeout


@hookimpl(trylast=True)
def sidecar_register_filters(registry: FilterRegistry) -> None:
    registry.add("rescue", rescue.factory, order=ORDER_RESCUE)
    registry.add("access_log", access_log.factory, order=ORDER_ACCESS_LOG)
    registry.add("metrics", metrics.factory, order=ORDER_METRICS)
    registry.add("timeout", timeout.factory, order=ORDER_TIMEOUT)
    registry.add("request_headers", request_headers.factory, order=ORDER_REQUEST_HEADERS)
