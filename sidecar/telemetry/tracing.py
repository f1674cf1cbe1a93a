"""One OpenTelemetry ``TracerProvider`` per running sidecar, and its lifetime.

The built-in ``tracing`` lifespan (a plugin like any other: ``BUILTIN_PLUGINS``) resolves
``telemetry.tracing`` with the ``OTEL_*`` variables (:mod:`.tracing_settings`), builds a provider
of its own (never the process-global one, so several sidecars in a process do not mix their
spans), and publishes it as :data:`RESOURCE` in ``sidecar.resources`` before any route is
composed; the tracing filters (:mod:`sidecar.filters.tracing`) read it there. With tracing off
nothing is published, and those filters are left out of every chain.

The provider: a parent-based sampler (or the ``OTEL_TRACES_SAMPLER`` named), whose decision
the filters make first without it (:mod:`.head_sampling`, so an unsampled call never reaches
the SDK), the resource, and one :class:`~.span_export.BoundedBatchSpanProcessor` feeding an OTLP
exporter over gRPC (with the encoder of :mod:`.span_encoding`) or HTTP/protobuf. At shutdown
(after the listeners drained, so every call's spans have ended) what is queued gets up to
:data:`FLUSH_TIMEOUT` seconds to reach the collector, then the exporter is closed.
``sidecar_spans_dropped_total`` and ``sidecar_spans_exported_total`` are read from the processor
at scrape time.

Changes to ``telemetry.tracing`` take effect at the next restart (``sidecar.config.changes``).
"""

from __future__ import annotations

__all__ = ["FLUSH_TIMEOUT", "RESOURCE", "Tracing", "build_tracing", "make_sampler"]

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import Tracer
from prometheus_client.core import CounterMetricFamily

from ..api import LifespanRegistry, hookimpl
from .head_sampling import DecidedTraceIds, HeadSampler, head_sampler
from .span_export import BoundedBatchSpanProcessor
from .tracing_settings import TracingSettings, resolve

if TYPE_CHECKING:
    from ..api import RuntimeView

log = logging.getLogger("sidecar.tracing")

#: Key of the live :class:`Tracing` in ``sidecar.resources`` (absent when tracing is off).
RESOURCE = "tracing"
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


def make_sampler(name: str, ratio: float) -> Sampler:
    """The sampler ``OTEL_TRACES_SAMPLER`` names (see ``tracing_settings.SAMPLERS``)."""
    root: Sampler = (
        ALWAYS_ON
        if name.endswith("always_on")
        else ALWAYS_OFF
        if name.endswith("always_off")
        else TraceIdRatioBased(ratio)
    )
    # parent-based: a call whose parent was sampled is sampled, one whose parent was not is not;
    # the root sampler decides only for new traces
    return ParentBased(root) if name.startswith("parentbased_") else root


def make_exporter(settings: TracingSettings) -> SpanExporter:
    """The OTLP exporter for ``settings.protocol`` (gRPC or HTTP/protobuf)."""
    headers = settings.headers or None
    if settings.protocol == "grpc":
        # the stock exporter, with an encoder a few times cheaper (its export thread shares
        # the GIL with the event loop)
        from .span_encoding import EncodingGrpcExporter

        return EncodingGrpcExporter(
            endpoint=settings.endpoint,
            insecure=settings.endpoint.startswith("http://"),
            headers=headers,
            timeout=settings.export_timeout,
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter(
        endpoint=settings.endpoint, headers=headers, timeout=settings.export_timeout
    )


def build_tracing(settings: TracingSettings, exporter: SpanExporter | None = None) -> Tracing:
    """A provider for ``settings`` (``exporter`` replaces the OTLP one: tests, benchmarks)."""
    processor = BoundedBatchSpanProcessor(
        exporter if exporter is not None else make_exporter(settings),
        max_queue_size=settings.max_queue_size,
        max_export_batch_size=settings.max_export_batch_size,
        schedule_delay=settings.schedule_delay,
    )
    ids = DecidedTraceIds()
    provider = TracerProvider(
        sampler=make_sampler(settings.sampler, settings.ratio),
        resource=Resource(settings.resource),
        # the lifespan shuts it down; an atexit hook would flush a second time, unbounded
        shutdown_on_exit=False,
        id_generator=ids,
    )
    provider.add_span_processor(processor)
    version = settings.resource.get("service.version")
    tracer = provider.get_tracer("sidecar", version)
    return Tracing(provider, tracer, processor, settings, head_sampler(provider.sampler), ids)


class SpanCounts:
    """``sidecar_spans_*`` read from the processor when ``/metrics`` is scraped."""

    def __init__(self, processor: BoundedBatchSpanProcessor) -> None:
        self.processor = processor

    def collect(self) -> Iterable[Any]:
        dropped = CounterMetricFamily(
            "sidecar_spans_dropped",
            "Spans that never reached the collector, by reason (queue_full, export_failed).",
            labels=["reason"],
        )
        for reason, count in self.processor.dropped.items():
            dropped.add_metric([reason], count)
        yield dropped
        yield CounterMetricFamily(
            "sidecar_spans_exported",
            "Spans the collector accepted.",
            value=self.processor.exported,
        )


@asynccontextmanager
async def tracing(sidecar: RuntimeView) -> AsyncIterator[Tracing | None]:
    settings = resolve(sidecar.config.telemetry.tracing, os.environ, sidecar.config_name)
    if settings is None:
        yield None
        return
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
