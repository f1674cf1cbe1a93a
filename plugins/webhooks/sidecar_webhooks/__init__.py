"""sidecar-webhooks: durable, signed outbound webhooks.

- adapter ``webhooks``: the app posts an event once to ``/<upstream>/<event-type>``; it is
  queued durably (a directory, or Redis Streams shared by replicas) and delivered, signed by
  the Standard Webhooks scheme, to every configured endpoint subscribed to the type, with
  retries, backoff and a dead state;
- lifespan ``webhooks`` starts and stops the delivery engines; admin routes under ``/webhooks``.

Webhooks sent *to* the app are verified by the core's ``verify_hmac`` with
``scheme: standard-webhooks`` (docs/credentials.md).

It imports only from ``sidecar``, the public plugin API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sidecar import (
    AdapterRegistry,
    AdminRouteRegistry,
    ConfigRegistry,
    LifespanRegistry,
    RuntimeView,
    hookimpl,
)

from . import admin
from .adapter import WebhooksAdapter
from .config import WebhooksConfig

#: The plugin API major version this plugin is written for.
SIDECAR_API = 1


@asynccontextmanager
async def run_engines(runtime: RuntimeView) -> AsyncIterator[None]:
    """Start each webhooks upstream's delivery engine; stop them after the fronts drained."""
    adapter = runtime.adapter("webhooks")
    if isinstance(adapter, WebhooksAdapter):
        await adapter.start(runtime.config.upstreams)
    try:
        yield
    finally:
        if isinstance(adapter, WebhooksAdapter):
            await adapter.stop()


@hookimpl
def sidecar_declare_config(registry: ConfigRegistry) -> None:
    registry.add("webhooks", WebhooksConfig)


@hookimpl
def sidecar_register_adapters(registry: AdapterRegistry) -> None:
    registry.add("webhooks", WebhooksAdapter)


@hookimpl
def sidecar_register_lifespans(registry: LifespanRegistry) -> None:
    registry.add("webhooks", run_engines)


@hookimpl
def sidecar_register_admin_routes(registry: AdminRouteRegistry) -> None:
    registry.add("GET", "/webhooks", admin.overview)
    registry.add("GET", "/webhooks/deliveries", admin.deliveries)
    registry.add("POST", "/webhooks/deliveries/{upstream}/{key}/redeliver", admin.redeliver)
    registry.add("POST", "/webhooks/endpoints/{upstream}/{endpoint}/enable", admin.enable)
