"""One OpenTelemetry ``TracerProvider`` per running sidecar, and its lifetime.

The built-in ``tracing`` lifespan (a plugin like any other: ``BUILTIN_PLUGINS``) resolves
``telemetry.tracing`` with the ``OTEL_*`` variables (:mod:`.tracing_settings`), builds a provider
of its own (never the process-global one, so several sidecars in a process do not mix their
spans), and publishes it as :data:`RESOURCE` in ``sidecar.resources`` before any route is
composed; the tracing filters (:mod:`sidecar.filters.tracing`) read it there. With tracing off
nothing is published, and those filters are left out of every chain.

The provider, its sampler and exporter are built by :mod:`.tracing_sdk`, which this lifespan
imports only when tracing is on: a sidecar without tracing never loads the OpenTelemetry SDK nor
an exporter. At shutdown (after the listeners drained, so every call's spans have ended) what is
queued gets up to :data:`FLUSH_TIMEOUT` seconds to reach the collector, then the exporter is
closed. ``sidecar_spans_dropped_total`` and ``sidecar_spans_exported_total`` are read from the
processor at scrape time.

Changes to ``telemetry.tracing`` take effect at the next restart (``sidecar.config.changes``).
"""

from __future__ import annotations

__all__ = ["FLUSH_TIMEOUT", "RESOURCE", "Tracing"]

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..api import LifespanRegistry, hookimpl
from ..api.tracing import TRACING
from .tracing_settings import TracingSettings, resolve

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

    from ..api import RuntimeView
    from .head_sampling import DecidedTraceIds, HeadSampler
    from .span_export import BoundedBatchSpanProcessor

log = logging.getLogger("sidecar.tracing")

#: Key of the live :class:`Tracing` in ``sidecar.resources`` (absent when tracing is off).
RESOURCE = TRACING  # the key the public API reads (sidecar.api.tracing)
#: Seconds the spans still queued at shutdown get to reach the collector.
FLUSH_TIMEOUT = 5.0


@dataclass(frozen=True)
class Tracing:
    """What the tracing filters use: the sidecar's tracer, the provider behind it, and its
    sampler's decision made without the SDK (unsampled calls never reach it)."""

    provider: TracerProvider
    tracer: Tracer
    processor: BoundedBatchSpanProcessor
    settings: TracingSettings
    #: the provider's sampler, as the filters ask it before any span exists.
    head: HeadSampler
    #: the provider's id generator: a sampled new trace's id is the one decided on.
    ids: DecidedTraceIds


@asynccontextmanager
async def tracing(sidecar: RuntimeView) -> AsyncIterator[Tracing | None]:
    settings = resolve(sidecar.config.telemetry.tracing, os.environ, sidecar.config_name)
    if settings is None:
        yield None
        return
    # the SDK and an exporter: loaded at start-up, and only by a sidecar that traces
    from .tracing_sdk import SpanCounts, build_tracing

    live = build_tracing(settings)
    counts = SpanCounts(live.processor)
    sidecar.metrics.registry.register(counts)
    sidecar.resources[RESOURCE] = live
    log.info(
        "tracing on",
        extra={
            "fields": {
                # never the headers: they may carry the collector's credentials
                "protocol": settings.protocol,
                "endpoint": _shown(settings.endpoint),
                "sampler": settings.sampler,
                "ratio": settings.ratio,
            }
        },
    )
    try:
        yield live
    finally:
        sidecar.resources.pop(RESOURCE, None)
        # off the loop: the export thread may be waiting on a collector that does not answer
        await asyncio.to_thread(live.processor.shutdown, FLUSH_TIMEOUT)
        live.provider.shutdown()  # the processor is already down: this returns at once
        sidecar.metrics.registry.unregister(counts)


def _shown(url: str) -> str:
    """``scheme://host:port/path`` of ``url``: never a user or password written into it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


@hookimpl(trylast=True)
def sidecar_register_lifespans(registry: LifespanRegistry) -> None:
    registry.add("tracing", tracing)
