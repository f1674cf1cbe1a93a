"""Tracing end to end: real calls through the sidecar, spans received by an in-process OTLP
collector (gRPC or HTTP/protobuf, :mod:`tests.integration.otlp_receiver`), the upstream an aiohttp
server recording the ``traceparent`` it was sent."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from sidecar.app import Sidecar
from sidecar.telemetry.tracing import RESOURCE, Tracing
from sidecar.testing import FakeUpstream, async_wait_until, running_sidecar
from tests.integration.otlp_receiver import OtlpReceiver, ReceivedSpan

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
SAMPLED = f"00-{TRACE}-{PARENT}-01"
FAST = {"schedule_delay": "50ms"}


def tracing(rx: OtlpReceiver | None, **keys: Any) -> dict[str, Any]:
    where = {"protocol": rx.protocol, "endpoint": rx.endpoint} if rx is not None else {}
    return {"telemetry": {"tracing": {**where, **FAST, **keys}}}


def config(rx: OtlpReceiver | None, url: str, up: dict[str, Any] | None = None, **keys: Any):  # type: ignore[no-untyped-def]
    return {**tracing(rx, **keys), "upstreams": {"up": {"url": url, **(up or {})}}}


def client(s: Sidecar) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.http_port}", timeout=10.0)


def parent_of(traceparent: str | None) -> tuple[str, str, str]:
    """(trace id, parent span id, flags) of a traceparent header."""
    assert traceparent is not None
    _, trace_id, span_id, flags = traceparent.split("-")
    return trace_id, span_id, flags


def one(spans: list[ReceivedSpan], kind: str) -> ReceivedSpan:
    (span,) = [s for s in spans if s.kind == kind]
    return span


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@asynccontextmanager
async def setup(
    protocol: str = "grpc", handler: Any = None, up: dict[str, Any] | None = None, **keys: Any
) -> AsyncIterator[tuple[OtlpReceiver, FakeUpstream, Sidecar]]:
    async with OtlpReceiver(protocol) as rx, FakeUpstream(handler) as upstream:  # type: ignore[arg-type]
        async with running_sidecar(config(rx, upstream.url, up, **keys)) as s:
            yield rx, upstream, s


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
async def test_a_call_continues_the_apps_trace_over_either_protocol(protocol: str) -> None:
    """The app's trace goes on through the sidecar: SERVER under the app's span, CLIENT under
    SERVER, the upstream under CLIENT; the collector gets them over gRPC or HTTP/protobuf."""
    async with setup(protocol) as (rx, upstream, s):
        async with client(s) as c:
            r = await c.get("/up/orders/9?page=2", headers={"traceparent": SAMPLED})
        assert r.status_code == 200
        spans = await rx.wait_for(2)
    server, client_span = one(spans, "SERVER"), one(spans, "CLIENT")
    assert server.trace_id == client_span.trace_id == TRACE
    assert server.parent_span_id == PARENT
    assert client_span.parent_span_id == server.span_id
    trace_id, parent, flags = parent_of(upstream.requests[0].headers.get("traceparent"))
    assert (trace_id, parent, flags) == (TRACE, client_span.span_id, "01")
    assert server.attributes["http.request.method"] == "GET"
    assert server.attributes["url.path"] == "/orders/9"  # never the query
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["sidecar.route"] == "up"
    assert client_span.attributes["server.port"] == upstream.port
    assert server.resource["service.name"] == "sidecar"


async def test_a_call_without_a_trace_starts_one_the_upstream_continues() -> None:
    """An app that does not trace still gets its calls traced, and the upstream joins in."""
    async with setup() as (rx, upstream, s):
        async with client(s) as c:
            assert (await c.get("/up/x")).status_code == 200
        spans = await rx.wait_for(2)
    server = one(spans, "SERVER")
    assert server.parent_span_id == ""
    trace_id, parent, _ = parent_of(upstream.requests[0].headers.get("traceparent"))
    assert (trace_id, parent) == (server.trace_id, one(spans, "CLIENT").span_id)


async def test_a_retried_call_shows_each_attempt_as_a_sibling_client_span() -> None:
    """Retries are visible: one CLIENT span per attempt, numbered, all under the SERVER span."""
    answers = iter([503, 503, 200])

    async def flaky(request: web.Request) -> web.Response:
        return web.Response(status=next(answers, 200))

    retry = {"retry": {"attempts": 3, "backoff": {"base": "1ms", "max": "2ms"}}}
    async with setup(handler=flaky, up=retry) as (rx, upstream, s):
        async with client(s) as c:
            assert (await c.get("/up/x", headers={"traceparent": SAMPLED})).status_code == 200
        spans = await rx.wait_for(4)
    server = one(spans, "SERVER")
    clients = sorted(
        (x for x in spans if x.kind == "CLIENT"), key=lambda x: x.attributes["sidecar.attempt"]
    )
    assert [x.attributes["sidecar.attempt"] for x in clients] == [1, 2, 3]
    assert {x.parent_span_id for x in clients} == {server.span_id}
    assert [x.attributes["http.response.status_code"] for x in clients] == [503, 503, 200]
    assert [x.status for x in clients] == ["ERROR", "ERROR", "UNSET"]
    # every attempt told the upstream which span it was
    sent = [parent_of(r.headers.get("traceparent"))[1] for r in upstream.requests]
    assert sent == [x.span_id for x in clients]


async def test_a_rate_limited_call_carries_the_decision() -> None:
    """An operator finds, on the trace, that the sidecar refused the call and why."""
    limit = {"rate_limit": {"rate": "1/min", "burst": 1}}
    async with setup(up=limit) as (rx, upstream, s):
        async with client(s) as c:
            assert (await c.get("/up/x")).status_code == 200
            r = await c.get("/up/x", headers={"traceparent": SAMPLED})
        assert (r.status_code, r.headers["x-sidecar-error"]) == (429, "rate_limited")
        spans = await rx.wait_for(3)
    refused = [x for x in spans if x.trace_id == TRACE]
    server = one(refused, "SERVER")  # and no CLIENT span: the upstream was never called
    assert server.status == "ERROR"
    assert server.attributes["sidecar.decision"] == "rate_limited"
    assert server.attributes["http.response.status_code"] == 429
    assert [name for name, _ in server.events] == ["sidecar.decision"]
    assert len(upstream.requests) == 1


async def test_a_circuit_open_call_carries_the_decision() -> None:
    """Once the breaker opened, refused calls say circuit_open on their spans."""

    async def failing(request: web.Request) -> web.Response:
        return web.Response(status=500)

    breaker = {
        "retry": {"enabled": False},
        "circuit_breaker": {"consecutive_failures": 2, "open_for": "60s"},
    }
    async with setup(handler=failing, up=breaker) as (rx, upstream, s):
        async with client(s) as c:
            for _ in range(2):
                assert (await c.get("/up/x")).status_code == 500
            r = await c.get("/up/x", headers={"traceparent": SAMPLED})
        assert r.headers["x-sidecar-error"] == "circuit_open"
        await rx.wait_for(5)
    server = one([x for x in rx.spans if x.trace_id == TRACE], "SERVER")
    assert server.attributes["sidecar.decision"] == "circuit_open"
    assert server.status_message.startswith("circuit_open")
    assert len(upstream.requests) == 2


async def test_the_sampler_ratio_is_honoured_and_a_sampled_parent_always_followed() -> None:
    """At sample_ratio 0.25, about a quarter of new traces are kept (2 000 calls, within 5
    standard deviations: 400..600); an app's sampled trace is kept whatever the ratio."""
    calls, ratio = 2000, 0.25
    async with setup(sample_ratio=ratio, max_queue_size=8192) as (rx, upstream, s):
        async with client(s) as c:
            for _batch in range(calls // 50):
                batch = [c.get("/up/x") for _ in range(50)]
                assert {r.status_code for r in await asyncio.gather(*batch)} == {200}
            followed = [c.get("/up/x", headers={"traceparent": SAMPLED}) for _ in range(50)]
            assert {r.status_code for r in await asyncio.gather(*followed)} == {200}
        flags = [parent_of(r.headers.get("traceparent"))[2] for r in upstream.requests]
        new, continued = flags[:calls], flags[calls:]
        sampled = sum(int(f, 16) & 1 for f in new)
        assert 400 <= sampled <= 600, sampled
        assert all(int(f, 16) & 1 for f in continued)
        # the collector got exactly the sampled calls' spans (SERVER + CLIENT each)
        await rx.wait_for(2 * (sampled + 50))
        await async_wait_until(lambda: processor(s).exported == 2 * (sampled + 50), 10)
    assert len(rx.by_kind("SERVER")) == sampled + 50


def processor(s: Sidecar) -> Any:
    live: Tracing = s.resources[RESOURCE]
    return live.processor


async def test_a_down_collector_does_not_slow_calls_and_the_queue_stays_bounded() -> None:
    """With the collector unreachable, calls answer as usual, at most max_queue_size spans wait,
    and what is lost is counted in sidecar_spans_dropped_total."""
    async with FakeUpstream() as upstream:
        cfg = config(
            None,
            upstream.url,
            endpoint=f"http://127.0.0.1:{closed_port()}",
            max_queue_size=50,
            max_export_batch_size=10,
            export_timeout="2s",
        )
        async with running_sidecar(cfg) as s:
            slowest = 0.0
            async with client(s) as c:
                for _ in range(300):
                    began = time.perf_counter()
                    assert (await c.get("/up/x")).status_code == 200
                    slowest = max(slowest, time.perf_counter() - began)
                    assert len(processor(s)._queue) <= 50
            # a call never waits for an export (each export may take export_timeout)
            assert slowest < 1.0, slowest
            dropped = s.metrics.registry.get_sample_value(
                "sidecar_spans_dropped_total", {"reason": "queue_full"}
            )
            # 600 spans ended; at most 50 queued and a few batches taken by the stuck exporter
            assert dropped is not None and dropped >= 300, dropped
            began = time.perf_counter()
        # the drain flushed for at most its bound, then gave up on the collector
        assert time.perf_counter() - began < 10.0
        assert s.state == "stopped"


async def test_spans_still_queued_are_flushed_at_shutdown() -> None:
    """Stopping the sidecar delivers the last calls' spans instead of losing them."""
    async with OtlpReceiver() as rx, FakeUpstream() as upstream:
        cfg = config(rx, upstream.url, schedule_delay="60s")
        async with running_sidecar(cfg) as s:
            async with client(s) as c:
                assert (await c.get("/up/x")).status_code == 200
            assert rx.spans == []
        assert len(rx.spans) == 2


async def test_otel_variables_and_pod_identity_reach_the_collector(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Spans say which service, pod, namespace and node they came from, from the pod's env;
    collector headers (a secret reference) are sent with every export."""
    monkeypatch.setenv("OTEL_SERVICE_NAME", "shop-sidecar")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging")
    monkeypatch.setenv("POD_NAME", "shop-5c9d7")
    monkeypatch.setenv("POD_NAMESPACE", "shop")
    monkeypatch.setenv("NODE_NAME", "node-a")
    monkeypatch.setenv("COLLECTOR_TOKEN", "t0ken-for-collector")
    headers = {"authorization": {"env": "COLLECTOR_TOKEN"}}
    async with setup("http/protobuf", headers=headers) as (rx, upstream, s):
        async with client(s) as c:
            assert (await c.get("/up/x")).status_code == 200
        spans = await rx.wait_for(2)
    resource = spans[0].resource
    assert resource["service.name"] == "shop-sidecar"
    assert resource["deployment.environment"] == "staging"
    assert resource["k8s.pod.name"] == "shop-5c9d7"
    assert resource["k8s.namespace.name"] == "shop"
    assert resource["k8s.node.name"] == "node-a"
    assert rx.exports[0]["authorization"] == "t0ken-for-collector"


async def test_otel_sdk_disabled_turns_tracing_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_SDK_DISABLED=true wins over the file: no provider, no tracing filter, no header."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    async with setup() as (rx, upstream, s):
        async with client(s) as c:
            assert (await c.get("/up/x")).status_code == 200
        assert RESOURCE not in s.resources
        assert "traceparent" not in upstream.requests[0].headers
        assert s.metrics.registry.get_sample_value("sidecar_spans_exported_total") is None


async def test_the_span_families_are_documented() -> None:
    """An operator finds the span counters `/metrics` shows with tracing on in operations.md."""
    doc = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    async with setup() as (rx, upstream, s):
        families = [f for f in s.metrics.registry.collect() if f.name.startswith("sidecar_spans")]
    assert {f.name for f in families} == {"sidecar_spans_dropped", "sidecar_spans_exported"}
    for family in families:
        row = next(line for line in doc.splitlines() if line.startswith(f"| `{family.name}_total`"))
        labels = {k for sample in family.samples for k in sample.labels}
        assert all(f"`{label}`" in row for label in labels)
