"""The tracing filters without sockets: which spans a call makes, how they link, what the
upstream is told, and what is never written on a span."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from sidecar.api import GRPC_STATUSES, AdapterTraits, RouteContext
from sidecar.chain import Filter, Handler, compose
from sidecar.config.models import TracingConfig
from sidecar.errors import CircuitOpen, RateLimited, UpstreamTimeout
from sidecar.exchange import Exchange, Headers, Response
from sidecar.filters import retry
from sidecar.filters.tracing import server_factory, upstream_factory
from sidecar.telemetry.trace_ids import TRACE_ID
from sidecar.telemetry.tracing import RESOURCE, Tracing
from sidecar.telemetry.tracing_sdk import build_tracing
from sidecar.telemetry.tracing_settings import resolve
from sidecar.testing import make_exchange, make_route_context, on_front

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"
SECRET = "Sup3r-s3cret-v4lue"


@pytest.fixture
def live() -> Iterator[Tracing]:
    settings = resolve(TracingConfig(sample_ratio=1.0), {})
    assert settings is not None
    t = build_tracing(settings, InMemorySpanExporter())
    yield t
    t.processor.shutdown(1.0)


def spans(t: Tracing) -> list[ReadableSpan]:
    assert t.processor.force_flush(5_000)
    exporter: InMemorySpanExporter = t.processor.exporter  # type: ignore[assignment]
    return list(exporter.get_finished_spans())


def of_kind(t: Tracing, kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in spans(t) if s.kind is kind]


def context(t: Tracing | None, upstream: dict[str, Any] | None = None, **kw: Any) -> RouteContext:
    ctx = make_route_context(upstream or {"url": "http://pay.internal:8443/api"}, name="pay")
    front = kw.pop("listener", "http")
    return on_front(ctx, front, resources={RESOURCE: t} if t else {}, **kw)


def chain(ctx: RouteContext, terminal: Handler, *middle: Filter) -> Handler:
    server, client = server_factory(ctx), upstream_factory(ctx)
    assert server is not None and client is not None
    return compose([server, *middle, client], terminal)


class Upstream:
    """A terminal handler recording the headers each attempt was sent with."""

    def __init__(self, *answers: Response | BaseException) -> None:
        self.answers = list(answers) or [Response(200, body=b"ok")]
        self.sent: list[Headers] = []

    async def __call__(self, exchange: Exchange) -> Response:
        self.sent.append(exchange.headers.copy())
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer


def complete(resp: Response, ok: bool = True) -> None:
    """What the listener does once the body was written."""
    for done in resp.on_complete or ():
        done(ok, 2)


async def test_the_call_continues_the_apps_trace_and_the_upstream_sees_the_client_span(
    live: Tracing,
) -> None:
    """In the app's trace: SERVER child of the app's span, CLIENT child of SERVER, and the
    upstream's parent is the CLIENT span."""
    up = Upstream()
    ex = make_exchange(
        "GET",
        "/charges/7",
        {"traceparent": f"00-{TRACE}-{PARENT}-01", "tracestate": "ven=1", "baggage": "k=v"},
    )
    complete(await chain(context(live), up)(ex))
    (server,) = of_kind(live, SpanKind.SERVER)
    (client,) = of_kind(live, SpanKind.CLIENT)
    assert format(server.context.trace_id, "032x") == TRACE
    assert server.parent is not None and format(server.parent.span_id, "016x") == PARENT
    assert client.parent is not None and client.parent.span_id == server.context.span_id
    sent = up.sent[0]
    assert sent.get_all("traceparent") == [f"00-{TRACE}-{client.context.span_id:016x}-01"]
    assert sent.get("tracestate") == "ven=1"  # the trace's state travels on
    assert sent.get("baggage") == "k=v"  # untouched
    assert ex.stash[TRACE_ID] == TRACE
    assert server.attributes is not None and client.attributes is not None
    assert server.name == "GET pay" and server.attributes["url.path"] == "/charges/7"
    assert server.attributes["http.response.status_code"] == 200
    assert client.attributes["url.path"] == "/api/charges/7"  # the upstream's base path
    assert client.attributes["server.address"] == "pay.internal"
    assert client.attributes["server.port"] == 8443
    assert client.attributes["sidecar.attempt"] == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"traceparent": "garbage", "tracestate": "stale=1"},
        {"traceparent": f"00-{'0' * 32}-{PARENT}-01"},
        {"traceparent": f"ff-{TRACE}-{PARENT}-01"},
    ],
)
async def test_a_call_without_a_valid_traceparent_starts_a_new_trace(
    live: Tracing, headers: dict[str, str]
) -> None:
    """No (or a broken) traceparent: a new trace, and the app's stale tracestate is not sent."""
    up = Upstream()
    complete(await chain(context(live), up)(make_exchange(headers=headers)))
    (server,) = of_kind(live, SpanKind.SERVER)
    assert server.parent is None
    assert format(server.context.trace_id, "032x") != TRACE
    assert up.sent[0].get("traceparent", "").split("-")[1] == f"{server.context.trace_id:032x}"
    assert "tracestate" not in up.sent[0]


