"""The batch span processor: a bounded queue that drops and counts, and flush/shutdown that keep
their time bounds when the collector hangs."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from sidecar.telemetry.span_export import BoundedBatchSpanProcessor
from sidecar.testing import wait_until


class GatedExporter(SpanExporter):
    """Exports only while ``gate`` is open (a collector that hangs until told), then answers
    ``result``."""

    def __init__(self, result: SpanExportResult = SpanExportResult.SUCCESS) -> None:
        self.gate = threading.Event()
        self.result = result
        self.received = 0
        self.closed = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.gate.wait(10)
        self.received += len(spans)
        return self.result

    def shutdown(self) -> None:
        self.closed = True
        self.gate.set()  # as the OTLP exporters do: shutting down ends a pending export


def end_spans(processor: BoundedBatchSpanProcessor, count: int, check: bool = False) -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    for _ in range(count):
        tracer.start_span("s").end()
        if check:
            assert len(processor._queue) <= processor.max_queue_size


def test_a_full_queue_drops_new_spans_and_counts_them() -> None:
    """A slow collector never makes the sidecar hold more than max_queue_size spans."""
    exporter = GatedExporter()
    p = BoundedBatchSpanProcessor(
        exporter, max_queue_size=10, max_export_batch_size=5, schedule_delay=60
    )
    end_spans(p, 100, check=True)
    assert p.dropped["queue_full"] >= 80  # at most 10 queued + 5 being exported
    exporter.gate.set()
    assert p.force_flush(5_000)
    assert p.exported + p.dropped["queue_full"] == 100
    p.shutdown(1.0)


def test_failed_exports_are_counted_as_dropped() -> None:
    """Spans a collector refused show in sidecar_spans_dropped_total{reason="export_failed"}."""
    exporter = GatedExporter(SpanExportResult.FAILURE)
    exporter.gate.set()
    p = BoundedBatchSpanProcessor(exporter, schedule_delay=60)
    end_spans(p, 7)
    assert p.force_flush(5_000)
    assert (p.dropped["export_failed"], p.exported) == (7, 0)
    p.shutdown(1.0)


def test_flush_and_shutdown_keep_their_bounds_when_the_collector_hangs() -> None:
    """A hung collector cannot hold the sidecar's shutdown past the flush timeout."""
    exporter = GatedExporter()
    p = BoundedBatchSpanProcessor(exporter, schedule_delay=60)
    end_spans(p, 3)
    began = time.monotonic()
    assert not p.force_flush(100)
    p.shutdown(0.2)
    assert time.monotonic() - began < 3.0
    assert exporter.closed
    # spans queued after shutdown are dropped, not kept
    end_spans(p, 2)
    assert p.dropped["queue_full"] == 2


def test_spans_go_out_every_schedule_delay_without_a_flush() -> None:
    """Traces reach the collector on their own, a delay after the call."""
    exporter = GatedExporter()
    exporter.gate.set()
    p = BoundedBatchSpanProcessor(exporter, schedule_delay=0.05)
    end_spans(p, 3)
    wait_until(lambda: p.exported == 3, 5.0)
    p.shutdown(1.0)
