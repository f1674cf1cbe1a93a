"""The built-in rate-limit plugin: the ``local`` and ``redis`` backend types, and the lifespan
that opens the configured backends when a sidecar starts and closes them after it drained.

Registered like any plugin (``BUILTIN_PLUGINS``), through the same hooks a third party uses.
The rate-limit *filters* are built-in filters (:mod:`sidecar.filters`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from ..api import LifespanRegistry, RateLimitBackendRegistry, hookimpl
from .live import RESOURCE, LiveBackends
from .local_backend import LocalBackend
from .redis_backend import RedisBackend

if TYPE_CHECKING:
    from ..api import RuntimeView


@hookimpl(trylast=True)
def sidecar_register_ratelimit_backends(registry: RateLimitBackendRegistry) -> None:
    registry.add("local", LocalBackend)
    registry.add("redis", RedisBackend)


@asynccontextmanager
async def ratelimit_backends(sidecar: RuntimeView) -> AsyncIterator[LiveBackends]:
    live = LiveBackends(sidecar.registries.ratelimit_backends, sidecar.metrics)
    # published before opening, so a backend that fails to start is still closed below
    sidecar.resources[RESOURCE] = live
    try:
        await live.open(sidecar.config.ratelimit_backends)
        yield live
    finally:
        await live.aclose()
        sidecar.resources.pop(RESOURCE, None)


@hookimpl(trylast=True)
def sidecar_register_lifespans(registry: LifespanRegistry) -> None:
    registry.add("ratelimit_backends", ratelimit_backends)
