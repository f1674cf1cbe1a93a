"""The batch span processor: ended spans wait in a bounded queue; one thread exports them.

It does what the SDK's ``BatchSpanProcessor`` does (a queue of ``max_queue_size``, exports of up to
``max_export_batch_size`` spans every ``schedule_delay`` or as soon as a batch is full) with three
differences the sidecar needs:

- a full queue drops the **new** span and counts it (:attr:`BoundedBatchSpanProcessor.dropped`),
  in one comparison and one addition on the event loop: no log call per span, which under the
  load that fills the queue would cost more than the span;
- spans whose export failed (collector down, refused) are counted too (``export_failed``), so
  ``sidecar_spans_dropped_total`` says how many spans never reached the collector, and why;
- :meth:`force_flush` and :meth:`shutdown` honour their timeouts (the SDK's flush blocks until
  the export ends), so a sidecar whose collector is down still stops within its bound;
- an exporter that encodes spans itself (:class:`EncodingExporter`, the OTLP/gRPC one) gets
  each span as it ends, and the queue holds its bytes: a queued span object outlives two
  garbage collections and is promoted to the oldest generation, whose collections (walking the
  whole heap) then came every few hundred sampled calls; bytes are never walked.

Counters are plain ints, each written by one thread (``queue_full`` on the loop, the others on
the export thread) and read at scrape time. Not here: building the exporter and the provider
(:mod:`sidecar.telemetry.tracing`).
"""

from __future__ import annotations

__all__ = ["BoundedBatchSpanProcessor", "EncodingExporter"]

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

log = logging.getLogger("sidecar.tracing")

#: What the queue holds: a span, or its encoding by an :class:`EncodingExporter`.
Queued = ReadableSpan | bytes


@runtime_checkable
class EncodingExporter(Protocol):
    """An exporter that encodes each span as it ends, and exports batches of those bytes."""

    def encode(self, span: ReadableSpan) -> bytes | None:
        """``span`` encoded (on the thread that ended it), ``None`` to queue it as it is."""

    def export_encoded(self, batch: Sequence[Queued]) -> SpanExportResult:
        """Send ``batch`` (on the export thread)."""


class BoundedBatchSpanProcessor(SpanProcessor):
    """Queue ended spans (at most ``max_queue_size``) and export them in batches on a thread."""

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        max_queue_size: int = 2048,
        max_export_batch_size: int = 512,
        schedule_delay: float = 5.0,
    ) -> None:
        self.exporter = exporter
        self.max_queue_size = max_queue_size
        self.max_export_batch_size = min(max_export_batch_size, max_queue_size)
        self.schedule_delay = schedule_delay
        #: spans lost, by reason: ``queue_full`` (the loop thread writes it), ``export_failed``.
        self.dropped = {"queue_full": 0, "export_failed": 0}
        #: spans the collector accepted.
        self.exported = 0
        self._queue: deque[Queued] = deque()
        # what on_end queues and the export thread sends: spans, or an encoding exporter's bytes
        self._encode: Callable[[ReadableSpan], bytes | None] | None = None
        self._send: Callable[[Sequence[Queued]], SpanExportResult]
        if isinstance(exporter, EncodingExporter):
            self._encode, self._send = exporter.encode, exporter.export_encoded
        else:
            self._send = exporter.export  # type: ignore[assignment]  # only spans are queued
        self._wake = threading.Event()
        self._lock = threading.Lock()  # guards _flushes and _stopping
        self._flushes: list[threading.Event] = []
        self._stopping = False
        self._failing = False  # whether the last export failed (log once per outage)
        self._thread = threading.Thread(target=self._run, name="sidecar-span-export", daemon=True)
        self._thread.start()

    # --- called by the SDK on the thread that starts and ends spans (the event loop) ---------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        queue = self._queue
        if len(queue) >= self.max_queue_size or self._stopping:
            self.dropped["queue_full"] += 1
            return
        item: Queued | None = None
        if self._encode is not None:
            try:
                item = self._encode(span)
            except Exception:  # an encoder bug must not fail the call that ended the span
                self._encode = None  # spans are queued as they are from now on
                log.exception("span encoding raised; the stock encoder is used from now on")
        queue.append(item or span)
        if len(queue) >= self.max_export_batch_size and not self._wake.is_set():
            self._wake.set()

    # --- flush and shutdown (any thread; the sidecar calls them off the loop) ---------------

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export what is queued now; ``False`` if that took longer than ``timeout_millis``."""
        done = threading.Event()
        with self._lock:
            if self._stopping:
                return False
            self._flushes.append(done)
        self._wake.set()
        return done.wait(timeout_millis / 1000)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Export what is queued (for up to ``timeout`` seconds), then close the exporter.

        Past the timeout, the exporter is shut down anyway, which makes the OTLP exporters give
        up their retries; an export still in progress then ends on its own timeout, on a daemon
        thread nobody waits for.
        """
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        self.exporter.shutdown()
        left = len(self._queue)
        if left:
            self.dropped["export_failed"] += left
            self._queue.clear()

    # --- the export thread ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self.schedule_delay)
            self._wake.clear()
            with self._lock:
                flushes, self._flushes = self._flushes, []
                stopping = self._stopping
            # everything queued now goes out, a batch at a time: spans never wait longer than
            # one delay plus the exports before them
            while self._queue:
                self._export(self._take())
            for done in flushes:
                done.set()
            if stopping:
                return

    def _take(self) -> list[Queued]:
        queue = self._queue
        return [queue.popleft() for _ in range(min(len(queue), self.max_export_batch_size))]

    def _export(self, batch: Sequence[Queued]) -> None:
        try:
            result = self._send(batch)
        except Exception:  # an exporter bug must not end the export thread
            log.exception("span export raised")
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            self.exported += len(batch)
            if self._failing:
                self._failing = False
                log.info("span export works again")
            return
        self.dropped["export_failed"] += len(batch)
        if not self._failing:
            # once per outage; the count is in sidecar_spans_dropped_total{reason="export_failed"}
            self._failing = True
            log.warning("span export failed; spans are dropped until the collector answers")
