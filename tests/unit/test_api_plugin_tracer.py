"""A plugin's own spans go through the running sidecar's tracer (``plugin_tracer``), and there
is none with tracing off."""

from __future__ import annotations

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sidecar import plugin_tracer
from sidecar.config.models import TracingConfig
from sidecar.telemetry.tracing import RESOURCE
from sidecar.telemetry.tracing_sdk import build_tracing
from sidecar.telemetry.tracing_settings import resolve


def test_no_tracer_with_tracing_off() -> None:
    """Without the tracing resource (tracing off) a plugin gets None and makes no span."""
    assert plugin_tracer({}, "sidecar-x") is None
    assert plugin_tracer({RESOURCE: object()}, "sidecar-x") is None


def test_the_plugins_spans_are_the_sidecars_under_its_scope() -> None:
    """Spans made with the tracer are exported by the sidecar's provider, named by scope."""
    settings = resolve(TracingConfig(sample_ratio=1.0), {})
    assert settings is not None
    exporter = InMemorySpanExporter()
    live = build_tracing(settings, exporter)
    try:
        tracer = plugin_tracer({RESOURCE: live}, "sidecar-x")
        assert tracer is not None
        tracer.start_span("attempt").end()
        live.processor.force_flush(5_000)
        (span,) = exporter.get_finished_spans()
        assert span.name == "attempt" and span.instrumentation_scope.name == "sidecar-x"
    finally:
        live.processor.shutdown(1.0)
