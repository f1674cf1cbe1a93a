"""OTLP's protobuf encoding of ended spans, written straight to bytes as each span ends.

The OTLP exporters' own encoder builds a protobuf object for every span, attribute and value, in
Python: about 40 µs a span, on the export thread, holding the GIL the event loop needs; a
sampled call paid more for its two spans' encoding than for the spans themselves. And the spans
waiting in the export queue (hundreds, for tens of milliseconds) outlived two garbage
collections each, so the collector promoted them to its oldest generation and walked the whole
heap every few hundred calls to free them.

:class:`SpanEncoder` writes each span's ``Span`` message when it ends (a few joins, with the
encoding of each attribute it meets kept, bounded: the route, upstream, method and status
repeat on nearly every span), so the queue holds bytes the collector never walks, and the
export thread only frames a batch (:meth:`SpanEncoder.request`). The bytes are the stock
encoder's, field for field and in the same order: a test holds them to it.
:class:`EncodingGrpcExporter` is the OTLP/gRPC exporter built on it, for
:class:`~.span_export.BoundedBatchSpanProcessor` (:class:`~.span_export.EncodingExporter`); the
HTTP/protobuf exporter has no hook for it and keeps its own encoder.

A span this encoder does not write (links, maps or nested lists as attribute values, a resource
or scope other than the provider's: the sidecar makes none) is queued as it is and goes through
the stock encoder. Not here: batching (:mod:`.span_export`), choosing the exporter
(:mod:`.tracing`).
"""

from __future__ import annotations

__all__ = ["MAX_CACHED", "EncodingGrpcExporter", "SpanEncoder"]

from collections.abc import Mapping, Sequence
from struct import Struct
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind, StatusCode

#: Attributes whose encoding is kept; past that the cache starts over.
MAX_CACHED = 4096

_U64, _U32, _F64 = Struct("<Q"), Struct("<I"), Struct("<d")
_SMALL = [bytes([n]) for n in range(0x80)]  # one-byte varints
#: SpanKind field (6) with OTLP's numbering (the SDK's plus one: 0 is UNSPECIFIED)
_KIND = {kind: bytes([0x30, kind.value + 1]) for kind in SpanKind}
# Span.flags (field 16, fixed32): whether the parent is remote is always known
_FLAGS_LOCAL = b"\x85\x01" + _U32.pack(0x100)
_FLAGS_REMOTE = b"\x85\x01" + _U32.pack(0x300)
_PRIMITIVE = (str, bool, int, float)