async def test_sampling_follows_the_parent() -> None:
    """A sampled parent is always followed, an unsampled one never; the upstream still gets
    the trace id either way."""
    settings = resolve(TracingConfig(sample_ratio=0.0), {})
    assert settings is not None
    t = build_tracing(settings, InMemorySpanExporter())
    try:
        up = Upstream()
        handler = chain(context(t), up)
        unsampled = make_exchange(headers={"traceparent": f"00-{TRACE}-{PARENT}-00"})
        complete(await handler(unsampled))
        assert spans(t) == []
        assert up.sent[0].get("traceparent", "").startswith(f"00-{TRACE}-")
        assert up.sent[0].get("traceparent", "").endswith("-00")
        assert unsampled.stash[TRACE_ID] == TRACE
        complete(await handler(make_exchange(headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})))
        assert sorted(s.kind.name for s in spans(t)) == ["CLIENT", "SERVER"]
    finally:
        t.processor.shutdown(1.0)


async def test_retries_are_sibling_client_spans_numbered_by_attempt(live: Tracing) -> None:
    """Each attempt is its own CLIENT span under the one SERVER span, with sidecar.attempt."""
    ctx = context(live, {"url": "http://pay", "retry": {"attempts": 3, "backoff": {"base": "1ms"}}})
    retrying = retry.factory(ctx)
    assert retrying is not None
    up = Upstream(Response(503), Response(503), Response(200))
    resp = await chain(ctx, up, retrying)(make_exchange())
    complete(resp)
    (server,) = of_kind(live, SpanKind.SERVER)
    clients = sorted(of_kind(live, SpanKind.CLIENT), key=lambda s: s.start_time or 0)
    assert [c.attributes["sidecar.attempt"] for c in clients if c.attributes] == [1, 2, 3]
    assert {c.parent.span_id for c in clients if c.parent} == {server.context.span_id}
    assert [c.status.status_code for c in clients] == [StatusCode.ERROR] * 2 + [StatusCode.UNSET]
    # each attempt told the upstream its own span
    sent = [h.get("traceparent", "").split("-")[2] for h in up.sent]
    assert sent == [f"{c.context.span_id:016x}" for c in clients]


@pytest.mark.parametrize("error", [RateLimited("over 10/s"), CircuitOpen("open for 30s")])
async def test_a_sidecar_decision_is_on_the_server_span(
    live: Tracing, error: RateLimited | CircuitOpen
) -> None:
    """A refused call's span says which sidecar decision refused it, as an error."""

    async def deciding(exchange: Exchange, call_next: Handler) -> Response:
        raise error

    with pytest.raises(type(error)):
        await chain(context(live), Upstream(), deciding)(make_exchange())
    (server,) = spans(live)  # refused before any attempt: no CLIENT span
    assert server.status.status_code is StatusCode.ERROR
    assert server.status.description == f"{error.code}: {error.detail}"
    assert server.attributes is not None
    assert server.attributes["sidecar.decision"] == error.code
    assert server.attributes["error.type"] == error.code
    assert server.attributes["http.response.status_code"] == error.status
    assert [e.name for e in server.events] == ["sidecar.decision"]


async def test_an_attempt_the_sidecar_gave_up_is_an_error_client_span(live: Tracing) -> None:
    """An upstream timeout shows on the CLIENT span it cut, and on the call."""
    with pytest.raises(UpstreamTimeout):
        await chain(context(live), Upstream(UpstreamTimeout("slow")))(make_exchange())
    server, client = of_kind(live, SpanKind.SERVER)[0], of_kind(live, SpanKind.CLIENT)[0]
    for span in (server, client):
        assert span.attributes is not None
        assert span.attributes["sidecar.decision"] == "upstream_timeout"
    assert client.attributes is not None and "http.response.status_code" not in client.attributes


async def test_the_server_span_ends_when_the_body_is_delivered(live: Tracing) -> None:
    """A streamed response's span covers the whole body, and says when it was cut short."""

    async def body() -> AsyncIterator[bytes]:
        yield b"chunk"

    resp = await chain(context(live), Upstream(Response(200, body=body(), length=None)))(
        make_exchange()
    )
    assert spans(live) == []  # still streaming
    complete(resp, ok=False)
    server = of_kind(live, SpanKind.SERVER)[0]
    assert server.attributes is not None and server.attributes["sidecar.aborted"] is True


