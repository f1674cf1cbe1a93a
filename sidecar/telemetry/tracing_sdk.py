"""The OpenTelemetry SDK side of tracing: the sampler, the OTLP exporter and the provider that
:mod:`.tracing` publishes while tracing is on, and the span counters read at scrape time.

Imported only when tracing is on (the ``tracing`` lifespan, at start-up): the SDK and the
exporters stay out of a sidecar that does not trace.

The provider: a parent-based sampler (or the ``OTEL_TRACES_SAMPLER`` named), whose decision
the filters make first without it (:mod:`.head_sampling`, so an unsampled call never reaches
the SDK), the resource, and one :class:`~.span_export.BoundedBatchSpanProcessor` feeding an OTLP
exporter over gRPC (with the encoder of :mod:`.span_encoding`) or HTTP/protobuf.
"""

from __future__ import annotations

__all__ = ["SpanCounts", "build_tracing", "make_exporter", "make_sampler"]

from collections.abc import Iterable
from typing import Any

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
from prometheus_client.core import CounterMetricFamily

from .head_sampling import DecidedTraceIds, head_sampler
from .span_export import BoundedBatchSpanProcessor
from .tracing import Tracing
from .tracing_settings import TracingSettings


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
