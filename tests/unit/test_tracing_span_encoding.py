"""The OTLP encoding of the sidecar's spans: byte for byte what the stock OTLP encoder writes,
for every kind of span the filters make, and the stock encoder's way for what it does not
write."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from sidecar.api import RouteContext
from sidecar.chain import Filter, Handler, compose
from sidecar.config.models import TracingConfig
from sidecar.errors import RateLimited, UpstreamTimeout
from sidecar.exchange import Exchange, Headers, Response
from sidecar.filters import retry
from sidecar.filters.tracing import server_factory, upstream_factory
from sidecar.telemetry.span_encoding import MAX_CACHED, EncodingGrpcExporter, SpanEncoder
from sidecar.telemetry.span_export import BoundedBatchSpanProcessor, EncodingExporter
from sidecar.telemetry.tracing import RESOURCE, Tracing
from sidecar.telemetry.tracing_sdk import build_tracing
from sidecar.telemetry.tracing_settings import resolve
from sidecar.testing import make_exchange, make_route_context, on_front

SAMPLED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def live() -> Iterator[Tracing]:
    settings = resolve(TracingConfig(sample_ratio=1.0), {"POD_NAME": "shop-1"})
    assert settings is not None
    t = build_tracing(settings, InMemorySpanExporter())
    yield t
    t.processor.shutdown(1.0)


def ended(t: Tracing) -> Sequence[ReadableSpan]:
    assert t.processor.force_flush(5_000)
    exporter: InMemorySpanExporter = t.processor.exporter  # type: ignore[assignment]
    return exporter.get_finished_spans()


def stock(spans: Sequence[ReadableSpan]) -> bytes:
    return encode_spans(spans).SerializeToString()  # type: ignore[no-any-return]


def encoded(encoder: SpanEncoder, spans: Sequence[ReadableSpan]) -> bytes:
    """``spans`` encoded one by one as they would end, then framed as one request."""
    each = [encoder.encode_span(span) for span in spans]
    assert None not in each
    return encoder.request(each)  # type: ignore[arg-type]


async def test_the_sidecars_spans_encode_to_the_stock_encoders_bytes(live: Tracing) -> None:
    """What reaches the collector is exactly what the OTLP exporter would have sent: HTTP and
    gRPC calls, continued and new traces with tracestate, retries, decisions with their
    events, errors, aborted bodies."""
    http = make_route_context(
        {"url": "http://pay.internal:8443/api", "retry": {"backoff": {"base": "1ms"}}}, name="pay"
    )
    http = dataclasses.replace(http, resources={RESOURCE: live})
    grpc = make_route_context({"url": "grpc://inv:50051", "adapter": "grpc"}, name="inv")
    grpc = on_front(grpc, "grpc", resources={RESOURCE: live})
    retrying = retry.factory(http)
    assert retrying is not None
    answers: list[Response | BaseException] = [
        Response(503),
        Response(200),
        Response(404),
        RateLimited("over 10/s"),
        UpstreamTimeout("slow: 2 s"),
        ValueError("bug"),
        Response(200),
        Response(200),
    ]

    async def upstream(exchange: Exchange) -> Response:
        answer = answers.pop(0) if answers else Response(200)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def handler(ctx: RouteContext, *middle: Filter) -> Handler:
        server, client = server_factory(ctx), upstream_factory(ctx)
        assert server is not None and client is not None
        return compose([server, *middle, client], upstream)

    calls = [
        (
            handler(http, retrying),
            make_exchange("GET", "/charges/7", {"traceparent": SAMPLED, "tracestate": "ven=1,b=ü"}),
        ),
        (handler(http), make_exchange("BREW", "/pot", {})),
        (handler(http), make_exchange("POST", "/refunds", {})),
        (handler(http), make_exchange("GET", "/slow", {"traceparent": SAMPLED})),
        (handler(http), make_exchange("DELETE", "/charges/ü/é", {})),
        (handler(grpc), make_exchange("POST", "/inventory.v1.Inventory/Get", {})),
        (handler(grpc), make_exchange("POST", "/inventory.v1.Inventory/List", {})),
    ]
    for call, exchange in calls:
        try:
            resp = await call(exchange)
        except Exception:
            continue
        if exchange.path.endswith("List"):
            resp.trailers = Headers([("grpc-status", "13")])
        for done in resp.on_complete or ():
            done(not exchange.path.endswith("refunds"), 2)
    spans = ended(live)
    assert len(spans) >= 14
    assert {s.kind for s in spans} == {SpanKind.SERVER, SpanKind.CLIENT}
    assert any(s.events for s in spans) and any(s.status.description for s in spans)
    encoder = SpanEncoder()
    assert encoded(encoder, spans) == stock(spans)
    assert encoded(encoder, spans) == stock(spans)  # again, from its kept encodings
    assert encoded(encoder, spans[:1]) == stock(spans[:1])
    assert encoder.request([]) == b""


#: one provider for the spans made by hand, as the sidecar has one
EXPORTER = InMemorySpanExporter()
PROVIDER = TracerProvider(resource=Resource({"service.name": "x", "n": 3}), shutdown_on_exit=False)
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))
TRACER = PROVIDER.get_tracer("t", schema_url="https://opentelemetry.io/schemas/1.21.0")


def made(attributes: dict[str, Any], links: Sequence[Link] = ()) -> ReadableSpan:
    span = TRACER.start_span("", Context(), SpanKind.INTERNAL, attributes, links)
    span.set_status(Status(StatusCode.OK))
    span.add_event("e", {"k": 1.5})
    span.end()
    return EXPORTER.get_finished_spans()[-1]


@pytest.mark.parametrize(
    "value",
    [
        0,
        -1,
        -(1 << 63),
        (1 << 63) - 1,
        300,
        2.5,
        -0.0,
        True,
        False,
        "",
        "ü" * 200,
        b"\x00\x01",
        ("a", "b"),
        (1, -2),
        (True,),
        (),
        (1.5, 2.5),
    ],
)
def test_every_attribute_value_encodes_as_the_stock_encoder_does(value: object) -> None:
    """Values of every type OTLP carries (negative ints, floats, bools, bytes, lists, empty
    strings and names) are written as the stock encoder writes them."""
    span = made({"a": value, "b": "x"})
    assert encoded(SpanEncoder(), [span]) == stock([span])


def test_what_it_does_not_write_goes_through_the_stock_encoder() -> None:
    """A link, an int past 64 bits, another tracer's span: queued as spans and sent through
    the stock encoder, in the same request as the encoded ones, so none is sent wrong."""
    plain = made({"a": "b"})
    linked = made({}, links=[Link(made({}).context)])
    huge = made({"big": 1 << 64})
    other = PROVIDER.get_tracer("other").start_span("o")
    other.end()
    foreign = EXPORTER.get_finished_spans()[-1]
    encoder = SpanEncoder()
    assert encoder.encode_span(plain) is not None
    for span in (linked, huge, foreign):
        assert encoder.encode_span(span) is None
    exporter = EncodingGrpcExporter(endpoint="http://127.0.0.1:9", insecure=True, timeout=1)
    try:
        for batch in ([plain, linked, huge, foreign], [linked], [plain]):
            queued = [exporter.encode(span) or span for span in batch]
            request = exporter._translate_data(queued)
            sent = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
            expected = [
                s
                for rs in encode_spans(batch).resource_spans
                for ss in rs.scope_spans
                for s in ss.spans
            ]
            assert sorted(sent, key=lambda s: s.span_id) == sorted(
                expected, key=lambda s: s.span_id
            )
    finally:
        exporter.shutdown()


def test_the_kept_encodings_are_bounded() -> None:
    """Paths that never repeat do not grow the encoder's memory without bound."""
    encoder = SpanEncoder()
    spans = [made({"url.path": f"/item/{i}"}) for i in range(MAX_CACHED + 10)]
    assert encoded(encoder, spans) == stock(spans)
    assert len(encoder._attributes) <= MAX_CACHED


