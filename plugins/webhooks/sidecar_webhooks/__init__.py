"""sidecar-webhooks: durable, signed outbound webhooks and inbound signature verification.

- adapter ``webhooks``: the app posts an event once to ``/<upstream>/<event-type>``; it is
  queued on disk and delivered, signed by the Standard Webhooks scheme, to every configured
  endpoint subscribed to the type, with retries, backoff and a dead state;
- filter ``verify_webhook``: checks Standard Webhooks signatures on the calls of the upstreams
  named under ``plugins.webhooks.verify``;
- lifespan ``webhooks`` starts and stops the delivery engines; admin routes under ``/webhooks``.

It imports only from ``sidecar``, the public plugin API.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sidecar import (
    AdapterRegistry,
    AdminRouteRegistry,
    ConfigRegistry,
    FilterRegistry,
    LifespanRegistry,
    RuntimeView,
    hookimpl,
)

from . import admin
from .adapter import WebhooksAdapter
from .config import WebhooksConfig
from .inbound import REDIS_STORES, RedisSeenIds, make_verify_filter

#: The plugin API major version this plugin is written for.
SIDECAR_API = 1


@asynccontextmanager
async def run_engines(runtime: RuntimeView) -> AsyncIterator[None]:
    """Start each webhooks upstream's delivery engine; stop them after the fronts drained, and
    close the Redis replay stores the verify filters opened."""
    redis_stores: list[RedisSeenIds] = []
    runtime.resources[REDIS_STORES] = redis_stores
    adapter = runtime.adapter("webhooks")
    if isinstance(adapter, WebhooksAdapter):
        await adapter.start(runtime.config.upstreams)
    try:
        yield
    finally:
        if isinstance(adapter, WebhooksAdapter):
            await adapter.stop()
        for store in redis_stores:
            with contextlib.suppress(Exception):  # closing is best effort at shutdown
                await store.aclose()
        del runtime.resources[REDIS_STORES]


@hookimpl
def sidecar_declare_config(registry: ConfigRegistry) -> None:
    registry.add("webhooks", WebhooksConfig)


@hookimpl
def sidecar_register_adapters(registry: AdapterRegistry) -> None:
    registry.add("webhooks", WebhooksAdapter)


@hookimpl
def sidecar_register_filters(registry: FilterRegistry) -> None:
    # right after the built-in HMAC check, before any rate limit: a forged or replayed webhook
    # costs no token and never reaches the app
    registry.add("verify_webhook", make_verify_filter, after="verify_hmac")


@hookimpl
def sidecar_register_lifespans(registry: LifespanRegistry) -> None:
    registry.add("webhooks", run_engines)


@hookimpl
def sidecar_register_admin_routes(registry: AdminRouteRegistry) -> None:
    registry.add("GET", "/webhooks", admin.overview)
    registry.add("GET", "/webhooks/deliveries", admin.deliveries)
    registry.add("POST", "/webhooks/deliveries/{upstream}/{key}/redeliver", admin.redeliver)
    registry.add("POST", "/webhooks/endpoints/{upstream}/{endpoint}/enable", admin.enable)