async def test_a_cancelled_call_still_ends_its_spans(live: Tracing) -> None:
    """The app going away ends the spans (none is left open), marked aborted."""
    with pytest.raises(asyncio.CancelledError):
        await chain(context(live), Upstream(asyncio.CancelledError()))(make_exchange())
    ended = spans(live)
    assert sorted(s.kind.name for s in ended) == ["CLIENT", "SERVER"]
    assert all(s.attributes and s.attributes["sidecar.aborted"] for s in ended)


async def test_no_query_header_or_body_reaches_a_span(live: Tracing) -> None:
    """Secrets in the query, in headers or in the body never reach the collector."""
    ex = make_exchange(
        "POST",
        "/charge",
        {"authorization": f"Bearer {SECRET}", "x-api-key": SECRET},
        SECRET.encode(),
        query=f"token={SECRET}",
    )
    complete(await chain(context(live), Upstream(Response(500)))(ex))
    for span in spans(live):
        shown = repr(dict(span.attributes or {})) + repr(span.events) + span.name
        shown += repr(span.status.description)
        assert SECRET not in shown


async def test_grpc_calls_get_rpc_attributes_and_their_status_from_the_trailers(
    live: Tracing,
) -> None:
    """A gRPC call's spans name its service and method, and carry its final status."""
    ctx = context(live, {"url": "grpc://inv:50051", "adapter": "grpc"}, listener="grpc")
    answer = Response(200)
    answer.trailers = Headers([("grpc-status", "5")])  # NOT_FOUND: the client's error only
    ex = make_exchange("POST", "/inventory.v1.Inventory/Get")
    complete(await chain(ctx, Upstream(answer))(ex))
    server, client = of_kind(live, SpanKind.SERVER)[0], of_kind(live, SpanKind.CLIENT)[0]
    for span in (server, client):
        assert span.name == "inventory.v1.Inventory/Get"
        assert span.attributes is not None
        assert span.attributes["rpc.system"] == "grpc"
        assert span.attributes["rpc.service"] == "inventory.v1.Inventory"
        assert span.attributes["rpc.method"] == "Get"
        assert span.attributes["rpc.grpc.status_code"] == 5
        assert "http.response.status_code" not in span.attributes
    assert server.status.status_code is StatusCode.UNSET
    assert client.status.status_code is StatusCode.ERROR
    assert client.attributes is not None and client.attributes["error.type"] == "NOT_FOUND"
    assert client.attributes["server.address"] == "inv"


def test_tracing_off_puts_no_filter_in_the_chain() -> None:
    """With tracing off, a call pays nothing for it: neither filter is built."""
    ctx = context(None)
    assert server_factory(ctx) is None and upstream_factory(ctx) is None


class CountingTracer:
    """The sidecar's tracer, counting the spans the filters ask the SDK for."""

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        self.started = 0

    def start_span(self, *args: Any, **kwargs: Any) -> Any:
        self.started += 1
        return self.tracer.start_span(*args, **kwargs)


def counted(ratio: float) -> tuple[Tracing, CountingTracer]:
    settings = resolve(TracingConfig(sample_ratio=ratio), {})
    assert settings is not None
    t = build_tracing(settings, InMemorySpanExporter())
    counter = CountingTracer(t.tracer)
    return dataclasses.replace(t, tracer=counter), counter  # type: ignore[arg-type]


async def test_an_unsampled_call_makes_no_span_and_the_upstream_continues_the_apps_trace() -> None:
    """At ratio 1.0 an app's unsampled trace is still never sampled, and costs no SDK span: the
    upstream gets a valid traceparent in the app's trace (flags 00, a span id of its own), the
    app's tracestate and baggage as sent, and the access log the app's trace id."""
    t, counter = counted(1.0)
    try:
        up = Upstream()
        handler = chain(context(t), up)
        sent_ids = set()
        for _ in range(50):
            ex = make_exchange(
                headers={
                    "traceparent": f"00-{TRACE}-{PARENT}-00",
                    "tracestate": "ven=1,other=2",
                    "baggage": "k=v",
                }
            )
            complete(await handler(ex))
            assert ex.stash[TRACE_ID] == TRACE
            sent = up.sent[-1]
            (value,) = sent.get_all("traceparent")
            version, trace_id, span_id, flags = value.split("-")
            assert (version, trace_id, flags) == ("00", TRACE, "00")
            assert len(span_id) == 16 and int(span_id, 16) and span_id != PARENT
            sent_ids.add(span_id)
            assert sent.get_all("tracestate") == ["ven=1,other=2"]
            assert sent.get("baggage") == "k=v"
        assert counter.started == 0 and spans(t) == []
        assert len(sent_ids) == 50  # each call its own span id
    finally:
        t.processor.shutdown(1.0)