class RecordingEncoder(SpanExporter):
    """An encoding exporter that records what the processor queued and sent."""

    def __init__(self, fail: bool = False) -> None:
        self.encoder = SpanEncoder()
        self.fail = fail
        self.batches: list[list[bytes | ReadableSpan]] = []

    def encode(self, span: ReadableSpan) -> bytes | None:
        if self.fail:
            raise RuntimeError("encoder bug")
        return self.encoder.encode_span(span)

    def export_encoded(self, batch: Sequence[bytes | ReadableSpan]) -> SpanExportResult:
        self.batches.append(list(batch))
        return SpanExportResult.SUCCESS

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        raise AssertionError("an encoding exporter gets export_encoded")


@pytest.mark.parametrize("fail", [False, True])
def test_the_queue_holds_bytes_for_an_encoding_exporter(fail: bool) -> None:
    """Ended spans wait as bytes (never walked by the garbage collector); an encoder that
    raises does not fail the call that ended the span: its spans are queued as they are."""
    exporter = RecordingEncoder(fail)
    processor = BoundedBatchSpanProcessor(exporter, max_export_batch_size=4, schedule_delay=60)
    assert isinstance(exporter, EncodingExporter)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    try:
        for _ in range(6):
            provider.get_tracer("sidecar").start_span("s").end()
        assert processor.force_flush(5_000)
        sent = [item for batch in exporter.batches for item in batch]
        assert len(sent) == 6 and processor.exported == 6
        kinds = {type(item) for item in sent}
        assert kinds == ({ReadableSpan} if fail else {bytes})
    finally:
        processor.shutdown(1.0)