class Unencodable(Exception):
    """A span holding what this encoder does not write."""


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: its tag byte, the length, the payload."""
    return tag + _varint(len(payload)) + payload


def _any_value(value: Any) -> bytes:
    """An ``AnyValue`` (a oneof: written even when it holds the default)."""
    if isinstance(value, bool):  # before int: a bool is an int
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _field(b"\x0a", value.encode())
    if isinstance(value, int):
        if not -(1 << 63) <= value < 1 << 63:
            raise Unencodable  # the stock encoder drops it, and logs why
        return b"\x18" + _varint(value & 0xFFFF_FFFF_FFFF_FFFF)  # int64: two's complement
    if isinstance(value, float):
        return b"\x21" + _F64.pack(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if isinstance(value, tuple) and all(isinstance(v, (*_PRIMITIVE, bytes)) for v in value):
        # ArrayValue: values (1)
        return _field(b"\x2a", b"".join([_field(b"\x0a", _any_value(v)) for v in value]))
    raise Unencodable


def _key_value(tag: bytes, key: str, value: Any) -> bytes:
    """A ``KeyValue`` field: key (1), value (2)."""
    return _field(tag, _string(b"\x0a", key) + _field(b"\x12", _any_value(value)))


def _string(tag: bytes, value: str) -> bytes:
    """A string field; an empty one is not written (proto3's default)."""
    return _field(tag, value.encode()) if value else b""


class SpanEncoder:
    """Encodes the spans of one provider: its resource and scope are the first span's.

    :meth:`encode_span` runs on the thread that ends spans (the event loop), :meth:`request` on
    the export thread; the attribute cache is the first's alone.
    """

    def __init__(self) -> None:
        #: (tag, key, type, value) → the ``KeyValue`` field (the type: ``1 == True == 1.0``)
        self._attributes: dict[tuple[bytes, str, type, Any], bytes] = {}
        #: the resource and scope of the spans encoded, and their fields, once known
        self._resource: Resource | None = None
        self._scope: InstrumentationScope | None = None
        self._resource_field = self._scope_field = b""

    def encode_span(self, span: ReadableSpan) -> bytes | None:
        """``span``'s ``Span`` message, or ``None`` when this encoder does not write it."""
        resource, scope = span.resource, span.instrumentation_scope
        if resource is not self._resource or scope is not self._scope:
            if self._resource is not None or scope is None:
                return None  # another provider's or tracer's: the stock encoder groups it
            try:
                self._pin(resource, scope)
            except Unencodable:
                return None
        try:
            return self._span(span)
        except Unencodable:
            return None

    def request(self, spans: Sequence[bytes]) -> bytes:
        """An ``ExportTraceServiceRequest`` holding ``spans`` (from :meth:`encode_span`)."""
        if not spans:
            return b""
        # ScopeSpans: scope (1), spans (2), schema_url (3)
        scope_spans = [self._scope_field, *[_field(b"\x12", s) for s in spans]]
        assert self._scope is not None  # a span was encoded
        scope_spans.append(_string(b"\x1a", self._scope.schema_url or ""))
        # ResourceSpans: resource (1), scope_spans (2), schema_url (3)
        body = self._resource_field + _field(b"\x12", b"".join(scope_spans))
        assert self._resource is not None
        body += _string(b"\x1a", self._resource.schema_url)
        return _field(b"\x0a", body)  # ExportTraceServiceRequest: resource_spans (1)

    def _pin(self, resource: Resource, scope: InstrumentationScope) -> None:
        """Encode the resource and scope every span after this one shares."""
        resource_field = _field(b"\x0a", self._encode_attributes(b"\x0a", resource.attributes))
        # InstrumentationScope: name (1), version (2), attributes (3)
        body = _string(b"\x0a", scope.name) + _string(b"\x12", scope.version or "")
        body += self._encode_attributes(b"\x1a", scope.attributes)
        self._resource_field, self._scope_field = resource_field, _field(b"\x0a", body)
        self._resource, self._scope = resource, scope

    def _encode_attributes(self, tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
        """Each attribute as a ``KeyValue`` field ``tag``; kept for the next span."""
        if not attributes:
            return b""
        known = self._attributes
        out = []
        for key, value in attributes.items():
            if not isinstance(value, _PRIMITIVE):  # a tuple: rarely repeated, not kept
                out.append(_key_value(tag, key, value))
                continue
            cached = (tag, key, type(value), value)
            encoded = known.get(cached)
            if encoded is None:
                if len(known) >= MAX_CACHED:
                    known.clear()
                encoded = known[cached] = _key_value(tag, key, value)
            out.append(encoded)
        return b"".join(out)

    def _span(self, span: ReadableSpan) -> bytes:
        context = span.get_span_context()
        parent = span.parent
        if context is None or span.links:
            raise Unencodable  # the sidecar's spans have a context and no links
        parts = [
            b"\x0a\x10" + context.trace_id.to_bytes(16, "big"),
            b"\x12\x08" + context.span_id.to_bytes(8, "big"),
        ]
        state = context.trace_state
        if state:
            parts.append(_string(b"\x1a", ",".join([f"{k}={v}" for k, v in state.items()])))
        if parent is not None:
            parts.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
        parts.append(_string(b"\x2a", span.name))
        parts.append(_KIND[span.kind])
        if span.start_time:
            parts.append(b"\x39" + _U64.pack(span.start_time))
        if span.end_time:
            parts.append(b"\x41" + _U64.pack(span.end_time))
        parts.append(self._encode_attributes(b"\x4a", span.attributes))
        if span.dropped_attributes:
            parts.append(b"\x50" + _varint(span.dropped_attributes))
        for event in span.events:
            # Event: time (1, fixed64), name (2), attributes (3), dropped count (4)
            body = b"\x09" + _U64.pack(event.timestamp) if event.timestamp else b""
            body += _string(b"\x12", event.name)
            body += self._encode_attributes(b"\x1a", event.attributes)
            if event.dropped_attributes:
                body += b"\x20" + _varint(event.dropped_attributes)
            parts.append(_field(b"\x5a", body))
        if span.dropped_events:
            parts.append(b"\x60" + _varint(span.dropped_events))
        if span.dropped_links:
            parts.append(b"\x70" + _varint(span.dropped_links))
        # Status: message (2), code (3)
        status = span.status
        body = _string(b"\x12", status.description or "")
        if status.status_code is not StatusCode.UNSET:
            body += b"\x18" + _varint(status.status_code.value)
        parts.append(_field(b"\x7a", body))
        parts.append(_FLAGS_REMOTE if parent is not None and parent.is_remote else _FLAGS_LOCAL)
        return b"".join(parts)


class EncodingGrpcExporter(OTLPSpanExporter):
    """The OTLP/gRPC span exporter, whose spans are encoded as they end.

    :meth:`encode` is called by the processor as each span ends, :meth:`export_encoded` with a
    batch of what it returned (or the spans it did not encode); :meth:`export`, for any other
    processor, encodes a batch of spans itself.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._encoder = SpanEncoder()

    def encode(self, span: ReadableSpan) -> bytes | None:
        return self._encoder.encode_span(span)

    def export_encoded(self, batch: Sequence[bytes | ReadableSpan]) -> SpanExportResult:
        result: SpanExportResult = self._export(batch)  # type: ignore[arg-type]
        return result

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.export_encoded([self.encode(span) or span for span in spans])

    def _translate_data(self, data: Sequence[bytes | ReadableSpan]) -> ExportTraceServiceRequest:
        encoded = [item for item in data if isinstance(item, bytes)]
        payload = self._encoder.request(encoded)
        if len(encoded) < len(data):
            spans = [item for item in data if not isinstance(item, bytes)]
            # two serialized requests, one after the other, are one with both lists of spans
            payload += encode_spans(spans).SerializeToString()
        # parsing the bytes back is C (upb): a tenth of what building the objects in Python costs
        request = ExportTraceServiceRequest()
        request.ParseFromString(payload)
        return request