async def test_an_unsampled_new_trace_drops_the_apps_stale_tracestate() -> None:
    """A call without a valid traceparent, left out by the ratio, still starts a trace the
    upstream continues (random-trace-id flag, as the SDK sets it) and the log can name."""
    t, counter = counted(0.0)
    try:
        up = Upstream()
        ex = make_exchange(headers={"traceparent": "garbage", "tracestate": "stale=1"})
        complete(await chain(context(t), up)(ex))
        (value,) = up.sent[0].get_all("traceparent")
        _, trace_id, span_id, flags = value.split("-")
        assert trace_id == ex.stash[TRACE_ID] and int(trace_id, 16) and int(span_id, 16)
        assert flags == "02"
        assert "tracestate" not in up.sent[0]
        assert counter.started == 0
    finally:
        t.processor.shutdown(1.0)


async def test_every_attempt_of_an_unsampled_call_sends_one_traceparent() -> None:
    """Retries of an unsampled call each carry the call's traceparent once (never piled up)."""
    t, counter = counted(0.0)
    try:
        ctx = context(
            t, {"url": "http://pay", "retry": {"attempts": 3, "backoff": {"base": "1ms"}}}
        )
        retrying = retry.factory(ctx)
        assert retrying is not None
        up = Upstream(Response(503), Response(503), Response(200))
        complete(await chain(ctx, up, retrying)(make_exchange()))
        sent = [h.get_all("traceparent") for h in up.sent]
        assert len(sent) == 3 and all(len(values) == 1 for values in sent)
        assert len({values[0] for values in sent}) == 1
        assert counter.started == 0
    finally:
        t.processor.shutdown(1.0)


async def test_a_sampled_new_trace_is_the_trace_its_sampling_was_decided_on() -> None:
    """At ratio 0.5, every exported trace's id is one the ratio keeps and every unsampled call's
    is one it leaves out: the SDK's spans are in the trace the decision was made on."""
    t, counter = counted(0.5)
    head = t.head
    try:
        up = Upstream()
        handler = chain(context(t), up)
        unsampled = []
        for _ in range(200):
            ex = make_exchange()
            complete(await handler(ex))
            if up.sent[-1].get("traceparent", "").endswith("-02"):
                unsampled.append(ex.stash[TRACE_ID])
        servers = of_kind(t, SpanKind.SERVER)
        assert 50 < len(servers) < 150 and len(servers) + len(unsampled) == 200
        assert all(head.new_trace(s.context.trace_id) for s in servers)
        assert not any(head.new_trace(int(trace_id, 16)) for trace_id in unsampled)
        assert counter.started == 2 * len(servers)  # a SERVER and a CLIENT span each, no more
        for server in servers:
            assert server.context.trace_flags == 0x03  # sampled, random trace id
    finally:
        t.processor.shutdown(1.0)


async def test_without_the_tracing_filter_the_client_span_filter_decides_alone(
    live: Tracing,
) -> None:
    """A chain whose tracing filter a plugin replaced still traces its attempts: a sampled
    parent gets a CLIENT span under it; an unsampled one only the traceparent."""
    client = upstream_factory(context(live))
    assert client is not None
    up = Upstream()
    handler = compose([client], up)
    complete(await handler(make_exchange(headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})))
    (span,) = spans(live)
    assert span.kind is SpanKind.CLIENT and span.parent is not None
    assert f"{span.parent.span_id:016x}" == PARENT
    assert up.sent[0].get("traceparent") == f"00-{TRACE}-{span.context.span_id:016x}-01"
    complete(await handler(make_exchange(headers={"traceparent": f"00-{TRACE}-{PARENT}-00"})))
    assert len(spans(live)) == 1
    assert up.sent[1].get("traceparent", "").startswith(f"00-{TRACE}-")
    assert up.sent[1].get("traceparent", "").endswith("-00")


async def test_a_client_span_reads_the_grpc_status_of_an_adapter_answering_in_grpc_terms(
    live: Tracing,
) -> None:
    """An HTTP call to an upstream whose adapter answers in gRPC terms: the CLIENT span is an
    RPC span with the trailers' status, the SERVER span stays an HTTP one."""
    ctx = context(live, adapter=AdapterTraits(statuses=GRPC_STATUSES))
    answer = Response(200)
    answer.trailers = Headers([("grpc-status", "14")])  # UNAVAILABLE
    complete(await chain(ctx, Upstream(answer))(make_exchange("POST", "/inventory.v1.Inv/Get")))
    server, client = of_kind(live, SpanKind.SERVER)[0], of_kind(live, SpanKind.CLIENT)[0]
    assert server.attributes is not None and client.attributes is not None
    assert server.attributes["http.response.status_code"] == 200
    assert "rpc.system" not in server.attributes
    assert client.attributes["rpc.system"] == "grpc"
    assert client.attributes["rpc.grpc.status_code"] == 14
    assert client.attributes["error.type"] == "UNAVAILABLE"
