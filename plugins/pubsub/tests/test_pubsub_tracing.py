"""Spans of the plugin's own, exported over OTLP to a receiver on 127.0.0.1: a PRODUCER span
per publish, ended once the broker confirmed, and a CONSUMER span per delivery under the
context the event carries, which the delivery's call to the app carries on."""

from __future__ import annotations

from typing import Any

import httpx
import sidecar_pubsub
from aiohttp import web
from otlp_collector import collector
from pubsub_app import prefix, subscribed_config, until
from pubsub_brokers import RedisBroker, free_port

from sidecar.testing import FakeUpstream

SCOPE = "sidecar-pubsub"
#: OTLP's span kinds and status codes
CLIENT, PRODUCER, CONSUMER = 3, 4, 5
ERROR = 2


def attributes(span: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in span.attributes:
        value = kv.value
        out[kv.key] = value.string_value if value.HasField("string_value") else value.int_value
    return out


async def _publish_one(http_port: int) -> httpx.Response:
    """One event published to ``orders`` through the sidecar, confirmed (204)."""
    async with httpx.AsyncClient() as client:
        r = await client.post(f"http://127.0.0.1:{http_port}/events/orders", content=b"x")
    assert r.status_code == 204, r.text
    return r


async def test_a_publish_and_its_deliveries_are_spans_of_one_trace(
    redis_broker: RedisBroker, sidecar_factory: Any
) -> None:
    """The publish is a PRODUCER span under the sidecar's span of the call; each delivery is a
    CONSUMER span under it (a retried one failed), and the app is called in that span."""
    answers = [500, 200]

    async def app_handler(request: web.Request) -> web.Response:
        return web.Response(status=answers.pop(0))

    async with collector() as rx, FakeUpstream(app_handler) as app:
        config = subscribed_config(redis_broker.url, app.url, prefix())
        config["telemetry"] = {"tracing": rx.tracing()}
        async with sidecar_factory(config, plugins=[sidecar_pubsub]) as s:
            r = await _publish_one(s.http_port)
            await until(lambda: len(app.requests) == 2, "a failed delivery and its retry")
            spans = await rx.until(SCOPE, 3)
    [publish] = [span for span in spans if span.kind == PRODUCER]
    assert publish.name == "orders publish"
    assert attributes(publish) == {
        "messaging.system": "redis",
        "messaging.destination.name": "orders",
        "messaging.operation.type": "publish",
        "messaging.message.id": r.headers["ce-id"],
    }
    [call] = [span for scope, span in rx.spans if span.span_id == publish.parent_span_id]
    assert call.kind == CLIENT and call.trace_id == publish.trace_id  # the sidecar's attempt
    deliveries = sorted(
        (span for span in spans if span.kind == CONSUMER),
        key=lambda span: attributes(span)["sidecar.pubsub.attempt"],
    )
    assert [d.name for d in deliveries] == ["orders process"] * 2
    for delivery, request in zip(deliveries, app.requests, strict=True):
        assert delivery.parent_span_id == publish.span_id
        assert delivery.trace_id == publish.trace_id
        assert request.headers["traceparent"].split("-")[2] == delivery.span_id.hex()
    failed, taken = deliveries
    assert attributes(failed)["messaging.consumer.group.name"] == "shop"
    assert attributes(failed)["error.type"] == "retry" and failed.status.code == ERROR
    assert "error.type" not in attributes(taken) and taken.status.code != ERROR


async def test_a_dead_letter_copy_is_a_producer_span_of_the_events_trace(
    redis_broker: RedisBroker, sidecar_factory: Any
) -> None:
    """An app that refuses a delivery: the copy to the dead-letter topic is published in a
    PRODUCER span of its own, in the trace the event carries."""

    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=400)

    async with collector() as rx, FakeUpstream(refuse) as app:
        config = subscribed_config(redis_broker.url, app.url, prefix())
        config["telemetry"] = {"tracing": rx.tracing()}
        async with sidecar_factory(config, plugins=[sidecar_pubsub]) as s:
            await _publish_one(s.http_port)
            spans = await rx.until(SCOPE, 3)
    assert len(app.requests) == 1
    [publish] = [span for span in spans if span.name == "orders publish"]
    [dead] = [span for span in spans if span.name == "orders.dlq publish"]
    assert dead.kind == PRODUCER and dead.trace_id == publish.trace_id
    assert attributes(dead)["messaging.destination.name"] == "orders.dlq"
    assert dead.status.code != ERROR


async def test_a_publish_the_broker_did_not_confirm_is_a_failed_span(
    sidecar_factory: Any,
) -> None:
    """When the broker cannot be reached the app gets 503 and the PRODUCER span says so."""
    async with collector() as rx:
        config = subscribed_config(f"redis://127.0.0.1:{free_port()}/0", "http://127.0.0.1:9", "p:")
        del config["upstreams"]["events"]["options"]["subscriptions"]
        config["telemetry"] = {"tracing": rx.tracing()}
        async with sidecar_factory(config, plugins=[sidecar_pubsub]) as s:
            async with httpx.AsyncClient() as client:
                r = await client.post(f"http://127.0.0.1:{s.http_port}/events/orders", content=b"x")
            assert r.status_code == 503
            [publish] = await rx.until(SCOPE, 1)
    assert publish.kind == PRODUCER and publish.status.code == ERROR
    assert attributes(publish)["error.type"] == "publish_failed"


def test_with_tracing_off_the_plugin_gets_no_tracer() -> None:
    """With tracing off the plugin gets no tracer and makes no span (no sockets); that it finds
    the sidecar's once tracing is on is what the tests above show through a real receiver."""
    from sidecar_pubsub.tracing import LiveTracer

    live = LiveTracer()
    assert live.get() is None  # not attached yet: the lifespan has not run
    resources: dict[str, Any] = {}
    live.attach(resources)
    assert live.get() is None  # tracing off
