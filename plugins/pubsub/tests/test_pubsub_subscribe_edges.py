"""Deliveries at the edges, on Redis Streams: an app that hangs or refuses, a message that is
no CloudEvent, and the trace context carried from the publisher to the subscriber."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import sidecar_pubsub
from aiohttp import web
from pubsub_app import Stream, prefix, subscribed_config, until
from pubsub_brokers import RedisBroker

from sidecar.testing import FakeUpstream

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def test_an_app_that_hangs_is_retried_after_the_timeout_then_dead_lettered(
    redis_broker: RedisBroker, sidecar_factory: Any
) -> None:
    """A delivery the app does not answer within `timeout` counts as failed and is retried."""
    p = prefix()
    dlq = Stream(redis_broker.url, f"{p}orders.dlq")
    never = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await asyncio.wait_for(never.wait(), 15)
        return web.Response()

    async with FakeUpstream(hang) as app:
        config = subscribed_config(redis_broker.url, app.url, p, timeout="200ms")
        async with sidecar_factory(config, plugins=[sidecar_pubsub]) as s:
            async with httpx.AsyncClient() as client:
                r = await client.post(f"http://127.0.0.1:{s.http_port}/events/orders", content=b"x")
                assert r.status_code == 204
            await until(lambda: len(dlq.events()) == 1, "the dead letter")
        never.set()
    assert len(app.requests) == 3
    reason = dlq.events()[0]["deadletterreason"]
    assert reason == "the app did not answer within 0.2s (3 deliveries)"
    dlq.close()


async def test_a_4xx_answer_is_dead_lettered_without_retries(
    redis_broker: RedisBroker, sidecar_factory: Any
) -> None:
    """An app answering 400 would answer it again: the message is dead-lettered at once."""
    p = prefix()
    dlq = Stream(redis_broker.url, f"{p}orders.dlq")

    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=400)

    async with FakeUpstream(refuse) as app:
        async with sidecar_factory(
            subscribed_config(redis_broker.url, app.url, p), plugins=[sidecar_pubsub]
        ) as s:
            async with httpx.AsyncClient() as client:
                await client.post(f"http://127.0.0.1:{s.http_port}/events/orders", content=b"x")
            await until(lambda: len(dlq.events()) == 1, "the dead letter")
    assert len(app.requests) == 1
    assert dlq.events()[0]["deadletterreason"] == "the app answered 400"
    dlq.close()


async def test_a_message_that_is_no_cloudevent_goes_to_the_dead_letter_topic(
    redis_broker: RedisBroker, sidecar_factory: Any
) -> None:
    """What another writer put in the stream unreadably is kept, as bytes, in the dead letters."""
    p = prefix()
    orders = Stream(redis_broker.url, f"{p}orders")
    dlq = Stream(redis_broker.url, f"{p}orders.dlq")
    orders.client.xadd(orders.key, {"event": b"\xffnot json"})
    async with FakeUpstream() as app:
        async with sidecar_factory(
            subscribed_config(redis_broker.url, app.url, p), plugins=[sidecar_pubsub]
        ):
            await until(lambda: len(dlq.events()) == 1, "the dead letter")
            await until(lambda: orders.pending() == 0, "the original acknowledged")
    [dead] = dlq.events()
    assert app.requests == []
    assert dead["type"] == "sidecar.pubsub.undecodable"
    assert base64.b64decode(dead["data_base64"]) == b"\xffnot json"
    assert dead["deadletterreason"] == "not a CloudEvent"
    orders.close()
    dlq.close()


async def test_the_publishers_trace_context_reaches_the_subscriber(
    redis_broker: RedisBroker, sidecar_factory: Any
) -> None:
    """The traceparent of the publishing call travels in the event and is sent with delivery."""
    p = prefix()
    async with FakeUpstream() as app:
        async with sidecar_factory(
            subscribed_config(redis_broker.url, app.url, p), plugins=[sidecar_pubsub]
        ) as s:
            async with httpx.AsyncClient() as client:
                r = await client.post(
                    f"http://127.0.0.1:{s.http_port}/events/orders",
                    content=b"x",
                    headers={"traceparent": TRACEPARENT},
                )
                assert r.status_code == 204
            await until(lambda: len(app.requests) == 1, "the delivery")
    headers = app.requests[0].headers
    assert headers["ce-traceparent"] == TRACEPARENT
    assert headers["traceparent"] == TRACEPARENT


async def test_a_subscription_resumes_after_the_broker_comes_back(sidecar_factory: Any) -> None:
    """Redis killed and restarted under a running subscription: later messages still arrive."""
    broker = RedisBroker().start()
    p = prefix()
    try:
        async with FakeUpstream() as app:
            config = subscribed_config(broker.url, app.url, p)
            async with sidecar_factory(config, plugins=[sidecar_pubsub]) as s:
                base = f"http://127.0.0.1:{s.http_port}/events/orders"
                async with httpx.AsyncClient() as client:
                    assert (await client.post(base, content=b"1")).status_code == 204
                    await until(lambda: len(app.requests) == 1, "the first delivery")
                    broker.kill()
                    down = await client.post(base, content=b"lost")
                    assert down.status_code == 503  # refused, so the app knows to send again
                    await asyncio.to_thread(broker.start)  # same port, empty (no persistence)
                    again = await client.post(base, content=b"2")
                    assert again.status_code == 204, again.text
                await until(lambda: len(app.requests) == 2, "the delivery after the outage")
        assert app.requests[1].headers["ce-id"] == again.headers["ce-id"]
    finally:
        broker.close()


async def test_without_a_dead_letter_topic_a_given_up_message_is_counted_and_acked(
    redis_broker: RedisBroker, sidecar_factory: Any
) -> None:
    """With no dead_letter configured, a message the app gives up on is counted, not kept."""
    p = prefix()
    orders = Stream(redis_broker.url, f"{p}orders")

    async def give_up(request: web.Request) -> web.Response:
        return web.json_response({"status": "DEADLETTER"})

    async with FakeUpstream(give_up) as app:
        config = subscribed_config(redis_broker.url, app.url, p, dead_letter=None)
        async with sidecar_factory(config, plugins=[sidecar_pubsub]) as s:
            async with httpx.AsyncClient() as client:
                await client.post(f"http://127.0.0.1:{s.http_port}/events/orders", content=b"x")
                await until(lambda: len(app.requests) == 1, "the delivery")
                await until(lambda: orders.pending() == 0, "the message acknowledged")
                metrics = (await client.get(f"http://127.0.0.1:{s.admin_port}/metrics")).text
    labels = 'group="shop",reason="app",topic="orders",upstream="events"'
    assert f"sidecar_pubsub_dead_lettered_total{{{labels}}} 1.0" in metrics
    dlq = Stream(redis_broker.url, f"{p}orders.dlq")
    assert dlq.events() == []
    orders.close()
    dlq.close()
